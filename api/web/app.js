// Lore's page for support agents: sign in, ask and follow up, read the cited answer, open passages, give feedback.
// Plain DOM, no build step, no third-party code; server data reaches the page only as text (see view.js).

import { ApiError, KEY, call, events, getJSON, postJSON } from "./api.js";
import { resume, signInHandler } from "./signin.js";
import { badge, bySource, closest, deepLink, earlierTurn, el, pages, passageBody, sectionText, show, source,
         updated, withMarkers } from "./view.js";

const $ = (id) => document.getElementById(id);
const state = { me: null, answer: null, asking: null, opener: null, spans: [], passageSeq: 0, turns: [] };
const MAX_TURNS = 5; // question-answer pairs sent with a follow-up: 10 of the 20 turns /v1/ask accepts
const MAX_TURN_CHARS = 8000; // as /v1/ask's Turn.content

// ---- sign-in ----------------------------------------------------------------------------------

function signInView(message) {
  state.me = null;
  show($("app"), false);
  show($("who"), false);
  show($("signin"), true);
  $("signin-error").textContent = message || "";
  $("api-key").setAttribute("aria-invalid", message ? "true" : "false");
  $("api-key").focus();
}


function enter(me) {
  state.me = me;
  show($("signin"), false);
  show($("app"), true);
  show($("who"), true);
  const demo = me.via === "demo";
  const groups = me.groups.length ? " (" + me.groups.join(", ") + ")" : "";
  $("who-name").textContent = demo ? "Demo mode: no sign-in" : "Signed in as " + (me.user || "a service key") + groups;
  show($("sign-out"), !demo);
  const q = new URLSearchParams(location.search);
  const id = q.get("passage");
  if (id) {
    const a = Number.parseInt(q.get("start"), 10), b = Number.parseInt(q.get("end"), 10);
    openPassage(id, Number.isFinite(a) && Number.isFinite(b) && b > a ? [{ start: a, end: b }] : [], null);
  } else {
    $("question").focus();
  }
}

function signOut(message) {
  if (state.asking) state.asking.abort();
  state.asking = null;
  sessionStorage.removeItem(KEY);
  clearResult();
  clearConversation(); // the next person at this browser must not ask inside someone else's conversation
  closePassage(false);
  signInView(message);
}

function failed(err, box) {
  if (err.name === "AbortError") return;
  if (err.status === 401) { signOut("Please sign in again: " + err.message); return; }
  box = box || $("error");
  box.textContent = err.message;
  show(box, true);
}

// ---- the conversation: earlier turns, sent with each question so a follow-up is understood ------

function historyBody() {
  return state.turns.flatMap((t) => [
    { role: "user", content: t.question.slice(0, MAX_TURN_CHARS) },
    { role: "assistant", content: t.text.slice(0, MAX_TURN_CHARS) }, // an abstention too: "not covered" is context
  ]);
}

// every finished turn before the one being asked or shown
function showEarlier(turns) {
  $("turns").replaceChildren(...turns.map(earlierTurn));
  show($("conversation"), turns.length > 0);
}

function showConversationControls() {
  const on = state.turns.length > 0;
  show($("new-conversation"), on);
  $("question").placeholder = on ? "Ask a follow-up, e.g. And for contractors?" : $("question").dataset.placeholder;
}

function clearConversation() {
  state.turns = [];
  showEarlier([]);
  showConversationControls();
}

function newConversation() {
  if (state.asking) state.asking.abort();
  state.asking = null;
  clearResult();
  clearConversation();
  closePassage(false);
  $("question").value = "";
  $("question").focus();
}

// ---- asking -----------------------------------------------------------------------------------

function clearResult() {
  state.answer = null;
  show($("result"), false);
  show($("error"), false);
  $("ask-button").disabled = false;
}

function startResult(question) {
  const answer = $("answer");
  $("result").classList.remove("is-notfound");
  $("result-title").textContent = "Answer";
  $("result-status").textContent = "Searching the knowledge base…";
  $("question-echo").textContent = question;
  answer.replaceChildren();
  answer.setAttribute("aria-busy", "true");
  answer.classList.add("is-streaming");
  show($("sources-block"), false);
  show($("feedback"), false);
  show($("result"), true);
  $("ask-button").disabled = true;
  const streamed = document.createTextNode("");
  answer.append(streamed);
  return streamed;
}

async function ask(event) {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question) { $("question").focus(); return; }
  if (state.asking) state.asking.abort();
  const ctrl = new AbortController();
  clearResult();
  state.asking = ctrl;
  const body = { question };
  if ($("doc-type").value) body.filters = { doc_types: [$("doc-type").value] };
  if (state.turns.length) body.history = historyBody();
  showEarlier(state.turns);
  const streamed = startResult(question);
  let final = null;
  try {
    const res = await call("/v1/ask/stream", {
      method: "POST", signal: ctrl.signal, body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "Accept": "text/event-stream", "X-Lore-Channel": "web" },
    });
    for await (const ev of events(res.body)) {
      if (ev.event === "delta") {
        if (!streamed.data) $("result-status").textContent = "Writing…";
        streamed.appendData(JSON.parse(ev.data).text || "");
      } else if (ev.event === "answer") {
        final = JSON.parse(ev.data); // authoritative: replaces the streamed text
      } else if (ev.event === "error") {
        const e = (JSON.parse(ev.data) || {}).error || {};
        throw new ApiError(500, e.code || "failed", e.message || "The answer failed; try again.");
      }
    }
    if (!final) throw new ApiError(0, "incomplete", "The answer was cut off before it finished; try again.");
    if (state.asking === ctrl) {
      // only what the next question sends is kept, so the page shows exactly the context it gives
      state.turns = state.turns.concat({ question, text: final.text, status: final.status }).slice(-MAX_TURNS);
      render(final);
      showConversationControls();
    }
  } catch (err) {
    if (state.asking !== ctrl) return;
    show($("result"), false);
    failed(err);
  } finally {
    if (state.asking === ctrl) {
      state.asking = null;
      $("answer").setAttribute("aria-busy", "false");
      $("answer").classList.remove("is-streaming");
      $("ask-button").disabled = false;
    }
  }
}

function render(a) {
  state.answer = a;
  const notFound = a.status === "no_evidence";
  const hits = new Map(a.hits.map((h) => [h.chunk_id, h]));
  const sources = bySource(a.citations);
  $("result").classList.toggle("is-notfound", notFound);
  $("result-title").textContent = notFound ? "Not found in the knowledge base" : "Answer";
  $("result-status").textContent = notFound ? "No answer in your documents"
    : a.status === "extractive" ? "Quoted from your documents" : "Answered from your documents";
  $("result-status").title = a.status === "extractive"
    ? "Sentences quoted verbatim from the passages (no language model wrote this answer)" : "";

  const answer = $("answer");
  answer.replaceChildren();
  if (notFound) answer.append(el("p", { class: "notfound-text", text: a.text }));
  else for (const para of a.text.split(/\n{2,}/)) answer.append(withMarkers(para, sources, openPassage));

  const list = $("sources");
  list.replaceChildren();
  if (notFound) {
    $("sources-title").textContent = a.hits.length ? "Closest sources" : "No close sources either";
    a.hits.forEach((h, i) => list.append(closest(h, i, openPassage)));
  } else {
    $("sources-title").textContent = "Sources";
    for (const s of sources.values()) list.append(source(s, hits.get(s.chunk_id), openPassage));
  }
  show($("sources-block"), true);
  resetFeedback();
}

// ---- feedback ---------------------------------------------------------------------------------

function thumbs() { return $("feedback").querySelectorAll("button.thumb"); }

function resetFeedback() {
  for (const b of thumbs()) { b.disabled = false; b.setAttribute("aria-pressed", "false"); }
  $("feedback-comment").value = "";
  $("feedback-comment").disabled = false;
  $("feedback-status").textContent = "";
  $("feedback-status").classList.remove("is-error");
  show($("feedback"), Boolean(state.answer && state.answer.trace_id));
}

async function feedback(e) {
  const button = e.currentTarget, a = state.answer;
  if (!a) return;
  const comment = $("feedback-comment").value.trim();
  const status = $("feedback-status");
  for (const b of thumbs()) b.disabled = true;
  $("feedback-comment").disabled = true;
  status.classList.remove("is-error");
  try {
    const body = { trace_id: a.trace_id, rating: button.dataset.rating, channel: "web" };
    if (comment) body.comment = comment;
    await postJSON("/v1/feedback", body);
    button.setAttribute("aria-pressed", "true");
    status.textContent = "Thanks, your feedback was recorded.";
  } catch (err) {
    if (err.status === 401) { failed(err); return; }
    for (const b of thumbs()) b.disabled = false;
    $("feedback-comment").disabled = false;
    status.classList.add("is-error");
    status.textContent = "Your feedback was not recorded: " + err.message;
  }
  status.focus(); // the clicked button is now disabled and would drop focus to the page
}

// ---- the passage panel ------------------------------------------------------------------------

// what is open shows in the answer too: its marker links and its source entry
function markOpen(chunkId) {
  for (const n of document.querySelectorAll("#result [data-chunk-id]")) {
    n.classList.toggle("is-open", n.dataset.chunkId === chunkId);
  }
}

function resetPassage(title) {
  $("passage-title").textContent = title;
  for (const id of ["passage-meta", "passage-section", "passage-uri", "passage-text"]) $(id).replaceChildren();
  show($("passage-error"), false);
  $("passage-prev").disabled = true;
  $("passage-next").disabled = true;
}

async function openPassage(chunkId, spans, opener) {
  if (opener) state.opener = opener;
  state.spans = spans;
  const seq = ++state.passageSeq;
  $("app").classList.add("has-passage");
  show($("passage"), true);
  resetPassage("Loading passage…");
  markOpen(chunkId);
  history.replaceState(null, "", deepLink(chunkId, spans[0]));
  let p;
  try {
    p = await getJSON("/v1/passages/" + encodeURIComponent(chunkId));
  } catch (err) {
    if (seq !== state.passageSeq) return;
    resetPassage("Passage unavailable");
    if (err.status === 404) err.message = "This passage does not exist, or you do not have access to it.";
    failed(err, $("passage-error"));
    if (!$("passage").hidden) $("passage-title").focus();
    return;
  }
  if (seq !== state.passageSeq) return; // a later click won
  $("passage-title").textContent = p.title;
  $("passage-meta").append(badge(p.doc_type), updated(p.updated_at) || "", pages(p.page_start, p.page_end) || "");
  $("passage-section").textContent = sectionText(p.section, p.title);
  $("passage-uri").textContent = p.uri;
  $("passage-uri").title = p.version ? "Version " + p.version.slice(0, 12) : "";
  $("passage-text").append(passageBody(p, spans));
  for (const [id, target] of [["passage-prev", p.previous_chunk_id], ["passage-next", p.next_chunk_id]]) {
    $(id).disabled = !target;
    $(id).dataset.target = target || "";
  }
  $("passage-title").focus();
  const first = $("passage-text").querySelector("mark") || $("passage-text").querySelector(".chunk");
  if (first) first.scrollIntoView({ block: "center" });
}

function closePassage(restoreFocus) {
  state.passageSeq++;
  show($("passage"), false);
  $("app").classList.remove("has-passage");
  markOpen(null);
  if (new URLSearchParams(location.search).has("passage")) history.replaceState(null, "", "/");
  if (restoreFocus) {
    const back = state.opener && document.contains(state.opener) ? state.opener : $("question");
    back.focus();
  }
  state.opener = null;
}

// ---- wiring -----------------------------------------------------------------------------------

function wire() {
  $("signin-form").addEventListener("submit", signInHandler(enter));
  $("sign-out").addEventListener("click", () => signOut(""));
  $("new-conversation").addEventListener("click", newConversation);
  $("question").dataset.placeholder = $("question").placeholder;
  $("ask-form").addEventListener("submit", ask);
  $("question").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("ask-form").requestSubmit(); }
  });
  for (const b of thumbs()) b.addEventListener("click", feedback);
  $("passage-close").addEventListener("click", () => closePassage(true));
  for (const id of ["passage-prev", "passage-next"]) {
    $(id).addEventListener("click", (e) => {
      // the spans are document offsets, so a neighbour that holds part of a quote still shows it
      if (e.currentTarget.dataset.target) openPassage(e.currentTarget.dataset.target, state.spans, null);
    });
  }
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !$("passage").hidden) { e.preventDefault(); closePassage(true); }
  });
  resume(enter, signInView);
}

wire(); // modules run after the document is parsed
