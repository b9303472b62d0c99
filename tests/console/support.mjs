// A real `fnhost serve` on a free loopback port, and Debian's chromium.
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync, readFileSync, mkdirSync, createWriteStream } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const TARGET = process.env.FNHOST_TARGET_DIR ?? join(ROOT, "target", "debug");
export const SCREENSHOTS = join(ROOT, "target", "console-screenshots");
export const AK = "console-ak";
export const SK = "console-sk-0123456789";

async function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** Starts a server (with access keys when `keys`); `stop()` ends it. */
export async function startServer({ keys = false } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "fnhost-console-"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const config = join(dir, "fnhost.json");
  writeFileSync(config, JSON.stringify({
    listen: `127.0.0.1:${port}`,
    access_keys: keys ? [{ access_key: AK, secret_key: SK }] : [],
  }));
  const log = createWriteStream(join(dir, "server.log"));
  const proc = spawn(join(TARGET, "fnhost"), ["serve", "--config", config, "--data-dir", join(dir, "data"), "--cache-dir", join(dir, "cache")], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  proc.stdout.pipe(log);
  proc.stderr.pipe(log);
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`fnhost serve exited: ${readFileSync(join(dir, "server.log"), "utf8")}`);
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error("fnhost serve did not come up");
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    dir,
    log: () => readFileSync(join(dir, "server.log"), "utf8"),
    stop: async () => {
      if (proc.exitCode === null) {
        proc.kill("SIGKILL");
        await new Promise((r) => proc.once("exit", r));
      }
    },
  };
}

/** Debian's chromium, headless. */
export async function openBrowser() {
  const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
  const browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox", "--disable-gpu"] });
  return browser;
}

/** A page in a context of its own; what it requests off `origin`, its
 * script errors and its files that fail to load go into `offOrigin`. */
export async function newPage(browser, origin, offOrigin) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("request", (r) => {
    if (!r.url().startsWith(origin)) offOrigin.push(r.url());
  });
  page.on("pageerror", (e) => offOrigin.push(`page error: ${e.message}`));
  // API errors the console handles (a 401 at sign-in, a 404 for an unset
  // configuration) are logged by the browser itself; the console's own
  // files must all load.
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) offOrigin.push(`console error: ${m.text()}`);
  });
  page.on("response", (r) => {
    if (r.url().startsWith(`${origin}/console/`) && r.status() >= 400) offOrigin.push(`${r.status()} for ${r.url()}`);
  });
  return page;
}

export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** target/debug/libhotswap.so with its build tag patched to `tag`, as `DIR/hotswap.so`. */
export function hotswapBuild(dir, tag) {
  const data = readFileSync(join(TARGET, "libhotswap.so"));
  const marker = Buffer.from("fnhost-build-tag:");
  const at = data.indexOf(marker) + marker.length;
  data[at] = tag.charCodeAt(0);
  const buildDir = join(dir, `build-${tag}`);
  mkdirSync(buildDir, { recursive: true });
  const path = join(buildDir, "hotswap.so");
  writeFileSync(path, data);
  return path;
}
