/* Charts as inline SVG: a resource's key signals, its availability strip, and the time to
 * recover per fix. Drawn from the history the page carries, extended by live samples. */

import { clock, dateTime } from "./format.js";
import { $, $$, UNITS, fmt, page, serverNow } from "./page.js";

const SVG = "http://www.w3.org/2000/svg";

/* Samples per resource id, oldest first: [[at, signals], ...]. */
export const chartHistory = page.history || {};
const chartWindow = page.window || 900;

/* up, degraded, down or unknown: as the server's views.up_state. */
function upState(kind, s) {
  if (kind === "Container") {
    if (s["container.running"] == null) return "unknown";
    if (!s["container.running"]) return "down";
    return s["container.healthy"] === false ? "degraded" : "up";
  }
  const flag = s[kind === "PostgresDatabase" ? "postgres.up" : "redis.up"];
  if (flag == null) return "unknown";
  return flag ? "up" : "down";
}

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function sized(svg) {
  const box = svg.getBoundingClientRect();
  const w = Math.max(Math.round(box.width) || 300, 40);
  const h = Math.max(Math.round(box.height) || 80, 4);
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.removeAttribute("preserveAspectRatio");
  svg.replaceChildren();
  return [w, h];
}

function niceMax(max, unit) {
  if (unit === "ratio") return Math.max(1, max);
  if (unit === "%") return Math.max(5, max * 1.2);
  if (max <= 0) return 1;
  const mag = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * mag >= max * 1.1) return step * mag;
  return max * 1.2;
}

/* The time a resource's charts span: the page's window, or less while the history is
   younger than that (a controller that just started), so a minute of data is not a
   sliver at the right edge. Never under twenty seconds. */
function spanOf(id) {
  const series = chartHistory[id] || [];
  const age = series.length ? serverNow() - series[0][0] : 0;
  return Math.min(chartWindow, Math.max(20, age));
}

const agoLabel = (s) => (s >= 120 ? `${Math.round(s / 60)} min ago` : `${Math.round(s)} s ago`);

function drawChart(fig) {
  const id = fig.dataset.resource;
  const signal = fig.dataset.signal;
  const unit = fig.dataset.unit || UNITS[signal] || "";
  const svg = $("svg", fig);
  const [w, h] = sized(svg);
  const now = serverNow();
  const span = spanOf(id);
  const start = now - span;
  const pts = (chartHistory[id] || [])
    .filter(([at, s]) => at >= start && typeof s[signal] === "number" && Number.isFinite(s[signal]))
    .map(([at, s]) => [at, s[signal]]);
  const pad = { top: 14, bottom: 15, left: 2, right: 2 };
  const max = niceMax(Math.max(0, ...pts.map((p) => p[1])), unit);
  const x = (at) => pad.left + ((at - start) / span) * (w - pad.left - pad.right);
  const y = (v) => pad.top + (1 - v / max) * (h - pad.top - pad.bottom);
  svg.append(svgEl("line", { class: "grid", x1: 0, x2: w, y1: y(max), y2: y(max) }));
  svg.append(svgEl("line", { class: "grid", x1: 0, x2: w, y1: y(max / 2), y2: y(max / 2) }));
  svg.append(svgEl("line", { class: "axis", x1: 0, x2: w, y1: y(0), y2: y(0) }));
  svg.append(svgEl("text", { class: "tick", x: w - 3, y: y(max) - 3, "text-anchor": "end" }, fmt.formatValue(max, unit)));
  svg.append(svgEl("text", { class: "tick", x: 3, y: h - 2 }, agoLabel(span)));
  svg.append(svgEl("text", { class: "tick", x: w - 3, y: h - 2, "text-anchor": "end" }, "now"));
  const title = fig.dataset.title || signal;
  if (pts.length === 0) {
    svg.setAttribute("aria-label", `${title}: no samples since ${agoLabel(span)}`);
    return;
  }
  const line = pts.map(([at, v], i) => `${i ? "L" : "M"}${x(at).toFixed(1)},${y(v).toFixed(1)}`).join("");
  const area = `${line}L${x(pts[pts.length - 1][0]).toFixed(1)},${y(0)}L${x(pts[0][0]).toFixed(1)},${y(0)}Z`;
  svg.append(svgEl("path", { class: "area", d: area }));
  svg.append(svgEl("path", { class: "line", d: line }));
  const [lastAt, lastV] = pts[pts.length - 1];
  svg.append(svgEl("circle", { class: "dot", cx: x(lastAt), cy: y(lastV), r: 2.5 }));
  const values = pts.map((p) => p[1]);
  svg.setAttribute(
    "aria-label",
    `${title}, since ${agoLabel(span)}: low ${fmt.formatValue(Math.min(...values), unit)}, ` +
      `high ${fmt.formatValue(Math.max(...values), unit)}, now ${fmt.formatValue(lastV, unit)}`,
  );
}

function drawStrip(svg) {
  const id = svg.dataset.resource;
  const kind = svg.closest("[data-kind]")?.dataset.kind || "";
  const [w, h] = sized(svg);
  const now = serverNow();
  const span = spanOf(id);
  const start = now - span;
  const samples = (chartHistory[id] || []).filter(([at]) => at >= start - 60);
  svg.append(svgEl("rect", { class: "st-none", x: 0, y: 0, width: w, height: h, rx: 2 }));
  const x = (at) => Math.max(0, Math.min(w, ((at - start) / span) * w));
  let down = 0;
  samples.forEach(([at, s], i) => {
    const next = i + 1 < samples.length ? samples[i + 1][0] : now;
    const state = upState(kind, s);
    if (state === "down") down += 1;
    const x0 = x(at), x1 = x(next);
    if (x1 - x0 > 0) svg.append(svgEl("rect", { class: `st-${state}`, x: x0, y: 0, width: Math.max(x1 - x0, 1), height: h }));
  });
  svg.setAttribute("aria-label", `${svg.getAttribute("aria-label").split(":")[0]}: ${down ? `down in ${down} of ${samples.length} samples` : samples.length ? "up throughout" : "no samples"}`);
}

/* The time-to-recover chart of the overview and the fixes page (page.ttr). */
export function drawTtr(fig) {
  const svg = $("svg", fig);
  const [w, h] = sized(svg);
  const pts = (page.ttr || []).filter((p) => p.status !== "running");
  const pad = { top: 14, bottom: 18, left: 48, right: 8 };
  if (!pts.length) {
    svg.append(svgEl("text", { class: "tick", x: w / 2, y: h / 2, "text-anchor": "middle" }, "No fix yet"));
    svg.setAttribute("aria-label", "Time to recover per fix: no fix yet");
    return;
  }
  // The axis spans the fixes' own times, padded on both sides so no dot sits on an edge;
  // a lone fix (or several in the same second) gets half a minute around it.
  const first = Math.min(...pts.map((p) => p.at));
  const last = Math.max(...pts.map((p) => p.at));
  const range = last - first;
  const padding = range >= 1 ? range * 0.08 : 15;
  const t0 = first - padding;
  const t1 = last + padding;
  const ttrs = pts.map((p) => p.time_to_recover).filter((v) => v != null);
  const max = niceMax(Math.max(1, ...ttrs), "s");
  const x = (at) => pad.left + ((at - t0) / (t1 - t0)) * (w - pad.left - pad.right);
  const y = (v) => pad.top + (1 - v / max) * (h - pad.top - pad.bottom);
  for (const frac of [0, 0.5, 1]) {
    svg.append(svgEl("line", { class: frac ? "grid" : "axis", x1: pad.left, x2: w - pad.right, y1: y(max * frac), y2: y(max * frac) }));
    svg.append(svgEl("text", { class: "tick", x: pad.left - 4, y: y(max * frac) + 4, "text-anchor": "end" }, fmt.seconds(max * frac)));
  }
  const stamp = (t) => (t1 - t0 > 86400 ? dateTime(t) : clock(t));
  svg.append(svgEl("text", { class: "tick", x: pad.left, y: h - 3 }, stamp(t0)));
  svg.append(svgEl("text", { class: "tick", x: (pad.left + w - pad.right) / 2, y: h - 3, "text-anchor": "middle" }, stamp((t0 + t1) / 2)));
  svg.append(svgEl("text", { class: "tick", x: w - pad.right, y: h - 3, "text-anchor": "end" }, stamp(t1)));
  for (const p of pts) {
    const ok = p.time_to_recover != null;
    const dot = svgEl("circle", { class: ok ? "ttr-ok" : "ttr-bad", cx: x(p.at), cy: ok ? y(p.time_to_recover) : pad.top - 4, r: 4 });
    dot.append(svgEl("title", {}, `Fix #${p.id} ${p.key}: ${ok ? fmt.seconds(p.time_to_recover) : p.outcome || p.status}`));
    svg.append(dot);
  }
  const failed = pts.length - ttrs.length;
  svg.setAttribute(
    "aria-label",
    `Time to recover of ${pts.length} fixes: median ${fmt.seconds(ttrs.sort((a, b) => a - b)[Math.floor(ttrs.length / 2)] ?? null)}` +
      `${failed ? `, ${failed} not recovered` : ""}`,
  );
}

/* A live sample of resource `id`: appended to its history, the oldest beyond the window
   dropped, its charts drawn again. */
export function addSample(id, at, signals) {
  if (!at || chartHistory[id] === undefined) return;
  const series = chartHistory[id];
  if (!series.length || series[series.length - 1][0] < at) {
    series.push([at, signals]);
    const cutoff = serverNow() - chartWindow - 60;
    while (series.length && series[0][0] < cutoff) series.shift();
  }
  drawResource(id);
}

/* Starts the (empty) history of a resource that arrived live, so its samples are kept. */
export function track(id) {
  if (chartHistory[id] === undefined) chartHistory[id] = [];
}

export function drawResource(id) {
  for (const fig of $$(`figure[data-chart][data-resource="${CSS.escape(id)}"]`)) drawChart(fig);
  for (const svg of $$(`svg[data-strip][data-resource="${CSS.escape(id)}"]`)) drawStrip(svg);
}

export function drawAll() {
  for (const fig of $$("figure[data-chart]")) drawChart(fig);
  for (const svg of $$("svg[data-strip]")) drawStrip(svg);
  for (const fig of $$("figure[data-ttr-chart]")) drawTtr(fig);
}
