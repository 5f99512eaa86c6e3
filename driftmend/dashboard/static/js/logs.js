/* Live log lines: every log table follows the "logs" event; the filtered table of the logs
 * page keeps to its filters and, with Follow off, holds new lines back. */

import { fromTemplate, localizeTimes, setEmpty } from "./fill.js";
import { announce } from "./notify.js";
import { $, $$, page } from "./page.js";

const LEVELS = { DEBUG: 10, INFO: 20, WARNING: 30, ERROR: 40, CRITICAL: 50 };
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

/* A "logs" event: new lines, oldest first (a line already shown is skipped). */
export function onLogs(lines) {
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
