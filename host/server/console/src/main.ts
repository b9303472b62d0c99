// The console's entry: reads whether the server wants signatures, signs in
// when it does, and routes `#/...` to the pages.

import { Api, ApiError, saveSession, savedSession } from "./api.js";
import { describe, field, h, notice, show } from "./dom.js";
import { functionPage } from "./function.js";
import { functionsPage } from "./functions.js";
import { monitoringPage } from "./monitoring.js";

interface Config {
  signed: boolean;
  project_id: string;
}

const main = document.getElementById("main") as HTMLElement;
const nav = document.getElementById("nav") as HTMLElement;
let api: Api | null = null;
let config: Config = { signed: false, project_id: "local" };
/** Stops the current page's refreshes when another page opens. */
let leave: (() => void) | null = null;
/** Counts routings: a page that registers its refresh after another page
 * opened (its fetches were slow) has it stopped at once. */
let routings = 0;

async function start(): Promise<void> {
  const response = await fetch("config.json", { cache: "no-store" });
  config = (await response.json()) as Config;
  if (!config.signed) {
    api = new Api(config.project_id, null);
  } else {
    const session = savedSession();
    if (session) api = new Api(session.projectId, session);
  }
  window.addEventListener("hashchange", route);
  route();
}

function signIn(): void {
  const accessKey = h("input", { name: "access_key", autocomplete: "username", required: true });
  const secretKey = h("input", { name: "secret_key", type: "password", autocomplete: "current-password", required: true });
  const projectId = h("input", { name: "project_id", value: config.project_id, required: true });
  const status = h("div", { "aria-live": "polite" });
  const form = h(
    "form",
    { class: "card signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in"),
    h("p", {}, "This server signs its API with access keys. The key and secret stay in this tab (session storage) and sign each request here; they are never sent."),
    field("Access key", accessKey),
    field("Secret key", secretKey),
    field("Project ID", projectId),
    h("button", { type: "submit" }, "Sign in"),
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const session = { accessKey: accessKey.value.trim(), secretKey: secretKey.value, projectId: projectId.value.trim() };
    const candidate = new Api(session.projectId, session);
    show(status, notice("Checking…"));
    try {
      await candidate.get(candidate.path("functions?maxitems=1"));
      saveSession(session);
      api = candidate;
      route();
    } catch (e) {
      const refused = e instanceof ApiError && e.status === 401;
      show(status, notice(refused ? "Sign-in refused: the access key or the secret key is wrong." : describe(e), "error"));
    }
  });
  show(nav);
  show(main, form);
  accessKey.focus();
}

function navigation(current: string): void {
  const link = (href: string, label: string, active: boolean) =>
    h("a", { href, "aria-current": active ? "page" : undefined }, label);
  show(
    nav,
    link("#/functions", "Functions", current === "functions"),
    link("#/monitoring", "Monitoring", current === "monitoring"),
    config.signed
      ? h("button", {
          type: "button",
          class: "link",
          onclick: () => {
            saveSession(null);
            api = null;
            route();
          },
        }, "Sign out")
      : null,
  );
}

function route(): void {
  leave?.();
  leave = null;
  if (!api) {
    signIn();
    return;
  }
  const parts = window.location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const [page, name, tab] = parts;
  const mine = ++routings;
  const onLeave = (f: () => void) => {
    if (mine === routings) leave = f;
    else f();
  };
  if (page === "functions" && name) {
    navigation("functions");
    void functionPage(api, main, name, tab || "configuration", onLeave);
  } else if (page === "monitoring") {
    navigation("monitoring");
    void monitoringPage(api, main, name, onLeave);
  } else {
    navigation("functions");
    void functionsPage(api, main, onLeave);
  }
}

start().catch((e) => show(main, notice(`The console could not start: ${describe(e)}`, "error")));
