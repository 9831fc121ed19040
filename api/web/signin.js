// The sign-in form both pages share: a key is checked with /v1/me and kept for this browser tab
// (the same sessionStorage entry on / and /admin, so one sign-in serves both).

import { KEY, getJSON } from "./api.js";

const $ = (id) => document.getElementById(id);

export function signInHandler(enter) {
  return async function signIn(event) {
    event.preventDefault();
    const input = $("api-key");
    const key = input.value.trim();
    if (!key) {
      $("signin-error").textContent = "Enter your API key.";
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    const button = $("signin-form").querySelector("button[type=submit]");
    button.disabled = true;
    sessionStorage.setItem(KEY, key);
    try {
      const me = await getJSON("/v1/me");
      input.value = "";
      enter(me);
    } catch (err) {
      sessionStorage.removeItem(KEY);
      $("signin-error").textContent = err.status === 401 ? "That key was not accepted: " + err.message : err.message;
      input.setAttribute("aria-invalid", "true");
      input.select();
    } finally {
      button.disabled = false;
    }
  };
}

// On load: enter with the stored key (or none, in demo mode), else show the sign-in form with why.
export async function resume(enter, signInView) {
  try {
    enter(await getJSON("/v1/me")); // succeeds without a key in demo mode (LORE_SERVER__AUTH=none)
  } catch (err) {
    const had = sessionStorage.getItem(KEY);
    sessionStorage.removeItem(KEY);
    if (err.status === 401) signInView(had ? "Your API key no longer works: " + err.message : "");
    else signInView(err.message);
  }
}
