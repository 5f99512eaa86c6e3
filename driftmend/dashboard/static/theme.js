/* Applies the theme saved by the toggle before the first paint (no flash of the other
   theme). Without a saved choice, the CSS follows prefers-color-scheme. */
"use strict";
try {
  const saved = localStorage.getItem("driftmend.theme");
  if (saved === "dark" || saved === "light") document.documentElement.dataset.theme = saved;
} catch (_) {
  /* storage may be disabled: the system theme applies */
}
