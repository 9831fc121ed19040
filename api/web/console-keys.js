// The console's API keys section: create (the key shown once, with a copy button), list, revoke.
// A new key lives in the page only until "I have stored it", a sign-out or another tab; never in storage.

import { call, getJSON, postJSON } from "./api.js";
import { at, confirmAction, say, showError, tokens } from "./console-util.js";
import { el, show } from "./view.js";

const $ = (id) => document.getElementById(id);
const keys = { seq: 0 };

export async function loadKeys() {
  const seq = ++keys.seq;
  $("panel-keys").setAttribute("aria-busy", "true");
  show($("keys-error"), false);
  try {
    const data = await getJSON("/v1/keys" + ($("keys-revoked").checked ? "?include_revoked=true" : ""));
    if (seq !== keys.seq) return;
    show($("keys-wrap"), true);
    const live = data.keys.filter((k) => !k.revoked_at).length;
    $("keys-status").textContent = live + " active keys" + (data.keys.length > live ? ", "
      + (data.keys.length - live) + " revoked" : "");
    $("keys-table").tBodies[0].replaceChildren(...data.keys.map(keyRow));
  } catch (err) {
    if (seq !== keys.seq) return;
    $("keys-table").tBodies[0].replaceChildren();
    showError("keys-error", "Could not list the keys: ", err);
  } finally {
    if (seq === keys.seq) $("panel-keys").setAttribute("aria-busy", "false");
  }
}

function keyRow(k) {
  const who = k.user || "a service key";
  const control = k.revoked_at ? el("span", { class: "state state-failed" }, "Revoked ", at(k.revoked_at))
    : k.current ? el("span", { class: "hint", text: "Your key (revoke it with another admin key)" })
      : el("button", { type: "button", class: "btn btn-small btn-danger-quiet", text: "Revoke",
                       "aria-label": "Revoke key " + k.key_id + " (" + who + ")", onclick: () => revoke(k) });
  return el("tr", { "data-key-id": k.key_id, class: k.revoked_at ? "is-revoked" : null },
    el("th", { scope: "row" }, el("code", { text: k.key_id })),
    el("td", { text: k.user || "—" }),
    el("td", { text: k.groups.join(", ") || "—" }),
    el("td", {}, el("span", { class: "role role-" + k.role, text: k.role })),
    el("td", { text: k.note || "" }),
    el("td", { class: "date" }, at(k.created_at)),
    el("td", { class: "date" }, at(k.last_used_at)),
    el("td", { class: "actions" }, control));
}

async function create(event) {
  event.preventDefault();
  const body = { user: $("key-user").value.trim() || null, groups: tokens($("key-groups").value),
                 role: $("key-role").value, note: $("key-note").value.trim() || null };
  $("key-error").textContent = "";
  try {
    const made = await postJSON("/v1/keys", body);
    $("key-form").reset();
    $("new-key-who").textContent = (made.user || "a service key") + " (" + made.role + ", key id " + made.key_id + ")";
    $("new-key-value").value = made.key;
    $("copy-status").textContent = "";
    show($("new-key"), true);
    $("new-key-title").focus();
    say("Created key " + made.key_id + ". Copy it now: it is not shown again.");
    await loadKeys();
  } catch (err) {
    if (err.status === 401 || err.status === 403) { showError("key-error", "", err); return; }
    $("key-error").textContent = "Could not create the key: " + err.message;
  }
}

async function copy() {
  const input = $("new-key-value");
  try {
    await navigator.clipboard.writeText(input.value);
    $("copy-status").textContent = "Copied to the clipboard.";
  } catch (_) { // no clipboard permission: leave it selected for Ctrl+C
    input.focus();
    input.select();
    $("copy-status").textContent = "Selected: press Ctrl+C (⌘C) to copy it.";
  }
}

export function forgetNewKey() {
  $("new-key-value").value = "";
  $("new-key-who").textContent = "";
  $("copy-status").textContent = "";
  show($("new-key"), false);
}

async function revoke(k) {
  const ok = await confirmAction("Revoke key " + k.key_id + "?", "Requests with the key of " + (k.user || "this service")
    + " (" + k.role + ") get 401 from now on. This cannot be undone: a new key would have to be created.", "Revoke key");
  if (!ok) return;
  try {
    await call("/v1/keys/" + encodeURIComponent(k.key_id), { method: "DELETE" });
    say("Revoked key " + k.key_id + ".");
    await loadKeys();
    $("keys-status").textContent = "Revoked key " + k.key_id + ". " + $("keys-status").textContent;
  } catch (err) {
    showError("keys-error", "Could not revoke key " + k.key_id + ": ", err);
  }
}

export function clearKeys() {
  keys.seq++;
  forgetNewKey();
  $("keys-table").tBodies[0].replaceChildren();
  for (const id of ["keys-wrap", "keys-error"]) show($(id), false);
  $("keys-status").textContent = "";
  $("key-error").textContent = "";
}

export function wireKeys() {
  $("key-form").addEventListener("submit", create);
  $("copy-key").addEventListener("click", copy);
  $("new-key-done").addEventListener("click", () => { forgetNewKey(); $("key-user").focus(); });
  $("keys-revoked").addEventListener("change", loadKeys);
}
