/* The operator's token and name: kept in this tab, entered in the token dialog, or taken
 * from the link `make demo` prints (http://127.0.0.1:8080/#token=...).
 */

import { $ } from "./page.js";
import { toast } from "./notify.js";

const TOKEN = "driftmend.token";
const ACTOR = "driftmend.actor";

/* The token lives in sessionStorage (this tab only), the name in localStorage. */
export const storage = {
  get token() { try { return sessionStorage.getItem(TOKEN) || ""; } catch (_) { return ""; } },
  set token(v) { try { v ? sessionStorage.setItem(TOKEN, v) : sessionStorage.removeItem(TOKEN); } catch (_) { /* off */ } },
  get actor() { try { return localStorage.getItem(ACTOR) || ""; } catch (_) { return ""; } },
  set actor(v) { try { localStorage.setItem(ACTOR, v); } catch (_) { /* off */ } },
};

// The fragment never reaches a server or a log; keep the token for this tab and take it
// out of the address bar. `window.history`, spelled out: the charts keep a history too.
if (location.hash.startsWith("#token=")) {
  storage.token = decodeURIComponent(location.hash.slice("#token=".length));
  window.history.replaceState(null, "", location.pathname + location.search);
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

/* Opens the token dialog; the focus returns to `from` when it closes. */
export function openTokenDialog(from = document.activeElement) {
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
