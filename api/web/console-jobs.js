// The console's Jobs (ingest jobs, refreshed while one runs; start one) and Sources (each source's last sync)
// sections. Sources appear only once the server has the route (GET /v1/sources answers, not 404).

import { ApiError, getJSON, postJSON } from "./api.js";
import { at, ctx, say, showError, tokens } from "./console-util.js";
import { el, show } from "./view.js";

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 1500;
const jobs = { seq: 0, timer: 0 };
const STATES = { queued: "Queued", running: "Running", succeeded: "Succeeded", failed: "Failed",
                 interrupted: "Interrupted" };

export async function loadJobs() {
  const seq = ++jobs.seq;
  clearTimeout(jobs.timer);
  $("panel-jobs").setAttribute("aria-busy", "true");
  show($("jobs-error"), false);
  try {
    const data = await getJSON("/v1/jobs");
    if (seq !== jobs.seq) return;
    renderJobs(data.jobs);
    const active = data.jobs.some((j) => j.status === "queued" || j.status === "running");
    $("jobs-status").textContent = active ? "A job is running: refreshing" : data.jobs.length + " jobs";
    // only while something runs and the list is in view: a finished list does not change by itself
    if (active && !$("panel-jobs").hidden) jobs.timer = setTimeout(loadJobs, REFRESH_MS);
  } catch (err) {
    if (seq !== jobs.seq) return;
    $("jobs-table").tBodies[0].replaceChildren();
    show($("jobs-wrap"), false);
    $("jobs-status").textContent = "";
    showError("jobs-error", "Could not list the jobs: ", err);
  } finally {
    if (seq === jobs.seq) $("panel-jobs").setAttribute("aria-busy", "false");
  }
}

function renderJobs(list) {
  show($("jobs-empty"), list.length === 0);
  show($("jobs-wrap"), list.length > 0);
  $("jobs-table").tBodies[0].replaceChildren(...list.map((j) => el("tr", { "data-job-id": j.job_id },
    el("th", { scope: "row" }, el("code", { text: j.job_id }), el("p", { class: "hint" }, "queued ",
       at(j.created_at))),
    el("td", {}, el("span", { class: "state state-" + j.status, text: STATES[j.status] || j.status })),
    el("td", { class: "uri", text: j.paths.join(", ") }),
    el("td", { class: "progress-cell", text: progressText(j.progress) }),
    el("td", { class: "date" }, at(j.started_at)),
    el("td", { class: "result" }, ...result(j)))));
}

function progressText(p) {
  const of = p.files_todo === null ? "" : " of " + p.files_todo;
  return p.files_done + of + " files · " + p.chunks + " passages" + (p.current ? " · " + p.current : "");
}

function result(j) {
  if (j.error) return [el("p", { class: "job-error", text: j.error })];
  const r = j.report;
  if (!r) return ["—"];
  const parts = [el("p", { text: r.added + " added, " + r.updated + " updated, " + r.unchanged + " unchanged, "
    + r.deleted + " deleted" + (r.failed.length ? ", " + r.failed.length + " failed" : "") })];
  if (r.failed.length) {
    parts.push(el("ul", { class: "failed-list" },
      ...r.failed.map((f) => el("li", { text: (f.path || f.item || "") + ": " + (f.error || f.reason || "") }))));
  }
  return parts;
}

async function startIngest(event) {
  event.preventDefault();
  const paths = tokens($("ingest-paths").value);
  $("ingest-error").textContent = paths.length ? "" : "Enter one or more server paths.";
  $("ingest-paths").setAttribute("aria-invalid", paths.length ? "false" : "true");
  if (!paths.length) { $("ingest-paths").focus(); return; }
  const body = { paths, acl: tokens($("ingest-acl").value) };
  if ($("ingest-type").value) body.doc_type = $("ingest-type").value;
  try {
    const job = await postJSON("/v1/ingest", body);
    say("Started ingest job " + job.job_id + ".");
    $("ingest-paths").value = "";
    await loadJobs();
  } catch (err) {
    if (err.status === 401 || err.status === 403) { showError("ingest-error", "", err); return; }
    $("ingest-error").textContent = "Could not start: " + err.message;
    $("ingest-paths").setAttribute("aria-invalid", "true");
  }
}

export function clearJobs() {
  jobs.seq++;
  clearTimeout(jobs.timer);
  $("jobs-table").tBodies[0].replaceChildren();
  for (const id of ["jobs-wrap", "jobs-empty", "jobs-error"]) show($(id), false);
  $("jobs-status").textContent = "";
  $("ingest-error").textContent = "";
}

export function stopJobs() { clearTimeout(jobs.timer); }

export function wireJobs() { $("ingest-form").addEventListener("submit", startIngest); }

// ---- sources ------------------------------------------------------------------------------------

const sources = { seq: 0 };

/** Ask once per sign-in; a 404 means this server has no sources yet: the tab stays hidden, no error. */
export async function probeSources() {
  const seq = ++sources.seq;
  const live = ctx.live;
  try {
    const data = await getJSON("/v1/sources");
    if (seq !== sources.seq || live !== ctx.live) return;
    show($("tab-sources"), true);
    renderSources(data.sources || []);
  } catch (err) {
    if (seq !== sources.seq || live !== ctx.live) return;
    if (err instanceof ApiError && err.status === 404) { show($("tab-sources"), false); return; }
    show($("tab-sources"), true);
    showError("sources-error", "Could not list the sources: ", err);
  }
}

function renderSources(list) {
  show($("sources-empty"), list.length === 0);
  show($("sources-wrap"), list.length > 0);
  $("sources-status").textContent = list.length + " sources";
  $("sources-table").tBodies[0].replaceChildren(...list.map((s) => {
    const r = s.last_sync;
    const n = (k) => el("td", { class: "num", text: r ? r[k] : "—" });
    const problems = !r ? [el("span", { class: "hint", text: "not synced yet" })]
      : [r.error ? el("p", { class: "job-error", text: r.error }) : null,
         r.failed && r.failed.length ? el("ul", { class: "failed-list" },
           ...r.failed.map((f) => el("li", { text: f.item + ": " + f.reason }))) : null,
         !r.error && !(r.failed && r.failed.length) ? "none" : null];
    return el("tr", { "data-source": s.name },
      el("th", { scope: "row" }, el("span", { class: "doc-title", text: s.name }), el("p", { class: "hint", text: s.kind })),
      el("td", {}, el("span", { class: "state state-" + s.status, text: s.status })),
      el("td", { text: s.interval_s ? Math.round(s.interval_s / 60) + " min" : "—" }),
      el("td", { class: "date" }, r ? at(r.finished_at || r.started_at) : "—",
         r && r.duration_s !== undefined && r.duration_s !== null
           ? el("p", { class: "hint", text: r.duration_s.toFixed(1) + " s" }) : null),
      n("added"), n("updated"), n("deleted"), n("unchanged"),
      el("td", {}, ...problems));
  }));
}

export function clearSources() {
  sources.seq++;
  show($("tab-sources"), false);
  $("sources-table").tBodies[0].replaceChildren();
  for (const id of ["sources-wrap", "sources-empty", "sources-error"]) show($(id), false);
  $("sources-status").textContent = "";
}
