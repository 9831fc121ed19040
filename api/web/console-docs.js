// The console's Documents (search, filter, open, delete) and Upload (several files, per-file progress and errors)
// sections. Every call goes through the same /v1 routes and permission checks as any other client.

import { call, getJSON, uploadFile } from "./api.js";
import { at, bytes, confirmAction, ctx, ended, say, showError, tokens } from "./console-util.js";
import { badge, deepLink, el, sectionText, show } from "./view.js";

const $ = (id) => document.getElementById(id);
const DEFAULT_ACL = "(default)"; // the select's value for documents with no ACL of their own
const docs = { list: [], total: 0, seq: 0, hasOwners: false };

// ---- documents ----------------------------------------------------------------------------------

export async function loadDocuments() {
  const seq = ++docs.seq;
  const q = new URLSearchParams({ limit: "500" });
  if ($("docs-q").value.trim()) q.set("q", $("docs-q").value.trim());
  if ($("docs-type").value) q.set("doc_type", $("docs-type").value);
  $("panel-documents").setAttribute("aria-busy", "true");
  $("docs-status").textContent = "Loading…";
  show($("docs-error"), false);
  try {
    const data = await getJSON("/v1/documents?" + q.toString());
    if (seq !== docs.seq) return;
    docs.list = data.documents;
    docs.total = data.total;
    // owners come with another change: the filter and column appear only once the API sends them
    docs.hasOwners = data.documents.some((d) => Array.isArray(d.owners));
    options($("docs-acl"), data.documents.map((d) => (d.acl && d.acl.length ? d.acl : [DEFAULT_ACL])),
            "Anyone listed");
    options($("docs-owner"), docs.hasOwners ? data.documents.map((d) => d.owners || []) : [], "Any owner");
    show($("docs-owner-field"), docs.hasOwners);
    show($("docs-owner-col"), docs.hasOwners);
    renderDocuments();
  } catch (err) {
    if (seq !== docs.seq) return;
    clearDocuments();
    showError("docs-error", "Could not list the documents: ", err);
  } finally {
    if (seq === docs.seq) $("panel-documents").setAttribute("aria-busy", "false");
  }
}

/** Refill a filter's options from the values seen, keeping the current choice. */
function options(select, lists, anyLabel) {
  const keep = select.value;
  const values = [...new Set(lists.flat())].sort();
  if (keep && !values.includes(keep)) values.push(keep);
  select.replaceChildren(el("option", { value: "", text: anyLabel }),
    ...values.map((v) => el("option", { value: v, text: v === DEFAULT_ACL ? "Default readers" : v })));
  select.value = keep;
}

function matching() {
  const acl = $("docs-acl").value, owner = docs.hasOwners ? $("docs-owner").value : "";
  return docs.list.filter((d) => (!acl || (d.acl && d.acl.length ? d.acl.includes(acl) : acl === DEFAULT_ACL))
    && (!owner || (d.owners || []).includes(owner)));
}

function renderDocuments() {
  const shown = matching();
  const more = docs.total > docs.list.length ? " (the first " + docs.list.length + " of " + docs.total
    + "; narrow the search)" : "";
  $("docs-status").textContent = shown.length + " of " + docs.list.length + " documents" + more;
  show($("docs-empty"), shown.length === 0);
  show($("docs-wrap"), shown.length > 0);
  $("docs-table").tBodies[0].replaceChildren(...shown.map(docRow));
}

function docRow(d) {
  const readers = d.acl && d.acl.length ? d.acl.join(", ") : "default";
  return el("tr", { "data-doc-id": d.id },
    el("th", { scope: "row" }, el("span", { class: "doc-title", text: d.title }), el("p", { class: "uri", text: d.uri })),
    el("td", {}, badge(d.doc_type)),
    el("td", { class: "acl", text: readers }),
    docs.hasOwners ? el("td", { class: "owners", text: (d.owners || []).join(", ") || "—" }) : null,
    el("td", { class: "date" }, at(d.updated_at)),
    el("td", { class: "num", text: d.chunk_count }),
    el("td", { class: "num", text: bytes(d.size) }),
    el("td", { class: "actions" },
      el("button", { type: "button", class: "btn btn-small", "aria-label": "Open " + d.title, text: "Open",
                     onclick: () => openDocument(d.id) }),
      el("button", { type: "button", class: "btn btn-small btn-danger-quiet", "aria-label": "Delete " + d.title,
                     text: "Delete", onclick: () => deleteDocument(d) })));
}

async function openDocument(id) {
  try {
    const d = await getJSON("/v1/documents/" + encodeURIComponent(id));
    $("doc-detail-title").textContent = d.title;
    $("doc-detail-meta").textContent = d.uri + " · version " + d.version.slice(0, 12) + " · readers "
      + (d.acl && d.acl.length ? d.acl.join(", ") : "default");
    $("doc-passages").replaceChildren(...d.chunks.map((c) => el("li", { "data-chunk-id": c.chunk_id },
      el("a", { href: deepLink(c.chunk_id), text: sectionText(c.section, d.title) || "Passage " + (c.ordinal + 1) }),
      c.page_start ? el("span", { class: "hint", text: " · p. " + c.page_start }) : null)));
    show($("doc-detail"), true);
    $("doc-detail-title").focus();
  } catch (err) {
    showError("docs-error", "Could not open the document: ", err);
  }
}

async function deleteDocument(d) {
  const ok = await confirmAction("Delete “" + d.title + "”?",
    "Its " + d.chunk_count + " passages leave search and answers at once." + (d.uploaded
      ? " The uploaded file is deleted too." : " It comes back if its folder is ingested again while the file is there."),
    "Delete document");
  if (!ok) return;
  try {
    const r = await (await call("/v1/documents/" + encodeURIComponent(d.id), { method: "DELETE" })).json();
    say("Deleted “" + r.title + "”.");
    $("docs-status").textContent = "Deleted “" + r.title + "”.";
    if ($("doc-detail-title").textContent === d.title) show($("doc-detail"), false);
    await loadDocuments();
    $("docs-status").textContent = "Deleted “" + r.title + "”. " + $("docs-status").textContent;
  } catch (err) {
    showError("docs-error", "Could not delete “" + d.title + "”: ", err);
  }
}

export function clearDocuments() {
  docs.seq++;
  docs.list = [];
  $("docs-table").tBodies[0].replaceChildren();
  $("doc-passages").replaceChildren();
  for (const id of ["docs-wrap", "docs-empty", "doc-detail", "docs-error"]) show($(id), false);
  $("docs-status").textContent = "";
  $("doc-detail-title").textContent = "";
  $("doc-detail-meta").textContent = "";
}

// ---- upload -------------------------------------------------------------------------------------

async function uploadAll(event) {
  event.preventDefault();
  const files = [...$("upload-files").files];
  $("upload-error").textContent = files.length ? "" : "Choose one or more files to upload.";
  if (!files.length) { $("upload-files").focus(); return; }
  const live = ctx.live;
  const rows = files.map((f) => uploadRow(f));
  $("upload-list").replaceChildren(...rows.map((r) => r.li));
  $("upload-submit").disabled = true;
  let done = 0, failed = 0;
  // one at a time: the server writes one upload at a time (a second one at once would get 409)
  for (const [i, f] of files.entries()) {
    if (live !== ctx.live) return; // signed out meanwhile
    const row = rows[i];
    $("upload-summary").textContent = "Uploading " + (i + 1) + " of " + files.length + ": " + f.name;
    const form = new FormData();
    form.append("file", f, f.name);
    if ($("upload-type").value) form.append("doc_type", $("upload-type").value);
    if (tokens($("upload-acl").value).length) form.append("acl", tokens($("upload-acl").value).join(","));
    try {
      const r = await uploadFile("/v1/documents", form, (part) => progress(row, part));
      row.bar.value = 100;
      row.li.classList.add("is-done");
      row.state.textContent = (r.report.added ? "Added" : r.report.updated ? "Replaced" : "Unchanged") + " as “"
        + r.document.title + "” (" + r.document.chunk_count + " passages, readers "
        + (r.document.acl && r.document.acl.length ? r.document.acl.join(", ") : "default") + ")";
      done++;
    } catch (err) {
      if (ended(err)) return;
      row.li.classList.add("is-error");
      row.bar.value = 0;
      row.state.textContent = "Failed: " + err.message;
      failed++;
    }
  }
  $("upload-submit").disabled = false;
  $("upload-files").value = "";
  const text = done + " uploaded" + (failed ? ", " + failed + " failed: see the messages above" : "");
  $("upload-summary").textContent = text + ".";
  say(text);
}

function uploadRow(f) {
  const bar = el("progress", { max: "100", value: "0", "aria-label": "Upload of " + f.name });
  const state = el("span", { class: "upload-state", text: "Waiting" });
  return { bar, state, li: el("li", { class: "upload-item" },
    el("span", { class: "upload-name", text: f.name }), el("span", { class: "hint", text: bytes(f.size) }),
    bar, state) };
}

function progress(row, part) {
  row.bar.value = Math.round(part * 100);
  row.state.textContent = part < 1 ? "Uploading " + Math.round(part * 100) + "%" : "Ingesting…";
}

export function clearUploads() {
  $("upload-list").replaceChildren();
  $("upload-summary").textContent = "";
  $("upload-error").textContent = "";
  $("upload-submit").disabled = false;
}

export function wireDocuments() {
  $("docs-filters").addEventListener("submit", (e) => { e.preventDefault(); loadDocuments(); });
  $("docs-type").addEventListener("change", () => loadDocuments());
  $("docs-acl").addEventListener("change", renderDocuments);
  $("docs-owner").addEventListener("change", renderDocuments);
  $("doc-detail-close").addEventListener("click", () => show($("doc-detail"), false));
  $("upload-form").addEventListener("submit", uploadAll);
}
