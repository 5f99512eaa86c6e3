/* How values read. The rules are not here: the server hands them over as data
 * (driftmend/formatting.py, in #page-data as "formatting"); this module only applies them.
 * Numbers are rounded as Python's format rounds them (the exact binary value, a tie to
 * even), so a value the server rendered and the same value arriving live read alike.
 * Pure: no DOM, so the unit tests run it under Node against the Python table.
 */

// Above this, toFixed writes an exponent: no dashboard value gets there.
const LARGEST = 1e21;

/* The exact decimal digits of |x| as [whole, fraction]: a double's expansion ends within
   100 places for any value a dashboard shows. */
function exactDigits(x) {
  const [whole, fraction = ""] = Math.abs(x).toFixed(100).split(".");
  return [whole, fraction];
}

/* The first `keep` of `digits`, rounded on what follows them: half to even, as Python. */
function roundDigits(digits, keep) {
  const head = digits.slice(0, keep);
  const tail = digits.slice(keep);
  const last = head.length ? Number(head[head.length - 1]) : 0;
  const up = tail[0] > "5" || (tail[0] === "5" && (/[1-9]/.test(tail.slice(1)) || last % 2 === 1));
  if (!up) return head;
  const out = head.split("");
  let i = out.length - 1;
  for (; i >= 0 && out[i] === "9"; i -= 1) out[i] = "0";
  if (i < 0) out.unshift("1");
  else out[i] = String(Number(out[i]) + 1);
  return out.join("");
}

const trimLeadingZeros = (text) => text.replace(/^0+(?=\d)/, "");

/* Python's f"{x:.{decimals}f}". */
export function fixed(x, decimals) {
  if (Math.abs(x) >= LARGEST) return String(x);
  const [whole, fraction] = exactDigits(x);
  const digits = roundDigits(whole + fraction, whole.length + decimals);
  const cut = digits.length - decimals;
  const int = trimLeadingZeros(digits.slice(0, cut));
  const text = decimals ? `${int}.${digits.slice(cut)}` : int;
  return (x < 0 || Object.is(x, -0) ? "-" : "") + text;
}

/* A whole number whole, any other to `count` significant digits, trailing zeros dropped,
   never an exponent (formatting.py _significant). */
export function significant(x, count) {
  if (Number.isInteger(x) || Math.abs(x) >= LARGEST) return String(x);
  const [whole, fraction] = exactDigits(x);
  const digits = whole + fraction;
  const first = digits.search(/[1-9]/);
  const rounded = roundDigits(digits, first + count);
  const shift = whole.length - (first + count); // the value is rounded × 10^shift
  let text;
  if (shift >= 0) {
    text = rounded + "0".repeat(shift);
  } else {
    const padded = rounded.padStart(1 - shift, "0");
    text = `${padded.slice(0, shift)}.${padded.slice(shift)}`.replace(/\.?0+$/, "");
  }
  return (x < 0 ? "-" : "") + trimLeadingZeros(text);
}

/* The functions that read values by `rules` (formatting.rules() on the server). */
export function formatter(rules) {
  function formatNumber(v, steps) {
    const step = steps.find((s) => s.below === null || Math.abs(v) < s.below) || steps[steps.length - 1];
    const scaled = (v * step.multiply) / step.divide;
    const text = step.decimals === null ? significant(scaled, step.significant) : fixed(scaled, step.decimals);
    return text + step.suffix;
  }

  /* A value in `unit` (a key of the rules' units, "" when unknown): formatting.format_value. */
  function formatValue(v, unit) {
    if (v === null || v === undefined) return rules.missing;
    if (typeof v === "boolean") return rules.flags[String(v)];
    if (typeof v !== "number") return String(v);
    if (!Number.isFinite(v)) return rules.missing;
    return formatNumber(v, rules.units[unit] || rules.units[""]);
  }

  const healthLabel = (health) => rules.health[health] || String(health ?? "");

  return { formatValue, healthLabel, seconds: (v) => formatValue(v, "duration"), percent: (v) => formatValue(v, "share") };
}

export const clock = (ts) =>
  new Date(ts * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });

export const dateTime = (ts) =>
  new Date(ts * 1000).toLocaleString([], {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });
