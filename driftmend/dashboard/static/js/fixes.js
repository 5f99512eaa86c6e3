/* Live fixes: rows of the fix tables, the fixes' statistics, the time-to-recover chart,
 * and a fix's own page while it runs (its changing parts fetched rendered by the server). */

import { waitingForJobs } from "./actions.js";
import { drawTtr } from "./charts.js";
import { fetchFragments, format, swapFragments, upsertRow } from "./fill.js";
import { announce } from "./notify.js";
import { $$, page } from "./page.js";

async function refreshFix() {
  const root = await fetchFragments(`/fragments/fixes/${encodeURIComponent(page.fix_id)}`);
  if (root) swapFragments(root);
}

/* A "fix" event. */
export function onFix(f) {
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
  if (!waitingForJobs() && f.status === "done") announce(`Fix ${f.id} of ${f.key}: ${f.outcome}`);
}

/* A "stats" event: the figures of the page's scope (the last day, or all time). */
export function onStats(both) {
  const s = both[page.stats_scope === "day" ? "day" : "all"];
  if (!s) return;
  for (const el of $$("[data-stat]")) {
    const name = el.dataset.stat;
    if (name in s) el.textContent = format(s[name], el.dataset.format);
  }
}
