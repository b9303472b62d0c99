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
/** About how wide `text` is in the charts' tick font (SVG units). */
function textWidth(text) {
    return text.length * 6.2;
}
/** The label of marks `first` to `last` ("gen 14", or "gen 14–23" for several). */
function groupText(first, last, count) {
    if (count === 1)
        return first;
    const tail = last.replace(/^\D*/, "");
    return `${first}–${tail}`;
}
/**
 * Marks (sorted by x) grouped so that labels never overlap: each group's
 * label starts just right of its first mark (moved left to end before
 * `maxX`), and a mark whose label would start before the previous label
 * ends (plus a gap) joins that group instead.
 */
export function labelGroups(marks, maxX) {
    const place = (x, text) => Math.min(x + 3, maxX - textWidth(text));
    const groups = [];
    for (const m of marks) {
        const g = groups[groups.length - 1];
        const end = g ? place(g.x, groupText(g.first, g.last, g.count)) + textWidth(groupText(g.first, g.last, g.count)) : -Infinity;
        const joined = g ? groupText(g.first, m.label, g.count + 1) : "";
        if (g && (place(m.x, m.label) < end + 8 || place(g.x, joined) + textWidth(joined) > maxX)) {
            g.last = m.label;
            g.count++;
        }
        else {
            groups.push({ x: m.x, first: m.label, last: m.label, count: 1 });
        }
    }
    // Joining moves a label left (a longer one near the edge): merge again
    // until no two overlap.
    const placed = groups.map((g) => {
        const text = groupText(g.first, g.last, g.count);
        return { start: place(g.x, text), text, first: g.first, last: g.last, count: g.count, x: g.x };
    });
    for (let i = 1; i < placed.length;) {
        const prev = placed[i - 1];
        if (placed[i].start < prev.start + textWidth(prev.text) + 8) {
            prev.last = placed[i].last;
            prev.count += placed[i].count;
            prev.text = groupText(prev.first, prev.last, prev.count);
            prev.start = place(prev.x, prev.text);
            placed.splice(i, 1);
            i = Math.max(1, i - 1);
        }
        else {
            i++;
        }
    }
    return placed.map((p) => ({ start: p.start, text: p.text }));
}
/** A chart titled `title` (its accessible name), with `marks` at deploy times. */
export function lineChart(title, unit, series, marks) {
    const width = 640;
    const height = 180;
    const pad = { left: 48, right: 12, top: 12, bottom: 24 };
    const times = series.flatMap((s) => s.points.map((p) => p[0]));
    const values = series.flatMap((s) => s.points.map((p) => p[1]).filter((v) => v !== null));
    const t0 = Math.min(...times);
    // Points are buckets' starts: a deploy within the newest bucket is later
    // than its point, and the axis runs on to it (it was not drawn at all).
    const t1 = Math.max(...times, ...marks.map((m) => m.at).filter((at) => at >= t0), t0 + 1);
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
    const visible = marks.filter((m) => m.at >= t0 && m.at <= t1).sort((a, b) => a.at - b.at);
    for (const mark of visible) {
        chart.append(svg("line", { x1: x(mark.at), y1: pad.top, x2: x(mark.at), y2: y(0), class: "mark" }));
    }
    // One label per group of marks too close to label apart ("gen 14–23").
    for (const group of labelGroups(visible.map((m) => ({ x: x(m.at), label: m.label })), width - 2)) {
        const label = svg("text", { x: group.start.toFixed(1), y: pad.top + 10, class: "tick mark-label", "text-anchor": "start" });
        label.textContent = group.text;
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
