// The console's languages: English (i18n/en.js, built in, and the fallback for any string
// another language lacks) and German (i18n/de.js, imported only when it is the one shown).
// t(key, vars) gives a string with its `{name}` placeholders filled in (always rendered as
// text by the callers); dates and numbers go through Intl in the language shown.
import EN from './i18n/en.js';

/** [code, its name in itself] of every language the console speaks. */
export const LANGS = [['en', 'English'], ['de', 'Deutsch']];
const LOADERS = { de: () => import('./i18n/de.js') };

let current = 'en';
let strings = EN;
let loc = 'en';
let plurals = new Intl.PluralRules('en');
let numbers = new Intl.NumberFormat('en');
const dateFormats = new Map();

/** The language to show: the saved choice, else the browser's (de, de-DE, de-AT ... German). */
export function pickLang(saved, browser = navigator.language) {
  if (LANGS.some(([code]) => code === saved)) return saved;
  return /^de(-|$)/i.test(browser || '') ? 'de' : 'en';
}

/** The code of the language shown ('en' or 'de'). */
export function lang() { return current; }
/** The locale for Intl: the browser's own when it is of that language (en-GB dates stay
 *  British, de-AT Austrian), else the bare language. */
export function locale() { return loc; }

/** Switches to `code` (loading its strings first); English when that fails. */
export async function setLang(code) {
  let next = EN;
  if (LOADERS[code]) {
    try { next = (await LOADERS[code]()).default; } catch { code = 'en'; }
  } else code = 'en';
  current = code;
  strings = next;
  const nav = navigator.language || '';
  loc = code;
  if (nav.toLowerCase().split('-')[0] === code) {
    try { loc = Intl.getCanonicalLocales(nav)[0] || code; } catch { /* not a locale: the bare language */ }
  }
  plurals = new Intl.PluralRules(loc);
  numbers = new Intl.NumberFormat(loc);
  dateFormats.clear();
  document.documentElement.lang = code;
  return code;
}

/** The string `key` in the language shown, its `{placeholders}` filled from `vars` (numbers
 *  formatted for the language; `count` also picks the plural form). One pass: a value that
 *  contains braces is never read as a placeholder. */
export function t(key, vars) {
  let s = strings[key] ?? EN[key] ?? key;
  if (typeof s === 'object') s = s[plurals.select(Number(vars?.count) || 0)] ?? s.other;
  if (!vars) return s;
  return s.replace(/\{(\w+)\}/g, (m, k) => {
    if (!(k in vars)) return m;
    const v = vars[k];
    return typeof v === 'number' ? numbers.format(v) : String(v ?? '');
  });
}

/** A number in the language shown (`opts`: Intl.NumberFormat options). */
export function num(n, opts) {
  return opts ? new Intl.NumberFormat(loc, opts).format(n) : numbers.format(n);
}

/** An Intl.DateTimeFormat of the language shown, kept until the language changes. */
export function dateFormat(opts) {
  const k = JSON.stringify(opts);
  let f = dateFormats.get(k);
  if (!f) { f = new Intl.DateTimeFormat(loc, opts); dateFormats.set(k, f); }
  return f;
}
