// What the admin console's sections share: who is signed in, what a failed call means, a confirmation dialog,
// dates and sizes. Server data only ever becomes text nodes (view.js's el), as everywhere on these pages.

import { el, show } from "./view.js";

const $ = (id) => document.getElementById(id);
const UTC = { timeZone: "UTC" };
const TIME = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit",
                                                  minute: "2-digit", ...UTC, timeZoneName: "short" });

// set by admin.js: the signed-in caller, and what to do when the key stops working or is not an admin's
export const ctx = { me: null, signOut: () => {}, denied: () => {}, live: 0 };

/** True when the error ended the session (401: sign in again; 403: not an admin): the caller stops there. */
export function ended(err) {
  if (err.status === 401) { ctx.signOut("Please sign in again: " + err.message); return true; }
  if (err.status === 403) { ctx.denied(ctx.me); return true; }
  return false;
}

/** Show a section's error box with the API's message (it says what went wrong and what to do). */
export function showError(id, prefix, err) {
  if (ended(err)) return;
  $(id).textContent = prefix + err.message;
  show($(id), true);
}

export function say(text) { $("console-status").textContent = text; }

export function at(iso) {
  const d = iso ? new Date(iso) : null;
  if (!d || Number.isNaN(d.getTime())) return document.createTextNode("—");
  return el("time", { datetime: iso, title: d.toISOString(), text: TIME.format(d) });
}

export function bytes(n) {
  if (n < 1024) return n + " B";
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KB";
  return (n / 1024 / 1024).toFixed(1) + " MB";
}

export function tokens(text) {
  return text.split(",").map((t) => t.trim()).filter(Boolean);
}

/** Ask before something that cannot be undone; resolves true when confirmed. Esc and Cancel say no. */
export function confirmAction(title, text, action) {
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = action;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    $("confirm-cancel").focus(); // the safe choice is the default one
  });
}

export function wireConfirm() {
  $("confirm-ok").addEventListener("click", () => $("confirm").close("ok"));
  $("confirm-cancel").addEventListener("click", () => $("confirm").close("cancel"));
}
