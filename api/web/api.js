// Talking to the Lore API: the key from sessionStorage, JSON errors, and Server-Sent Events over fetch().

export const KEY = "lore.apiKey";

export class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

function headers(extra) {
  const h = Object.assign({}, extra);
  const key = sessionStorage.getItem(KEY);
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

async function toError(res) {
  let code = "http_" + res.status;
  let message = "The Lore service answered " + res.status + " " + res.statusText + ".";
  try {
    const body = await res.json();
    if (body && body.error) { code = body.error.code || code; message = body.error.message || message; }
  } catch (_) { /* not JSON (a proxy's error page): keep the status line */ }
  return new ApiError(res.status, code, message);
}

export async function call(path, init) {
  let res;
  try {
    res = await fetch(path, Object.assign({}, init, { headers: headers((init || {}).headers) }));
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "network", "Could not reach the Lore service; check your connection and try again.");
  }
  if (!res.ok) throw await toError(res);
  return res;
}

export async function getJSON(path) { return (await call(path)).json(); }

export async function postJSON(path, body) {
  const res = await call(path, { method: "POST", headers: { "Content-Type": "application/json" },
                                 body: JSON.stringify(body) });
  return res.json();
}

// EventSource cannot POST: parse the text/event-stream body ourselves, yielding {event, data}.
export async function* events(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "", kind = "", data = [];
  function* line(text) {
    if (text === "") {
      if (data.length) yield { event: kind || "message", data: data.join("\n") };
      kind = ""; data = [];
      return;
    }
    if (text.startsWith(":")) return;
    const i = text.indexOf(":");
    const field = i < 0 ? text : text.slice(0, i);
    let v = i < 0 ? "" : text.slice(i + 1);
    if (v.startsWith(" ")) v = v.slice(1);
    if (field === "event") kind = v;
    else if (field === "data") data.push(v);
  }
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    const cut = buf.endsWith("\r") ? buf.length - 1 : buf.length; // a CR may be half of a CRLF
    const lines = buf.slice(0, cut).split(/\r\n|\r|\n/);
    buf = lines.pop() + buf.slice(cut);
    for (const text of lines) yield* line(text);
  }
  if (buf) yield* line(buf.replace(/\r$/, "")); // a stream cut before its blank line still ends its event
  yield* line("");
}

// fetch() cannot report upload progress: a multipart upload goes through XMLHttpRequest, with the same key
// and the same errors as call(). onProgress gets the fraction sent (0..1); the promise the JSON body.
export function uploadFile(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    const h = headers();
    for (const [k, v] of Object.entries(h)) xhr.setRequestHeader(k, v);
    xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); });
    xhr.addEventListener("load", () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON: a proxy's page */ }
      if (xhr.status >= 200 && xhr.status < 300 && body) { resolve(body); return; }
      const e = body && body.error;
      reject(new ApiError(xhr.status, (e && e.code) || "http_" + xhr.status,
                          (e && e.message) || "The Lore service answered " + xhr.status + " " + xhr.statusText + "."));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "network", "Could not reach the Lore service; "
                                                            + "check your connection and try again.")));
    xhr.send(form);
  });
}
