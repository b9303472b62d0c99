// Functions: the list with recent invocations and errors, create from a
// `.so` or a zip, delete.
import { base64 } from "./api.js";
import { describe, field, h, notice, show } from "./dom.js";
import { isZip, zipOne } from "./zip.js";
export const MEMORY_SIZES = [128, 256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096, 8192, 10240];
export const ISOLATIONS = ["auto", "inline", "in-process", "process"];
/** The code package of a chosen file: a zip as it is, a library zipped. */
export async function packageOf(file) {
    const bytes = new Uint8Array(await file.arrayBuffer());
    return base64(isZip(bytes) ? bytes : zipOne(file.name, bytes));
}
/** `testplugin.Handler` for `libtestplugin.so` or `testplugin.so`. */
function handlerFor(fileName) {
    const stem = fileName.replace(/\.(so|zip)$/, "").replace(/^lib/, "");
    return `${stem}.Handler`;
}
export function select(options, value, attributes = {}) {
    return h("select", attributes, options.map((o) => h("option", { value: String(o), selected: String(o) === String(value) }, String(o))));
}
export async function functionsPage(api, main, onLeave) {
    const status = h("div", { "aria-live": "polite" });
    const table = h("div");
    show(main, h("h1", {}, "Functions"), status, table, createForm(api, status, () => void load()));
    let timer = 0;
    // What the table shows now: an unchanged answer leaves it (and the focus
    // of a keyboard user, or an armed Delete) alone.
    let shown = "";
    const load = async () => {
        try {
            const [list, activity] = await Promise.all([
                api.get(api.path("functions?maxitems=400")),
                api.get(api.path("activity?minutes=5")),
            ]);
            const now = JSON.stringify([list.functions, activity.functions]);
            if (now === shown)
                return;
            shown = now;
            const stats = new Map(activity.functions.map((f) => [f.func_name, f]));
            show(table, listTable(api, list.functions, stats, status, () => {
                shown = "";
                void load();
            }));
        }
        catch (e) {
            show(status, notice(describe(e), "error"));
        }
    };
    await load();
    timer = window.setInterval(() => void load(), 5000);
    onLeave(() => window.clearInterval(timer));
}
function listTable(api, functions, stats, status, reload) {
    if (functions.length === 0)
        return h("p", {}, "No functions yet: create one below.");
    const head = ["Name", "Handler", "Isolation", "Memory (MB)", "Timeout (s)", "Last modified", "Invocations (5 min)", "Errors (5 min)", ""];
    return h("table", { "aria-label": "Functions" }, h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, functions.map((f) => {
        const s = stats.get(f.func_name);
        const remove = h("button", { type: "button", class: "danger" }, "Delete");
        remove.setAttribute("aria-label", `Delete ${f.func_name}`);
        remove.addEventListener("click", async () => {
            if (remove.dataset.armed !== "yes") {
                remove.dataset.armed = "yes";
                remove.textContent = "Confirm delete";
                remove.setAttribute("aria-label", `Confirm delete ${f.func_name}`);
                return;
            }
            try {
                await api.call("DELETE", api.functionPath(f.func_name));
                show(status, notice(`Deleted ${f.func_name}.`));
                reload();
            }
            catch (e) {
                show(status, notice(describe(e), "error"));
            }
        });
        return h("tr", {}, h("th", { scope: "row" }, h("a", { href: `#/functions/${encodeURIComponent(f.func_name)}` }, f.func_name)), h("td", {}, f.handler), h("td", {}, f.isolation), h("td", { class: "n" }, String(f.memory_size)), h("td", { class: "n" }, String(f.timeout)), h("td", {}, f.last_modified), h("td", { class: "n" }, String(s?.invocations ?? 0)), h("td", { class: s && s.errors > 0 ? "n bad" : "n" }, String(s?.errors ?? 0)), h("td", {}, remove));
    })));
}
function createForm(api, status, reload) {
    const name = h("input", { name: "func_name", required: true, pattern: "[A-Za-z][A-Za-z0-9_\\-]{0,59}" });
    const file = h("input", { name: "code", type: "file", accept: ".so,.zip", required: true });
    const handler = h("input", { name: "handler", required: true, placeholder: "testplugin.Handler" });
    const memory = select(MEMORY_SIZES, 128, { name: "memory_size" });
    const timeout = h("input", { name: "timeout", type: "number", min: 1, max: 900, value: 3, required: true });
    const isolation = select(ISOLATIONS, "auto", { name: "isolation" });
    file.addEventListener("change", () => {
        const chosen = file.files?.[0];
        if (chosen && !handler.value)
            handler.value = handlerFor(chosen.name);
        if (chosen && !name.value)
            name.value = handlerFor(chosen.name).split(".")[0].replace(/[^A-Za-z0-9_-]/g, "-");
    });
    const form = h("form", { class: "card", "aria-labelledby": "create-title" }, h("h2", { id: "create-title" }, "Create function"), field("Code (.so or .zip)", file, "A library is zipped in the browser; a zip is sent as it is."), field("Function name", name), field("Handler", handler, "LIBRARY.HANDLER, as testplugin.Handler for testplugin.so or libtestplugin.so"), field("Memory (MB)", memory), field("Timeout (s)", timeout), field("Isolation", isolation), h("button", { type: "submit" }, "Create"));
    form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const chosen = file.files?.[0];
        if (!chosen)
            return;
        show(status, notice(`Creating ${name.value}…`));
        try {
            await api.json("POST", api.path("functions"), {
                func_name: name.value.trim(),
                runtime: "Rust1.x",
                handler: handler.value.trim(),
                memory_size: Number(memory.value),
                timeout: Number(timeout.value),
                isolation: isolation.value,
                code_type: "zip",
                func_code: { file: await packageOf(chosen) },
            });
            show(status, notice(`Created ${name.value}.`));
            form.reset();
            reload();
        }
        catch (e) {
            show(status, notice(describe(e), "error"));
        }
    });
    return form;
}
