/* driftmend dashboard: live updates, operator actions, charts, theme.
 *
 * Safety rule of this file: values from the server (log lines, LLM text, messages) are only
 * ever written with textContent or as attribute values built from ids; no markup is ever
 * parsed from data (no innerHTML). Rows for live updates are cloned from <template>
 * elements the server rendered, then filled with text.
 */
"use strict";

(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const dataEl = $("#page-data");
  const page = dataEl ? JSON.parse(dataEl.textContent) : {};
  const UNITS = page.units || {};
  const SVG = "http://www.w3.org/2000/svg";
  // The server's clock may differ from this machine's: charts slide on the server's time.
  const skew = (page.now || Date.now() / 1000) - Date.now() / 1000;
  const serverNow = () => Date.now() / 1000 + skew;
  const LEVELS = { DEBUG: 10, INFO: 20, WARNING: 30, ERROR: 40, CRITICAL: 50 };
  const HEALTH = {
    healthy: "Healthy",
    drifting: "Drifting",
    healing: "Healing",
    "needs-operator": "Needs operator",
    unknown: "Unknown",
  };

  // ---------------------------------------------------------------- formatting
  // The same rules as driftmend/dashboard/views.py format_value, for values that arrive live.

  function formatValue(v, unit) {
    if (v === null || v === undefined) return "–";
    if (typeof v === "boolean") return v ? "yes" : "no";
    if (typeof v !== "number") return String(v);
    if (!Number.isFinite(v)) return "–";
    if (unit === "bytes") {
      let size = v;
      for (const suffix of ["B", "KiB", "MiB", "GiB"]) {
        if (Math.abs(size) < 1024 || suffix === "GiB") {
          return suffix === "B" ? `${size.toFixed(0)} B` : `${size.toFixed(1)} ${suffix}`;
        }
        size /= 1024;
      }
    }
    if (unit === "ratio") return `${(v * 100).toFixed(1)} %`;
    if (unit === "%") return `${v.toFixed(1)} %`;
    if (unit === "s") return v < 10 ? `${v.toFixed(2)} s` : `${v.toFixed(0)} s`;
    if (unit === "/min") return `${Number(v.toPrecision(6))} /min`;
    if (!Number.isInteger(v)) return String(Number(v.toPrecision(3)));
    return String(v);
  }

  const seconds = (v) =>
    v === null || v === undefined ? "–" : v < 60 ? `${v.toFixed(2)} s` : `${(v / 60).toFixed(1)} min`;
  const percent = (v) => (v === null || v === undefined ? "–" : `${Math.round(v * 100)} %`);
  const clock = (ts) =>
    new Date(ts * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  const dateTime = (ts) =>
    new Date(ts * 1000).toLocaleString([], {
      year: "numeric", month: "short", day: "numeric",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
    });

  function format(value, how) {
    switch (how) {
      case "time": return value == null ? "" : clock(value);
      case "datetime": return value == null ? "" : dateTime(value);
      case "health": return HEALTH[value] || String(value ?? "");
      case "seconds": return seconds(value);
      case "percent": return percent(value);
      case "tools": return (value || []).join(" → ");
      case "list": return (value || []).join("; ");
      case "steps":
        return (value || [])
          .map((s) => (s.params && Object.keys(s.params).length ? `${s.tool} ${JSON.stringify(s.params)}` : s.tool))
          .join(" → ");
      case "changes":
        return (value || [])
          .map((c) => `${c.signal}: ${formatValue(c.before, UNITS[c.signal])} → ${formatValue(c.after, UNITS[c.signal])}`)
          .join("; ");
      default: return value == null ? "" : String(value);
    }
  }

  function localizeTimes(root = document) {
    for (const t of $$("time[data-ts]", root)) {
      const ts = parseFloat(t.dataset.ts);
      if (!Number.isNaN(ts)) t.textContent = t.dataset.date ? dateTime(ts) : clock(ts);
    }
  }

  // ---------------------------------------------------------------- filling templates

  function expand(pattern, obj, encode) {
    return pattern.replace(/\{(\w+)(\|lower)?\}/g, (_, name, lower) => {
      let v = obj[name];
      v = v === null || v === undefined ? "" : String(v);
      if (lower) v = v.toLowerCase();
      return encode ? encodeURIComponent(v) : v;
    });
  }

  /* Writes obj's values into root: [data-slot] get text, data-tpl-X attributes become
     attribute X, [data-class] the class, [data-show] toggles hidden. Nested records
     (another row inside a card) are left to their own updates. */
  function fill(root, obj) {
    const els = [root, ...$$("*", root)];
    for (const el of els) {
      const owner = el.closest("[data-record]");
      if (owner && owner !== root && root.contains(owner)) continue;
      const slot = el.dataset.slot;
      if (slot && Object.prototype.hasOwnProperty.call(obj, slot)) {
        el.textContent = format(obj[slot], el.dataset.format);
        if (el.tagName === "TIME") {
          el.dataset.ts = obj[slot] ?? "";
          if (obj[slot] != null) el.setAttribute("datetime", new Date(obj[slot] * 1000).toISOString());
        }
      }
      for (const attr of Array.from(el.attributes)) {
        if (!attr.name.startsWith("data-tpl-")) continue;
        const target = attr.name.slice("data-tpl-".length);
        el.setAttribute(target, expand(attr.value, obj, target === "href" || target === "data-url"));
      }
      if (el.dataset.class) el.className = expand(el.dataset.class, obj, false);
      if (el.dataset.show) el.hidden = !obj[el.dataset.show];
    }
  }

  function fromTemplate(id, obj) {
    const tpl = document.getElementById(id);
    if (!tpl) return null;
    const el = tpl.content.firstElementChild.cloneNode(true);
    fill(el, obj);
    return el;
  }

  function setEmpty(container, empty) {
    const wrap = container.closest(".table-wrap") || container.parentElement;
    const note = wrap && $(":scope > [data-empty]", wrap);
    if (note) note.hidden = !empty;
  }

  function flash(el) {
    el.classList.remove("flash");
    void el.offsetWidth; // restart the animation
    el.classList.add("flash");
  }

  // ---------------------------------------------------------------- announcements and toasts

  const announcer = document.createElement("div");
  announcer.className = "sr-only";
  announcer.setAttribute("aria-live", "polite");
  document.body.appendChild(announcer);
  const announce = (text) => {
    announcer.textContent = text;
  };

  function toast(text, kind = "info", link = null) {
    const box = $("#toasts");
    if (!box) return;
    const el = document.createElement("div");
    el.className = `toast ${kind}`;
    el.setAttribute("role", kind === "error" ? "alert" : "status");
    const msg = document.createElement("span");
    msg.textContent = text;
    if (link) {
      const a = document.createElement("a");
      a.href = link.href; // built from a number by the caller, never from free text
      a.textContent = link.text;
      msg.append(" ", a);
    }
    const close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    close.addEventListener("click", () => el.remove());
    el.append(msg, close);
    box.appendChild(el);
    // An error, or a toast that leads somewhere, stays until dismissed: a reader (or a slow
    // hand) must not lose it. Plain news fades; at most five toasts are kept.
    if (kind !== "error" && !link) setTimeout(() => el.remove(), 8000);
    while (box.children.length > 5) box.firstElementChild.remove();
  }

  // ---------------------------------------------------------------- token and actor

  const TOKEN = "driftmend.token";
  const ACTOR = "driftmend.actor";
  const storage = {
    get token() { try { return sessionStorage.getItem(TOKEN) || ""; } catch (_) { return ""; } },
    set token(v) { try { v ? sessionStorage.setItem(TOKEN, v) : sessionStorage.removeItem(TOKEN); } catch (_) { /* off */ } },
    get actor() { try { return localStorage.getItem(ACTOR) || ""; } catch (_) { return ""; } },
    set actor(v) { try { localStorage.setItem(ACTOR, v); } catch (_) { /* off */ } },
  };

  // `make demo` can print http://127.0.0.1:8080/#token=...: the fragment never reaches a
  // server or a log; keep it for this tab and take it out of the address bar.
  if (location.hash.startsWith("#token=")) {
    storage.token = decodeURIComponent(location.hash.slice("#token=".length));
    history.replaceState(null, "", location.pathname + location.search);
  }

  function showTokenState() {
    const el = $("#token-state");
    if (el) el.textContent = storage.token ? `Operator: ${storage.actor || "signed in"}` : "Sign in to act";
    const btn = $("#token-button");
    if (btn) btn.dataset.signed = storage.token ? "1" : "";
  }

  const dialog = $("#token-dialog");
  // Where the keyboard was before the dialog opened: it goes back there when it closes
  // (Save, Cancel, Forget or Escape), not to the top of the page.
  let returnFocus = null;
  function openTokenDialog(from = document.activeElement) {
    if (!dialog || dialog.open) return;
    returnFocus = from instanceof HTMLElement && from !== document.body ? from : null;
    $("#token-input").value = storage.token;
    $("#actor-input").value = storage.actor;
    dialog.showModal();
    $("#token-input").focus();
  }
  dialog?.addEventListener("close", () => {
    const target = returnFocus && returnFocus.isConnected ? returnFocus : $("#token-button");
    returnFocus = null;
    target?.focus();
  });
  $("#token-button")?.addEventListener("click", (e) => openTokenDialog(e.currentTarget));
  $("#token-cancel")?.addEventListener("click", () => dialog.close());
  $("#token-forget")?.addEventListener("click", () => {
    storage.token = "";
    dialog.close();
    showTokenState();
    toast("Token forgotten in this tab.");
  });
  $("#token-form")?.addEventListener("submit", () => {
    storage.token = $("#token-input").value.trim();
    storage.actor = $("#actor-input").value.trim();
    showTokenState();
  });
  showTokenState();

  // ---------------------------------------------------------------- theme

  const themeButton = $("#theme-button");
  const systemDark = window.matchMedia("(prefers-color-scheme: dark)");
  const currentTheme = () => document.documentElement.dataset.theme || (systemDark.matches ? "dark" : "light");
  function showTheme() {
    if (!themeButton) return;
    const next = currentTheme() === "dark" ? "light" : "dark";
    themeButton.setAttribute("aria-label", `Switch to ${next} theme`);
    themeButton.dataset.theme = currentTheme();
  }
  themeButton?.addEventListener("click", () => {
    const next = currentTheme() === "dark" ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    try { localStorage.setItem("driftmend.theme", next); } catch (_) { /* off */ }
    showTheme();
    drawAll();
  });
  systemDark.addEventListener("change", () => { showTheme(); drawAll(); });
  showTheme();

  // ---------------------------------------------------------------- actions

  const myJobs = new Set();
  // A quick job can end (on the live stream) before its own 202 answer is read here: keep
  // the last ended jobs, so the answer still reaches the operator who asked.
  const endedJobs = new Map();

  async function runAction(btn) {
    const action = btn.dataset.action;
    const label = btn.dataset.label || action;
    if ((action === "approve" || action === "reject") && !window.confirm(`${label}?`)) return;
    const body = { actor: storage.actor || null };
    if (btn.dataset.target) body.resource = btn.dataset.target;
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    if (storage.token) headers.Authorization = `Bearer ${storage.token}`;
    // Busy, not disabled: a disabled button loses the keyboard's focus.
    btn.setAttribute("aria-busy", "true");
    try {
      const res = await fetch(btn.dataset.url, {
        method: "POST", headers, body: JSON.stringify(body), credentials: "same-origin",
      });
      let data = {};
      try { data = await res.json(); } catch (_) { /* not JSON */ }
      if (res.status === 202) {
        myJobs.add(data.id);
        toast(`${label}: started`, "info");
        const early = endedJobs.get(data.id);
        if (early) onJob(early);
      } else if (res.ok) {
        toast(`${label}: ${data.status || (data.outcome ?? "done")}`, "ok");
        if (action === "pause" || action === "resume") showPaused(data.id, data.paused);
        if (data.outcome) toast(`${label}: ${data.outcome}${data.message ? ` (${data.message})` : ""}`, "ok");
      } else {
        const detail = typeof data.detail === "string" ? data.detail : `the server answered ${res.status}`;
        toast(`${label} refused: ${detail}`, "error");
        if (res.status === 401) openTokenDialog(btn);
      }
    } catch (err) {
      toast(`${label} failed: ${err}`, "error");
    } finally {
      btn.removeAttribute("aria-busy");
    }
  }

  document.addEventListener("click", (event) => {
    const btn = event.target.closest("button[data-action]");
    if (!btn || btn.disabled || btn.getAttribute("aria-busy") === "true") return;
    event.preventDefault();
    runAction(btn);
  });

  function showPaused(id, paused) {
    for (const row of $$(`[data-resource-actions="${CSS.escape(id)}"]`)) {
      const pause = $("[data-action=pause]", row);
      const resume = $("[data-action=resume]", row);
      if (pause) pause.hidden = paused;
      if (resume) resume.hidden = !paused;
    }
  }

  // ---------------------------------------------------------------- charts

  const history = page.history || {};
  const chartWindow = page.window || 900;

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
    const series = history[id] || [];
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
    const pts = (history[id] || [])
      .filter(([at, s]) => at >= start && typeof s[signal] === "number" && Number.isFinite(s[signal]))
      .map(([at, s]) => [at, s[signal]]);
    const pad = { top: 14, bottom: 15, left: 2, right: 2 };
    const max = niceMax(Math.max(0, ...pts.map((p) => p[1])), unit);
    const x = (at) => pad.left + ((at - start) / span) * (w - pad.left - pad.right);
    const y = (v) => pad.top + (1 - v / max) * (h - pad.top - pad.bottom);
    svg.append(svgEl("line", { class: "grid", x1: 0, x2: w, y1: y(max), y2: y(max) }));
    svg.append(svgEl("line", { class: "grid", x1: 0, x2: w, y1: y(max / 2), y2: y(max / 2) }));
    svg.append(svgEl("line", { class: "axis", x1: 0, x2: w, y1: y(0), y2: y(0) }));
    svg.append(svgEl("text", { class: "tick", x: w - 3, y: y(max) - 3, "text-anchor": "end" }, formatValue(max, unit)));
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
      `${title}, since ${agoLabel(span)}: low ${formatValue(Math.min(...values), unit)}, ` +
        `high ${formatValue(Math.max(...values), unit)}, now ${formatValue(lastV, unit)}`,
    );
  }

  function drawStrip(svg) {
    const id = svg.dataset.resource;
    const kind = svg.closest("[data-kind]")?.dataset.kind || "";
    const [w, h] = sized(svg);
    const now = serverNow();
    const span = spanOf(id);
    const start = now - span;
    const samples = (history[id] || []).filter(([at]) => at >= start - 60);
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

  function drawTtr(fig) {
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
      svg.append(svgEl("text", { class: "tick", x: pad.left - 4, y: y(max * frac) + 4, "text-anchor": "end" }, seconds(max * frac)));
    }
    const stamp = (t) => (t1 - t0 > 86400 ? dateTime(t) : clock(t));
    svg.append(svgEl("text", { class: "tick", x: pad.left, y: h - 3 }, stamp(t0)));
    svg.append(svgEl("text", { class: "tick", x: (pad.left + w - pad.right) / 2, y: h - 3, "text-anchor": "middle" }, stamp((t0 + t1) / 2)));
    svg.append(svgEl("text", { class: "tick", x: w - pad.right, y: h - 3, "text-anchor": "end" }, stamp(t1)));
    for (const p of pts) {
      const ok = p.time_to_recover != null;
      const dot = svgEl("circle", { class: ok ? "ttr-ok" : "ttr-bad", cx: x(p.at), cy: ok ? y(p.time_to_recover) : pad.top - 4, r: 4 });
      dot.append(svgEl("title", {}, `Fix #${p.id} ${p.key}: ${ok ? seconds(p.time_to_recover) : p.outcome || p.status}`));
      svg.append(dot);
    }
    const failed = pts.length - ttrs.length;
    svg.setAttribute(
      "aria-label",
      `Time to recover of ${pts.length} fixes: median ${seconds(ttrs.sort((a, b) => a - b)[Math.floor(ttrs.length / 2)] ?? null)}` +
        `${failed ? `, ${failed} not recovered` : ""}`,
    );
  }

  function drawResource(id) {
    for (const fig of $$(`figure[data-chart][data-resource="${CSS.escape(id)}"]`)) drawChart(fig);
    for (const svg of $$(`svg[data-strip][data-resource="${CSS.escape(id)}"]`)) drawStrip(svg);
  }

  function drawAll() {
    for (const fig of $$("figure[data-chart]")) drawChart(fig);
    for (const svg of $$("svg[data-strip]")) drawStrip(svg);
    for (const fig of $$("figure[data-ttr-chart]")) drawTtr(fig);
  }

  // ---------------------------------------------------------------- live: resources

  const lastHealth = {};
  for (const el of $$("[data-record][data-resource][data-health]")) lastHealth[el.dataset.resource] = el.dataset.health;

  function recount() {
    const tiles = $$(".tiles > [data-resource]");
    if (!tiles.length && !$(".tiles")) return;
    const counts = { total: tiles.length };
    for (const t of tiles) counts[t.dataset.health] = (counts[t.dataset.health] || 0) + 1;
    for (const el of $$("[data-count]")) {
      const name = el.dataset.count;
      if (name !== "plans") el.textContent = String(counts[name] || 0);
    }
  }

  function onResource(r) {
    const lf = r.last_fix;
    const obj = {
      ...r,
      name: r.key.split("/").pop(),
      last_fix_id: lf ? lf.id : "",
      last_fix_label: lf ? `#${lf.id} ${lf.state}${lf.time_to_recover != null ? ` in ${seconds(lf.time_to_recover)}` : ""}` : "",
      no_fix: !lf,
    };
    let els = $$(`[data-record][data-resource="${CSS.escape(r.id)}"]`);
    const tiles = $("[data-live=tiles]");
    if (!els.length && tiles) {
      const tile = fromTemplate("tpl-tile", obj);
      if (tile) {
        addCharts(tile, r);
        tiles.appendChild(tile);
        setEmpty(tiles, false);
        els = [tile];
      }
    }
    for (const el of els) {
      fill(el, obj);
      el.dataset.health = r.health;
      const link = $("[data-slot=last_fix_label]", el);
      if (link) link.hidden = !lf;
      for (const v of $$("[data-signal-value]", el)) {
        const name = v.dataset.signalValue;
        if (name in r.signals) v.textContent = formatValue(r.signals[name], v.dataset.unit || UNITS[name]);
      }
    }
    showPaused(r.id, r.paused);
    if (lastHealth[r.id] !== undefined && lastHealth[r.id] !== r.health) {
      announce(`${r.key} is now ${HEALTH[r.health] || r.health}`);
      for (const el of els) flash(el);
    }
    lastHealth[r.id] = r.health;
    if (r.observed_at && history[r.id] !== undefined) {
      const series = history[r.id];
      if (!series.length || series[series.length - 1][0] < r.observed_at) {
        series.push([r.observed_at, r.signals]);
        const cutoff = serverNow() - chartWindow - 60;
        while (series.length && series[0][0] < cutoff) series.shift();
      }
      drawResource(r.id);
    }
    recount();
  }

  /* A tile that arrives live gets the charts and availability strip of its kind, as the
     server renders them (cloned from <template>s, attributes set one by one). */
  function addCharts(tile, r) {
    const box = $("[data-tile-charts]", tile);
    const specs = (page.kind_charts || {})[r.kind] || [];
    for (const c of specs) {
      const fig = fromTemplate("tpl-chart", {});
      if (!fig) continue;
      fig.dataset.resource = r.id;
      fig.dataset.signal = c.signal;
      fig.dataset.unit = c.unit;
      fig.dataset.title = c.title;
      $(".chart-title", fig).textContent = c.title;
      const value = $("[data-signal-value]", fig);
      value.dataset.signalValue = c.signal;
      value.dataset.unit = c.unit;
      value.textContent = formatValue(r.signals[c.signal], c.unit);
      $("svg", fig).setAttribute("aria-label", `${c.title}: no samples yet`);
      box?.append(fig);
    }
    const strip = fromTemplate("tpl-strip", {});
    if (strip && box) {
      strip.dataset.resource = r.id;
      strip.setAttribute("aria-label", `Availability of ${r.key} over the last 15 minutes`);
      box.after(strip);
    }
    if (history[r.id] === undefined) history[r.id] = [];
  }

  function onResourceRemoved(r) {
    for (const el of $$(`.tiles > [data-resource="${CSS.escape(r.id)}"]`)) el.remove();
    recount();
  }

  // ---------------------------------------------------------------- live: fixes, stats

  function upsertRow(table, idAttr, obj, prepend = true) {
    const body = $("tbody", table);
    let row = $(`tr[${idAttr}="${CSS.escape(String(obj.id))}"]`, body);
    if (row) {
      fill(row, obj);
    } else {
      row = fromTemplate(table.dataset.rowTemplate, obj);
      if (!row) return;
      localizeTimes(row);
      prepend ? body.prepend(row) : body.append(row);
      const keep = parseInt(table.dataset.keep || "50", 10);
      while (body.rows.length > keep) body.rows[prepend ? body.rows.length - 1 : 0].remove();
      setEmpty(table, false);
    }
    flash(row);
  }

  function onFix(f) {
    for (const table of $$("table[data-live=fixes]")) {
      if (table.dataset.resourceFilter && table.dataset.resourceFilter !== f.key) continue;
      upsertRow(table, "data-fix", f);
    }
    if (page.fix_id === f.id) refreshFix();
    if (page.ttr && f.status !== "running") {
      const i = page.ttr.findIndex((p) => p.id === f.id);
      const p = { id: f.id, key: f.key, at: f.detected_at, time_to_recover: f.time_to_recover, outcome: f.outcome, status: f.status };
      if (!f.dry_run) {
        i >= 0 ? (page.ttr[i] = p) : page.ttr.push(p);
        for (const fig of $$("figure[data-ttr-chart]")) drawTtr(fig);
      }
    }
    if (myJobs.size === 0 && f.status === "done") announce(`Fix ${f.id} of ${f.key}: ${f.outcome}`);
  }

  function onStats(both) {
    const s = both[page.stats_scope === "day" ? "day" : "all"];
    if (!s) return;
    for (const el of $$("[data-stat]")) {
      const name = el.dataset.stat;
      if (name in s) el.textContent = format(s[name], el.dataset.format);
    }
  }

  async function refreshFix() {
    const id = page.fix_id;
    let f;
    try {
      const res = await fetch(`/api/fixes/${id}`, { credentials: "same-origin" });
      if (!res.ok) return;
      f = await res.json();
    } catch (_) {
      return;
    }
    const state = f.outcome || f.status;
    const badge = $("[data-fix-state] .badge");
    if (badge) {
      badge.textContent = state;
      badge.className = `badge o-${state}`;
    }
    const message = $("[data-fix-message]");
    if (message) message.textContent = f.message || "";
    const finished = $("[data-fix-finished]");
    if (finished) finished.textContent = f.finished_at ? clock(f.finished_at) : "–";
    const recovered = $("[data-fix-recovered]");
    if (recovered) {
      recovered.textContent = f.recovered_at ? `${clock(f.recovered_at)} (time to recover ${seconds(f.time_to_recover)})` : "–";
    }
    const retry = $("[data-retry]");
    if (retry) retry.hidden = f.status === "running" || f.outcome === "fixed";
    const list = $("[data-fix-steps]");
    if (list) {
      list.replaceChildren(
        ...f.steps.map((s) => {
          const li = document.createElement("li");
          const head = document.createElement("div");
          head.className = "step-head";
          const tool = document.createElement("code");
          tool.textContent = s.tool;
          const on = document.createTextNode(" on ");
          const target = document.createElement("code");
          target.textContent = s.target;
          const b = document.createElement("span");
          b.className = `badge o-${s.status}`;
          b.textContent = s.status;
          const d = document.createElement("span");
          d.className = "muted";
          d.textContent = seconds(s.duration_s);
          head.append(tool, on, target, document.createTextNode(" "), b, document.createTextNode(" "), d);
          li.append(head);
          if (s.error) {
            const e = document.createElement("p");
            e.className = "bad-text";
            e.textContent = s.error;
            li.append(e);
          }
          return li;
        }),
      );
    }
    for (const row of $$("tr[data-after-signal]")) {
      const name = row.dataset.afterSignal;
      const cell = $("[data-after]", row);
      if (cell && f.signals_after) cell.textContent = formatValue(f.signals_after[name], UNITS[name]);
    }
  }

  // ---------------------------------------------------------------- live: plans, LLM, jobs

  function onPlans(plans) {
    for (const list of $$("[data-live=plans]")) {
      const mine = plans.filter(
        (p) =>
          (!list.dataset.resourceFilter || list.dataset.resourceFilter === p.key) &&
          (!list.dataset.planFilter || list.dataset.planFilter === String(p.id)),
      );
      const ids = new Set(mine.map((p) => String(p.id)));
      for (const item of $$(":scope > [data-plan]", list)) {
        if (ids.has(item.dataset.plan)) continue;
        // A decided plan leaves the list; the keyboard's focus must not leave with it.
        const hadFocus = item.contains(document.activeElement);
        item.remove();
        if (hadFocus) {
          const heading = list.closest("section")?.querySelector("h2, h3");
          if (heading) {
            heading.tabIndex = -1;
            heading.focus();
          }
        }
      }
      for (const p of mine) {
        let item = $(`:scope > [data-plan="${CSS.escape(String(p.id))}"]`, list);
        if (item) {
          fill(item, p);
        } else {
          item = fromTemplate(list.dataset.rowTemplate, p);
          if (!item) continue;
          localizeTimes(item);
          list.append(item);
          flash(item);
        }
      }
      setEmpty(list, mine.length === 0);
    }
    for (const el of $$("[data-count=plans]")) el.textContent = String(plans.length);
    for (const el of $$("[data-attention=plans]")) el.classList.toggle("attention", plans.length > 0);
  }

  function onLlm(row) {
    for (const table of $$("table[data-live=llm]")) upsertRow(table, "data-llm", row);
  }

  function onJob(job) {
    if (job.status === "running") return;
    endedJobs.set(job.id, job);
    if (endedJobs.size > 50) endedJobs.delete(endedJobs.keys().next().value);
    const what = `${job.action}${job.key ? ` ${job.key}` : ""}`;
    const mine = myJobs.has(job.id);
    if (job.status === "error") {
      if (mine) toast(`${what} failed: ${job.error}`, "error");
    } else if (job.action === "analyze") {
      // The LLM's answer: what it decided, why, and a link to the whole exchange.
      const r = job.result || {};
      const text = `Ask the LLM about ${job.key}: ${r.decision || "done"}${r.reason ? ` (${r.reason})` : ""}`;
      const link = r.interaction != null ? { href: `/llm/${encodeURIComponent(r.interaction)}`, text: `Open interaction #${r.interaction}` } : null;
      mine ? toast(text, r.decision === "rejected" || r.decision === "no-plan" ? "error" : "ok", link) : announce(text);
    } else {
      const r = job.result || {};
      const text = `${what}: ${r.outcome || "done"}${r.message ? ` (${r.message})` : ""}`;
      mine ? toast(text, r.outcome === "failed" || r.outcome === "rejected" ? "error" : "ok") : announce(text);
    }
    myJobs.delete(job.id);
  }

  // ---------------------------------------------------------------- live: logs

  const seenLogs = new Set();
  const logId = (l) => `${l.at}|${l.key}|${l.source}|${l.message}`;
  for (const table of $$("table[data-live=logs]")) table.dataset.order = table.dataset.filtered ? "desc" : "asc";

  function logMatches(l) {
    const f = page.filters || {};
    if (f.resource && f.resource !== l.resource_id) return false;
    if (f.level && (LEVELS[l.level] || 0) < (LEVELS[f.level] || 0)) return false;
    if (f.q && !l.message.toLowerCase().includes(f.q.toLowerCase())) return false;
    return true;
  }

  // With Follow off the filtered table stands still: matching lines wait in ``held`` (and
  // are counted) until Follow is on again.
  const held = [];
  const followBox = $("#follow");

  function showLogCounts(table) {
    const body = $("tbody", table);
    const rows = body.rows.length;
    // Counted from the rows shown, so trimming old rows brings the error count down too.
    const errors = $$("tr.lvl-error, tr.lvl-critical", body).length;
    const put = (id, text) => { const el = $(id); if (el) el.textContent = text; };
    put("#log-count", String(rows));
    put("#log-count-word", rows === 1 ? "line" : "lines");
    put("#log-errors", String(errors));
    put("#log-errors-word", errors === 1 ? "error" : "errors");
    const heldBox = $("#log-held");
    if (heldBox) heldBox.hidden = held.length === 0;
    put("#log-held-count", String(held.length));
  }

  function insertLog(table, obj) {
    const row = fromTemplate(table.dataset.rowTemplate, obj);
    if (!row) return;
    localizeTimes(row);
    const body = $("tbody", table);
    const desc = table.dataset.order === "desc";
    desc ? body.prepend(row) : body.append(row);
    const keep = parseInt(table.dataset.keep || "200", 10);
    while (body.rows.length > keep) body.rows[desc ? body.rows.length - 1 : 0].remove();
    setEmpty(table, false);
  }

  function onLogs(lines) {
    const following = !followBox || followBox.checked;
    for (const l of lines) {
      const id = logId(l);
      if (seenLogs.has(id)) continue;
      seenLogs.add(id);
      const obj = { ...l, level_lower: l.level.toLowerCase() };
      for (const table of $$("table[data-live=logs]")) {
        if (table.dataset.resourceFilter && table.dataset.resourceFilter !== l.key) continue;
        if (table.dataset.filtered && !logMatches(l)) continue;
        if (table.dataset.filtered && !following) {
          held.push(obj);
          continue;
        }
        insertLog(table, obj);
      }
    }
    for (const table of $$("table[data-live=logs][data-filtered]")) showLogCounts(table);
    if (seenLogs.size > 5000) seenLogs.clear();
    if (held.length > 1000) held.splice(0, held.length - 1000);
  }

  followBox?.addEventListener("change", () => {
    if (!followBox.checked) return;
    const waiting = held.splice(0, held.length);
    for (const table of $$("table[data-live=logs][data-filtered]")) {
      for (const obj of waiting) insertLog(table, obj);
      showLogCounts(table);
    }
    if (waiting.length) announce(`${waiting.length} new log ${waiting.length === 1 ? "line" : "lines"} shown`);
  });

  // ---------------------------------------------------------------- the stream

  const live = $("#live");
  function liveState(state, text) {
    if (!live) return;
    live.dataset.state = state;
    $(".live-text", live).textContent = text;
  }

  let source = null;
  function connect() {
    if (!window.EventSource) {
      liveState("off", "no live updates");
      return;
    }
    source = new EventSource(`/api/stream?since=${encodeURIComponent(page.now || serverNow())}`);
    const on = (name, fn) =>
      source.addEventListener(name, (e) => {
        try {
          fn(JSON.parse(e.data));
        } catch (err) {
          console.error(`driftmend: bad ${name} event`, err);
        }
      });
    source.addEventListener("open", () => liveState("live", "live"));
    source.addEventListener("error", () => liveState("reconnecting", "reconnecting"));
    on("hello", () => liveState("live", "live"));
    on("resource", onResource);
    on("resource-removed", onResourceRemoved);
    on("fix", onFix);
    on("stats", onStats);
    on("plans", onPlans);
    on("llm", onLlm);
    on("logs", onLogs);
    on("job", onJob);
  }
  // Close the stream when the page goes away, so the server stops polling for it at once.
  window.addEventListener("pagehide", () => source && source.close());

  // ---------------------------------------------------------------- start

  localizeTimes();
  drawAll();
  if ("ResizeObserver" in window) {
    let pending = false;
    new ResizeObserver(() => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => { pending = false; drawAll(); });
    }).observe(document.body);
  }
  setInterval(drawAll, 10000); // slide the time window even when nothing changes
  connect();
  window.driftmend = { formatValue, page }; // for the browser tests and curious operators
})();
