/* LLM interactions: the list follows the "llm" event. */

import { upsertRow } from "./fill.js";
import { $$ } from "./page.js";

/* An "llm" event: one interaction's row, new or with its recorded outcome. */
export function onLlm(row) {
  for (const table of $$("table[data-live=llm]")) upsertRow(table, "data-llm", row);
}
