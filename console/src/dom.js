// Tiny DOM helpers. User content only ever goes in as text nodes / textContent / attribute values:
// nothing here parses HTML.

/** h('div', { class: 'x', onclick: fn, 'aria-label': '..' }, child, 'text', [more]) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k === 'value') el.value = v;
      else if (k === 'checked' || k === 'disabled' || k === 'selected' || k === 'hidden' || k === 'required' || k === 'readOnly') el[k] = !!v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      // Through the CSSOM: a style attribute would need 'unsafe-inline' in the console's CSP.
      else if (k === 'style') el.style.cssText = String(v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

export function time(ms) { return ms ? timeFmt.format(new Date(ms)) : ''; }
export function fullTime(ms) { return ms ? fullFmt.format(new Date(ms)) : '—'; }
/** "14:05" today, "3 Mar" otherwise. */
export function shortWhen(ms) {
  if (!ms) return '';
  const d = new Date(ms);
  const now = new Date();
  return d.toDateString() === now.toDateString() ? timeFmt.format(d) : dayFmt.format(d);
}

export function duration(ms) {
  if (!ms) return '—';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  const hh = Math.floor(m / 60);
  return `${hh} h ${m % 60} min`;
}

const announcer = () => document.getElementById('announcer');
/** Says something to screen readers (polite live region). */
export function announce(text) {
  const a = announcer();
  if (!a) return;
  a.textContent = '';
  setTimeout(() => { a.textContent = text; }, 30);
}

/** Human message of an SDK error (ChatError: code, codeName, message "wsmschat: ..."). */
export function errText(e) {
  const m = (e && e.message) || String(e);
  return m.replace(/^wsmschat:\s*/, '');
}

export async function copyText(text, fallbackEl) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    if (fallbackEl) {
      fallbackEl.focus();
      fallbackEl.select();
      try { return document.execCommand('copy'); } catch { return false; }
    }
    return false;
  }
}
