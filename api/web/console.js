// The admin console's tabs: Analytics (admin.js), Documents, Upload, Jobs, API keys and, when the server has
// them, Sources. A tab's data is fetched when it is shown (the URL's #fragment names it), only for an admin.

import { clearDocuments, clearUploads, loadDocuments, wireDocuments } from "./console-docs.js";
import { clearJobs, clearSources, loadJobs, probeSources, stopJobs, wireJobs } from "./console-jobs.js";
import { clearKeys, forgetNewKey, loadKeys, wireKeys } from "./console-keys.js";
import { ctx, wireConfirm } from "./console-util.js";
import { el } from "./view.js";

const $ = (id) => document.getElementById(id);
const TABS = ["analytics", "documents", "upload", "jobs", "keys", "sources"];
const LOAD = { documents: loadDocuments, jobs: loadJobs, keys: loadKeys };
const DOC_TYPES = { policy: "Policy", spec: "Spec", incident: "Incident", other: "Other" };

function visibleTabs() { return TABS.filter((t) => !$("tab-" + t).hidden); }

export function selectTab(name, focus) {
  if (!visibleTabs().includes(name)) name = "analytics";
  for (const t of TABS) {
    const on = t === name;
    $("tab-" + t).setAttribute("aria-selected", on ? "true" : "false");
    $("tab-" + t).tabIndex = on ? 0 : -1;
    $("panel-" + t).hidden = !on;
  }
  if (focus) $("tab-" + name).focus();
  if (name !== "keys") forgetNewKey(); // a new key is shown once, while its tab is open
  if (name !== "jobs") stopJobs();
  const hash = name === "analytics" ? "" : "#" + name;
  if (location.hash !== hash) history.replaceState(null, "", location.pathname + location.search + hash);
  if (ctx.me && LOAD[name]) LOAD[name]();
}

function onKey(event) {
  const tabs = visibleTabs();
  const i = tabs.indexOf(event.currentTarget.dataset.tab);
  const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[event.key];
  if (to === undefined) return;
  event.preventDefault();
  selectTab(tabs[(to + tabs.length) % tabs.length], true);
}

/** An admin is signed in: the console's tabs work from now on. */
export function enterConsole(me, handlers) {
  ctx.me = me;
  ctx.signOut = handlers.signOut;
  ctx.denied = handlers.denied;
  probeSources();
  selectTab(location.hash.slice(1) || "analytics", false);
}

/** Signed out or not an admin: nothing of the console's data stays in the page, nothing still on its way lands. */
export function clearConsole() {
  ctx.me = null;
  ctx.live++;
  clearDocuments();
  clearUploads();
  clearJobs();
  clearKeys();
  clearSources();
  if ($("confirm").open) $("confirm").close("cancel");
}

export function wireConsole() {
  for (const id of ["docs-type", "upload-type", "ingest-type"]) { // the API's document types, after each "any"
    $(id).append(...Object.entries(DOC_TYPES).map(([value, text]) => el("option", { value, text })));
  }
  for (const t of TABS) {
    $("tab-" + t).addEventListener("click", () => selectTab(t, false));
    $("tab-" + t).addEventListener("keydown", onKey);
  }
  window.addEventListener("hashchange", () => { if (ctx.me) selectTab(location.hash.slice(1) || "analytics", false); });
  wireConfirm();
  wireDocuments();
  wireJobs();
  wireKeys();
}
