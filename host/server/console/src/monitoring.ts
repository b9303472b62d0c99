// Monitoring: invocations, errors and latency (p50, p99) per version over
// the last minutes, and the deploy timeline (generations swapped in, when,
// how long the replaced one drained). Refreshed every few seconds.

import { Activity, Api, DeployEvent, FunctionRecord } from "./api.js";
import { lineChart, Series } from "./charts.js";
import { describe, field, formatTime, h, notice, number, show } from "./dom.js";

const REFRESH_MS = 3000;

/** `#/monitoring[/NAME]`: a function to pick, then its view. */
export async function monitoringPage(api: Api, main: HTMLElement, name: string | undefined, onLeave: (f: () => void) => void): Promise<void> {
  const { functions } = await api.get<{ functions: FunctionRecord[] }>(api.path("functions?maxitems=400"));
  const chosen = name ?? functions[0]?.func_name;
  const picker = h(
    "select",
    {},
    functions.map((f) => h("option", { value: f.func_name, selected: f.func_name === chosen }, f.func_name)),
  );
  picker.addEventListener("change", () => {
    window.location.hash = `#/monitoring/${encodeURIComponent(picker.value)}`;
  });
  const view = h("section");
  show(main, h("h1", {}, "Monitoring"), functions.length ? field("Function", picker) : h("p", {}, "No functions yet."), view);
  if (chosen) await monitoringView(api, view, chosen, onLeave);
}

/** One function's charts and timeline into `view`, kept fresh until left. */
export async function monitoringView(api: Api, view: HTMLElement, name: string, onLeave: (f: () => void) => void): Promise<void> {
  const charts = h("div", { class: "charts" });
  const timeline = h("div");
  const status = h("div", { "aria-live": "polite" });
  const span = h("select", {}, [5, 15].map((m) => h("option", { value: String(m), selected: m === 15 }, `${m} minutes`)));
  const title = h("h2", {}, `Last 15 minutes of ${name}`);
  show(view, field("Span", span), title, status, charts, h("h2", {}, "Deploys and swaps"), timeline);
  let shown = "";
  const refresh = async () => {
    try {
      title.textContent = `Last ${span.value} minutes of ${name}`;
      const [activity, { deployments }] = await Promise.all([
        api.get<Activity>(api.functionPath(name, `/activity?minutes=${span.value}`)),
        api.get<{ deployments: DeployEvent[] }>(api.functionPath(name, "/deployments")),
      ]);
      show(status);
      const now = JSON.stringify([activity, deployments]);
      if (now === shown) return;
      shown = now;
      show(charts, chartsOf(activity, deployments));
      show(timeline, timelineOf(deployments));
    } catch (e) {
      show(status, notice(describe(e), "error"));
    }
  };
  span.addEventListener("change", () => void refresh());
  await refresh();
  const timer = window.setInterval(() => void refresh(), REFRESH_MS);
  onLeave(() => window.clearInterval(timer));
}

function chartsOf(activity: Activity, deployments: DeployEvent[]): HTMLElement[] {
  const marks = deployments.map((d) => ({ at: d.at_ms, label: `gen ${d.generation}` }));
  const per = (pick: (b: Activity["versions"][number]["buckets"][number]) => number | null, suffix = ""): Series[] =>
    activity.versions.map((v) => ({ label: `${v.version}${suffix}`, points: v.buckets.map((b) => [b.start_ms, pick(b)]) }));
  if (activity.versions.length === 0) return [h("p", {}, `No invocations in the last ${activity.minutes} minutes.`)];
  const perSecond = activity.bucket_seconds;
  return [
    h(
      "table",
      { "aria-label": "Totals by version" },
      h("thead", {}, h("tr", {}, ["Version", "Invocations", "Errors", "p50 (ms)", "p99 (ms)"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, activity.versions.map((v) => h("tr", {}, h("th", { scope: "row" }, v.version), h("td", { class: "n" }, String(v.invocations)),
        h("td", { class: v.errors ? "n bad" : "n" }, String(v.errors)), h("td", { class: "n" }, number(v.p50_ms)), h("td", { class: "n" }, number(v.p99_ms))))),
    ),
    lineChart("Invocations", `per ${perSecond} s`, per((b) => b.invocations), marks),
    lineChart("Errors", `per ${perSecond} s`, per((b) => b.errors), marks),
    lineChart("Latency", "ms", [...per((b) => b.p50_ms, " p50"), ...per((b) => b.p99_ms, " p99")], marks),
  ];
}

function timelineOf(deployments: DeployEvent[]): HTMLElement {
  if (deployments.length === 0) return h("p", {}, "No deploys on this node since it started.");
  const drain = (d: DeployEvent) => {
    if (d.replaced_generation === null) return "–";
    if (d.replaced_still_serves) return `generation ${d.replaced_generation} still serves a version`;
    if (d.drain_abandoned) return "not drained after 15 minutes";
    if (d.drained_ms === null) return `draining (${d.in_flight_at_swap} calls at the swap)`;
    return `${number(d.drained_ms, 1)} ms (${d.in_flight_at_swap} calls at the swap)`;
  };
  return h(
    "table",
    { "aria-label": "Deploy timeline" },
    h("thead", {}, h("tr", {}, ["When", "What", "Generation", "Replaced", "Deploy took", "Drain took", "Digest"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, [...deployments].reverse().map((d) => h("tr", {},
      h("td", {}, formatTime(d.at_ms)),
      h("td", {}, d.kind),
      h("td", { class: "n" }, String(d.generation)),
      h("td", { class: "n" }, d.replaced_generation === null ? "–" : String(d.replaced_generation)),
      h("td", { class: "n" }, `${number(d.deploy_ms, 1)} ms`),
      h("td", {}, drain(d)),
      h("td", { class: "mono" }, d.digest.slice(0, 12)),
    ))),
  );
}
