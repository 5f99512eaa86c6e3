/* Operator actions: every button[data-action] posts to its data-url with the token, and
 * the jobs they start are followed to their end on the live stream. */

import { openTokenDialog, storage } from "./auth.js";
import { announce, toast } from "./notify.js";
import { $, $$ } from "./page.js";

const myJobs = new Set();
// A quick job can end (on the live stream) before its own 202 answer is read here: keep
// the last ended jobs, so the answer still reaches the operator who asked.
const endedJobs = new Map();

/* Shows Pause or Resume on every action row of resource `id`. */
export function showPaused(id, paused) {
  for (const row of $$(`[data-resource-actions="${CSS.escape(id)}"]`)) {
    const pause = $("[data-action=pause]", row);
    const resume = $("[data-action=resume]", row);
    if (pause) pause.hidden = paused;
    if (resume) resume.hidden = !paused;
  }
}

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

/* Whether any job started from this tab is still waited for. */
export const waitingForJobs = () => myJobs.size > 0;

/* A job's end (the "job" event): a toast for the operator who started it, else a quiet
   announcement. */
export function onJob(job) {
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
