/* driftmend dashboard: the entry point (<script type="module" src="/static/js/main.js">).
 *
 * Each concern is a module: page (the page's JSON), format (how values read, by the
 * server's rules), fill (values and server-rendered pieces into the page), notify, auth
 * (token and actor), theme-button, actions, charts, and the live handlers: resources,
 * fixes, plans, llm, logs, fed by stream. No bundler: the browser loads them as they are.
 */

import { onJob } from "./actions.js";
import "./auth.js";
import { drawAll } from "./charts.js";
import { localizeTimes } from "./fill.js";
import { onFix, onStats } from "./fixes.js";
import { onLlm } from "./llm.js";
import { onLogs } from "./logs.js";
import { fmt, page } from "./page.js";
import { onPlans } from "./plans.js";
import { onResource, onResourceRemoved } from "./resources.js";
import { connect, hello } from "./stream.js";
import "./theme-button.js";

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
connect({
  hello,
  resource: onResource,
  "resource-removed": onResourceRemoved,
  fix: onFix,
  stats: onStats,
  plans: onPlans,
  llm: onLlm,
  logs: onLogs,
  job: onJob,
});
window.driftmend = { formatValue: fmt.formatValue, page }; // for the browser tests and curious operators
