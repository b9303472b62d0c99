// The web console, end to end in a real browser (Debian's chromium through
// playwright-core): create a function from testplugin's library and test
// it with the APIG template; swap a new build in under load and see the
// generation change in the timeline with no failed request; set an alias
// weight; sign in on a keyed server, a wrong secret refused; a function's
// page on the same origin cannot reach the console's session. Every page's
// screenshot goes to target/console-screenshots/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { AK, SK, TARGET, hotswapBuild, newPage, openBrowser, screenshot, startServer } from "./support.mjs";

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;
const TIMEOUT = { timeout: 20_000 };
let browser;

before(async () => {
  browser = await openBrowser();
});

after(async () => {
  await browser?.close();
});

async function createFunction(page, file, name) {
  await page.getByLabel("Code (.so or .zip)").setInputFiles(file);
  const nameField = page.getByLabel("Function name");
  await nameField.fill(name);
  await page.getByRole("button", { name: "Create", exact: true }).click();
  await page.getByRole("link", { name, exact: true }).waitFor(TIMEOUT);
}

async function openTab(page, name, tab) {
  await page.goto(`${new URL(page.url()).origin}/console/#/functions/${name}/${tab}`);
  const tabs = page.getByRole("navigation", { name: "Function" });
  await tabs.getByRole("link", { name: tab[0].toUpperCase() + tab.slice(1), exact: true }).waitFor(TIMEOUT);
}

test("create a function from testplugin's library, test it with the APIG template, and read the three parts", async () => {
  const server = await startServer();
  const off = [];
  try {
    const page = await newPage(browser, server.url, off);
    await page.goto(`${server.url}/console`);
    await page.getByRole("heading", { name: "Functions", exact: true }).waitFor(TIMEOUT);
    await createFunction(page, join(TARGET, "libtestplugin.so"), "testplugin");
    const row = page.getByRole("row", { name: /testplugin\.Handler/ });
    await row.waitFor(TIMEOUT);
    await screenshot(page, "functions");

    await page.getByRole("link", { name: "testplugin", exact: true }).click();
    await page.getByRole("heading", { name: "Configuration" }).waitFor(TIMEOUT);
    assert.equal(await page.getByLabel("Handler").inputValue(), "testplugin.Handler");
    // Edit the configuration: it swaps in, and the API says so.
    await page.getByLabel("Memory (MB)").selectOption("256");
    await page.getByLabel("Timeout (s)").fill("7");
    await page.getByLabel("User data (JSON object of strings)").fill('{"NAME": "from the console"}');
    assert.equal(JSON.parse(await page.getByLabel("Sandbox (JSON)").inputValue()).tmp_mb, 512);
    await page.getByLabel("Sandbox (JSON)").fill('{"tmp_mb": 64}');
    await page.getByRole("button", { name: "Save configuration" }).click();
    await page.getByRole("status").filter({ hasText: "Configuration saved" }).waitFor(TIMEOUT);
    const config = await (await fetch(`${server.url}/v2/local/fgs/functions/testplugin/config`)).json();
    assert.deepEqual([config.memory_size, config.timeout, JSON.parse(config.user_data)], [256, 7, { NAME: "from the console" }]);
    assert.equal(config.sandbox.tmp_mb, 64);
    assert.equal(await page.getByLabel("Timeout (s)").inputValue(), "7");
    await screenshot(page, "function-configuration");

    await page.getByRole("navigation", { name: "Function" }).getByRole("link", { name: "Test", exact: true }).click();
    const template = page.getByLabel("Event template");
    await template.waitFor(TIMEOUT);
    const options = await template.locator("option").allTextContents();
    assert.deepEqual(options, ["Blank", "APIG", "Timer", "Kafka", "SMN", "DIS", "CTS", "DDS", "LTS", "Redis Streams", "NATS JetStream", "MQTT", "RabbitMQ"]);
    await template.selectOption({ label: "APIG" });
    assert.match(await page.getByLabel("Event", { exact: true }).inputValue(), /httpMethod/);
    await page.getByRole("button", { name: "Test", exact: true }).click();
    for (const heading of ["Function Output", "Execution Summary", "Log Output"]) {
      await page.getByRole("heading", { name: heading, exact: true }).waitFor(TIMEOUT);
    }
    const summary = await page.getByLabel("Execution summary").innerText();
    assert.match(summary, /Request ID\s+/);
    const requestId = summary.match(UUID)?.[0];
    assert.ok(requestId, summary);
    for (const label of ["Configured memory", "Duration", "Memory used", "Billed duration"]) {
      assert.match(summary, new RegExp(label), summary);
    }
    assert.match(summary, /256 MB/);
    // The handler sees the user data set above.
    assert.match(await page.getByLabel("Function output").innerText(), /from the console/);
    // The log's lines carry the request id.
    assert.match(await page.getByLabel("Log output").innerText(), new RegExp(requestId));
    await screenshot(page, "test");

    // A failing call shows errorType and errorMessage: the event is not JSON.
    const event = page.getByLabel("Event", { exact: true });
    await event.fill("not json");
    // By keyboard: from the editor, Tab reaches Test; Enter presses it.
    await event.focus();
    await page.keyboard.press("Tab");
    await page.keyboard.press("Enter");
    const failed = page.getByRole("alert").filter({ hasText: "errorType" });
    await failed.waitFor(TIMEOUT);
    assert.match(await failed.innerText(), /errorMessage/);
    await screenshot(page, "test-error");

    // Delete: a second click confirms.
    await page.getByRole("link", { name: "Functions", exact: true }).first().click();
    await page.getByRole("button", { name: "Delete testplugin" }).click();
    await page.getByRole("button", { name: "Confirm delete testplugin" }).click();
    await page.getByText("No functions yet").waitFor(TIMEOUT);
    assert.equal((await fetch(`${server.url}/v2/local/fgs/functions/testplugin/config`)).status, 404);
    assert.deepEqual(off, [], "requests off the server's origin, or page errors");
  } finally {
    await server.stop();
  }
});

test("a new build swaps in under load: the timeline shows the new generation, no request fails, and an alias weight is set", async () => {
  const server = await startServer();
  const off = [];
  let running = true;
  let callers = [];
  let page;
  try {
    page = await newPage(browser, server.url, off);
    await page.goto(`${server.url}/console/`);
    await page.getByRole("heading", { name: "Functions", exact: true }).waitFor(TIMEOUT);
    await createFunction(page, hotswapBuild(server.dir, "A"), "hotswap");

    await openTab(page, "hotswap", "monitoring");
    const timeline = page.getByRole("table", { name: "Deploy timeline" });
    await timeline.waitFor(TIMEOUT);
    const created = await timeline.getByRole("row").nth(1).innerText();
    assert.match(created, /created/);
    const firstGeneration = Number(created.split("\t")[2]);

    // Load: four callers, each call 30 ms long, until told to stop.
    const invoke = `${server.url}/v2/local/fgs/functions/hotswap/invocations`;
    const answers = [];
    callers = Array.from({ length: 4 }, async () => {
      while (running) {
        try {
          const r = await fetch(invoke, { method: "POST", body: "sleep:30" });
          answers.push({ status: r.status, error: r.headers.get("x-is-func-err"), body: await r.text() });
        } catch (e) {
          answers.push({ status: 0, error: String(e), body: "" });
        }
      }
    });
    while (answers.length < 20) await new Promise((r) => setTimeout(r, 20));

    await openTab(page, "hotswap", "code");
    await page.getByLabel("New build (.so or .zip)").setInputFiles(hotswapBuild(server.dir, "B"));
    await page.getByRole("button", { name: "Upload" }).click();
    await page.getByRole("status").filter({ hasText: "serves now" }).waitFor(TIMEOUT);
    const swappedAt = answers.length;
    while (answers.length < swappedAt + 20) await new Promise((r) => setTimeout(r, 20));

    await openTab(page, "hotswap", "monitoring");
    await timeline.waitFor(TIMEOUT);
    const swapped = timeline.getByRole("row").filter({ hasText: "swapped" });
    await swapped.waitFor(TIMEOUT);
    // The replaced generation drained (the watcher saw its last call end).
    await timeline.getByRole("row").filter({ hasText: /swapped.*ms \(\d+ calls at the swap\)/s }).waitFor(TIMEOUT);
    const cells = (await swapped.innerText()).split("\t");
    assert.ok(Number(cells[2]) > firstGeneration, cells.join(" | "));
    assert.equal(Number(cells[3]), firstGeneration, cells.join(" | "));
    running = false;
    await Promise.all(callers);
    const failed = answers.filter((a) => a.status !== 200 || a.error !== "false");
    assert.deepEqual(failed, [], "failed requests during the swap");
    const builds = new Set(answers.map((a) => a.body.split(" ")[1]));
    assert.deepEqual([...builds].sort(), ["A", "B"]);
    // The charts count the load, with no errors.
    await openTab(page, "hotswap", "monitoring");
    await page.getByRole("img", { name: /Invocations/ }).waitFor(TIMEOUT);
    const latestRow = page.getByRole("table", { name: "Totals by version" }).getByRole("row", { name: /^latest/ });
    const counted = async () => (await latestRow.innerText()).split("\t");
    const deadline = Date.now() + 10_000;
    while (Number((await counted())[1]) < answers.length && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
    }
    const latest = await counted();
    assert.equal(Number(latest[1]), answers.length, latest.join(" | "));
    assert.equal(latest[2], "0", latest.join(" | "));
    await screenshot(page, "monitoring");

    // Version v1 is build B, v2 build C; alias canary sends 30 % to v2.
    await openTab(page, "hotswap", "versions");
    await page.getByRole("button", { name: "Publish version" }).click();
    await page.getByRole("status").filter({ hasText: "Published version v1" }).waitFor(TIMEOUT);
    await page.getByRole("rowheader", { name: "v1", exact: true }).waitFor(TIMEOUT);
    await openTab(page, "hotswap", "code");
    await page.getByLabel("New build (.so or .zip)").setInputFiles(hotswapBuild(server.dir, "C"));
    await page.getByRole("button", { name: "Upload" }).click();
    await page.getByRole("status").filter({ hasText: "serves now" }).waitFor(TIMEOUT);
    await openTab(page, "hotswap", "versions");
    await page.getByRole("button", { name: "Publish version" }).click();
    await page.getByRole("status").filter({ hasText: "Published version v2" }).waitFor(TIMEOUT);
    await screenshot(page, "versions");
    await openTab(page, "hotswap", "aliases");
    await page.getByLabel("Alias name").fill("canary");
    await page.getByLabel("Alias version").selectOption("v1");
    await page.getByRole("button", { name: "Create alias" }).click();
    const slider = page.getByLabel("Weight of version v2");
    await slider.waitFor(TIMEOUT);
    // The alias's own version takes the rest: it has no slider.
    assert.equal(await page.getByLabel("Weight of version v1").isVisible(), false);
    await slider.fill("30");
    await page.getByRole("button", { name: "Save canary" }).click();
    await page.getByRole("status").filter({ hasText: "Saved alias canary" }).waitFor(TIMEOUT);
    assert.equal(await page.getByLabel("Weight of version v2").inputValue(), "30");
    const alias = await (await fetch(`${server.url}/v2/local/fgs/functions/hotswap/aliases/canary`)).json();
    assert.equal(alias.version, "v1");
    assert.deepEqual(alias.additional_version_weights, { v2: 30 });
    await screenshot(page, "aliases");
    // The alias draws between both builds.
    const drawn = new Set();
    for (let i = 0; i < 60; i++) {
      const r = await fetch(`${server.url}/v2/local/fgs/functions/hotswap:canary/invocations`, { method: "POST", body: "" });
      drawn.add((await r.text()).split(" ")[1]);
    }
    assert.deepEqual([...drawn].sort(), ["B", "C"]);

    // Triggers: an APIG trigger with its URL, which answers.
    await openTab(page, "hotswap", "triggers");
    await page.getByLabel("APIG path").fill("/hotswap-web");
    await page.getByRole("button", { name: "Create trigger" }).click();
    await page.getByRole("button", { name: `Copy ${server.url}/hotswap-web` }).waitFor(TIMEOUT);
    const apig = await fetch(`${server.url}/hotswap-web`);
    assert.equal(apig.status, 200);
    await page.getByRole("button", { name: /^Disable trigger/ }).click();
    await page.getByRole("cell", { name: "DISABLED" }).waitFor(TIMEOUT);
    assert.equal((await fetch(`${server.url}/hotswap-web`)).status, 404);
    // A TIMER trigger with its schedule.
    await page.getByLabel("Trigger type").selectOption("TIMER");
    await page.getByLabel("Schedule", { exact: true }).fill("5m");
    await page.getByRole("button", { name: "Create trigger" }).click();
    await page.getByRole("cell", { name: "Rate 5m" }).waitFor(TIMEOUT);
    const triggers = await (await fetch(`${server.url}/v2/local/fgs/triggers/hotswap`)).json();
    assert.deepEqual(triggers.map((t) => [t.trigger_type_code, t.trigger_status]).sort(), [["APIG", "DISABLED"], ["TIMER", "ACTIVE"]]);
    // An event source: a Redis stream, its settings as JSON from the type's
    // template; its row shows what it consumes, its status and its lag.
    const redisUrl = process.env.FNHOST_TEST_REDIS || "redis://127.0.0.1:6379";
    const stream = `fnhost-console-${Date.now()}`;
    await page.getByLabel("Trigger type").selectOption("REDIS");
    assert.match(await page.getByLabel("Event source settings").inputValue(), /"stream": "orders"/);
    await page.getByLabel("Event source settings").fill(JSON.stringify({ url: redisUrl, stream, batch_size: 5 }));
    await page.getByRole("button", { name: "Create trigger" }).click();
    await page.getByRole("cell", { name: `${redisUrl} stream ${stream}` }).waitFor(TIMEOUT);
    const redis = (await (await fetch(`${server.url}/v2/local/fgs/triggers/hotswap`)).json()).find((t) => t.trigger_type_code === "REDIS");
    assert.equal(redis.event_data.stream, stream);
    assert.equal(typeof redis.lag, "number");
    // Settings that are not JSON are refused in the page, and the server's
    // own check answers in it too.
    await page.getByLabel("Trigger type").selectOption("RABBITMQ");
    await page.getByLabel("Event source settings").fill("{not json");
    await page.getByRole("button", { name: "Create trigger" }).click();
    await page.getByText(/The settings are not JSON/).waitFor(TIMEOUT);
    await screenshot(page, "triggers");

    // Async: an invocation and its status.
    const accepted = await (await fetch(`${server.url}/v2/local/fgs/functions/hotswap/invocations-async`, { method: "POST", body: "{}" })).json();
    await openTab(page, "hotswap", "async");
    await page.getByRole("table", { name: "Asynchronous invocations" }).getByText(accepted.request_id).waitFor(TIMEOUT);
    await page.getByLabel("Retry attempts").fill("1");
    await page.getByRole("button", { name: "Save async configuration" }).click();
    await page.getByRole("status").filter({ hasText: "Saved the async configuration" }).waitFor(TIMEOUT);
    const asyncConfig = await (await fetch(`${server.url}/v2/local/fgs/functions/hotswap/async-invoke-config`)).json();
    assert.equal(asyncConfig.max_async_retry_attempts, 1);
    await screenshot(page, "async");

    await page.goto(`${server.url}/console/#/monitoring`);
    await page.getByLabel("Function").waitFor(TIMEOUT);
    await page.getByRole("table", { name: "Deploy timeline" }).waitFor(TIMEOUT);
    await screenshot(page, "monitoring-page");
    // Leaving a page stops its refreshes (every 3 s there).
    let polled = 0;
    page.on("request", (r) => {
      if (r.url().includes("/functions/hotswap/activity")) polled++;
    });
    await page.getByRole("link", { name: "Functions", exact: true }).first().click();
    await page.getByRole("heading", { name: "Functions", exact: true }).waitFor(TIMEOUT);
    await new Promise((r) => setTimeout(r, 4000));
    assert.equal(polled, 0, "the monitoring page kept polling after it was left");
    assert.deepEqual(off, [], "requests off the server's origin, or page errors");
  } catch (e) {
    await page?.screenshot({ path: "/tmp/console-failure.png", fullPage: true });
    throw e;
  } finally {
    running = false;
    await Promise.allSettled(callers);
    await server.stop();
  }
});

test("an alias call shows the version that answered, log lines break at their ends only, and close deploy marks stay legible", async () => {
  const server = await startServer();
  const off = [];
  let page;
  try {
    page = await newPage(browser, server.url, off);
    await page.goto(`${server.url}/console/`);
    await page.getByRole("heading", { name: "Functions", exact: true }).waitFor(TIMEOUT);
    await createFunction(page, join(TARGET, "libtestplugin.so"), "marks");
    const api = `${server.url}/v2/local/fgs/functions/marks`;
    const send = async (method, path, body) => {
      const r = await fetch(api + path, { method, body: body === undefined ? undefined : JSON.stringify(body), headers: { "Content-Type": "application/json" } });
      assert.ok(r.ok, `${method} ${path}: ${r.status} ${await r.text()}`);
      return r.json().catch(() => null);
    };
    // Twelve deploys within seconds: their marks fall on top of each other.
    for (let t = 3; t < 15; t++) await send("PUT", "/config", { timeout: t });
    await send("POST", "/versions", {});
    await send("PUT", "/config", { timeout: 20 });
    await send("POST", "/versions", {});
    await send("POST", "/aliases", { name: "canary", version: "v1", additional_version_weights: { v2: 100 } });
    for (let i = 0; i < 5; i++) await fetch(`${api}/invocations`, { method: "POST", body: "{}" });

    // Test through the alias: the summary names the version that answered.
    await openTab(page, "marks", "test");
    await page.getByLabel("Version or alias").selectOption("canary");
    await page.getByLabel("Event", { exact: true }).fill(JSON.stringify({ key: "k".repeat(400) }));
    await page.getByRole("button", { name: "Test", exact: true }).click();
    const summary = page.getByRole("definition").filter({ hasText: "(alias canary)" });
    await summary.waitFor(TIMEOUT);
    assert.equal(await summary.innerText(), "v2 (alias canary)");
    // The 400-character log line is one line that scrolls, not broken mid-word.
    const log = page.getByLabel("Log output");
    assert.match(await log.innerText(), /k{400}/);
    const wrapped = await log.evaluate((e) => ({ white: getComputedStyle(e).whiteSpace, scrolls: e.scrollWidth > e.clientWidth }));
    assert.deepEqual(wrapped, { white: "pre", scrolls: true });
    await screenshot(page, "test-alias");

    // The charts: every deploy drawn, their labels merged where they would overlap.
    await openTab(page, "marks", "monitoring");
    const chart = page.getByRole("img", { name: /Invocations/ });
    await chart.waitFor(TIMEOUT);
    const drawn = await chart.evaluate((svg) => ({
      marks: svg.querySelectorAll("line.mark").length,
      labels: [...svg.querySelectorAll("text.mark-label")].map((t) => {
        const b = t.getBBox();
        return { text: t.textContent, left: b.x, right: b.x + b.width };
      }),
    }));
    assert.ok(drawn.marks >= 13, JSON.stringify(drawn));
    assert.ok(drawn.labels.length >= 1, JSON.stringify(drawn));
    const sorted = [...drawn.labels].sort((a, b) => a.left - b.left);
    for (let i = 1; i < sorted.length; i++) {
      assert.ok(sorted[i].left >= sorted[i - 1].right, `labels overlap: ${JSON.stringify(sorted)}`);
    }
    // Merged labels name the range of generations they cover.
    assert.ok(drawn.labels.some((l) => /^gen \d+–\d+$/.test(l.text)), JSON.stringify(drawn.labels));
    for (const l of drawn.labels) assert.ok(l.right <= 640, JSON.stringify(l));
    await screenshot(page, "monitoring-marks");
    assert.deepEqual(off, [], "requests off the server's origin, or page errors");
  } catch (e) {
    await page?.screenshot({ path: "/tmp/console-failure.png", fullPage: true });
    throw e;
  } finally {
    await server.stop();
  }
});

test("on a keyed server the console signs in: a wrong secret is refused, the right one signs every call", async () => {
  const server = await startServer({ keys: true });
  const off = [];
  try {
    const page = await newPage(browser, server.url, off);
    await page.goto(`${server.url}/console/`);
    await page.getByRole("heading", { name: "Sign in" }).waitFor(TIMEOUT);
    await page.getByLabel("Access key").fill(AK);
    await page.getByLabel("Secret key").fill("not-the-secret");
    await page.getByRole("button", { name: "Sign in" }).click();
    const refused = page.getByRole("alert").filter({ hasText: "Sign-in refused" });
    await refused.waitFor(TIMEOUT);
    await screenshot(page, "signin-refused");
    // Nothing was kept for the wrong secret.
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);

    await page.getByLabel("Secret key").fill(SK);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Functions", exact: true }).waitFor(TIMEOUT);
    // The secret is in this tab's session storage only.
    assert.equal(await page.evaluate(() => localStorage.length), 0);
    assert.match(await page.evaluate(() => JSON.stringify(sessionStorage)), new RegExp(SK));
    await createFunction(page, join(TARGET, "libtestplugin.so"), "signed");
    await openTab(page, "signed", "test");
    await page.getByLabel("Event template").selectOption({ label: "Timer" });
    await page.getByRole("button", { name: "Test", exact: true }).click();
    await page.getByRole("heading", { name: "Execution Summary" }).waitFor(TIMEOUT);
    assert.match(await page.getByLabel("Execution summary").innerText(), UUID);
    // Unsigned, the same API refuses.
    assert.equal((await fetch(`${server.url}/v2/local/fgs/functions`)).status, 401);
    // A new tab of the same browser context shares nothing with another context.
    const other = await newPage(browser, server.url, off);
    await other.goto(`${server.url}/console/`);
    await other.getByRole("heading", { name: "Sign in" }).waitFor(TIMEOUT);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in" }).waitFor(TIMEOUT);
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    await screenshot(page, "signin");
    assert.deepEqual(off, [], "requests off the server's origin, or page errors");
  } finally {
    await server.stop();
  }
});

test("a page a function serves cannot read the console's session, set its cookies or call the API as the console", async () => {
  const server = await startServer({ keys: true });
  const off = [];
  try {
    const page = await newPage(browser, server.url, off);
    await page.goto(`${server.url}/console/`);
    await page.getByRole("heading", { name: "Sign in" }).waitFor(TIMEOUT);
    await page.getByLabel("Access key").fill(AK);
    await page.getByLabel("Secret key").fill(SK);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Functions", exact: true }).waitFor(TIMEOUT);
    // A hostile function, served anonymously at /hostile by an APIG trigger.
    await page.getByLabel("Code (.so or .zip)").setInputFiles(join(TARGET, "libmisbehaving.so"));
    await page.getByLabel("Function name").fill("hostile");
    await page.getByLabel("Handler").fill("misbehaving.HostilePage");
    await page.getByRole("button", { name: "Create", exact: true }).click();
    await page.getByRole("link", { name: "hostile", exact: true }).waitFor(TIMEOUT);
    await openTab(page, "hostile", "triggers");
    await page.getByLabel("APIG path").fill("/hostile");
    await page.getByRole("button", { name: "Create trigger" }).click();
    await page.getByRole("button", { name: `Copy ${server.url}/hostile` }).waitFor(TIMEOUT);
    // The signed-in tab opens the function's page, as a user following a
    // link would: same host, same port, same tab.
    assert.match(await page.evaluate(() => JSON.stringify(sessionStorage)), new RegExp(SK));
    const answer = await page.goto(`${server.url}/hostile`);
    await page.waitForFunction(() => document.title !== "pending", null, TIMEOUT);
    const found = JSON.parse(await page.title());
    assert.equal(found.session, "blocked", "the page read the console's session storage");
    assert.equal(found.local, "blocked");
    assert.doesNotMatch(JSON.stringify(found), new RegExp(SK));
    assert.notEqual(found.api, 200, "the page called the API");
    const cookies = await page.context().cookies(server.url);
    assert.deepEqual(cookies.map((c) => c.name), [], "the function set a cookie for the console's paths");
    assert.match(answer.headers()["content-security-policy"] ?? "", /\bsandbox\b/);
    // And the console, back in the same tab, still has its session.
    await page.goto(`${server.url}/console/`);
    await page.getByRole("heading", { name: "Functions", exact: true }).waitFor(TIMEOUT);
  } finally {
    await server.stop();
  }
});
