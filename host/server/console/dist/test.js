// Test: an event from a template, the Test button, and the result in the
// three parts FunctionGraph's console shows: Function Output, Execution
// Summary, Log Output.
import { ApiError } from "./api.js";
import { describe, field, h, notice, number, show } from "./dom.js";
import { select } from "./functions.js";
const LABELS = {
    apig: "APIG",
    timer: "Timer",
    kafka: "Kafka",
    smn: "SMN",
    dis: "DIS",
    cts: "CTS",
    dds: "DDS",
    lts: "LTS",
    redis: "Redis Streams",
    nats: "NATS JetStream",
    mqtt: "MQTT",
    rabbitmq: "RabbitMQ",
};
let templates = null;
async function loadTemplates() {
    if (!templates) {
        const response = await fetch("event-templates.json", { cache: "no-store" });
        templates = (await response.json()).templates;
    }
    return templates;
}
export async function testView(api, f) {
    const all = await loadTemplates();
    const [{ versions }, aliases] = await Promise.all([
        api.get(api.functionPath(f.func_name, "/versions")),
        api.get(api.functionPath(f.func_name, "/aliases")),
    ]);
    const qualifiers = ["latest", ...versions.map((v) => v.version).filter((v) => v !== "latest"), ...aliases.map((a) => a.name)];
    const template = h("select", {}, h("option", { value: "" }, "Blank"), all.map((t) => h("option", { value: t.kind }, LABELS[t.kind] ?? t.kind)));
    const qualifier = select(qualifiers, "latest");
    const event = h("textarea", { rows: 14, spellcheck: "false", class: "mono" }, "{}");
    template.addEventListener("change", () => {
        const chosen = all.find((t) => t.kind === template.value);
        event.value = chosen ? chosen.event : "{}";
    });
    const run = h("button", { type: "submit" }, "Test");
    const result = h("section", { class: "result", "aria-live": "polite", "aria-label": "Test result" });
    const form = h("form", { class: "card", "aria-labelledby": "test-title" }, h("h2", { id: "test-title" }, "Test event"), field("Event template", template), field("Version or alias", qualifier), field("Event", event), run);
    form.addEventListener("submit", async (e) => {
        e.preventDefault();
        run.disabled = true;
        show(result, notice("Running…"));
        try {
            const target = qualifier.value === "latest" ? f.func_name : `${f.func_name}:${qualifier.value}`;
            const answer = await api.call("POST", api.functionPath(target, "/invocations"), event.value, {
                "Content-Type": "application/json",
                "X-Cff-Log-Type": "tail",
            });
            showResult(result, answer.headers, answer.body, aliases.some((a) => a.name === qualifier.value) ? qualifier.value : null);
        }
        catch (error) {
            const refused = error instanceof ApiError;
            show(result, h("h3", {}, "Function Output"), notice(refused ? `The call was refused: ${describe(error)}` : describe(error), "error"));
        }
        finally {
            run.disabled = false;
        }
    });
    return h("div", { class: "test" }, form, result);
}
function decodeLog(header) {
    if (!header)
        return "";
    try {
        const bytes = Uint8Array.from(atob(header), (c) => c.charCodeAt(0));
        return new TextDecoder().decode(bytes);
    }
    catch {
        return "";
    }
}
function showResult(result, headers, body, alias) {
    const text = new TextDecoder().decode(body);
    const failed = headers.get("x-is-func-err") === "true";
    let summary = {};
    try {
        summary = JSON.parse(headers.get("x-cff-invoke-summary") ?? "{}");
    }
    catch {
        // none
    }
    let output;
    if (failed) {
        let error = {};
        try {
            error = JSON.parse(text);
        }
        catch {
            error = { errorMessage: text };
        }
        output = h("div", { class: "failed", role: "alert" }, h("p", {}, "The function failed."), h("dl", {}, h("dt", {}, "errorType"), h("dd", { class: "mono" }, error.errorType ?? ""), h("dt", {}, "errorMessage"), h("dd", { class: "mono" }, error.errorMessage ?? "")));
    }
    else {
        let pretty = text;
        try {
            pretty = JSON.stringify(JSON.parse(text), null, 2);
        }
        catch {
            // not JSON: as it came
        }
        output = h("pre", { class: "output", "aria-label": "Function output" }, pretty);
    }
    const row = (label, value) => [h("dt", {}, label), h("dd", {}, value)];
    show(result, h("h3", {}, "Function Output"), output, h("h3", {}, "Execution Summary"), h("dl", { class: "summary", "aria-label": "Execution summary" }, row("Request ID", headers.get("x-cff-request-id") ?? ""), 
    // An alias may send the call to one version or another: which one did.
    row("Version", `${headers.get("x-fnhost-version") ?? "–"}${alias ? ` (alias ${alias})` : ""}`), row("Configured memory", `${summary.memorySize ?? "–"} MB`), row("Duration", `${number(summary.duration)} ms`), row("Memory used", `${number(summary.memoryUsed)} MB`), row("Billed duration", `${summary.billingDuration ?? "–"} ms`)), h("h3", {}, "Log Output"), h("pre", { class: "log", "aria-label": "Log output" }, decodeLog(headers.get("x-cff-function-log")) || "(no log lines)"));
}
