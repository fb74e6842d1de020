// The console's formatting and small browser helpers (times, durations, screen-reader
// announcements, error texts, the clipboard), in the language shown (i18n.js).
import { t, dateFormat } from './i18n.js';

const timeFmt = () => dateFormat({ hour: '2-digit', minute: '2-digit' });
const dayFmt = () => dateFormat({ day: 'numeric', month: 'short' });

export function time(ms) { return ms ? timeFmt().format(new Date(ms)) : ''; }
export function fullTime(ms) { return ms ? dateFormat({ dateStyle: 'medium', timeStyle: 'short' }).format(new Date(ms)) : '—'; }
/** With the seconds (logs where attempts are seconds apart). */
export function preciseTime(ms) { return ms ? dateFormat({ dateStyle: 'short', timeStyle: 'medium' }).format(new Date(ms)) : '—'; }
/** "14:05" today, "3 Mar" otherwise. */
export function shortWhen(ms) {
  if (!ms) return '';
  const d = new Date(ms);
  const now = new Date();
  return d.toDateString() === now.toDateString() ? timeFmt().format(d) : dayFmt().format(d);
}

export function duration(ms) {
  if (!ms) return '—';
  const s = Math.round(ms / 1000);
  if (s < 60) return t('dur.s', { n: s });
  const m = Math.round(s / 60);
  if (m < 60) return t('dur.min', { n: m });
  const hh = Math.floor(m / 60);
  return t('dur.h', { h: hh, m: m % 60 });
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
