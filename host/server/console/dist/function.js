// A function: configuration, code, versions, aliases with weights,
// triggers and asynchronous invocations; Test and Monitoring are pages of
// their own (test.ts, monitoring.ts) under the same tabs.
import { describe, field, h, notice, show } from "./dom.js";
import { ISOLATIONS, MEMORY_SIZES, packageOf, select } from "./functions.js";
import { monitoringView } from "./monitoring.js";
import { testView } from "./test.js";
const TABS = [
    ["configuration", "Configuration"],
    ["code", "Code"],
    ["versions", "Versions"],
    ["aliases", "Aliases"],
    ["triggers", "Triggers"],
    ["async", "Async"],
    ["test", "Test"],
    ["monitoring", "Monitoring"],
];
export async function functionPage(api, main, name, tab, onLeave, flash) {
    const status = h("div", { "aria-live": "polite" });
    if (flash)
        show(status, notice(...flash));
    const body = h("section", { class: "tab" });
    const base = `#/functions/${encodeURIComponent(name)}`;
    show(main, h("p", { class: "crumbs" }, h("a", { href: "#/functions" }, "Functions"), " / ", name), h("h1", {}, name), h("nav", { class: "tabs", "aria-label": "Function" }, TABS.map(([id, label]) => h("a", { href: `${base}/${id}`, "aria-current": id === tab ? "page" : undefined }, label))), status, body);
    let record;
    try {
        record = await api.get(api.functionPath(name, "/config"));
    }
    catch (e) {
        show(status, notice(describe(e), "error"));
        return;
    }
    const say = (text, kind = "ok") => show(status, notice(text, kind));
    const fail = (e) => say(describe(e), "error");
    // Renders the tab afresh, with `text` in its status line.
    const reopen = (text, kind = "ok") => void functionPage(api, main, name, tab, onLeave, [text, kind]);
    switch (tab) {
        case "code":
            show(body, codeView(api, record, say, fail, reopen));
            break;
        case "versions":
            show(body, await versionsView(api, record, fail, reopen));
            break;
        case "aliases":
            show(body, await aliasesView(api, record, fail, reopen));
            break;
        case "triggers":
            show(body, await triggersView(api, record, fail, reopen));
            break;
        case "async":
            show(body, await asyncView(api, record, say, fail));
            break;
        case "test":
            show(body, await testView(api, record));
            break;
        case "monitoring":
            await monitoringView(api, body, record.func_name, onLeave);
            break;
        default:
            show(body, configurationView(api, record, fail, reopen));
    }
}
function configurationView(api, f, fail, reopen) {
    const handler = h("input", { value: f.handler, required: true });
    const memory = select(MEMORY_SIZES, f.memory_size);
    const timeout = h("input", { type: "number", min: 1, max: 900, value: f.timeout, required: true });
    const userData = h("textarea", { rows: 4, spellcheck: "false" }, f.user_data || "");
    const isolation = select(ISOLATIONS, f.isolation);
    const sandbox = h("textarea", { rows: 4, spellcheck: "false" }, JSON.stringify(f.sandbox ?? {}, null, 1));
    const concurrency = h("input", { type: "number", min: 1, max: 1000, value: f.strategy_config?.concurrent_num ?? 1 });
    const form = h("form", { class: "card", "aria-labelledby": "config-title" }, h("h2", { id: "config-title" }, "Configuration"), f.last_update_status !== "Successful"
        ? notice(`The last update did not load (${f.last_update_status_reason}); the previous code and configuration serve.`, "error")
        : null, field("Handler", handler), field("Memory (MB)", memory), field("Timeout (s)", timeout), field("User data (JSON object of strings)", userData), field("Isolation", isolation), field("Sandbox (JSON)", sandbox, 'What its process-isolated workers may reach: {"network": "none" | "host", "allow_outbound": ["ADDR:PORT"], "tmp_mb": 512, "env": ["NAME"], "read_only_paths": []}'), field("Concurrent calls per instance", concurrency), h("button", { type: "submit" }, "Save configuration"), h("dl", {}, h("dt", {}, "URN"), h("dd", {}, f.func_urn), h("dt", {}, "Runtime"), h("dd", {}, f.runtime), h("dt", {}, "Last modified"), h("dd", {}, f.last_modified)));
    form.addEventListener("submit", async (event) => {
        event.preventDefault();
        let policy;
        try {
            policy = JSON.parse(sandbox.value.trim() || "{}");
        }
        catch (e) {
            fail(new Error(`The sandbox is not valid JSON: ${e instanceof Error ? e.message : String(e)}`));
            return;
        }
        try {
            const saved = await api.json("PUT", api.functionPath(f.func_name, "/config"), {
                handler: handler.value.trim(),
                memory_size: Number(memory.value),
                timeout: Number(timeout.value),
                user_data: userData.value.trim(),
                isolation: isolation.value,
                sandbox: policy,
                concurrent_num: Number(concurrency.value),
            });
            const loaded = saved.last_update_status === "Successful";
            reopen(loaded ? "Configuration saved: it serves now." : `Saved, but it does not load: ${saved.last_update_status_reason}`, loaded ? "ok" : "error");
        }
        catch (e) {
            fail(e);
        }
    });
    return form;
}
function codeView(api, f, say, fail, reopen) {
    const file = h("input", { type: "file", accept: ".so,.zip", required: true });
    const form = h("form", { class: "card", "aria-labelledby": "code-title" }, h("h2", { id: "code-title" }, "Code"), h("dl", {}, h("dt", {}, "Digest"), h("dd", { class: "mono" }, f.digest), h("dt", {}, "Size"), h("dd", {}, `${f.code_size} bytes`)), field("New build (.so or .zip)", file, "It swaps in live: calls in flight finish on the old build, new ones run the new one."), h("button", { type: "submit" }, "Upload"));
    form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const chosen = file.files?.[0];
        if (!chosen)
            return;
        try {
            say(`Uploading ${chosen.name}…`);
            const saved = await api.json("PUT", api.functionPath(f.func_name, "/code"), {
                code_type: "zip",
                func_code: { file: await packageOf(chosen) },
            });
            if (saved.last_update_status === "Successful")
                reopen(`Uploaded: digest ${saved.digest.slice(0, 12)} serves now.`);
            else
                reopen(`Uploaded, but it does not load (the previous build serves): ${saved.last_update_status_reason}`, "error");
        }
        catch (e) {
            fail(e);
        }
    });
    return form;
}
async function versionsView(api, f, fail, reopen) {
    const { versions } = await api.get(api.functionPath(f.func_name, "/versions"));
    const description = h("input", {});
    const form = h("form", { class: "card", "aria-labelledby": "publish-title" }, h("h2", { id: "publish-title" }, "Publish a version"), h("p", {}, "Publishes what serves latest now as the next version number."), field("Version description", description), h("button", { type: "submit" }, "Publish version"));
    form.addEventListener("submit", async (event) => {
        event.preventDefault();
        try {
            const v = await api.json("POST", api.functionPath(f.func_name, "/versions"), { description: description.value });
            reopen(`Published version ${v.version}.`);
        }
        catch (e) {
            fail(e);
        }
    });
    return h("div", {}, h("table", { "aria-label": "Versions" }, h("thead", {}, h("tr", {}, ["Version", "Description", "Digest", "Last modified"].map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, versions.map((v) => h("tr", {}, h("th", { scope: "row" }, v.version), h("td", {}, v.description), h("td", { class: "mono" }, v.digest.slice(0, 12)), h("td", {}, v.last_modified))))), form);
}
async function aliasesView(api, f, fail, reopen) {
    const [{ versions }, aliases] = await Promise.all([
        api.get(api.functionPath(f.func_name, "/versions")),
        api.get(api.functionPath(f.func_name, "/aliases")),
    ]);
    const names = versions.map((v) => v.version).filter((v) => v !== "latest");
    const choices = ["latest", ...names];
    const cards = aliases.map((alias) => {
        const version = select(choices, alias.version);
        const sliders = names.map((v) => {
            const weight = alias.additional_version_weights?.[v] ?? 0;
            const slider = h("input", { type: "range", min: 0, max: 100, step: 1, value: weight });
            const output = h("output", {}, `${weight} %`);
            slider.addEventListener("input", () => (output.textContent = `${slider.value} %`));
            const row = field(`Weight of version ${v}`, slider);
            row.append(output);
            return { v, slider, row };
        });
        // The alias's own version takes the rest: no slider of its own.
        const mark = () => {
            for (const s of sliders)
                s.row.hidden = s.v === version.value;
        };
        mark();
        version.addEventListener("change", mark);
        const form = h("form", { class: "card", "aria-label": `Alias ${alias.name}` }, h("h3", {}, `Alias ${alias.name}`), field(`Version of ${alias.name}`, version), h("p", {}, "Additional versions get the share their slider sets; the alias's version gets the rest."), sliders.map((s) => s.row), h("button", { type: "submit" }, `Save ${alias.name}`));
        form.addEventListener("submit", async (event) => {
            event.preventDefault();
            const weights = {};
            for (const s of sliders) {
                if (s.v !== version.value && Number(s.slider.value) > 0)
                    weights[s.v] = Number(s.slider.value);
            }
            try {
                await api.json("PUT", api.functionPath(f.func_name, `/aliases/${encodeURIComponent(alias.name)}`), {
                    version: version.value,
                    description: alias.description,
                    additional_version_weights: weights,
                });
                reopen(`Saved alias ${alias.name}.`);
            }
            catch (e) {
                fail(e);
            }
        });
        return form;
    });
    const name = h("input", { required: true });
    const version = select(choices, names[names.length - 1] ?? "latest");
    const create = h("form", { class: "card", "aria-labelledby": "alias-title" }, h("h2", { id: "alias-title" }, "Create an alias"), field("Alias name", name), field("Alias version", version), h("button", { type: "submit" }, "Create alias"));
    create.addEventListener("submit", async (event) => {
        event.preventDefault();
        try {
            await api.json("POST", api.functionPath(f.func_name, "/aliases"), { name: name.value.trim(), version: version.value });
            reopen(`Created alias ${name.value}.`);
        }
        catch (e) {
            fail(e);
        }
    });
    return h("div", {}, aliases.length ? cards : h("p", {}, "No aliases yet."), create);
}
/** Settings to start from for each event-source type (the API's event_data). */
const SOURCE_TEMPLATES = {
    OPENSOURCEKAFKA: { connect_address: "127.0.0.1:9092", topic_ids: ["orders"], batch_size: 100, start: "latest" },
    RABBITMQ: { url: "amqp://guest:guest@127.0.0.1:5672/%2f", queue: "orders", batch_size: 10 },
    REDIS: { url: "redis://127.0.0.1:6379", stream: "orders", batch_size: 10, start: "latest" },
    NATS: { url: "nats://127.0.0.1:4222", stream: "ORDERS", batch_size: 10, start: "latest" },
    MQTT: { url: "mqtt://127.0.0.1:1883", topic: "orders/#", batch_size: 10 },
};
/** What an event-source trigger consumes, on one line. */
function sourceSummary(code, d) {
    const s = (v) => (Array.isArray(v) ? v.join(",") : String(v ?? ""));
    switch (code) {
        case "OPENSOURCEKAFKA":
        case "KAFKA":
            return `${s(d.connect_address)} topics ${s(d.topic_ids ?? d.topics ?? d.topic_id)}`;
        case "RABBITMQ":
            return d.queue ? `${s(d.url)} queue ${s(d.queue)}` : `${s(d.url)} exchange ${s(d.exchange ?? d.exchange_name)}`;
        case "REDIS":
            return `${s(d.url)} stream ${s(d.stream)}`;
        case "NATS":
            return `${s(d.url)} stream ${s(d.stream)}`;
        case "MQTT":
            return `${s(d.url)} topic ${s(d.topic)}`;
        default:
            return JSON.stringify(d);
    }
}
async function triggersView(api, f, fail, reopen) {
    const triggers = await api.get(api.path(`triggers/${encodeURIComponent(f.func_urn)}`));
    const rows = triggers.map((t) => {
        const data = t.event_data;
        const url = t.trigger_type_code === "APIG" ? `${window.location.origin}${String(data.path ?? "")}` : "";
        const what = t.trigger_type_code === "APIG"
            ? h("span", {}, h("code", {}, url), " ", copyButton(url))
            : t.trigger_type_code === "TIMER"
                ? h("span", {}, `${String(data.schedule_type ?? "")} ${String(data.schedule ?? "")}`)
                : h("span", {}, sourceSummary(t.trigger_type_code, data));
        const next = t.trigger_status === "ACTIVE" || t.trigger_status === "ERROR" ? "DISABLED" : "ACTIVE";
        const path = api.path(`triggers/${encodeURIComponent(f.func_urn)}/${t.trigger_type_code}/${encodeURIComponent(t.trigger_id)}`);
        const toggle = h("button", { type: "button" }, next === "ACTIVE" ? "Enable" : "Disable");
        toggle.setAttribute("aria-label", `${next === "ACTIVE" ? "Enable" : "Disable"} trigger ${t.trigger_id}`);
        toggle.addEventListener("click", async () => {
            try {
                await api.json("PUT", path, { trigger_status: next });
                reopen(`Trigger ${t.trigger_id}: ${next}.`);
            }
            catch (e) {
                fail(e);
            }
        });
        const remove = h("button", { type: "button", class: "danger", "aria-label": `Delete trigger ${t.trigger_id}` }, "Delete");
        remove.addEventListener("click", async () => {
            try {
                await api.call("DELETE", path);
                reopen(`Deleted trigger ${t.trigger_id}.`);
            }
            catch (e) {
                fail(e);
            }
        });
        const status = t.status_reason
            ? h("td", { title: t.status_reason }, t.trigger_status, h("br", {}), h("small", {}, t.status_reason))
            : h("td", {}, t.trigger_status);
        const lag = h("td", {}, t.lag === undefined ? "" : String(t.lag));
        return h("tr", {}, h("td", {}, t.trigger_type_code), h("td", {}, what), status, lag, h("td", {}, toggle, " ", remove));
    });
    const kind = select(["APIG", "TIMER", ...Object.keys(SOURCE_TEMPLATES)], "APIG");
    const apigPath = h("input", { value: `/${f.func_name}`, placeholder: "/orders" });
    const scheduleType = select(["Rate", "Cron"], "Rate");
    const schedule = h("input", { value: "1m", placeholder: "1m, or a cron expression" });
    const settings = h("textarea", { rows: 5, spellcheck: "false", class: "mono" });
    const fill = () => {
        const template = SOURCE_TEMPLATES[kind.value];
        settings.value = template ? JSON.stringify(template, null, 2) : "";
    };
    kind.addEventListener("change", fill);
    const create = h("form", { class: "card", "aria-labelledby": "trigger-title" }, h("h2", { id: "trigger-title" }, "Create a trigger"), field("Trigger type", kind), field("APIG path", apigPath, "APIG: the path it answers on this server"), field("Schedule type", scheduleType), field("Schedule", schedule, "TIMER: a rate (30s, 1m, 1h) or a cron expression"), field("Event source settings", settings, "Kafka, RabbitMQ, Redis, NATS, MQTT: the trigger's event_data as JSON (the book's Triggers page lists each field)"), h("button", { type: "submit" }, "Create trigger"));
    create.addEventListener("submit", async (event) => {
        event.preventDefault();
        let event_data;
        try {
            event_data = kind.value === "APIG"
                ? { path: apigPath.value.trim(), req_method: "ANY", auth: "NONE" }
                : kind.value === "TIMER"
                    ? { name: `timer-${Date.now()}`, schedule_type: scheduleType.value, schedule: schedule.value.trim() }
                    : JSON.parse(settings.value);
        }
        catch (e) {
            fail(new Error(`The settings are not JSON: ${String(e)}`));
            return;
        }
        try {
            await api.json("POST", api.path(`triggers/${encodeURIComponent(f.func_urn)}`), { trigger_type_code: kind.value, trigger_status: "ACTIVE", event_data });
            reopen(`Created a ${kind.value} trigger.`);
        }
        catch (e) {
            fail(e);
        }
    });
    return h("div", {}, triggers.length
        ? h("table", { "aria-label": "Triggers" }, h("thead", {}, h("tr", {}, ["Type", "Where / when", "Status", "Lag", ""].map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, rows))
        : h("p", {}, "No triggers yet."), create);
}
function copyButton(text) {
    const button = h("button", { type: "button", "aria-label": `Copy ${text}` }, "Copy");
    button.addEventListener("click", async () => {
        try {
            await navigator.clipboard.writeText(text);
            button.textContent = "Copied";
        }
        catch {
            button.textContent = "Select and copy";
        }
    });
    return button;
}
async function asyncView(api, f, say, fail) {
    let config = {};
    try {
        config = await api.get(api.functionPath(f.func_name, "/async-invoke-config"));
    }
    catch {
        // none set: the defaults
    }
    const age = h("input", { type: "number", min: 60, max: 86400, value: config.max_async_event_age_in_seconds ?? 21600 });
    const retries = h("input", { type: "number", min: 0, max: 8, value: config.max_async_retry_attempts ?? 3 });
    const onSuccess = h("input", { value: config.destination_config?.on_success?.param ?? "", placeholder: '{"func_urn": "..."} or {"url": "..."}' });
    const onFailure = h("input", { value: config.destination_config?.on_failure?.param ?? "", placeholder: '{"func_urn": "..."} or {"url": "..."}' });
    const destination = (param) => {
        if (!param.trim())
            return undefined;
        return { destination: param.includes('"url"') ? "HTTP" : "FunctionGraph", param: param.trim() };
    };
    const form = h("form", { class: "card", "aria-labelledby": "async-title" }, h("h2", { id: "async-title" }, "Asynchronous invocation"), field("Maximum event age (s)", age), field("Retry attempts", retries), field("On success, send the outcome to", onSuccess), field("On failure, send the outcome to", onFailure), h("button", { type: "submit" }, "Save async configuration"));
    form.addEventListener("submit", async (event) => {
        event.preventDefault();
        try {
            const destination_config = {};
            const s = destination(onSuccess.value);
            const e = destination(onFailure.value);
            if (s)
                destination_config.on_success = s;
            if (e)
                destination_config.on_failure = e;
            await api.json("PUT", api.functionPath(f.func_name, "/async-invoke-config"), {
                max_async_event_age_in_seconds: Number(age.value),
                max_async_retry_attempts: Number(retries.value),
                destination_config,
            });
            say("Saved the async configuration.");
        }
        catch (error) {
            fail(error);
        }
    });
    const { invocations } = await api.get(api.functionPath(f.func_name, "/async-invocations?limit=50"));
    return h("div", {}, form, h("h2", {}, "Recent asynchronous invocations"), invocations.length
        ? h("table", { "aria-label": "Asynchronous invocations" }, h("thead", {}, h("tr", {}, ["Request ID", "Status", "Attempts", "Started", "Ended", "Error"].map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, invocations.map((i) => h("tr", {}, h("td", { class: "mono" }, i.request_id), h("td", { class: `status ${i.status.toLowerCase()}` }, i.status), h("td", { class: "n" }, String(i.attempts)), h("td", {}, i.start_time ?? "–"), h("td", {}, i.end_time ?? "–"), h("td", {}, i.error_message)))))
        : h("p", {}, "None in the store."));
}
