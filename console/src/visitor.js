// The visitor panel: who the customer is, the conversation's files and emails, and their other
// conversations.
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
    const [p, files, emails] = await Promise.all([
      S.client.getVisitor(cv.conv.visitorId),
      S.client.attachments(cv.id).catch(() => []),
      S.client.listConversationEmails(cv.id).catch((e) => ({ error: e }))
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
        row('IP address', v.lastIp),
        row('First seen', fullTime(v.firstSeen)),
        row('Last seen', fullTime(v.lastSeen))),
      safetySection(cv, v),
      h('h3', { text: `Files (${files.length})` }),
      files.length
        ? h('ul', { class: 'plain files' }, files.map((f) => h('li', {},
          f.attachment.deleted
            ? h('span', { class: 'muted', text: `${f.attachment.name} (deleted)` })
            : h('a', { href: f.attachment.url, target: '_blank', rel: 'noopener noreferrer', download: isImage(f.attachment) ? undefined : f.attachment.name, text: f.attachment.name }),
          h('div', { class: 'muted small', text: `${fmtSize(f.attachment.size)} · ${f.note ? 'private note · ' : ''}${f.authorName || f.authorKind} · ${shortWhen(f.createdAt)}` }))))
        : h('p', { class: 'muted', text: 'No files yet.' }),
      emailsSection(cv, emails),
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

// ---- blocking -------------------------------------------------------------------------------

/** Block this visitor (by visitor, email or IP), with a reason; or the blocks that hold them,
 *  each with Unblock. Every block and unblock is in the site's audit log. */
function safetySection(cv, v) {
  const box = h('section', { class: 'safety', id: 'safety', 'aria-labelledby': 'safety-title' });
  const msg = h('p', { class: 'small', role: 'status' });
  const reload = () => loadVisitor(cv);
  const render = (blocks) => {
    const mine = blocks.filter((b) => (b.kind === 'visitor' && b.value === v.id)
      || (b.kind === 'email' && v.email && b.value === v.email.toLowerCase())
      || (b.kind === 'ip' && v.lastIp && (b.value === `${v.lastIp}/32` || b.value === `${v.lastIp}/128`)));
    const title = h('h3', { id: 'safety-title', text: v.blocked || mine.length ? 'Blocked' : 'Safety' });
    const list = mine.length ? h('ul', { class: 'plain blocks' }, mine.map((b) => h('li', { dataset: { block: b.id } },
      h('span', { text: `${KIND_LABEL[b.kind]}: ${b.value}` }),
      h('div', { class: 'muted small', text: `${b.reason} · ${b.createdByName} · ${shortWhen(b.createdAt)}` }),
      h('button', { type: 'button', class: 'btn ghost small', text: 'Unblock', onclick: async (e) => {
        e.target.disabled = true;
        try { await S.client.deleteBlock(b.id); reload(); } catch (err) { msg.textContent = `Could not unblock: ${errText(err)}`; e.target.disabled = false; }
      } })))) : null;
    const kind = h('select', { id: 'block-kind', 'aria-label': 'What to block' },
      h('option', { value: 'visitor', text: 'This visitor' }),
      v.email ? h('option', { value: 'email', text: `Email ${v.email}` }) : null,
      v.lastIp ? h('option', { value: 'ip', text: `IP ${v.lastIp}` }) : null);
    const reason = h('input', { id: 'block-reason', type: 'text', maxlength: 500, required: true, placeholder: 'Reason (required, staff only)', 'aria-label': 'Reason' });
    const form = h('form', { class: 'block-form', onsubmit: async (e) => {
      e.preventDefault();
      if (!reason.value.trim()) { reason.focus(); return; }
      const value = kind.value === 'visitor' ? v.id : kind.value === 'email' ? v.email : v.lastIp;
      const btn = form.querySelector('button');
      btn.disabled = true;
      try {
        await S.client.createBlock(v.siteId, kind.value, value, reason.value.trim());
        reload();
      } catch (err) { msg.textContent = `Could not block: ${errText(err)}`; btn.disabled = false; }
    } }, kind, reason, h('button', { type: 'submit', class: 'btn danger small', id: 'block-submit', text: 'Block' }));
    replace(box, title,
      v.blocked && !mine.length ? h('p', { class: 'msg-bad small', text: 'A block holds this visitor off the chat.' }) : null,
      list, h('p', { class: 'muted small', text: 'A blocked visitor sees “chat unavailable”; their open chats end now.' }), form, msg);
  };
  S.client.listBlocks(v.siteId).then(render, () => render([]));
  return box;
}

const KIND_LABEL = { visitor: 'Visitor', email: 'Email', ip: 'IP' };

// ---- emails ---------------------------------------------------------------------------------

const EMAIL_STATE = { queued: 'Queued', sent: 'Sent', failed: 'Failed' };
const attempts = (n) => `${n} attempt${n === 1 ? '' : 's'}`;

/** The emails the server sent (or is sending) about the conversation, with a refresh button;
 *  `first` is what the panel loaded (ConversationEmail[], or { error }). */
function emailsSection(cv, first) {
  const title = h('h3', { id: 'emails-title' });
  const list = h('div', { id: 'emails' });
  const load = async () => {
    refresh.disabled = true;
    try {
      const r = await S.client.listConversationEmails(cv.id).catch((e) => ({ error: e }));
      if (S.cv === cv) render(r);
    } finally { refresh.disabled = false; }
  };
  const refresh = h('button', { type: 'button', class: 'btn ghost small', id: 'emails-refresh', text: 'Refresh', 'aria-label': 'Refresh the emails', onclick: load });
  cv.refreshEmails = load;
  function render(r) {
    if (r.error) {
      title.textContent = 'Emails';
      replace(list, h('p', { class: 'msg-bad', role: 'alert', text: `Could not load the emails: ${errText(r.error)}` }));
      return;
    }
    title.textContent = `Emails (${r.length})`;
    if (!r.length) {
      replace(list, h('p', { class: 'muted', text: 'No emails about this conversation yet.' }));
      return;
    }
    replace(list, h('ul', { class: 'plain emails' }, r.map((e) => h('li', { dataset: { email: e.id, state: e.state } },
      h('div', { class: 'email-subject', text: e.subject || '(no subject)' }),
      h('div', { class: 'muted small', text: `To ${e.to}` }),
      h('div', { class: 'small email-state' },
        h('span', { class: `status ${e.state}`, text: EMAIL_STATE[e.state] || e.state }), ' ',
        h('span', { class: 'muted', text: e.state === 'sent' ? `${fullTime(e.sentAt)} · ${attempts(e.attempts)}`
          : e.state === 'failed' ? `gave up after ${attempts(e.attempts)}`
            : `${attempts(e.attempts)} so far · since ${fullTime(e.createdAt)}` })),
      e.state !== 'sent' && e.lastError ? h('div', { class: 'msg-bad small email-error', text: `Last error: ${e.lastError}` }) : null))));
  }
  render(first);
  return h('section', { class: 'emails-section', 'aria-labelledby': 'emails-title' },
    h('div', { class: 'section-head' }, title, refresh), list);
}

function describeUa(ua) {
  if (!ua) return '';
  const b = /Edg\/(\d+)/.exec(ua) ? `Edge ${RegExp.$1}` : /(?:Chrome|Chromium)\/(\d+)/.exec(ua) ? `Chrome ${RegExp.$1}`
    : /Firefox\/(\d+)/.exec(ua) ? `Firefox ${RegExp.$1}` : /Version\/(\d+).*Safari/.exec(ua) ? `Safari ${RegExp.$1}` : 'Browser';
  const os = /Windows/.test(ua) ? 'Windows' : /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS'
    : /Mac OS X/.test(ua) ? 'macOS' : /Linux/.test(ua) ? 'Linux' : '';
  return h('span', { title: ua, text: os ? `${b} on ${os}` : b });
}
