// The visitor panel: who the customer is, the conversation's files and emails, and their other
// conversations.
import { h, replace } from './dom.js';
import { fullTime, shortWhen, errText } from './format.js';
import { t, num, dateFormat } from './i18n.js';
import { statusLabel, S, ui } from './state.js';
import { fmtSize, isImage } from './files.js';

// ---- visitor panel --------------------------------------------------------------------------

export async function loadVisitor(cv) {
  const pane = ui.visitorPane;
  pane.id = 'visitor-pane';
  if (!cv.conv?.visitorId) return;
  replace(pane, h('p', { class: 'muted', text: t('visitor.loading') }));
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
      h('h2', { text: v.name || t('common.visitor') }),
      h('dl', { class: 'facts' },
        row(t('visitor.email'), v.email),
        row(t('visitor.identity'), v.verified ? h('span', { class: 'verified', text: t('visitor.verified', { id: v.userId }) }) : t('visitor.notVerified')),
        row(t('visitor.page'), h('span', { id: 'visitor-page' }, pageUrl(v))),
        row(t('visitor.browser'), describeUa(v.userAgent)),
        row(t('visitor.locale'), v.locale),
        row(t('visitor.ip'), v.lastIp),
        row(t('visitor.firstSeen'), fullTime(v.firstSeen)),
        row(t('visitor.lastSeen'), fullTime(v.lastSeen))),
      contextSection(cv, p),
      safetySection(cv, v),
      h('h3', { text: t('visitor.files', { count: files.length }) }),
      files.length
        ? h('ul', { class: 'plain files' }, files.map((f) => h('li', {},
          f.attachment.deleted
            ? h('span', { class: 'muted', text: t('visitor.fileDeleted', { name: f.attachment.name }) })
            : h('a', { href: f.attachment.url, target: '_blank', rel: 'noopener noreferrer', download: isImage(f.attachment) ? undefined : f.attachment.name, text: f.attachment.name }),
          h('div', { class: 'muted small', text: [fmtSize(f.attachment.size), f.note ? t('visitor.fileNote') : null,
            f.authorName || authorKind(f.authorKind), shortWhen(f.createdAt)].filter((x) => x !== null).join(' · ') }))))
        : h('p', { class: 'muted', text: t('visitor.noFiles') }),
      emailsSection(cv, emails),
      h('h3', { text: t('visitor.satisfaction') }),
      rated.length
        ? h('ul', { class: 'plain' }, rated.map((c) => h('li', {}, h('span', { class: 'rating', text: `★ ${c.rating}/5` }), ' ', c.ratingComment ? h('q', { text: c.ratingComment }) : null)))
        : h('p', { class: 'muted', text: t('visitor.noRating') }),
      h('h3', { text: t('visitor.others', { count: others.length }) }),
      others.length
        ? h('ul', { class: 'plain others' }, others.map((c) => h('li', {},
          h('a', { href: `#/c/${encodeURIComponent(c.id)}` }, `${shortWhen(c.createdAt)} · ${c.topic} · ${statusLabel(c.status)}`),
          c.lastMessagePreview ? h('div', { class: 'muted small', text: c.lastMessagePreview }) : null)))
        : h('p', { class: 'muted', text: t('common.none') }));
  } catch (e) {
    if (S.cv === cv) replace(pane, h('p', { class: 'muted', text: t('visitor.unavailable', { error: errText(e) }) }));
  }
}

const pageUrl = (v) => (v.pageUrl ? h('span', { class: 'url', title: v.pageUrl, text: v.pageUrl }) : '—');

// ---- custom attributes and the page trail ---------------------------------------------------

/** A link only to an http(s) address (the server accepts no other; checked again here). */
const safeLink = (url, text) => (/^https?:\/\//i.test(url)
  ? h('a', { href: url, target: '_blank', rel: 'noopener noreferrer', class: 'url', title: url, text })
  : h('span', { class: 'url', text }));

/** An attribute value as shown: numbers and dates in the console's language, links linked. */
function shownValue(def, value) {
  if (def.type === 'link') return safeLink(value, value);
  if (def.type === 'number' && Number.isFinite(Number(value))) return num(Number(value));
  if (def.type === 'date' && /^\d{4}-\d{2}-\d{2}$/.test(value)) {
    return dateFormat({ dateStyle: 'medium', timeZone: 'UTC' }).format(new Date(`${value}T00:00:00Z`));
  }
  return value;
}

const INPUT_TYPES = { text: 'text', number: 'number', date: 'date', link: 'url' };

/** The site's declared attributes of this visitor and this conversation (agents edit them),
 *  and the pages the visitor saw, newest first. Both follow live: `cv.refreshContext` (called
 *  on the stream's `visitor` event and on a conversation change) reloads them, leaving an
 *  edit in progress alone. */
function contextSection(cv, first) {
  const attrs = h('section', { class: 'attributes', id: 'attributes', 'aria-labelledby': 'attributes-title' });
  const pages = h('section', { class: 'pages', id: 'pages', 'aria-labelledby': 'pages-title' });
  let editing = false;
  let profile = first;
  const msg = h('p', { class: 'small', role: 'status' });
  const renderAttrs = () => {
    const defs = profile.attributes || [];
    const conv = profile.conversations.find((c) => c.id === cv.id) || cv.conv;
    const valueOf = (d) => ((d.target === 'conversation' ? conv?.attributes : profile.visitor.attributes) || {})[d.key] || '';
    const title = h('h3', { id: 'attributes-title', text: t('attrs.title') });
    if (!defs.length) { replace(attrs, title, h('p', { class: 'muted small', text: t('attrs.none') })); return; }
    if (!editing) {
      const rows = defs.filter((d) => valueOf(d)).map((d) => [
        h('dt', { title: d.key, text: d.target === 'conversation' ? t('attrs.ofConversation', { name: d.name }) : d.name }),
        h('dd', { dataset: { attribute: d.key } }, shownValue(d, valueOf(d)))]);
      replace(attrs, h('div', { class: 'section-head' }, title,
        h('button', { type: 'button', class: 'btn ghost small', id: 'attributes-edit', text: t('common.edit'), onclick: () => { editing = true; msg.textContent = ''; renderAttrs(); } })),
      rows.length ? h('dl', { class: 'facts' }, rows) : h('p', { class: 'muted small', text: t('attrs.empty') }), msg);
      return;
    }
    const inputs = defs.map((d) => h('input', { id: `attr-${d.key}`, type: INPUT_TYPES[d.type] || 'text', value: valueOf(d),
      step: d.type === 'number' ? 'any' : undefined, maxlength: d.type === 'link' ? 2048 : 500, dataset: { key: d.key } }));
    const form = h('form', { class: 'attributes-form', novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      const byTarget = { visitor: {}, conversation: {} };
      defs.forEach((d, i) => {
        const val = inputs[i].value.trim();
        if (val !== valueOf(d)) byTarget[d.target === 'conversation' ? 'conversation' : 'visitor'][d.key] = val;
      });
      const btn = form.querySelector('button[type=submit]');
      btn.disabled = true;
      try {
        if (Object.keys(byTarget.visitor).length) await S.client.setAttributes(byTarget.visitor, { visitorId: profile.visitor.id });
        if (Object.keys(byTarget.conversation).length) await S.client.setAttributes(byTarget.conversation, { conversationId: cv.id });
        editing = false;
        await refresh();
        msg.textContent = t('common.saved');
      } catch (err) { msg.textContent = t('common.saveFailed', { error: errText(err) }); btn.disabled = false; }
    } },
    h('dl', { class: 'facts' }, defs.map((d, i) => [h('dt', {}, h('label', { for: inputs[i].id, text: d.target === 'conversation' ? t('attrs.ofConversation', { name: d.name }) : d.name })), h('dd', {}, inputs[i])])),
    h('div', { class: 'inline' },
      h('button', { type: 'submit', class: 'btn small primary', id: 'attributes-save', text: t('common.save') }),
      h('button', { type: 'button', class: 'btn ghost small', text: t('common.cancel'), onclick: () => { editing = false; renderAttrs(); } })));
    replace(attrs, title, form, msg);
  };
  const renderPages = () => {
    const list = profile.visitor.pages || [];
    replace(pages, h('h3', { id: 'pages-title', text: t('pages.title', { count: list.length }) }),
      list.length ? h('ol', { class: 'plain page-trail' }, list.map((pg) => h('li', {},
        safeLink(pg.url, pg.title || pg.url),
        h('div', { class: 'muted small' }, shortWhen(pg.at), pg.title ? ` · ${pg.url}` : '',
          pg.referrer ? ` · ${t('pages.from', { referrer: pg.referrer })}` : '')))) : h('p', { class: 'muted small', text: t('pages.none') }));
  };
  let busy = null;
  const refresh = async () => {
    if (busy) return busy;
    busy = (async () => {
      const p = await S.client.getVisitor(profile.visitor.id);
      if (S.cv !== cv) return;
      profile = p;
      if (!editing) renderAttrs();
      renderPages();
      const row = document.getElementById('visitor-page');
      if (row) replace(row, pageUrl(p.visitor));
    })().catch(() => { /* the panel keeps what it showed */ }).finally(() => { busy = null; });
    return busy;
  };
  cv.refreshContext = refresh;
  renderAttrs();
  renderPages();
  return [attrs, pages];
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
    const title = h('h3', { id: 'safety-title', text: t(v.blocked || mine.length ? 'safety.blocked' : 'safety.title') });
    const list = mine.length ? h('ul', { class: 'plain blocks' }, mine.map((b) => h('li', { dataset: { block: b.id } },
      h('span', { text: `${kindLabel(b.kind)}: ${b.value}` }),
      h('div', { class: 'muted small', text: `${b.reason} · ${b.createdByName} · ${shortWhen(b.createdAt)}` }),
      h('button', { type: 'button', class: 'btn ghost small', text: t('safety.unblock'), onclick: async (e) => {
        e.target.disabled = true;
        try { await S.client.deleteBlock(b.id); reload(); } catch (err) { msg.textContent = t('safety.unblockFailed', { error: errText(err) }); e.target.disabled = false; }
      } })))) : null;
    const kind = h('select', { id: 'block-kind', 'aria-label': t('safety.what') },
      h('option', { value: 'visitor', text: t('safety.thisVisitor') }),
      v.email ? h('option', { value: 'email', text: t('safety.emailOf', { email: v.email }) }) : null,
      v.lastIp ? h('option', { value: 'ip', text: t('safety.ipOf', { ip: v.lastIp }) }) : null);
    const reason = h('input', { id: 'block-reason', type: 'text', maxlength: 500, required: true, placeholder: t('safety.reasonPlaceholder'), 'aria-label': t('common.reason') });
    const form = h('form', { class: 'block-form', onsubmit: async (e) => {
      e.preventDefault();
      if (!reason.value.trim()) { reason.focus(); return; }
      const value = kind.value === 'visitor' ? v.id : kind.value === 'email' ? v.email : v.lastIp;
      const btn = form.querySelector('button');
      btn.disabled = true;
      try {
        await S.client.createBlock(v.siteId, kind.value, value, reason.value.trim());
        reload();
      } catch (err) { msg.textContent = t('safety.blockFailed', { error: errText(err) }); btn.disabled = false; }
    } }, kind, reason, h('button', { type: 'submit', class: 'btn danger small', id: 'block-submit', text: t('safety.block') }));
    replace(box, title,
      v.blocked && !mine.length ? h('p', { class: 'msg-bad small', text: t('safety.heldOff') }) : null,
      list, h('p', { class: 'muted small', text: t('safety.hint') }), form, msg);
  };
  S.client.listBlocks(v.siteId).then(render, () => render([]));
  return box;
}

/** A block's kind as shown (visitor, email, ip). */
export const kindLabel = (kind) => (['visitor', 'email', 'ip'].includes(kind) ? t(`kind.${kind}`) : kind);
const authorKind = (kind) => ({ visitor: t('common.visitor'), agent: t('common.agent'), bot: t('common.bot') })[kind] || kind;

// ---- emails ---------------------------------------------------------------------------------

const emailState = (state) => (['queued', 'sent', 'failed'].includes(state) ? t(`emails.${state}`) : state);
const attempts = (n) => t('emails.attempts', { count: n });

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
  const refresh = h('button', { type: 'button', class: 'btn ghost small', id: 'emails-refresh', text: t('common.refresh'), 'aria-label': t('emails.refreshLabel'), onclick: load });
  cv.refreshEmails = load;
  function render(r) {
    if (r.error) {
      title.textContent = t('emails.title');
      replace(list, h('p', { class: 'msg-bad', role: 'alert', text: t('emails.loadFailed', { error: errText(r.error) }) }));
      return;
    }
    title.textContent = t('emails.titleCount', { count: r.length });
    if (!r.length) {
      replace(list, h('p', { class: 'muted', text: t('emails.none') }));
      return;
    }
    replace(list, h('ul', { class: 'plain emails' }, r.map((e) => h('li', { dataset: { email: e.id, state: e.state } },
      h('div', { class: 'email-subject', text: e.subject || t('emails.noSubject') }),
      h('div', { class: 'muted small', text: t('emails.to', { to: e.to }) }),
      h('div', { class: 'small email-state' },
        h('span', { class: `status ${e.state}`, text: emailState(e.state) }), ' ',
        h('span', { class: 'muted', text: e.state === 'sent' ? t('emails.sentAt', { when: fullTime(e.sentAt), attempts: attempts(e.attempts) })
          : e.state === 'failed' ? t('emails.gaveUp', { attempts: attempts(e.attempts) })
            : t('emails.soFar', { attempts: attempts(e.attempts), when: fullTime(e.createdAt) }) })),
      e.state !== 'sent' && e.lastError ? h('div', { class: 'msg-bad small email-error', text: t('emails.lastError', { error: e.lastError }) }) : null))));
  }
  render(first);
  return h('section', { class: 'emails-section', 'aria-labelledby': 'emails-title' },
    h('div', { class: 'section-head' }, title, refresh), list);
}

function describeUa(ua) {
  if (!ua) return '';
  const b = /Edg\/(\d+)/.exec(ua) ? `Edge ${RegExp.$1}` : /(?:Chrome|Chromium)\/(\d+)/.exec(ua) ? `Chrome ${RegExp.$1}`
    : /Firefox\/(\d+)/.exec(ua) ? `Firefox ${RegExp.$1}` : /Version\/(\d+).*Safari/.exec(ua) ? `Safari ${RegExp.$1}` : t('visitor.browser');
  const os = /Windows/.test(ua) ? 'Windows' : /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS'
    : /Mac OS X/.test(ua) ? 'macOS' : /Linux/.test(ua) ? 'Linux' : '';
  return h('span', { title: ua, text: os ? t('visitor.browserOn', { browser: b, os }) : b });
}
