// Line charts as SVG, drawn here (a chart library would outweigh the rest
// of the console): one series per version, time on the x axis, and the
// deploys as vertical marks.
const SVG = "http://www.w3.org/2000/svg";
const COLOURS = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989"];
function svg(tag, attributes) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attributes))
        e.setAttribute(k, String(v));
    return e;
}
/** A chart titled `title` (its accessible name), with `marks` at deploy times. */
export function lineChart(title, unit, series, marks) {
    const width = 640;
    const height = 180;
    const pad = { left: 48, right: 12, top: 12, bottom: 24 };
    const times = series.flatMap((s) => s.points.map((p) => p[0]));
    const values = series.flatMap((s) => s.points.map((p) => p[1]).filter((v) => v !== null));
    const t0 = Math.min(...times);
    const t1 = Math.max(...times, t0 + 1);
    const top = Math.max(1, ...values) * 1.1;
    const x = (t) => pad.left + ((t - t0) / (t1 - t0)) * (width - pad.left - pad.right);
    const y = (v) => height - pad.bottom - (v / top) * (height - pad.top - pad.bottom);
    const figure = document.createElement("figure");
    figure.className = "chart";
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${title} (${unit})` });
    chart.append(svg("line", { x1: pad.left, y1: y(0), x2: width - pad.right, y2: y(0), class: "axis" }));
    for (const fraction of [0.5, 1]) {
        const v = (top / 1.1) * fraction;
        chart.append(svg("line", { x1: pad.left, y1: y(v), x2: width - pad.right, y2: y(v), class: "grid" }));
        const label = svg("text", { x: pad.left - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" });
        label.textContent = v >= 10 ? v.toFixed(0) : v.toPrecision(2);
        chart.append(label);
    }
    for (const mark of marks) {
        if (mark.at < t0 || mark.at > t1)
            continue;
        chart.append(svg("line", { x1: x(mark.at), y1: pad.top, x2: x(mark.at), y2: y(0), class: "mark" }));
        // Near the right edge the label goes to the mark's left.
        const right = x(mark.at) > width - 80;
        const label = svg("text", { x: x(mark.at) + (right ? -3 : 3), y: pad.top + 10, class: "tick", "text-anchor": right ? "end" : "start" });
        label.textContent = mark.label;
        chart.append(label);
    }
    const start = svg("text", { x: pad.left, y: height - 6, class: "tick" });
    start.textContent = new Date(t0).toLocaleTimeString([], { hour12: false });
    const end = svg("text", { x: width - pad.right, y: height - 6, class: "tick", "text-anchor": "end" });
    end.textContent = new Date(t1).toLocaleTimeString([], { hour12: false });
    chart.append(start, end);
    series.forEach((s, i) => {
        let d = "";
        let pen = false;
        for (const [t, v] of s.points) {
            if (v === null) {
                pen = false;
                continue;
            }
            d += `${pen ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
            pen = true;
        }
        chart.append(svg("path", { d, class: "line", stroke: COLOURS[i % COLOURS.length] }));
        // A point between two gaps draws no line: a dot shows it.
        s.points.forEach(([t, v], k) => {
            const before = s.points[k - 1]?.[1] ?? null;
            const after = s.points[k + 1]?.[1] ?? null;
            if (v !== null && before === null && after === null) {
                chart.append(svg("circle", { cx: x(t).toFixed(1), cy: y(v).toFixed(1), r: 2.5, fill: COLOURS[i % COLOURS.length] }));
            }
        });
    });
    const caption = document.createElement("figcaption");
    const heading = document.createElement("strong");
    heading.textContent = `${title} (${unit})`;
    caption.append(heading);
    series.forEach((s, i) => {
        const key = document.createElement("span");
        key.className = "key";
        key.style.setProperty("--colour", COLOURS[i % COLOURS.length]);
        key.textContent = s.label;
        caption.append(" ", key);
    });
    figure.append(caption, chart);
    return figure;
}
