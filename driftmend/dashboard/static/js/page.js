/* What the server put in the page (#page-data), and the lookups every module uses. */

import { formatter } from "./format.js";

const dataEl = document.getElementById("page-data");

/* The page's JSON: signal units, formatting rules, chart history, filters... */
export const page = dataEl ? JSON.parse(dataEl.textContent) : {};

/* The display unit of each catalogued signal. */
export const UNITS = page.units || {};

/* The server's formatting rules, applied: formatValue, healthLabel, seconds, percent. */
export const fmt = formatter(page.formatting);

// The server's clock may differ from this machine's: charts slide on the server's time.
const skew = (page.now || Date.now() / 1000) - Date.now() / 1000;
export const serverNow = () => Date.now() / 1000 + skew;

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
