/* The live stream (server-sent events from /api/stream): each event goes to its handler,
 * and the "live" badge in the header says whether updates flow. */

import { $, page, serverNow } from "./page.js";

const live = $("#live");

function liveState(state, text) {
  if (!live) return;
  live.dataset.state = state;
  $(".live-text", live).textContent = text;
}

/* Connects, sending each event's JSON to handlers[event name]. */
export function connect(handlers) {
  if (!window.EventSource) {
    liveState("off", "no live updates");
    return;
  }
  const source = new EventSource(`/api/stream?since=${encodeURIComponent(page.now || serverNow())}`);
  source.addEventListener("open", () => liveState("live", "live"));
  source.addEventListener("error", () => liveState("reconnecting", "reconnecting"));
  for (const [name, handler] of Object.entries(handlers)) {
    source.addEventListener(name, (e) => {
      try {
        handler(JSON.parse(e.data));
      } catch (err) {
        console.error(`driftmend: bad ${name} event`, err);
      }
    });
  }
  // Close the stream when the page goes away, so the server stops polling for it at once.
  window.addEventListener("pagehide", () => source.close());
}

export const hello = () => liveState("live", "live");
