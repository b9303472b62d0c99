// A few helpers to build the page. Text is only ever set as text (never as
// HTML): names, outputs and logs come from functions.
/** An element with attributes (`on...` ones are listeners) and children. */
export function h(tag, attributes = {}, ...children) {
    const element = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
        if (value === undefined || value === false)
            continue;
        if (typeof value === "function") {
            element.addEventListener(name.slice(2).toLowerCase(), value);
        }
        else if (value === true) {
            element.setAttribute(name, "");
        }
        else {
            element.setAttribute(name, String(value));
        }
    }
    for (const child of children.flat()) {
        if (child === null || child === undefined || child === false)
            continue;
        element.append(child);
    }
    return element;
}
let nextId = 0;
/** A labelled control: `<label for=id>` and the control, in a row. */
export function field(label, control, hint) {
    const id = control.id || `f${++nextId}`;
    control.id = id;
    return h("div", { class: "field" }, h("label", { for: id }, label), control, hint ? h("small", {}, hint) : null);
}
/** Replaces `parent`'s children. */
export function show(parent, ...children) {
    parent.replaceChildren();
    for (const child of children.flat()) {
        if (child)
            parent.append(child);
    }
}
/** A status line that screen readers announce. */
export function notice(text, kind = "ok") {
    return h("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}
/** What went wrong, for a notice. */
export function describe(e) {
    if (e instanceof Error) {
        const code = e.code;
        return code ? `${code}: ${e.message}` : e.message;
    }
    return String(e);
}
export function formatTime(ms) {
    return new Date(ms).toLocaleTimeString([], { hour12: false });
}
export function number(n, digits = 3) {
    return n === null || n === undefined ? "–" : String(Math.round(n * 10 ** digits) / 10 ** digits);
}
