// Admin pages (admin role only; the server refuses AdminService calls from other agents anyway).
import { h, replace } from './dom.js';
import { errText, copyText, duration, fullTime } from './format.js';
import { t, num, dateFormat } from './i18n.js';
import { webhooksSection } from './webhooks.js';
import { kindLabel } from './visitor.js';

const SECTIONS = ['sites', 'agents', 'canned', 'keys', 'report'];

export function renderAdmin(main, ctx) {
  const body = h('div', { class: 'admin-body' });
  const nav = h('nav', { class: 'admin-nav', 'aria-label': t('admin.nav') },
    SECTIONS.map((id) => h('a', { href: `#/admin/${id}`, 'aria-current': id === ctx.section ? 'page' : null, text: t(`admin.${id}`) })));
  replace(main, h('div', { class: 'admin' }, nav, body));
  const page = h('div', { class: 'page' });
  body.appendChild(page);
  const fn = { sites, agents, canned, keys, report }[ctx.section] || sites;
  fn(page, ctx).catch((e) => replace(page, h('p', { class: 'msg-bad', role: 'alert', text: t('common.loadFailed', { error: errText(e) }) })));
}

const lines = (s) => s.split(/[\n,]/).map((x) => x.trim()).filter(Boolean);
const status = () => h('p', { class: 'action-msg', role: 'status' });
function field(id, label, input, hint) {
  input.id = id;
  return [h('label', { for: id, text: label }), h('div', {}, input, hint ? h('p', { class: 'hint', text: hint }) : null)];
}

// ---- sites ----------------------------------------------------------------------------------

async function sites(page, ctx) {
  // What the server does about email (admin call; an older server without it: unknown).
  const [list, info] = await Promise.all([ctx.client.listSites(),
    ctx.client.getServerInfo().catch((e) => ({ error: e }))]);
  const current = ctx.arg === 'new' ? null : (list.find((s) => s.id === ctx.arg) || list[0] || null);
  const picker = h('select', { id: 'site-pick', 'aria-label': t('common.site'), onchange: (e) => { location.hash = `#/admin/sites/${e.target.value}`; } },
    list.map((s) => h('option', { value: s.id, text: `${s.name} (${s.siteKey})` })),
    h('option', { value: 'new', text: t('site.newOption') }));
  picker.value = current ? current.id : 'new';
  replace(page,
    h('div', { class: 'section-head' }, h('h1', { text: current ? t('site.title', { name: current.name }) : t('site.newTitle') }), h('div', { class: 'inline' }, picker)),
    siteForm(ctx, current, info),
    current ? labelsSection(ctx, current) : null,
    current ? webhooksSection(ctx, current) : null,
    current ? blocksSection(ctx, current) : null);
}

// ---- labels -----------------------------------------------------------------------------------

/** The site's labels: add (name, colour), rename / recolour, delete. */
function labelsSection(ctx, site) {
  const box = h('section', { class: 'labels-admin', id: 'labels-admin', 'aria-labelledby': 'labels-title' });
  const msg = status();
  const load = async () => {
    const labels = (await ctx.client.listLabels(site.id));
    const name = h('input', { id: 'label-add-name', maxlength: 40, placeholder: t('labels.placeholder'), 'aria-label': t('labels.name') });
    const color = h('input', { id: 'label-add-color', type: 'color', value: '#2563eb', 'aria-label': t('labels.colour') });
    const form = h('form', { class: 'inline', onsubmit: async (e) => {
      e.preventDefault();
      if (!name.value.trim()) { msg.textContent = t('labels.needName'); name.focus(); return; }
      try {
        await ctx.client.putLabel({ siteId: site.id, name: name.value.trim(), color: color.value });
        msg.textContent = t('labels.added', { name: name.value.trim() });
        load();
      } catch (err) { msg.textContent = t('labels.addFailed', { error: errText(err) }); }
    } }, name, color, h('button', { type: 'submit', class: 'btn small', id: 'label-add', text: t('labels.add') }));
    replace(box,
      h('h2', { id: 'labels-title', text: t('labels.title', { count: labels.length }) }),
      h('p', { class: 'hint', text: t('labels.hint') }),
      labels.length ? h('ul', { class: 'plain labels-list' }, labels.map((l) => {
        const n = h('input', { value: l.name, maxlength: 40, 'aria-label': t('labels.nameOf', { name: l.name }) });
        const c = h('input', { type: 'color', value: l.color, 'aria-label': t('labels.colourOf', { name: l.name }) });
        return h('li', { class: 'inline', dataset: { label: l.id } },
          h('span', { class: 'label-chip', style: `--label: ${l.color}`, text: l.name }), n, c,
          h('span', { class: 'muted small', text: t('labels.count', { count: l.conversations }) }),
          h('button', { type: 'button', class: 'btn ghost small', text: t('common.save'), onclick: async () => {
            try { await ctx.client.putLabel({ id: l.id, siteId: site.id, name: n.value.trim(), color: c.value }); msg.textContent = t('labels.saved'); load(); } catch (err) { msg.textContent = t('common.saveFailed', { error: errText(err) }); }
          } }),
          h('button', { type: 'button', class: 'btn ghost small danger', text: t('common.delete'), onclick: async () => {
            if (!confirm(t('labels.deleteConfirm', { name: l.name }))) return;
            try { await ctx.client.deleteLabel(l.id); msg.textContent = t('labels.deleted'); load(); } catch (err) { msg.textContent = t('common.deleteFailed', { error: errText(err) }); }
          } }));
      })) : h('p', { class: 'muted', text: t('labels.none') }),
      form, msg);
  };
  load().catch((e) => replace(box, h('p', { class: 'msg-bad', role: 'alert', text: t('labels.loadFailed', { error: errText(e) }) })));
  return box;
}

// ---- blocks and the audit log -----------------------------------------------------------------

/** The site's blocks (unblock each; add an email or IP/CIDR block) and its audit log. */
function blocksSection(ctx, site) {
  const box = h('section', { class: 'blocks-admin', id: 'blocks-admin', 'aria-labelledby': 'blocks-title' });
  const msg = status();
  const kind = h('select', { id: 'block-add-kind', 'aria-label': t('blocks.kind') },
    h('option', { value: 'ip', text: t('blocks.kindIp') }), h('option', { value: 'email', text: t('kind.email') }));
  const value = h('input', { id: 'block-add-value', maxlength: 320, placeholder: t('blocks.valuePlaceholder'), 'aria-label': t('blocks.value') });
  const reason = h('input', { id: 'block-add-reason', maxlength: 500, placeholder: t('common.reason'), 'aria-label': t('common.reason') });
  const load = async () => {
    const [blocks, log] = await Promise.all([ctx.client.listBlocks(site.id), ctx.client.listAuditLog(site.id).catch(() => [])]);
    const form = h('form', { class: 'inline', onsubmit: async (e) => {
      e.preventDefault();
      if (!value.value.trim() || !reason.value.trim()) { msg.textContent = t('blocks.needBoth'); return; }
      try {
        const r = await ctx.client.createBlock(site.id, kind.value, value.value.trim(), reason.value.trim());
        msg.textContent = t('blocks.done', { value: r.block.value, count: r.visitorsBlocked });
        value.value = ''; reason.value = '';
        load();
      } catch (err) { msg.textContent = t('safety.blockFailed', { error: errText(err) }); }
    } }, kind, value, reason, h('button', { type: 'submit', class: 'btn danger small', text: t('safety.block') }));
    replace(box,
      h('h2', { id: 'blocks-title', text: t('blocks.title', { count: blocks.length }) }),
      h('p', { class: 'hint', text: t('blocks.hint') }),
      blocks.length ? h('table', { class: 'table blocks' }, h('thead', {}, h('tr', {}, [t('blocks.what'), t('common.reason'), t('blocks.by'), t('blocks.when'), ''].map((c) => h('th', { text: c })))),
        h('tbody', {}, blocks.map((b) => h('tr', { dataset: { block: b.id } },
          h('td', { text: `${kindLabel(b.kind)}: ${b.value}` }), h('td', { text: b.reason }), h('td', { text: b.createdByName }), h('td', { text: fullTime(b.createdAt) }),
          h('td', {}, h('button', { type: 'button', class: 'btn ghost small', text: t('safety.unblock'), onclick: async () => {
            try { await ctx.client.deleteBlock(b.id); msg.textContent = t('blocks.unblocked', { value: b.value }); load(); } catch (err) { msg.textContent = t('safety.unblockFailed', { error: errText(err) }); }
          } }))))))
        : h('p', { class: 'muted', text: t('blocks.none') }),
      form, msg,
      h('h3', { text: t('audit.title') }),
      log.length ? h('ul', { class: 'plain audit', id: 'audit-log' }, log.slice(0, 50).map((a) => h('li', {},
        h('span', { text: `${fullTime(a.createdAt)} · ${a.actorName} · ${a.action} ${a.target}` }),
        a.detail ? h('div', { class: 'muted small', text: a.detail }) : null)))
        : h('p', { class: 'muted', text: t('common.nothingYet') }));
  };
  load().catch((e) => replace(box, h('p', { class: 'msg-bad', role: 'alert', text: t('blocks.loadFailed', { error: errText(e) }) })));
  return box;
}

/** "Email: on (from …)" or why it is off, from the server's configuration. */
function emailStatus(info) {
  if (info.error) return h('p', { class: 'email-status msg-bad', id: 'site-email-status', text: t('site.emailUnknown', { error: errText(info.error) }) });
  if (info.emailEnabled) return h('p', { class: 'email-status', id: 'site-email-status', text: t('site.emailOn', { from: info.mailFrom }) });
  return h('p', { class: 'email-status', id: 'site-email-status', text: t('site.emailOff') });
}

/** Monday ... Sunday in the language shown (5 Jan 1970 was a Monday). */
const weekdays = () => [0, 1, 2, 3, 4, 5, 6].map((i) => dateFormat({ weekday: 'long', timeZone: 'UTC' }).format(new Date(Date.UTC(1970, 0, 5 + i))));
const hhmm = (m) => `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;

/** "09:00-12:00, 13:00-17:30" -> [[540, 720], [780, 1050]], or null when it does not parse. */
function parseSpans(text) {
  const out = [];
  for (const part of text.split(',').map((x) => x.trim()).filter(Boolean)) {
    const m = /^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$/.exec(part);
    if (!m) return null;
    const a = Number(m[1]) * 60 + Number(m[2]), b = Number(m[3]) * 60 + Number(m[4]);
    if (Number(m[2]) > 59 || Number(m[4]) > 59 || a >= b || b > 1440) return null;
    out.push([a, b]);
  }
  return out;
}

/** The opening-hours part of the site form: time zone, a line per weekday, closed dates,
 *  the out-of-office reply. */
function hoursFields(s) {
  const zones = (Intl.supportedValuesOf ? Intl.supportedValuesOf('timeZone') : []);
  const tz = h('input', { id: 'site-time-zone', value: s.timeZone || '', list: 'site-time-zones', placeholder: 'UTC', autocomplete: 'off' });
  const list = h('datalist', { id: 'site-time-zones' }, ['UTC', ...zones].map((z) => h('option', { value: z })));
  const WEEKDAYS = weekdays();
  const days = WEEKDAYS.map((name, i) => {
    const spans = (s.openingHours || []).filter((x) => x.weekday === i + 1).map((x) => `${hhmm(x.openMinute)}-${hhmm(x.closeMinute)}`);
    return h('input', { id: `site-hours-${i + 1}`, value: spans.join(', '), placeholder: t('hours.closedPlaceholder'), 'aria-label': t('hours.day', { day: name }), size: '24' });
  });
  const grid = h('div', { class: 'hours-grid' }, WEEKDAYS.map((name, i) => [h('label', { for: `site-hours-${i + 1}`, text: name }), days[i]]));
  const closedDates = h('textarea', { id: 'site-closed-dates', rows: '3', value: (s.closedDates || []).join('\n'), placeholder: '2026-12-24' });
  const away = h('textarea', { id: 'site-away', rows: '2', maxlength: '1000', value: s.awayMessage || '' });
  const parts = [
    [h('label', { for: 'site-time-zone', text: t('hours.timeZone') }), h('div', {}, tz, list,
      h('p', { class: 'hint', text: t('hours.timeZoneHint') }))],
    [h('span', { text: t('hours.title') }), h('div', {}, grid,
      h('p', { class: 'hint', text: t('hours.hint') }))],
    field('site-closed-dates', t('hours.closedDates'), closedDates, t('hours.closedDatesHint')),
    field('site-away', t('hours.away'), away, t('hours.awayHint')),
  ];
  const read = () => {
    const openingHours = [];
    for (let i = 0; i < 7; i++) {
      const spans = parseSpans(days[i].value);
      if (!spans) { days[i].focus(); return { error: t('hours.bad', { day: WEEKDAYS[i] }) }; }
      for (const [a, b] of spans) openingHours.push({ weekday: i + 1, openMinute: a, closeMinute: b });
    }
    return { value: { timeZone: tz.value.trim(), openingHours, closedDates: lines(closedDates.value), awayMessage: away.value.trim() } };
  };
  return { parts, read };
}

const ATTR_TYPES = ['text', 'number', 'date', 'link'];
const ATTR_TARGETS = ['visitor', 'conversation'];

/** An attribute declaration as its form line: "orderId text conversation page = Order". */
export function attributeLine(d) {
  return [d.key, d.type, d.target, d.pageWritable ? 'page' : null].filter(Boolean).join(' ')
    + (d.name && d.name !== d.key ? ` = ${d.name}` : '');
}

/** A form line back into a declaration (type text and target visitor when left out), or
 *  null when it is not one; the server checks the key and the name. */
export function parseAttributeLine(line) {
  const i = line.indexOf('=');
  const words = (i < 0 ? line : line.slice(0, i)).trim().split(/[\s,]+/).filter(Boolean);
  const d = { key: words.shift() || '', name: i < 0 ? '' : line.slice(i + 1).trim(), type: 'text', target: 'visitor', pageWritable: false };
  if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(d.key)) return null;
  for (const w of words.map((x) => x.toLowerCase())) {
    if (ATTR_TYPES.includes(w)) d.type = w;
    else if (ATTR_TARGETS.includes(w)) d.target = w;
    else if (w === 'page') d.pageWritable = true;
    else return null;
  }
  return d;
}

function siteForm(ctx, site, info) {
  const s = site || { name: '', allowedOrigins: [], topics: ['Product', 'Order', 'Delivery', 'Payment', 'Other'], color: '#2556c4', greeting: '', identityRequired: false };
  const name = h('input', { value: s.name, required: true });
  const origins = h('textarea', { rows: '3', value: s.allowedOrigins.join('\n') });
  const topics = h('textarea', { rows: '5', value: s.topics.join('\n') });
  const colorPick = h('input', { type: 'color', value: /^#[0-9a-f]{6}$/i.test(s.color) ? s.color : '#2556c4', 'aria-label': t('site.colourPicker') });
  const color = h('input', { value: s.color || '', size: '9' });
  colorPick.addEventListener('input', () => { color.value = colorPick.value; });
  color.addEventListener('input', () => { if (/^#[0-9a-f]{6}$/i.test(color.value)) colorPick.value = color.value; });
  const greeting = h('input', { value: s.greeting });
  const required = h('input', { type: 'checkbox', checked: s.identityRequired });
  const ownTopics = h('input', { type: 'checkbox', checked: !!s.restrictAgentsToTopics });
  const maxMb = h('input', { id: 'site-max-file', type: 'number', min: '1', max: '1024', step: '1', value: String(Math.round((s.maxFileBytes || 10 * 1048576) / 1048576)) });
  const kinds = h('select', { id: 'site-file-kinds' },
    [['none', 'site.kindNone'], ['images', 'site.kindImages'], ['documents', 'site.kindDocuments'], ['any', 'site.kindAny']]
      .map(([v, label]) => h('option', { value: v, text: t(label), selected: (s.fileKinds || 'documents') === v })));
  const retention = h('input', { id: 'site-retention', type: 'number', min: '0', max: '36500', step: '1', value: String(s.fileRetentionDays || 0) });
  const emailDelay = h('input', { id: 'site-email-delay', type: 'number', min: '0', max: '10080', step: '1', value: String(s.emailDelayMinutes || 0) });
  const notifyEmail = h('input', { id: 'site-notify-email', type: 'email', value: s.notifyEmail || '', autocomplete: 'off', placeholder: 'support-team@example.com' });
  const autoResolve = h('input', { id: 'site-auto-resolve', type: 'number', min: '0', max: '8760', step: '1', value: String(s.autoResolveHours || 0) });
  const hours = hoursFields(s);
  const texts = h('textarea', { id: 'site-texts', rows: '4', spellcheck: 'false', placeholder: t('site.textsPlaceholder'),
    value: Object.entries(s.widgetTexts || {}).map(([k, v]) => `${k} = ${v}`).join('\n') });
  const attributes = h('textarea', { id: 'site-attributes', rows: '4', spellcheck: 'false', placeholder: 'plan text visitor = Plan',
    value: (s.attributes || []).map(attributeLine).join('\n') });
  const perIp = h('input', { id: 'site-per-ip', type: 'number', min: '0', max: '100000', step: '1', value: String(s.newConversationsPerIpHour || 0) });
  const msg = status();
  const save = h('button', { type: 'submit', class: 'btn primary', text: t(site ? 'site.save' : 'site.create') });
  const parts = [
    field('site-name', t('common.name'), name),
    field('site-origins', t('site.origins'), origins, t('site.originsHint')),
    field('site-topics', t('common.topics'), topics, t('site.topicsHint')),
    [h('label', { for: 'site-color', text: t('site.colour') }), h('div', { class: 'inline' }, colorPick, Object.assign(color, { id: 'site-color' }))],
    field('site-greeting', t('site.greeting'), greeting),
    field('site-texts', t('site.texts'), texts, t('site.textsHint')),
    field('site-attributes', t('site.attributes'), attributes, t('site.attributesHint')),
    [h('label', { for: 'site-required', text: t('site.required') }),
      h('div', {}, h('label', { class: 'check' }, Object.assign(required, { id: 'site-required' }), t('site.requiredCheck')))],
    [h('label', { for: 'site-own-topics', text: t('site.ownTopics') }),
      h('div', {}, h('label', { class: 'check' }, Object.assign(ownTopics, { id: 'site-own-topics' }), t('site.ownTopicsCheck')))],
    field('site-max-file', t('site.maxFile'), maxMb, t('site.maxFileHint')),
    field('site-file-kinds', t('site.fileKinds'), kinds, t('site.fileKindsHint')),
    field('site-retention', t('site.retention'), retention, t('site.retentionHint')),
    [h('span', { text: t('site.email') }), h('div', {}, emailStatus(info || { emailEnabled: false }))],
    field('site-email-delay', t('site.emailDelay'), emailDelay, t('site.emailDelayHint')),
    field('site-notify-email', t('site.notifyEmail'), notifyEmail, t('site.notifyEmailHint')),
    field('site-auto-resolve', t('site.autoResolve'), autoResolve, t('site.autoResolveHint')),
    ...hours.parts,
    field('site-per-ip', t('site.perIp'), perIp, t('site.perIpHint')),
  ];
  if (site) {
    const secret = h('input', { id: 'site-secret', value: site.identitySecret, readOnly: true, class: 'snippet', 'aria-label': t('site.secret') });
    const snippet = `<script src="${ctx.server}/widget.js" data-site="${site.siteKey}" async></script>`;
    const snip = h('textarea', { id: 'site-snippet', class: 'snippet', rows: '2', readOnly: true, value: snippet });
    const copyMsg = h('span', { class: 'action-msg', role: 'status' });
    parts.push(
      [h('label', { for: 'site-secret', text: t('site.secret') }), h('div', {},
        h('div', { class: 'inline' }, secret,
          h('button', { type: 'button', class: 'btn small', text: t('common.copy'), onclick: async () => { copyMsg.textContent = t((await copyText(site.identitySecret, secret)) ? 'common.copied' : 'site.secretCopyFallback'); } }),
          h('button', { type: 'button', class: 'btn small danger', text: t('site.rotate'), onclick: async () => {
            if (!confirm(t('site.rotateConfirm'))) return;
            try { const n = await ctx.client.updateSite({ ...site }, true); secret.value = n.identitySecret; site.identitySecret = n.identitySecret; msg.textContent = t('site.rotated'); } catch (e) { msg.textContent = t('site.rotateFailed', { error: errText(e) }); }
          } })),
        h('p', { class: 'hint', text: t('site.secretHint') }))],
      [h('label', { for: 'site-snippet', text: t('site.snippet') }), h('div', {}, snip,
        h('div', { class: 'inline' }, h('button', { type: 'button', class: 'btn small', id: 'copy-snippet', text: t('site.copySnippet'), onclick: async () => { copyMsg.textContent = t((await copyText(snippet, snip)) ? 'site.copiedClipboard' : 'site.copyFallback'); } }), copyMsg),
        h('p', { class: 'hint', text: t('site.snippetHint', { key: site.siteKey }) }))]);
  }
  // novalidate: every field is checked below and its error said in the form's status line.
  const form = h('form', { class: 'grid-form', 'aria-label': t('site.settings'), novalidate: true }, parts, h('div', { class: 'full inline' }, save, msg));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!name.value.trim()) { msg.textContent = t('site.needName'); name.focus(); return; }
    notifyEmail.value = notifyEmail.value.trim();
    if (!notifyEmail.checkValidity()) { msg.textContent = t('site.badNotifyEmail'); notifyEmail.focus(); return; }
    const schedule = hours.read();
    if (schedule.error) { msg.textContent = schedule.error; return; }
    const widgetTexts = {};
    for (const line of texts.value.split('\n').map((x) => x.trim()).filter(Boolean)) {
      const i = line.indexOf('=');
      if (i < 1) { msg.textContent = t('site.badTexts', { line: JSON.stringify(line.slice(0, 40)) }); texts.focus(); return; }
      widgetTexts[line.slice(0, i).trim()] = line.slice(i + 1).trim();
    }
    const declared = [];
    for (const line of attributes.value.split('\n').map((x) => x.trim()).filter(Boolean)) {
      const d = parseAttributeLine(line);
      if (!d) { msg.textContent = t('site.badAttributes', { line: JSON.stringify(line.slice(0, 60)) }); attributes.focus(); return; }
      declared.push(d);
    }
    const data = { name: name.value.trim(), allowedOrigins: lines(origins.value), topics: lines(topics.value), color: color.value.trim(),
      greeting: greeting.value, identityRequired: required.checked, restrictAgentsToTopics: ownTopics.checked,
      maxFileBytes: Math.max(1, Math.min(1024, Number(maxMb.value) || 10)) * 1048576, fileKinds: kinds.value,
      fileRetentionDays: Math.max(0, Math.floor(Number(retention.value) || 0)),
      emailDelayMinutes: Math.max(0, Math.min(10080, Math.floor(Number(emailDelay.value) || 0))),
      notifyEmail: notifyEmail.value,
      newConversationsPerIpHour: Math.max(0, Math.min(100000, Math.floor(Number(perIp.value) || 0))),
      autoResolveHours: Math.max(0, Math.min(8760, Math.floor(Number(autoResolve.value) || 0))),
      ...schedule.value, widgetTexts, attributes: declared };
    save.disabled = true;
    try {
      if (site) {
        const n = await ctx.client.updateSite({ ...site, ...data, identitySecret: '' }, false);
        Object.assign(site, n);
        msg.textContent = t('common.saved');
      } else {
        const n = await ctx.client.createSite(data);
        location.hash = `#/admin/sites/${n.id}`;
      }
    } catch (err) {
      msg.textContent = t('common.saveFailed', { error: errText(err) });
    } finally { save.disabled = false; }
  });
  return form;
}

// ---- agents ---------------------------------------------------------------------------------

/** A multi-select of sites (none selected: every site). */
function sitePicker(sites, selected, label) {
  const sel = h('select', { multiple: true, size: String(Math.min(4, Math.max(2, sites.length))), 'aria-label': label });
  for (const s of sites) {
    const o = h('option', { value: s.id, text: s.name });
    o.selected = selected.includes(s.id);
    sel.append(o);
  }
  return sel;
}
const picked = (sel) => [...sel.selectedOptions].map((o) => o.value);
const roleOptions = () => [h('option', { value: 'agent', text: t('agents.roleAgent') }), h('option', { value: 'admin', text: t('agents.roleAdmin') })];

async function agents(page, ctx) {
  const [list, sites] = await Promise.all([ctx.client.listAgents(), ctx.client.listSites()]);
  const msg = status();
  const rows = list.map((a) => {
    const role = h('select', { 'aria-label': t('agents.roleOf', { name: a.name }) }, roleOptions());
    role.value = a.role;
    const topics = h('input', { class: 'topics', value: a.topics.join(', '), placeholder: t('agents.allTopics'), 'aria-label': t('agents.topicsOf', { name: a.name }) });
    const cap = h('input', { type: 'number', min: '0', max: '100', value: String(a.capacity), 'aria-label': t('agents.capacityOf', { name: a.name }) });
    const active = h('input', { type: 'checkbox', checked: a.active, 'aria-label': t('agents.activeOf', { name: a.name }) });
    const siteSel = sitePicker(sites, a.siteIds || [], t('agents.sitesOf', { name: a.name }));
    const save = h('button', { type: 'button', class: 'btn small', text: t('common.save'), onclick: async () => {
      try {
        await ctx.client.updateAgent({ ...a, role: role.value, topics: lines(topics.value), capacity: Number(cap.value) || 0, active: active.checked, siteIds: picked(siteSel) }, null);
        msg.textContent = t('agents.saved', { name: a.name });
      } catch (e) { msg.textContent = t('agents.saveFailed', { name: a.name, error: errText(e) }); }
    } });
    return h('tr', {}, h('td', {}, h('strong', { text: a.name }), h('div', { class: 'muted small', text: a.email })),
      h('td', {}, role), h('td', {}, topics), h('td', {}, siteSel), h('td', {}, cap), h('td', {}, active), h('td', {}, save));
  });
  const email = h('input', { type: 'email', required: true });
  const name = h('input', { required: true });
  const pw = h('input', { type: 'password', minlength: '8', required: true, autocomplete: 'new-password' });
  const role = h('select', {}, roleOptions());
  const topics = h('input', { value: 'Order' });
  const cap = h('input', { type: 'number', min: '0', value: '5' });
  const newSites = sitePicker(sites, [], t('agents.newSites'));
  const cmsg = status();
  const form = h('form', { class: 'grid-form card', 'aria-label': t('agents.new') },
    h('h2', { class: 'full', text: t('agents.add') }),
    field('na-email', t('common.email'), email), field('na-name', t('common.name'), name), field('na-pw', t('agents.password'), pw, t('agents.passwordHint')),
    field('na-role', t('agents.role'), role), field('na-topics', t('common.topics'), topics, t('agents.topicsHint')),
    field('na-sites', t('common.sites'), newSites, t('agents.sitesHint')), field('na-cap', t('agents.capacity'), cap, t('agents.capacityHint')),
    h('div', { class: 'full inline' }, h('button', { type: 'submit', class: 'btn primary', text: t('agents.create') }), cmsg));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await ctx.client.createAgent({ email: email.value.trim(), name: name.value.trim(), role: role.value, topics: lines(topics.value), capacity: Number(cap.value) || 0, active: true, siteIds: picked(newSites) }, pw.value);
      agents(page, ctx);
    } catch (err) { cmsg.textContent = t('common.createFailed', { error: errText(err) }); }
  });
  const heads = [t('common.agent'), t('agents.role'), t('common.topics'), t('common.sites'), t('agents.capacity'), t('agents.active'), ''];
  replace(page, h('div', { class: 'stack' },
    h('h1', { text: t('admin.agents') }),
    h('table', { class: 'data' }, h('thead', {}, h('tr', {}, heads.map((c) => h('th', { scope: 'col', text: c })))), h('tbody', {}, rows)),
    msg, form));
}

// ---- canned replies -------------------------------------------------------------------------

async function canned(page, ctx) {
  const [list, siteList] = await Promise.all([ctx.client.listCannedReplies(null), ctx.client.listSites()]);
  const siteName = (id) => (id ? (siteList.find((s) => s.id === id)?.name || id) : t('canned.allSites'));
  const msg = status();
  const rows = list.map((r) => h('tr', {}, h('td', {}, h('code', { text: `/${r.shortcut}` })), h('td', { text: r.text }), h('td', { text: siteName(r.siteId) }),
    h('td', {}, h('button', { type: 'button', class: 'btn small danger', text: t('common.delete'), 'aria-label': t('canned.deleteOf', { shortcut: r.shortcut }), onclick: async () => {
      try { await ctx.client.deleteCannedReply(r.id); canned(page, ctx); } catch (e) { msg.textContent = t('common.deleteFailed', { error: errText(e) }); }
    } }))));
  const shortcut = h('input', { required: true, pattern: '[A-Za-z0-9_\\-]+' });
  const text = h('textarea', { rows: '3', required: true });
  const site = h('select', {}, h('option', { value: '', text: t('canned.allSites') }), siteList.map((s) => h('option', { value: s.id, text: s.name })));
  const form = h('form', { class: 'grid-form card', 'aria-label': t('canned.new') },
    h('h2', { class: 'full', text: t('canned.add') }),
    field('cr-short', t('canned.shortcut'), shortcut, t('canned.shortcutHint')), field('cr-text', t('canned.text'), text), field('cr-site', t('common.site'), site),
    h('div', { class: 'full inline' }, h('button', { type: 'submit', class: 'btn primary', text: t('canned.save') }), msg));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await ctx.client.putCannedReply({ shortcut: shortcut.value.trim().replace(/^\//, ''), text: text.value, siteId: site.value });
      canned(page, ctx);
    } catch (err) { msg.textContent = t('common.saveFailed', { error: errText(err) }); }
  });
  replace(page, h('div', { class: 'stack' }, h('h1', { text: t('canned.title') }),
    list.length ? h('table', { class: 'data' }, h('thead', {}, h('tr', {}, [t('canned.shortcut'), t('canned.text'), t('common.site'), ''].map((c) => h('th', { scope: 'col', text: c })))), h('tbody', {}, rows))
      : h('p', { class: 'muted', text: t('canned.none') }),
    form));
}

// ---- API keys -------------------------------------------------------------------------------

async function keys(page, ctx, shown) {
  const list = await ctx.client.listApiKeys();
  const msg = status();
  const name = h('input', { required: true, placeholder: 'faq-bot' });
  const chat = h('input', { type: 'checkbox', checked: true });
  const admin = h('input', { type: 'checkbox' });
  const form = h('form', { class: 'grid-form card', 'aria-label': t('keys.new') },
    h('h2', { class: 'full', text: t('keys.create') }),
    field('key-name', t('common.name'), name, t('keys.nameHint')),
    [h('span', { text: t('keys.scopes') }), h('div', { class: 'inline' }, h('label', { class: 'check' }, chat, 'chat'), h('label', { class: 'check' }, admin, 'admin'))],
    h('div', { class: 'full inline' }, h('button', { type: 'submit', class: 'btn primary', text: t('keys.createButton') }), msg));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const scopes = [chat.checked && 'chat', admin.checked && 'admin'].filter(Boolean);
    if (!name.value.trim() || !scopes.length) { msg.textContent = t('keys.needScope'); return; }
    try {
      const r = await ctx.client.createApiKey(name.value.trim(), scopes);
      keys(page, ctx, r);
    } catch (err) { msg.textContent = t('common.createFailed', { error: errText(err) }); }
  });
  const secretBox = shown ? h('div', { class: 'card', role: 'alert' },
    h('h2', { text: t('keys.secretOf', { name: shown.apiKey.name }) }),
    h('p', { text: t('keys.secretOnce') }),
    h('div', { class: 'secret', id: 'api-secret', text: shown.secret }),
    h('button', { type: 'button', class: 'btn small', text: t('common.copy'), onclick: () => copyText(shown.secret) })) : null;
  const heads = [t('common.name'), t('keys.scopes'), t('keys.created'), t('keys.state'), ''];
  replace(page, h('div', { class: 'stack' }, h('h1', { text: t('keys.title') }), secretBox,
    list.length ? h('table', { class: 'data' },
      h('thead', {}, h('tr', {}, heads.map((c) => h('th', { scope: 'col', text: c })))),
      h('tbody', {}, list.map((k) => h('tr', {}, h('td', { text: k.name }), h('td', { text: k.scopes.join(', ') }), h('td', { text: fullTime(k.createdAt) }),
        h('td', { text: t(k.active ? 'keys.active' : 'keys.revoked') }),
        h('td', {}, k.active ? h('button', { type: 'button', class: 'btn small danger', text: t('keys.revoke'), onclick: async () => {
          if (!confirm(t('keys.revokeConfirm', { name: k.name }))) return;
          try { await ctx.client.revokeApiKey(k.id); keys(page, ctx); } catch (e) { msg.textContent = t('keys.revokeFailed', { error: errText(e) }); }
        } }) : null)))))
      : h('p', { class: 'muted', text: t('keys.none') }),
    form));
}

// ---- report ---------------------------------------------------------------------------------

/** A report day ("2026-03-05", the site's calendar) as a date of the language shown. */
function dayLabel(day) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day || '');
  if (!m) return day;
  return dateFormat({ dateStyle: 'medium', timeZone: 'UTC' }).format(new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]))));
}

async function report(page, ctx) {
  const siteList = await ctx.client.listSites();
  if (!siteList.length) { replace(page, h('p', { text: t('report.noSite') })); return; }
  const site = siteList.find((s) => s.id === ctx.arg) || siteList[0];
  const days = h('select', { id: 'report-days', 'aria-label': t('report.period') }, [7, 30, 90].map((d) => h('option', { value: String(d), text: t('report.lastDays', { count: d }) })));
  days.value = '30';
  const picker = h('select', { id: 'report-site', 'aria-label': t('common.site'), onchange: (e) => { location.hash = `#/admin/report/${e.target.value}`; } },
    siteList.map((s) => h('option', { value: s.id, text: s.name })));
  picker.value = site.id;
  const out = h('div', { 'aria-live': 'polite' });
  const load = async () => {
    replace(out, h('p', { class: 'muted', text: t('common.loading') }));
    try {
      const r = await ctx.client.siteReport(site.id, Number(days.value));
      const fig = (k, v, id) => h('div', { class: 'figure', id }, h('div', { class: 'v', text: v }), h('div', { class: 'k', text: k }));
      const max = Math.max(1, ...r.perDay.map((d) => d.conversations));
      replace(out,
        h('div', { class: 'figures' },
          fig(t('report.conversations'), num(r.conversations), 'fig-conversations'),
          fig(t('report.resolved'), num(r.resolved), 'fig-resolved'),
          fig(t('report.firstResponse'), duration(r.medianFirstResponseMs), 'fig-first-response'),
          fig(t('report.resolution'), duration(r.medianResolutionMs), 'fig-resolution'),
          fig(t('report.satisfaction', { count: r.ratings }),
            r.ratings ? `${num(r.satisfactionAverage, { minimumFractionDigits: 1, maximumFractionDigits: 1 })} / 5` : '—', 'fig-satisfaction')),
        h('h2', { text: t('report.perDay') }),
        h('div', { class: 'bars', role: 'table', 'aria-label': t('report.perDay') },
          r.perDay.filter((d, i, a) => d.conversations > 0 || i >= a.length - 14).map((d) => h('div', { class: 'bar-row', role: 'row' },
            h('span', { role: 'cell', text: dayLabel(d.day) }),
            h('span', { role: 'cell' }, h('span', { class: 'bar', style: `display:block;width:${(d.conversations / max) * 100}%` })),
            h('span', { role: 'cell', text: num(d.conversations) })))),
        h('h2', { text: t('report.perLabel') }),
        r.perLabel.length
          ? h('ul', { class: 'plain per-label', id: 'report-labels' }, r.perLabel.map((l) => h('li', { text: `${l.name}: ${num(l.conversations)}` })))
          : h('p', { class: 'muted', text: t('report.noLabelled') }));
    } catch (e) { replace(out, h('p', { class: 'msg-bad', role: 'alert', text: t('report.loadFailed', { error: errText(e) }) })); }
  };
  days.addEventListener('change', load);
  replace(page, h('div', { class: 'section-head' }, h('h1', { text: t('report.title', { name: site.name }) }), h('div', { class: 'inline' }, picker, days)), out);
  load();
}
