/* Plans waiting for an operator: the lists follow the "plans" event. */

import { fill, flash, fromTemplate, localizeTimes, setEmpty } from "./fill.js";
import { $, $$ } from "./page.js";

/* A "plans" event: every pending plan, oldest first. */
export function onPlans(plans) {
  for (const list of $$("[data-live=plans]")) {
    const mine = plans.filter(
      (p) =>
        (!list.dataset.resourceFilter || list.dataset.resourceFilter === p.key) &&
        (!list.dataset.planFilter || list.dataset.planFilter === String(p.id)),
    );
    const ids = new Set(mine.map((p) => String(p.id)));
    for (const item of $$(":scope > [data-plan]", list)) {
      if (ids.has(item.dataset.plan)) continue;
      // A decided plan leaves the list; the keyboard's focus must not leave with it.
      const hadFocus = item.contains(document.activeElement);
      item.remove();
      if (hadFocus) {
        const heading = list.closest("section")?.querySelector("h2, h3");
        if (heading) {
          heading.tabIndex = -1;
          heading.focus();
        }
      }
    }
    for (const p of mine) {
      let item = $(`:scope > [data-plan="${CSS.escape(String(p.id))}"]`, list);
      if (item) {
        fill(item, p);
      } else {
        item = fromTemplate(list.dataset.rowTemplate, p);
        if (!item) continue;
        localizeTimes(item);
        list.append(item);
        flash(item);
      }
    }
    setEmpty(list, mine.length === 0);
  }
  for (const el of $$("[data-count=plans]")) el.textContent = String(plans.length);
  for (const el of $$("[data-attention=plans]")) el.classList.toggle("attention", plans.length > 0);
}
