// Small SVG charts drawn with DOM calls into an <svg> the page provides (its namespace comes from the HTML
// parser): no library, no markup strings. Each chart states its numbers in a <title> and an aria-label too.

const LABEL = 250, VALUE = 170, ROW = 30, BAR = 18, AXIS = 22;

function add(parent, tag, attrs, text) {
  const node = document.createElementNS(parent.namespaceURI, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  parent.append(node);
  return node;
}

// shorten a label to `max` pixels (measured once it is in the page; by characters if it is not laid out)
function fit(node, full, max) {
  const width = node.getComputedTextLength();
  if (!width) { if (full.length > 36) node.textContent = full.slice(0, 35).trimEnd() + "…"; return; }
  let n = Math.min(full.length, Math.floor((full.length * max) / width) + 1);
  while (n > 3 && node.getComputedTextLength() > max) node.textContent = full.slice(0, --n).trimEnd() + "…";
}

/** Axis ticks for values up to `max`: a step of 1, 2 or 5 times a power of ten (at least 1), about 4 of them. */
export function niceScale(max) {
  if (!(max > 0)) return { top: 1, step: 1 };
  const raw = max / 4, power = 10 ** Math.floor(Math.log10(raw));
  const step = Math.max(1, [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw));
  return { top: Math.ceil(max / step) * step, step };
}

const drawn = new WeakMap(); // svg -> [rows, options, width]: what to redraw when its box changes width
const resized = new ResizeObserver((entries) => {
  for (const e of entries) {
    const svg = e.target.querySelector("svg.hbar");
    const last = svg && drawn.get(svg);
    if (last && e.contentRect.width > 0 && widthFor(e.target) !== last[2]) hbars(svg, last[0], last[1]);
  }
});

// as wide as its box (up to 960), so one unit is one pixel and the text keeps the page's size
function widthFor(box) { return Math.round(Math.min(960, Math.max(280, box.clientWidth || 720))); }

/**
 * Horizontal bars, one per row: `rows` are {label, value, text, title, cls}; `text` is printed after
 * the bar, `title` read by screen readers and shown on hover. Labels sit left of the bars, or above
 * them when the box is narrow (a phone). Redrawn when its box changes width. Returns the svg.
 */
export function hbars(svg, rows, options) {
  const { title, unit } = options;
  const width = widthFor(svg.parentNode);
  const wide = width >= 560;
  const left = wide ? LABEL : 0, row = wide ? ROW : ROW + 16, top0 = wide ? (ROW - BAR) / 2 : 20;
  const plot = rows.length * row;
  const height = plot + AXIS + 6;
  const { top, step } = niceScale(Math.max(0, ...rows.map((r) => r.value)));
  const span = width - left - (wide ? VALUE : 150);
  const x = (v) => left + (Math.max(0, v) / top) * span;
  drawn.set(svg, [rows, options, width]);
  resized.observe(svg.parentNode);
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", title + ": " + rows.map((r) => r.title).join("; "));
  add(svg, "title", {}, title);

  const grid = add(svg, "g", { class: "grid", "aria-hidden": "true" });
  for (let v = 0; v <= top; v += step) {
    if (wide) add(grid, "line", { x1: x(v), x2: x(v), y1: 0, y2: plot }); // stacked, they would cross the labels
    const last = v + step > top;
    add(grid, "text", { x: x(v), y: plot + 16, "text-anchor": last && unit ? "start" : v ? "middle" : "start",
                        dx: last && unit ? -6 : 0 }, last && unit ? v + " " + unit : String(v));
  }

  rows.forEach((r, i) => {
    const y = i * row + top0;
    const g = add(svg, "g", { class: "bar-row" + (r.cls ? " " + r.cls : "") });
    add(g, "title", {}, r.title);
    const label = wide
      ? add(g, "text", { class: "bar-label", x: LABEL - 10, y: y + BAR / 2, "text-anchor": "end",
                         "dominant-baseline": "central" }, r.label)
      : add(g, "text", { class: "bar-label", x: 0, y: y - 6 }, r.label);
    fit(label, r.label, wide ? LABEL - 16 : width - 4);
    add(g, "rect", { class: "bar", x: left, y, width: Math.max(2, x(r.value) - left), height: BAR, rx: 3 });
    add(g, "text", { class: "bar-value", x: x(r.value) + 8, y: y + BAR / 2, "dominant-baseline": "central" },
        r.text);
  });
  return svg;
}
/** A sparkline of `points` ({period, count}) over the periods given, labelled with every number. */
export function sparkline(svg, points, what) {
  const w = 132, h = 32, pad = 4;
  const max = Math.max(1, ...points.map((p) => p.count));
  const dx = points.length > 1 ? (w - 2 * pad) / (points.length - 1) : 0;
  const xy = points.map((p, i) => [pad + (points.length > 1 ? i * dx : (w - 2 * pad) / 2),
                                   h - pad - (p.count / max) * (h - 2 * pad)]);
  const label = what + ": " + points.map((p) => p.period + " " + p.count).join(", ");
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  add(svg, "title", {}, label);
  add(svg, "line", { class: "spark-base", x1: pad, x2: w - pad, y1: h - pad, y2: h - pad });
  if (xy.length > 1) {
    const line = xy.map(([a, b]) => a.toFixed(1) + "," + b.toFixed(1)).join(" ");
    add(svg, "polygon", { class: "spark-area",
                          points: `${xy[0][0].toFixed(1)},${h - pad} ${line} ${xy.at(-1)[0].toFixed(1)},${h - pad}` });
    add(svg, "polyline", { class: "spark-line", points: line });
  }
  xy.forEach(([a, b], i) => {
    if (points[i].count > 0 || i === xy.length - 1) add(svg, "circle", { class: "spark-dot", cx: a, cy: b, r: 2.5 });
  });
  return svg;
}
