// Lore's admin page: knowledge gaps, stale sources and conflicts, with charts, and the console's other tabs
// (console.js: documents, uploads, jobs, keys, sources). Needs an admin key.
// Server data (questions, titles, quotes) only ever becomes text nodes, as on the main page (view.js).

import { KEY, getJSON } from "./api.js";
import { resume, signInHandler } from "./signin.js";
import { hbars, sparkline } from "./charts.js";
import { badge, deepLink, el, show } from "./view.js";
import { clearConsole, enterConsole, wireConsole } from "./console.js";

const $ = (id) => document.getElementById(id);
const SECTIONS = ["gaps", "stale", "conflicts"];
const state = { me: null, seq: { gaps: 0, stale: 0, conflicts: 0 } };
const UTC = { timeZone: "UTC" };
const DAY = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric", ...UTC });
const TIME = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
                                                  ...UTC, timeZoneName: "short" });
const REASONS = { no_evidence: "not found", low_confidence: "low confidence", down_voted: "rated down" };
const CHANNELS = { api: "API", web: "Web", slack: "Slack", openai: "OpenAI API", mcp: "MCP" };
const KINDS = { number: "Number", date: "Date", limit: "Limit" };
const ISO_DAY = /^\d{4}-\d{2}-\d{2}$/;

function plural(n, one, many) { return n + " " + (n === 1 ? one : many || one + "s"); }

function when(iso, format) {
  const d = iso ? new Date(iso) : null;
  if (!d || Number.isNaN(d.getTime())) return document.createTextNode("—");
  return el("time", { datetime: iso, title: d.toISOString(), text: (format || DAY).format(d) });
}

// ---- sign-in and role ---------------------------------------------------------------------------

function only(id) {
  for (const v of ["signin", "denied", "app"]) show($(v), v === id);
}

function signInView(message) {
  state.me = null;
  clearData();
  only("signin");
  show($("who"), false);
  $("signin-error").textContent = message || "";
  $("api-key").setAttribute("aria-invalid", message ? "true" : "false");
  $("api-key").focus();
}


function whoText(me) {
  if (me.via === "demo") return "Demo mode: no sign-in";
  const groups = me.groups.length ? " (" + me.groups.join(", ") + ")" : "";
  return "Signed in as " + (me.user || "a service key") + groups;
}

function enter(me) {
  state.me = me;
  show($("who"), true);
  $("who-name").textContent = whoText(me);
  show($("sign-out"), me.via !== "demo");
  if (me.role !== "admin") { denied(me); return; }
  only("app");
  readFilters();
  loadAll(true);
  enterConsole(me, { signOut, denied });
}

function denied(me) {
  clearData();
  only("denied");
  const who = !me || !me.user ? "This key" : me.via === "key" ? me.user + "’s key" : "The account " + me.user;
  $("denied-text").textContent = who + " has the " + ((me && me.role) || "reader") + " role. The admin console "
    + "(knowledge gaps, stale sources, conflicts, documents, uploads, ingest jobs and API keys) reads every "
    + "recorded question and every document whatever its access list, so it needs an admin key. Ask an administrator for one, or keep asking questions on the main page.";
  $("denied-title").focus();
}

function signOut(message) {
  sessionStorage.removeItem(KEY);
  signInView(message);
}

// nothing from the reports stays in the page once the admin is gone
function clearData() {
  clearConsole();
  for (const name of SECTIONS) {
    state.seq[name]++; // and whatever is still on its way is dropped
    clearSection(name);
    $(name + "-status").textContent = "";
    $(name).setAttribute("aria-busy", "false");
    show($(name + "-error"), false);
  }
}

// ---- the period ---------------------------------------------------------------------------------

function readFilters() {
  const q = new URLSearchParams(location.search);
  for (const name of ["since", "until"]) $(name).value = ISO_DAY.test(q.get(name) || "") ? q.get(name) : "";
  $("period").value = q.get("period") === "day" ? "day" : "week";
  $("owner").value = (q.get("owner") || "").slice(0, 200);
  markPreset();
}

function filters() {
  return { since: $("since").value, until: $("until").value, period: $("period").value,
    owner: $("owner").value.trim() };
}

function daysAgo(n) {
  const d = new Date(Date.now() - n * 86400000);
  return d.toISOString().slice(0, 10);
}

function markPreset() {
  const f = filters();
  for (const b of document.querySelectorAll(".presets button")) {
    const days = b.dataset.days;
    const on = !f.until && (days ? f.since === daysAgo(Number(days) - 1) : !f.since);
    b.setAttribute("aria-pressed", on ? "true" : "false");
  }
}

function apply(event) {
  if (event) event.preventDefault();
  const f = filters();
  const bad = $("since").validity.badInput || $("until").validity.badInput;
  const error = bad ? "Enter dates as year, month and day."
    : f.since && f.until && f.since > f.until ? "The start date is after the end date." : "";
  $("filters-error").textContent = error;
  for (const id of ["since", "until"]) $(id).setAttribute("aria-invalid", error ? "true" : "false");
  if (error) return;
  const q = new URLSearchParams();
  if (f.since) q.set("since", f.since);
  if (f.until) q.set("until", f.until);
  if (f.period !== "week") q.set("period", f.period);
  if (f.owner) q.set("owner", f.owner);
  history.replaceState(null, "", "/admin" + (q.toString() ? "?" + q.toString() : "") + location.hash);
  markPreset();
  loadAll(f.owner !== conflictsOwner); // conflicts do not depend on the period, only on the owner
}

function preset(e) {
  const days = e.currentTarget.dataset.days;
  $("since").value = days ? daysAgo(Number(days) - 1) : ""; // today counts as one of the days
  $("until").value = "";
  apply(null);
}

// ---- loading ------------------------------------------------------------------------------------

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  return q.toString() ? "?" + q.toString() : "";
}

let conflictsOwner = null; // the owner the conflicts shown were loaded for

function loadAll(withConflicts) {
  const f = filters();
  if (withConflicts) conflictsOwner = f.owner;
  // each team's own work list: the owner filter applies to all three reports
  load("gaps", "/v1/analytics/gaps" + query({ since: f.since, until: f.until, period: f.period, owner: f.owner }), renderGaps);
  load("stale", "/v1/analytics/stale" + query({ since: f.since, until: f.until, owner: f.owner }), renderStale);
  // conflicts are about the documents as they are now, not about a period
  if (withConflicts) load("conflicts", "/v1/analytics/conflicts" + query({ owner: f.owner }), renderConflicts);
}

async function load(name, path, render) {
  const seq = ++state.seq[name];
  const box = $(name);
  box.setAttribute("aria-busy", "true");
  $(name + "-status").textContent = "Loading…";
  show($(name + "-error"), false);
  try {
    const data = await getJSON(path);
    if (seq !== state.seq[name]) return; // a newer request for this section won
    render(data);
    $(name + "-status").textContent = "Generated " + TIME.format(new Date(data.generated_at));
  } catch (err) {
    if (seq !== state.seq[name]) return;
    if (err.status === 401) { signOut("Please sign in again: " + err.message); return; }
    if (err.status === 403) { denied(state.me); return; }
    clearSection(name);
    $(name + "-status").textContent = "";
    $(name + "-error").textContent = "Could not load this report: " + err.message;
    show($(name + "-error"), true);
  } finally {
    if (seq === state.seq[name]) box.setAttribute("aria-busy", "false");
  }
}

function clearSection(name) {
  if (name === "gaps") { $("gaps-chart").replaceChildren(); $("gaps-list").replaceChildren(); }
  if (name === "stale") { $("stale-chart").replaceChildren(); $("stale-table").tBodies[0].replaceChildren(); }
  if (name === "conflicts") $("conflicts-list").replaceChildren();
  for (const id of [name + "-figure", name + "-wrap", name + "-empty"]) if ($(id)) show($(id), false);
  const tiles = { gaps: ["tile-gaps", "tile-questions"], stale: ["tile-stale"], conflicts: ["tile-conflicts"] };
  for (const id of tiles[name]) $(id).textContent = "–";
}

// ---- knowledge gaps -----------------------------------------------------------------------------

function renderGaps(data) {
  const clusters = data.clusters;
  $("tile-gaps").textContent = clusters.length;
  $("tile-questions").textContent = data.questions_considered;
  show($("gaps-empty"), clusters.length === 0);
  show($("gaps-figure"), clusters.length > 0);
  const rows = clusters.map((c) => ({
    label: c.label, value: c.people,
    text: plural(c.people, "person", "people") + " · " + plural(c.size, "question"),
    title: "#" + c.id + " " + c.label + ": " + plural(c.people, "person", "people") + ", "
      + plural(c.size, "question"),
  }));
  if (clusters.length) hbars($("gaps-chart"), rows, { title: "People asking, per knowledge gap", unit: "people" });
  else $("gaps-chart").replaceChildren();
  const per = $("period").value === "day" ? "day" : "week";
  $("gaps-list").replaceChildren(...clusters.map((c) => gapCard(c, per)));
}

function chips(counts, names) {
  const list = el("ul", { class: "chips" });
  for (const [k, n] of Object.entries(counts)) {
    if (n > 0) list.append(el("li", { class: "chip", text: (names ? names[k] || k : k) + " " + n }));
  }
  if (!list.children.length) list.append(el("li", { class: "chip chip-none", text: "none" }));
  return list;
}

function gapCard(c, per) {
  const spark = $("spark").content.firstElementChild.cloneNode(false);
  sparkline(spark, c.trend, "Questions per " + per);
  const reasons = el("ul", { class: "reasons", "aria-label": "Why these are gaps" });
  for (const [k, label] of Object.entries(REASONS)) {
    if (c.reasons[k] > 0) reasons.append(el("li", { class: "reason reason-" + k, text: c.reasons[k] + " " + label }));
  }
  const docs = c.nearest_documents.length
    ? el("ul", { class: "nearest" }, ...c.nearest_documents.map((d) => el("li", {},
        badge(d.doc_type), el("span", { class: "doc-title", text: d.title }),
        el("span", { class: "score", title: "cosine similarity to the topic", text: d.score.toFixed(2) }),
        el("p", { class: "uri", text: d.uri }))))
    : el("p", { class: "muted", text: "No document comes close." });
  return el("li", { class: "gap", id: "gap-" + c.id, "data-people": c.people, "data-size": c.size },
    el("div", { class: "gap-head" },
      el("span", { class: "rank", "aria-label": "rank " + c.id, text: c.id }),
      el("div", { class: "gap-title" },
        el("h3", { class: "gap-label", text: c.label }),
        el("p", { class: "gap-stats" },
          el("span", { class: "stat stat-people" }, el("strong", { text: c.people }),
             " " + (c.people === 1 ? "person" : "people")),
          el("span", { class: "stat stat-size" }, el("strong", { text: c.size }),
             " " + (c.size === 1 ? "question" : "questions")),
          el("span", { class: "stat seen" }, "seen ", when(c.first_seen), " – ", when(c.last_seen))),
        reasons),
      el("figure", { class: "trend" }, spark, el("figcaption", { class: "hint", text: "questions per " + per }))),
    el("div", { class: "gap-body" },
      el("div", {},
        el("h4", { text: "Example questions" }),
        el("ul", { class: "examples" }, ...c.questions.map((q) => el("li", { text: q }))),
        c.terms.length ? el("p", { class: "terms" }, "Terms: ",
                            ...c.terms.map((t) => el("span", { class: "term", text: t }))) : null),
      el("div", {}, el("h4", { text: "Closest documents" }), docs),
      el("div", {},
        el("h4", { text: "Asked through" }), chips(c.channels, CHANNELS),
        el("h4", { text: "Askers’ groups" }), chips(c.groups))));
}

// ---- stale sources ------------------------------------------------------------------------------

function renderStale(data) {
  const docs = data.documents;
  $("tile-stale").textContent = docs.length;
  show($("stale-empty"), docs.length === 0);
  show($("stale-figure"), docs.length > 0);
  show($("stale-wrap"), docs.length > 0);
  const rows = docs.map((d) => {
    const age = Math.round(d.age_days);
    const old = d.cited_old_versions ? ", " + d.cited_old_versions + " of an old version" : "";
    return { label: d.title, value: d.age_days, cls: d.cited_old_versions ? "is-outdated" : "",
             text: plural(age, "day") + " · " + plural(d.citations, "citation"),
             title: d.title + ": updated " + plural(age, "day") + " ago, " + plural(d.citations, "citation") + old };
  });
  if (docs.length) hbars($("stale-chart"), rows, { title: "Days since each cited source was updated", unit: "days" });
  else $("stale-chart").replaceChildren();
  show($("stale-legend"), docs.some((d) => d.cited_old_versions));
  $("stale-table").tBodies[0].replaceChildren(...docs.map((d) => el("tr", { "data-doc-id": d.doc_id },
    el("th", { scope: "row" }, el("span", { class: "doc-title", text: d.title }),
       el("p", { class: "uri", text: d.uri })),
    el("td", {}, badge(d.doc_type)),
    el("td", { text: d.owner || "—" }),
    el("td", { class: "date" }, when(d.updated_at)),
    el("td", { class: "num", text: Math.round(d.age_days) }),
    el("td", { class: "num", text: d.citations }),
    el("td", { class: "date" }, when(d.last_cited_at)),
    el("td", { class: "num" + (d.cited_old_versions ? " is-outdated" : ""), text: d.cited_old_versions }))));
}

// ---- conflicts ----------------------------------------------------------------------------------

/** `text` with every occurrence of each value wrapped in <mark>: text nodes only. */
function marked(text, values) {
  const ranges = [];
  for (const v of values) {
    if (!v) continue;
    for (let i = text.indexOf(v); i >= 0; i = text.indexOf(v, i + v.length)) ranges.push([i, i + v.length]);
  }
  ranges.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  const frag = document.createDocumentFragment();
  let at = 0;
  for (const [a, b] of ranges) {
    if (a < at) continue; // overlapping values: the first one wins
    frag.append(text.slice(at, a), el("mark", { text: text.slice(a, b) }));
    at = b;
  }
  frag.append(text.slice(at));
  return frag;
}

function side(s, which) {
  const version = (s.version || "").slice(0, 12);
  return el("div", { class: "side" + (s.current ? "" : " is-superseded"), "data-side": which },
    el("div", { class: "doc-line" }, badge(s.doc_type), el("h4", { class: "doc-title", text: s.title })),
    el("p", { class: "uri", text: s.uri }),
    el("p", { class: "version" }, "Version ", el("code", { text: version || "unknown" }), " · ",
       s.current ? el("span", { class: "current", text: "current" })
         : el("span", { class: "superseded", text: "superseded, still cited" })),
    el("blockquote", { class: "quote" }, marked(s.quote, s.values)),
    el("p", { class: "values" }, "States ", ...s.values.flatMap((v, i) => [i ? ", " : "", el("strong", { text: v })])),
    // a superseded version's passage is gone: only the current one can be opened on the main page
    s.current && s.chunk_id ? el("a", { class: "open-passage", text: "Open the passage", href: deepLink(s.chunk_id) })
      : null);
}

function renderConflicts(data) {
  const list = data.conflicts;
  $("tile-conflicts").textContent = list.length;
  show($("conflicts-empty"), list.length === 0);
  $("conflicts-list").replaceChildren(...list.map((c) => el("li", { class: "conflict", id: "conflict-" + c.id },
    el("div", { class: "conflict-head" },
      el("h3", { text: c.subject || "Different values" }),
      el("span", { class: "chip", text: KINDS[c.kind] || c.kind }),
      el("span", { class: "chip", text: c.scope === "versions" ? "Old version still cited" : "Two documents" }),
      el("span", { class: "similarity", title: "similarity of the two sentences",
                   text: Math.round(c.similarity * 100) + "% similar" })),
    el("div", { class: "sides" }, side(c.a, "a"), el("span", { class: "versus", "aria-hidden": "true", text: "vs" }),
       side(c.b, "b")))));
}

// ---- wiring -------------------------------------------------------------------------------------

function wire() {
  $("signin-form").addEventListener("submit", signInHandler(enter));
  $("sign-out").addEventListener("click", () => signOut(""));
  $("switch-key").addEventListener("click", () => signOut(""));
  $("filters").addEventListener("submit", apply);
  $("period").addEventListener("change", () => apply(null));
  for (const b of document.querySelectorAll(".presets button")) b.addEventListener("click", preset);
  wireConsole();
  resume(enter, signInView);
}

wire(); // modules run after the document is parsed
