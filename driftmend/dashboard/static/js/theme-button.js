/* The light/dark toggle. /static/theme.js (a classic script in <head>) applies the saved
 * choice before the first paint; this module switches and saves it. */

import { drawAll } from "./charts.js";
import { $ } from "./page.js";

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
  drawAll(); // the charts' colours are read when drawn
});
systemDark.addEventListener("change", () => { showTheme(); drawAll(); });
showTheme();
