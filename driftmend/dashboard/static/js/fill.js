/* Putting values into the page: text into server-rendered elements, rows cloned from the
 * server's <template>s, and pieces of page the server rendered (fragments).
 *
 * Safety rule: values from the server (log lines, LLM text, messages) are only ever written
 * with textContent or as attribute values; no markup is ever parsed from data. The only
 * markup parsed here is a fragment the server rendered with Jinja (every value escaped),
 * fetched from this origin, through an inert DOMParser document; the CSP forbids inline
 * script anyway.
 */

import { clock, dateTime } from "./format.js";
import { $, $$, UNITS, fmt } from "./page.js";

/* Writes `value` as a [data-format] asks: the same words the server's filters write. */
export function format(value, how) {
  switch (how) {
    case "time": return value == null ? "" : clock(value);
    case "datetime": return value == null ? "" : dateTime(value);
    case "health": return fmt.healthLabel(value);
    case "seconds": return fmt.seconds(value);
    case "percent": return fmt.percent(value);
    case "tools": return (value || []).join(" → ");
    case "list": return (value || []).join("; ");
    case "steps":
      return (value || [])
        .map((s) => (s.params && Object.keys(s.params).length ? `${s.tool} ${JSON.stringify(s.params)}` : s.tool))
        .join(" → ");
    case "changes":
      return (value || [])
        .map((c) => `${c.signal}: ${fmt.formatValue(c.before, UNITS[c.signal])} → ${fmt.formatValue(c.after, UNITS[c.signal])}`)
        .join("; ");
    default: return value == null ? "" : String(value);
  }
}

/* Server times (written in UTC) in the reader's local time. */
export function localizeTimes(root = document) {
  for (const t of $$("time[data-ts]", root)) {
    const ts = parseFloat(t.dataset.ts);
    if (!Number.isNaN(ts)) t.textContent = t.dataset.date ? dateTime(ts) : clock(ts);
  }
}

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
export function fill(root, obj) {
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

/* A row cloned from the server's <template id=...>, filled with obj. */
export function fromTemplate(id, obj) {
  const tpl = document.getElementById(id);
  if (!tpl) return null;
  const el = tpl.content.firstElementChild.cloneNode(true);
  fill(el, obj);
  return el;
}

/* Shows or hides the "nothing here" note next to a live list. */
export function setEmpty(container, empty) {
  const wrap = container.closest(".table-wrap") || container.parentElement;
  const note = wrap && $(":scope > [data-empty]", wrap);
  if (note) note.hidden = !empty;
}

export function flash(el) {
  el.classList.remove("flash");
  void el.offsetWidth; // restart the animation
  el.classList.add("flash");
}

/* A row of a live table: updated in place, or cloned from the table's row template. */
export function upsertRow(table, idAttr, obj, prepend = true) {
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

/* The pieces of page the server renders at `url` (driftmend/dashboard/fragments.py), as
   the content of its <template data-fragments>; null when the server says no. */
export async function fetchFragments(url) {
  let html;
  try {
    const res = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (!res.ok) return null;
    html = await res.text();
  } catch (_) {
    return null;
  }
  const doc = new DOMParser().parseFromString(html, "text/html");
  const tpl = doc.querySelector("template[data-fragments]");
  if (!tpl) return null;
  localizeTimes(tpl.content);
  return tpl.content;
}

/* Replaces each [data-fragment] of the page with the piece of the same name in `root`.
   The keyboard's focus stays on the same button when the new piece has it, else goes to
   the piece's section heading, never to the top of the page. */
export function swapFragments(root) {
  for (const fresh of $$("[data-fragment]", root)) {
    const name = fresh.dataset.fragment;
    const old = $(`[data-fragment="${CSS.escape(name)}"]`);
    if (!old || old.isEqualNode(fresh)) continue;
    const focused = old.contains(document.activeElement) ? document.activeElement : null;
    const node = document.importNode(fresh, true);
    old.replaceWith(node);
    if (!focused) continue;
    const again = focused.dataset.action && $(`[data-action="${CSS.escape(focused.dataset.action)}"]`, node);
    const target = again && !again.hidden ? again : node.closest("section, main")?.querySelector("h1, h2");
    if (target) {
      if (!again) target.tabIndex = -1;
      target.focus();
    }
  }
}
