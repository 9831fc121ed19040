// Building the page's parts from server data. Documents are untrusted: their text only ever
// becomes text nodes (textContent, append(string)), never markup, and no URL comes from them.

const TYPES = { policy: "Policy", spec: "Spec", incident: "Incident", other: "Document" };
// UTC: an "updated" date is usually a day in the document's front matter, not an instant
const DAY = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric", timeZone: "UTC" });

export function el(tag, attrs, ...kids) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else if (k === "onclick") node.addEventListener("click", v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids) if (kid !== null && kid !== undefined && kid !== false) node.append(kid);
  return node;
}

export function show(node, on) { node.hidden = !on; }

/** `/?passage=<chunk id>&start=&end=`: the page's own link to a passage, its quote highlighted. */
export function deepLink(chunkId, span) {
  const q = new URLSearchParams({ passage: chunkId });
  if (span) { q.set("start", span.start); q.set("end", span.end); }
  return "/?" + q.toString();
}

/** Citations grouped by marker: one source per passage, with every quote taken from it. */
export function bySource(citations) {
  const groups = new Map();
  for (const c of citations) {
    if (!groups.has(c.marker)) groups.set(c.marker, Object.assign({}, c, { spans: [] }));
    groups.get(c.marker).spans.push({ start: c.start, end: c.end, quote: c.quote });
  }
  return groups;
}

export function badge(docType) {
  const t = TYPES[docType] ? docType : "other";
  return el("span", { class: "badge badge-" + t, text: TYPES[t] });
}

export function updated(iso) {
  const d = iso ? new Date(iso) : null;
  if (!d || Number.isNaN(d.getTime())) return null;
  return el("span", { class: "updated" }, "Updated ",
            el("time", { datetime: iso, title: d.toISOString(), text: DAY.format(d) }));
}

export function pages(a, b) {
  if (a === null || a === undefined) return null;
  return el("span", { class: "page", text: b && b !== a ? "pp. " + a + "–" + b : "p. " + a });
}

export function sectionText(section, title) {
  const parts = (section || []).slice();
  if (parts.length && parts[0] === title) parts.shift(); // the top heading is usually the title again
  return parts.join(" › ");
}

function meta(docType, iso, pageA, pageB) {
  return el("div", { class: "meta" }, badge(docType), updated(iso), pages(pageA, pageB));
}

function sectionLine(section, title) {
  const text = sectionText(section, title);
  return text ? el("p", { class: "section-path", text }) : null;
}

function opener(label, chunkId, spans, open) {
  return el("a", {
    class: "source-title", href: deepLink(chunkId, spans[0]), text: label,
    onclick: (e) => { e.preventDefault(); open(chunkId, spans, e.currentTarget); },
  });
}

/** A paragraph of answer text whose markers [n] are links opening their passage. */
export function withMarkers(text, sources, open) {
  const p = el("p");
  let at = 0;
  for (const m of text.matchAll(/\[(\d+)\]/g)) {
    const s = sources.get(Number(m[1]));
    if (!s) continue;
    p.append(text.slice(at, m.index));
    const link = opener("[" + s.marker + "]", s.chunk_id, s.spans, open);
    link.className = "cite";
    link.dataset.marker = s.marker;
    link.dataset.chunkId = s.chunk_id;
    link.title = s.title;
    link.setAttribute("aria-describedby", "source-" + s.marker + "-title");
    p.append(link);
    at = m.index + m[0].length;
  }
  p.append(text.slice(at));
  return p;
}

/** An earlier question and its answer, compact and plain: its markers would point at sources no longer shown. */
export function earlierTurn(t) {
  const notFound = t.status === "no_evidence";
  const answer = t.text.replace(/\s*\[\d+\]/g, "");
  return el("li", { class: "turn" + (notFound ? " is-notfound" : "") },
    el("p", { class: "turn-q" }, el("span", { class: "turn-label", text: "Q:" }), " ", t.question),
    el("p", { class: "turn-a" }, el("span", { class: "turn-label", text: notFound ? "Not found:" : "A:" }), " ",
       answer));
}

/** A cited source: title (opens the passage), doc type, updated date, page, section, verified quotes. */
export function source(s, hit, open) {
  const id = "source-" + s.marker;
  const title = opener(s.title, s.chunk_id, s.spans, open);
  title.id = id + "-title";
  return el("li", { class: "source", id, "data-chunk-id": s.chunk_id },
    el("span", { class: "marker", "aria-hidden": "true", text: s.marker }),
    el("div", { class: "source-body" },
       el("h4", { class: "source-name" }, title),
       meta(s.doc_type, hit && hit.updated_at, s.page, hit && hit.page_end),
       sectionLine(s.section, s.title),
       ...s.spans.map((sp) => el("blockquote", { class: "quote", text: sp.quote }))));
}

/** One of the closest sources shown when the knowledge base has no answer. */
export function closest(h, i, open) {
  const text = h.text.replace(/\n{2,}/g, "\n");
  const snippet = text.length > 280 ? text.slice(0, 280).trimEnd() + "…" : text;
  return el("li", { class: "source closest", "data-chunk-id": h.chunk_id },
    el("span", { class: "marker", "aria-hidden": "true", text: i + 1 }),
    el("div", { class: "source-body" },
       el("h4", { class: "source-name" }, opener(h.title, h.chunk_id, [], open)),
       meta(h.doc_type, h.updated_at, h.page_start, h.page_end),
       sectionLine(h.section, h.title),
       el("p", { class: "snippet", text: snippet })));
}

// `text` covers document offsets [offset, offset + text.length); each span in it becomes a <mark>.
function highlighted(text, offset, spans) {
  const frag = document.createDocumentFragment();
  const end = offset + text.length;
  const ranges = spans.map((s) => [Math.max(s.start, offset), Math.min(s.end, end)])
    .filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
  let at = offset;
  for (const [a, b] of ranges) {
    if (b <= at) continue; // overlapping quotes: one mark
    const from = Math.max(a, at);
    frag.append(text.slice(at - offset, from - offset));
    frag.append(el("mark", { text: text.slice(from - offset, b - offset) }));
    at = b;
  }
  frag.append(text.slice(at - offset));
  return frag;
}

/** A passage's text with its neighbourhood dimmed around it and the quoted spans marked. */
export function passageBody(p, spans) {
  const ctx = p.context && typeof p.context.text === "string" ? p.context : { start: p.start, text: p.text };
  const cs = ctx.start, ce = ctx.start + ctx.text.length;
  const a = Math.min(Math.max(p.start, cs), ce);
  const b = Math.min(Math.max(p.end, a), ce);
  const box = document.createDocumentFragment();
  for (const [from, to, cls] of [[cs, a, "context"], [a, b, "chunk"], [b, ce, "context"]]) {
    if (to > from) box.append(el("span", { class: cls }, highlighted(ctx.text.slice(from - cs, to - cs), from, spans)));
  }
  return box;
}
