/* Live resources: tiles on the overview and cards on the resource pages follow the
 * "resource" events; a resource new to the overview gets its tile rendered by the server. */

import { showPaused } from "./actions.js";
import { addSample, drawResource, track } from "./charts.js";
import { fetchFragments, fill, flash, setEmpty } from "./fill.js";
import { announce } from "./notify.js";
import { $, $$, UNITS, fmt } from "./page.js";

const lastHealth = {};
for (const el of $$("[data-record][data-resource][data-health]")) lastHealth[el.dataset.resource] = el.dataset.health;

// Tiles being fetched, by resource id: the newest event for each (null once removed).
const pendingTiles = new Map();

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

/* A resource the overview has no tile for: its tile, charts included, as the server
   renders it (driftmend/dashboard/fragments.py), then filled with the newest event. */
async function addTile(tiles, r) {
  const waiting = pendingTiles.has(r.id);
  pendingTiles.set(r.id, r);
  if (waiting) return;
  const root = await fetchFragments(`/fragments/tiles/${encodeURIComponent(r.id)}`);
  const latest = pendingTiles.get(r.id);
  pendingTiles.delete(r.id);
  const tile = root && $("[data-record][data-resource]", root);
  if (!tile || !latest || $(`.tiles > [data-resource="${CSS.escape(r.id)}"]`)) return;
  tiles.appendChild(document.importNode(tile, true));
  setEmpty(tiles, false);
  track(r.id);
  onResource(latest);
  drawResource(r.id);
}

/* A "resource" event: every tile and card of it updated in place. */
export function onResource(r) {
  const lf = r.last_fix;
  const obj = {
    ...r,
    name: r.key.split("/").pop(),
    last_fix_id: lf ? lf.id : "",
    last_fix_label: lf ? lf.label : "", // the server's words (views.fix_label)
    no_fix: !lf,
  };
  const els = $$(`[data-record][data-resource="${CSS.escape(r.id)}"]`);
  const tiles = $("[data-live=tiles]");
  if (!els.length && tiles) {
    addTile(tiles, r);
    return;
  }
  for (const el of els) {
    fill(el, obj);
    el.dataset.health = r.health;
    const link = $("[data-slot=last_fix_label]", el);
    if (link) link.hidden = !lf;
    for (const v of $$("[data-signal-value]", el)) {
      const name = v.dataset.signalValue;
      if (name in r.signals) v.textContent = fmt.formatValue(r.signals[name], v.dataset.unit || UNITS[name]);
    }
  }
  showPaused(r.id, r.paused);
  if (lastHealth[r.id] !== undefined && lastHealth[r.id] !== r.health) {
    announce(`${r.key} is now ${fmt.healthLabel(r.health)}`);
    for (const el of els) flash(el);
  }
  lastHealth[r.id] = r.health;
  addSample(r.id, r.observed_at, r.signals);
  recount();
}

/* A "resource-removed" event: its tile leaves the overview. */
export function onResourceRemoved(r) {
  if (pendingTiles.has(r.id)) pendingTiles.set(r.id, null);
  for (const el of $$(`.tiles > [data-resource="${CSS.escape(r.id)}"]`)) el.remove();
  recount();
}
