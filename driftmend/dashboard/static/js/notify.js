/* Telling the operator: toasts on screen, and a polite live region for screen readers. */

import { $ } from "./page.js";

const announcer = document.createElement("div");
announcer.className = "sr-only";
announcer.setAttribute("aria-live", "polite");
document.body.appendChild(announcer);

/* Said by a screen reader, not shown. */
export function announce(text) {
  announcer.textContent = text;
}

/* A toast: `kind` is info, ok or error; `link` ({href, text}) is built by the caller from
   a number, never from free text. */
export function toast(text, kind = "info", link = null) {
  const box = $("#toasts");
  if (!box) return;
  const el = document.createElement("div");
  el.className = `toast ${kind}`;
  el.setAttribute("role", kind === "error" ? "alert" : "status");
  const msg = document.createElement("span");
  msg.textContent = text;
  if (link) {
    const a = document.createElement("a");
    a.href = link.href;
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
