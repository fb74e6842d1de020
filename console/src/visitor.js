// The visitor panel: who the customer is and their other conversations.
import { h, replace } from './dom.js';
import { fullTime, shortWhen, errText } from './format.js';
import { STATUS_LABEL, S, ui } from './state.js';
import { fmtSize, isImage } from './files.js';

// ---- visitor panel --------------------------------------------------------------------------

export async function loadVisitor(cv) {
  const pane = ui.visitorPane;
  pane.id = 'visitor-pane';
  if (!cv.conv?.visitorId) return;
  replace(pane, h('p', { class: 'muted', text: 'Loading visitor…' }));
  try {
    const [p, files] = await Promise.all([
      S.client.getVisitor(cv.conv.visitorId),
      S.client.attachments(cv.id).catch(() => [])
    ]);
    if (S.cv !== cv) return;
    const v = p.visitor;
    const row = (k, val) => [h('dt', { text: k }), h('dd', {}, val || '—')];
    const rated = p.conversations.filter((c) => c.rating > 0);
    const others = p.conversations.filter((c) => c.id !== cv.id);
    replace(pane,
      h('h2', { text: v.name || 'Visitor' }),
      h('dl', { class: 'facts' },
        row('Email', v.email),
        row('Identity', v.verified ? h('span', { class: 'verified', text: `Verified (${v.userId})` }) : 'Not verified'),
        row('Page', v.pageUrl ? h('span', { class: 'url', title: v.pageUrl, text: v.pageUrl }) : ''),
        row('Browser', describeUa(v.userAgent)),
        row('Locale', v.locale),
        row('First seen', fullTime(v.firstSeen)),
        row('Last seen', fullTime(v.lastSeen))),
      h('h3', { text: `Files (${files.length})` }),
      files.length
        ? h('ul', { class: 'plain files' }, files.map((f) => h('li', {},
          f.attachment.deleted
            ? h('span', { class: 'muted', text: `${f.attachment.name} (deleted)` })
            : h('a', { href: f.attachment.url, target: '_blank', rel: 'noopener noreferrer', download: isImage(f.attachment) ? undefined : f.attachment.name, text: f.attachment.name }),
          h('div', { class: 'muted small', text: `${fmtSize(f.attachment.size)} · ${f.note ? 'private note · ' : ''}${f.authorName || f.authorKind} · ${shortWhen(f.createdAt)}` }))))
        : h('p', { class: 'muted', text: 'No files yet.' }),
      h('h3', { text: 'Satisfaction' }),
      rated.length
        ? h('ul', { class: 'plain' }, rated.map((c) => h('li', {}, h('span', { class: 'rating', text: `★ ${c.rating}/5` }), ' ', c.ratingComment ? h('q', { text: c.ratingComment }) : null)))
        : h('p', { class: 'muted', text: 'No rating yet.' }),
      h('h3', { text: `Other conversations (${others.length})` }),
      others.length
        ? h('ul', { class: 'plain others' }, others.map((c) => h('li', {},
          h('a', { href: `#/c/${encodeURIComponent(c.id)}` }, `${shortWhen(c.createdAt)} · ${c.topic} · ${STATUS_LABEL[c.status] || c.status}`),
          c.lastMessagePreview ? h('div', { class: 'muted small', text: c.lastMessagePreview }) : null)))
        : h('p', { class: 'muted', text: 'None.' }));
  } catch (e) {
    if (S.cv === cv) replace(pane, h('p', { class: 'muted', text: `Visitor details unavailable: ${errText(e)}` }));
  }
}

function describeUa(ua) {
  if (!ua) return '';
  const b = /Edg\/(\d+)/.exec(ua) ? `Edge ${RegExp.$1}` : /(?:Chrome|Chromium)\/(\d+)/.exec(ua) ? `Chrome ${RegExp.$1}`
    : /Firefox\/(\d+)/.exec(ua) ? `Firefox ${RegExp.$1}` : /Version\/(\d+).*Safari/.exec(ua) ? `Safari ${RegExp.$1}` : 'Browser';
  const os = /Windows/.test(ua) ? 'Windows' : /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS'
    : /Mac OS X/.test(ua) ? 'macOS' : /Linux/.test(ua) ? 'Linux' : '';
  return h('span', { title: ua, text: os ? `${b} on ${os}` : b });
}
