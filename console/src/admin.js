// Admin pages (admin role only; the server refuses AdminService calls from other agents anyway).
import { h, replace } from './dom.js';
import { errText, copyText, duration, fullTime } from './format.js';
import { webhooksSection } from './webhooks.js';

const SECTIONS = [
  ['sites', 'Sites'], ['agents', 'Agents'], ['canned', 'Canned replies'], ['keys', 'API keys'], ['report', 'Report'],
];

export function renderAdmin(main, ctx) {
  const body = h('div', { class: 'admin-body' });
  const nav = h('nav', { class: 'admin-nav', 'aria-label': 'Admin' },
    SECTIONS.map(([id, label]) => h('a', { href: `#/admin/${id}`, 'aria-current': id === ctx.section ? 'page' : null, text: label })));
  replace(main, h('div', { class: 'admin' }, nav, body));
  const page = h('div', { class: 'page' });
  body.appendChild(page);
  const fn = { sites, agents, canned, keys, report }[ctx.section] || sites;
  fn(page, ctx).catch((e) => replace(page, h('p', { class: 'msg-bad', role: 'alert', text: `Could not load: ${errText(e)}` })));
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
  const picker = h('select', { id: 'site-pick', 'aria-label': 'Site', onchange: (e) => { location.hash = `#/admin/sites/${e.target.value}`; } },
    list.map((s) => h('option', { value: s.id, text: `${s.name} (${s.siteKey})` })),
    h('option', { value: 'new', text: '+ New site' }));
  picker.value = current ? current.id : 'new';
  replace(page,
    h('div', { class: 'section-head' }, h('h1', { text: current ? `Site: ${current.name}` : 'New site' }), h('div', { class: 'inline' }, picker)),
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
    const name = h('input', { id: 'label-add-name', maxlength: 40, placeholder: 'e.g. Refund', 'aria-label': 'Label name' });
    const color = h('input', { id: 'label-add-color', type: 'color', value: '#2563eb', 'aria-label': 'Label colour' });
    const form = h('form', { class: 'inline', onsubmit: async (e) => {
      e.preventDefault();
      if (!name.value.trim()) { msg.textContent = 'A label needs a name.'; name.focus(); return; }
      try {
        await ctx.client.putLabel({ siteId: site.id, name: name.value.trim(), color: color.value });
        msg.textContent = `Label ${name.value.trim()} added.`;
        load();
      } catch (err) { msg.textContent = `Could not add the label: ${errText(err)}`; }
    } }, name, color, h('button', { type: 'submit', class: 'btn small', id: 'label-add', text: 'Add label' }));
    replace(box,
      h('h2', { id: 'labels-title', text: `Labels (${labels.length})` }),
      h('p', { class: 'hint', text: 'Agents put labels on conversations from the conversation header; the inbox filters by them and the report counts them.' }),
      labels.length ? h('ul', { class: 'plain labels-list' }, labels.map((l) => {
        const n = h('input', { value: l.name, maxlength: 40, 'aria-label': `Name of ${l.name}` });
        const c = h('input', { type: 'color', value: l.color, 'aria-label': `Colour of ${l.name}` });
        return h('li', { class: 'inline', dataset: { label: l.id } },
          h('span', { class: 'label-chip', style: `--label: ${l.color}`, text: l.name }), n, c,
          h('span', { class: 'muted small', text: `${l.conversations} conversation${l.conversations === 1 ? '' : 's'}` }),
          h('button', { type: 'button', class: 'btn ghost small', text: 'Save', onclick: async () => {
            try { await ctx.client.putLabel({ id: l.id, siteId: site.id, name: n.value.trim(), color: c.value }); msg.textContent = 'Label saved.'; load(); } catch (err) { msg.textContent = `Could not save: ${errText(err)}`; }
          } }),
          h('button', { type: 'button', class: 'btn ghost small danger', text: 'Delete', onclick: async () => {
            if (!confirm(`Delete the label ${l.name}? It leaves every conversation.`)) return;
            try { await ctx.client.deleteLabel(l.id); msg.textContent = 'Label deleted.'; load(); } catch (err) { msg.textContent = `Could not delete: ${errText(err)}`; }
          } }));
      })) : h('p', { class: 'muted', text: 'No labels yet.' }),
      form, msg);
  };
  load().catch((e) => replace(box, h('p', { class: 'msg-bad', role: 'alert', text: `Could not load the labels: ${errText(e)}` })));
  return box;
}

// ---- blocks and the audit log -----------------------------------------------------------------

/** The site's blocks (unblock each; add an email or IP/CIDR block) and its audit log. */
function blocksSection(ctx, site) {
  const box = h('section', { class: 'blocks-admin', id: 'blocks-admin', 'aria-labelledby': 'blocks-title' });
  const msg = status();
  const kind = h('select', { id: 'block-add-kind', 'aria-label': 'Block kind' },
    h('option', { value: 'ip', text: 'IP address or range' }), h('option', { value: 'email', text: 'Email' }));
  const value = h('input', { id: 'block-add-value', maxlength: 320, placeholder: '203.0.113.7, 198.51.100.0/24 or spam@example.com', 'aria-label': 'Value' });
  const reason = h('input', { id: 'block-add-reason', maxlength: 500, placeholder: 'Reason', 'aria-label': 'Reason' });
  const load = async () => {
    const [blocks, log] = await Promise.all([ctx.client.listBlocks(site.id), ctx.client.listAuditLog(site.id).catch(() => [])]);
    const form = h('form', { class: 'inline', onsubmit: async (e) => {
      e.preventDefault();
      if (!value.value.trim() || !reason.value.trim()) { msg.textContent = 'A value and a reason are needed.'; return; }
      try {
        const r = await ctx.client.createBlock(site.id, kind.value, value.value.trim(), reason.value.trim());
        msg.textContent = `Blocked ${r.block.value}; ${r.visitorsBlocked} visitor(s) held off now.`;
        value.value = ''; reason.value = '';
        load();
      } catch (err) { msg.textContent = `Could not block: ${errText(err)}`; }
    } }, kind, value, reason, h('button', { type: 'submit', class: 'btn danger small', text: 'Block' }));
    replace(box,
      h('h2', { id: 'blocks-title', text: `Blocked (${blocks.length})` }),
      h('p', { class: 'hint', text: 'Blocked visitors see a neutral “chat unavailable”. Agents block from the visitor panel of a conversation too.' }),
      blocks.length ? h('table', { class: 'table blocks' }, h('thead', {}, h('tr', {}, ['What', 'Reason', 'By', 'When', ''].map((t) => h('th', { text: t })))),
        h('tbody', {}, blocks.map((b) => h('tr', { dataset: { block: b.id } },
          h('td', { text: `${b.kind}: ${b.value}` }), h('td', { text: b.reason }), h('td', { text: b.createdByName }), h('td', { text: fullTime(b.createdAt) }),
          h('td', {}, h('button', { type: 'button', class: 'btn ghost small', text: 'Unblock', onclick: async () => {
            try { await ctx.client.deleteBlock(b.id); msg.textContent = `Unblocked ${b.value}.`; load(); } catch (err) { msg.textContent = `Could not unblock: ${errText(err)}`; }
          } }))))))
        : h('p', { class: 'muted', text: 'Nobody is blocked.' }),
      form, msg,
      h('h3', { text: 'Audit log' }),
      log.length ? h('ul', { class: 'plain audit', id: 'audit-log' }, log.slice(0, 50).map((a) => h('li', {},
        h('span', { text: `${fullTime(a.createdAt)} · ${a.actorName} · ${a.action} ${a.target}` }),
        a.detail ? h('div', { class: 'muted small', text: a.detail }) : null)))
        : h('p', { class: 'muted', text: 'Nothing yet.' }));
  };
  load().catch((e) => replace(box, h('p', { class: 'msg-bad', role: 'alert', text: `Could not load the blocks: ${errText(e)}` })));
  return box;
}

/** "Email: on (from …)" or why it is off, from the server's configuration. */
function emailStatus(info) {
  if (info.error) return h('p', { class: 'email-status msg-bad', id: 'site-email-status', text: `Email: unknown (could not ask the server: ${errText(info.error)})` });
  if (info.emailEnabled) return h('p', { class: 'email-status', id: 'site-email-status', text: `Email: on (from ${info.mailFrom})` });
  return h('p', { class: 'email-status', id: 'site-email-status', text: 'Email: off — start the server with --smtp-url, --mail-from and --public-url to email visitors their unseen replies' });
}

const WEEKDAYS = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'];
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
  const days = WEEKDAYS.map((name, i) => {
    const spans = (s.openingHours || []).filter((x) => x.weekday === i + 1).map((x) => `${hhmm(x.openMinute)}-${hhmm(x.closeMinute)}`);
    return h('input', { id: `site-hours-${i + 1}`, value: spans.join(', '), placeholder: 'closed', 'aria-label': `${name} opening hours`, size: '24' });
  });
  const grid = h('div', { class: 'hours-grid' }, WEEKDAYS.map((name, i) => [h('label', { for: `site-hours-${i + 1}`, text: name }), days[i]]));
  const closedDates = h('textarea', { id: 'site-closed-dates', rows: '3', value: (s.closedDates || []).join('\n'), placeholder: '2026-12-24' });
  const away = h('textarea', { id: 'site-away', rows: '2', maxlength: '1000', value: s.awayMessage || '' });
  const parts = [
    [h('label', { for: 'site-time-zone', text: 'Time zone' }), h('div', {}, tz, list,
      h('p', { class: 'hint', text: 'The opening hours below are read in this zone (e.g. Europe/Berlin). Visitors see times in their own.' }))],
    [h('span', { text: 'Opening hours' }), h('div', {}, grid,
      h('p', { class: 'hint', text: 'Per day, e.g. 09:00-17:00 or 09:00-12:00, 13:00-17:00; empty: closed that day. All days empty: always open. Outside the hours the widget says when you are back, and conversations wait in the queue.' }))],
    field('site-closed-dates', 'Closed dates', closedDates, 'Holidays, one per line (YYYY-MM-DD, in the site\'s time zone).'),
    field('site-away', 'Out-of-office reply', away, 'Optional. Sent once per conversation when a customer writes outside the opening hours.'),
  ];
  const read = () => {
    const openingHours = [];
    for (let i = 0; i < 7; i++) {
      const spans = parseSpans(days[i].value);
      if (!spans) { days[i].focus(); return { error: `${WEEKDAYS[i]}: write the hours like 09:00-17:00 (several separated by commas), or leave it empty.` }; }
      for (const [a, b] of spans) openingHours.push({ weekday: i + 1, openMinute: a, closeMinute: b });
    }
    return { value: { timeZone: tz.value.trim(), openingHours, closedDates: lines(closedDates.value), awayMessage: away.value.trim() } };
  };
  return { parts, read };
}

function siteForm(ctx, site, info) {
  const s = site || { name: '', allowedOrigins: [], topics: ['Product', 'Order', 'Delivery', 'Payment', 'Other'], color: '#2556c4', greeting: '', identityRequired: false };
  const name = h('input', { value: s.name, required: true });
  const origins = h('textarea', { rows: '3', value: s.allowedOrigins.join('\n') });
  const topics = h('textarea', { rows: '5', value: s.topics.join('\n') });
  const colorPick = h('input', { type: 'color', value: /^#[0-9a-f]{6}$/i.test(s.color) ? s.color : '#2556c4', 'aria-label': 'Colour picker' });
  const color = h('input', { value: s.color || '', size: '9' });
  colorPick.addEventListener('input', () => { color.value = colorPick.value; });
  color.addEventListener('input', () => { if (/^#[0-9a-f]{6}$/i.test(color.value)) colorPick.value = color.value; });
  const greeting = h('input', { value: s.greeting });
  const required = h('input', { type: 'checkbox', checked: s.identityRequired });
  const ownTopics = h('input', { type: 'checkbox', checked: !!s.restrictAgentsToTopics });
  const maxMb = h('input', { id: 'site-max-file', type: 'number', min: '1', max: '1024', step: '1', value: String(Math.round((s.maxFileBytes || 10 * 1048576) / 1048576)) });
  const kinds = h('select', { id: 'site-file-kinds' },
    [['none', 'No files'], ['images', 'Images only'], ['documents', 'Images and documents (PDF, text, office, archives)'], ['any', 'Any file']]
      .map(([v, label]) => h('option', { value: v, text: label, selected: (s.fileKinds || 'documents') === v })));
  const retention = h('input', { id: 'site-retention', type: 'number', min: '0', max: '36500', step: '1', value: String(s.fileRetentionDays || 0) });
  const emailDelay = h('input', { id: 'site-email-delay', type: 'number', min: '0', max: '10080', step: '1', value: String(s.emailDelayMinutes || 0) });
  const notifyEmail = h('input', { id: 'site-notify-email', type: 'email', value: s.notifyEmail || '', autocomplete: 'off', placeholder: 'support-team@example.com' });
  const autoResolve = h('input', { id: 'site-auto-resolve', type: 'number', min: '0', max: '8760', step: '1', value: String(s.autoResolveHours || 0) });
  const hours = hoursFields(s);
  const texts = h('textarea', { id: 'site-texts', rows: '4', spellcheck: 'false', placeholder: 'topicQuestion = How can we help?\nde.offline = Wir sind gerade nicht da',
    value: Object.entries(s.widgetTexts || {}).map(([k, v]) => `${k} = ${v}`).join('\n') });
  const perIp = h('input', { id: 'site-per-ip', type: 'number', min: '0', max: '100000', step: '1', value: String(s.newConversationsPerIpHour || 0) });
  const msg = status();
  const save = h('button', { type: 'submit', class: 'btn primary', text: site ? 'Save site' : 'Create site' });
  const parts = [
    field('site-name', 'Name', name),
    field('site-origins', 'Allowed origins', origins, 'One per line, e.g. https://shop.example.com, http://localhost:* or https://*.example.com'),
    field('site-topics', 'Topics', topics, 'One per line; offered to visitors in this order.'),
    [h('label', { for: 'site-color', text: 'Colour' }), h('div', { class: 'inline' }, colorPick, Object.assign(color, { id: 'site-color' }))],
    field('site-greeting', 'Greeting', greeting),
    field('site-texts', 'Widget texts', texts, 'Your own words instead of the widget\'s: one "key = text" per line, e.g. greeting, title, offline, offlineHint, topicQuestion, queuedOffline, closed (keys of the widget\'s strings.js). Prefix a language for it alone: de.greeting = Hallo!'),
    [h('label', { for: 'site-required', text: 'Require verified identity' }),
      h('div', {}, h('label', { class: 'check' }, Object.assign(required, { id: 'site-required' }), 'Refuse visitors without a valid user hash'))],
    [h('label', { for: 'site-own-topics', text: 'Agents see their topics only' }),
      h('div', {}, h('label', { class: 'check' }, Object.assign(ownTopics, { id: 'site-own-topics' }), 'Agents (not admins) see only conversations of their own topics on this site'))],
    field('site-max-file', 'Largest file (MB)', maxMb, 'Visitors and agents can send files up to this size (up to 1024 MB).'),
    field('site-file-kinds', 'Files accepted', kinds, 'The server decides a file\'s kind from its bytes, not its name.'),
    field('site-retention', 'Keep files (days)', retention, 'Files of conversations resolved longer ago are deleted; 0 keeps them.'),
    [h('span', { text: 'Email' }), h('div', {}, emailStatus(info || { emailEnabled: false }))],
    field('site-email-delay', 'Email unseen replies after (minutes)', emailDelay,
      'When a visitor who left an address has not seen an agent\'s replies for this long, they get them in one email with a link back to the chat. 0: the default, 3 minutes.'),
    field('site-notify-email', 'Team address for alerts and the daily digest', notifyEmail,
      'Optional. Besides the topic\'s agents and the admins, this address is emailed when a customer writes while nobody of the topic is online, and gets the daily digest of waiting conversations.'),
    field('site-auto-resolve', 'Auto-resolve after (hours)', autoResolve,
      'An open conversation whose customer has not answered an agent\'s reply for this long is resolved (the customer is asked to rate it). 0: off.'),
    ...hours.parts,
    field('site-per-ip', 'New conversations per address and hour', perIp,
      'One network may start at most this many conversations an hour, so a script cannot flood the queue; the widget tells the visitor when to try again. 0: the server\'s default (30).'),
  ];
  if (site) {
    const secret = h('input', { id: 'site-secret', value: site.identitySecret, readOnly: true, class: 'snippet', 'aria-label': 'Identity secret' });
    const snippet = `<script src="${ctx.server}/widget.js" data-site="${site.siteKey}" async></script>`;
    const snip = h('textarea', { id: 'site-snippet', class: 'snippet', rows: '2', readOnly: true, value: snippet });
    const copyMsg = h('span', { class: 'action-msg', role: 'status' });
    parts.push(
      [h('label', { for: 'site-secret', text: 'Identity secret' }), h('div', {},
        h('div', { class: 'inline' }, secret,
          h('button', { type: 'button', class: 'btn small', text: 'Copy', onclick: async () => { copyMsg.textContent = (await copyText(site.identitySecret, secret)) ? 'Copied' : 'Select and copy it'; } }),
          h('button', { type: 'button', class: 'btn small danger', text: 'Rotate', onclick: async () => {
            if (!confirm('Rotate the identity secret? Your backend must use the new one at once.')) return;
            try { const n = await ctx.client.updateSite({ ...site }, true); secret.value = n.identitySecret; site.identitySecret = n.identitySecret; msg.textContent = 'Secret rotated.'; } catch (e) { msg.textContent = `Could not rotate: ${errText(e)}`; }
          } })),
        h('p', { class: 'hint', text: 'Your backend sends user_hash = hex(HMAC-SHA256(secret, user id)). Keep it private.' }))],
      [h('label', { for: 'site-snippet', text: 'Script tag' }), h('div', {}, snip,
        h('div', { class: 'inline' }, h('button', { type: 'button', class: 'btn small', id: 'copy-snippet', text: 'Copy script tag', onclick: async () => { copyMsg.textContent = (await copyText(snippet, snip)) ? 'Copied to the clipboard' : 'Select it and copy'; } }), copyMsg),
        h('p', { class: 'hint', text: `Paste it into every page of the site. Site key: ${site.siteKey}` }))]);
  }
  // novalidate: every field is checked below and its error said in the form's status line.
  const form = h('form', { class: 'grid-form', 'aria-label': 'Site settings', novalidate: true }, parts, h('div', { class: 'full inline' }, save, msg));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!name.value.trim()) { msg.textContent = 'A name is needed.'; name.focus(); return; }
    notifyEmail.value = notifyEmail.value.trim();
    if (!notifyEmail.checkValidity()) { msg.textContent = 'The team address is not an email address: correct it or leave it empty.'; notifyEmail.focus(); return; }
    const schedule = hours.read();
    if (schedule.error) { msg.textContent = schedule.error; return; }
    const widgetTexts = {};
    for (const line of texts.value.split('\n').map((x) => x.trim()).filter(Boolean)) {
      const i = line.indexOf('=');
      if (i < 1) { msg.textContent = `Widget texts: write "key = text" (not ${JSON.stringify(line.slice(0, 40))}).`; texts.focus(); return; }
      widgetTexts[line.slice(0, i).trim()] = line.slice(i + 1).trim();
    }
    const data = { name: name.value.trim(), allowedOrigins: lines(origins.value), topics: lines(topics.value), color: color.value.trim(),
      greeting: greeting.value, identityRequired: required.checked, restrictAgentsToTopics: ownTopics.checked,
      maxFileBytes: Math.max(1, Math.min(1024, Number(maxMb.value) || 10)) * 1048576, fileKinds: kinds.value,
      fileRetentionDays: Math.max(0, Math.floor(Number(retention.value) || 0)),
      emailDelayMinutes: Math.max(0, Math.min(10080, Math.floor(Number(emailDelay.value) || 0))),
      notifyEmail: notifyEmail.value,
      newConversationsPerIpHour: Math.max(0, Math.min(100000, Math.floor(Number(perIp.value) || 0))),
      autoResolveHours: Math.max(0, Math.min(8760, Math.floor(Number(autoResolve.value) || 0))),
      ...schedule.value, widgetTexts };
    save.disabled = true;
    try {
      if (site) {
        const n = await ctx.client.updateSite({ ...site, ...data, identitySecret: '' }, false);
        Object.assign(site, n);
        msg.textContent = 'Saved.';
      } else {
        const n = await ctx.client.createSite(data);
        location.hash = `#/admin/sites/${n.id}`;
      }
    } catch (err) {
      msg.textContent = `Could not save: ${errText(err)}`;
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

async function agents(page, ctx) {
  const [list, sites] = await Promise.all([ctx.client.listAgents(), ctx.client.listSites()]);
  const msg = status();
  const rows = list.map((a) => {
    const role = h('select', { 'aria-label': `Role of ${a.name}` }, h('option', { value: 'agent', text: 'Agent' }), h('option', { value: 'admin', text: 'Admin' }));
    role.value = a.role;
    const topics = h('input', { class: 'topics', value: a.topics.join(', '), placeholder: 'All topics', 'aria-label': `Topics of ${a.name}` });
    const cap = h('input', { type: 'number', min: '0', max: '100', value: String(a.capacity), 'aria-label': `Capacity of ${a.name}` });
    const active = h('input', { type: 'checkbox', checked: a.active, 'aria-label': `${a.name} active` });
    const siteSel = sitePicker(sites, a.siteIds || [], `Sites of ${a.name} (none: all)`);
    const save = h('button', { type: 'button', class: 'btn small', text: 'Save', onclick: async () => {
      try {
        await ctx.client.updateAgent({ ...a, role: role.value, topics: lines(topics.value), capacity: Number(cap.value) || 0, active: active.checked, siteIds: picked(siteSel) }, null);
        msg.textContent = `${a.name} saved.`;
      } catch (e) { msg.textContent = `Could not save ${a.name}: ${errText(e)}`; }
    } });
    return h('tr', {}, h('td', {}, h('strong', { text: a.name }), h('div', { class: 'muted small', text: a.email })),
      h('td', {}, role), h('td', {}, topics), h('td', {}, siteSel), h('td', {}, cap), h('td', {}, active), h('td', {}, save));
  });
  const email = h('input', { type: 'email', required: true });
  const name = h('input', { required: true });
  const pw = h('input', { type: 'password', minlength: '8', required: true, autocomplete: 'new-password' });
  const role = h('select', {}, h('option', { value: 'agent', text: 'Agent' }), h('option', { value: 'admin', text: 'Admin' }));
  const topics = h('input', { value: 'Order' });
  const cap = h('input', { type: 'number', min: '0', value: '5' });
  const newSites = sitePicker(sites, [], 'Sites of the new agent (none: all)');
  const cmsg = status();
  const form = h('form', { class: 'grid-form card', 'aria-label': 'New agent' },
    h('h2', { class: 'full', text: 'Add an agent' }),
    field('na-email', 'Email', email), field('na-name', 'Name', name), field('na-pw', 'Initial password', pw, 'At least 8 characters; share it privately.'),
    field('na-role', 'Role', role), field('na-topics', 'Topics', topics, 'Comma separated'),
    field('na-sites', 'Sites', newSites, 'None selected: every site. Admins always see every site.'), field('na-cap', 'Capacity', cap, 'Open conversations at once'),
    h('div', { class: 'full inline' }, h('button', { type: 'submit', class: 'btn primary', text: 'Create agent' }), cmsg));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await ctx.client.createAgent({ email: email.value.trim(), name: name.value.trim(), role: role.value, topics: lines(topics.value), capacity: Number(cap.value) || 0, active: true, siteIds: picked(newSites) }, pw.value);
      agents(page, ctx);
    } catch (err) { cmsg.textContent = `Could not create: ${errText(err)}`; }
  });
  replace(page, h('div', { class: 'stack' },
    h('h1', { text: 'Agents' }),
    h('table', { class: 'data' }, h('thead', {}, h('tr', {}, ['Agent', 'Role', 'Topics', 'Sites', 'Capacity', 'Active', ''].map((t) => h('th', { scope: 'col', text: t })))), h('tbody', {}, rows)),
    msg, form));
}

// ---- canned replies -------------------------------------------------------------------------

async function canned(page, ctx) {
  const [list, siteList] = await Promise.all([ctx.client.listCannedReplies(null), ctx.client.listSites()]);
  const siteName = (id) => (id ? (siteList.find((s) => s.id === id)?.name || id) : 'All sites');
  const msg = status();
  const rows = list.map((r) => h('tr', {}, h('td', {}, h('code', { text: `/${r.shortcut}` })), h('td', { text: r.text }), h('td', { text: siteName(r.siteId) }),
    h('td', {}, h('button', { type: 'button', class: 'btn small danger', text: 'Delete', 'aria-label': `Delete /${r.shortcut}`, onclick: async () => {
      try { await ctx.client.deleteCannedReply(r.id); canned(page, ctx); } catch (e) { msg.textContent = `Could not delete: ${errText(e)}`; }
    } }))));
  const shortcut = h('input', { required: true, pattern: '[A-Za-z0-9_\\-]+' });
  const text = h('textarea', { rows: '3', required: true });
  const site = h('select', {}, h('option', { value: '', text: 'All sites' }), siteList.map((s) => h('option', { value: s.id, text: s.name })));
  const form = h('form', { class: 'grid-form card', 'aria-label': 'New canned reply' },
    h('h2', { class: 'full', text: 'Add or replace a canned reply' }),
    field('cr-short', 'Shortcut', shortcut, 'Typed after "/" in the composer'), field('cr-text', 'Text', text), field('cr-site', 'Site', site),
    h('div', { class: 'full inline' }, h('button', { type: 'submit', class: 'btn primary', text: 'Save reply' }), msg));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await ctx.client.putCannedReply({ shortcut: shortcut.value.trim().replace(/^\//, ''), text: text.value, siteId: site.value });
      canned(page, ctx);
    } catch (err) { msg.textContent = `Could not save: ${errText(err)}`; }
  });
  replace(page, h('div', { class: 'stack' }, h('h1', { text: 'Canned replies' }),
    list.length ? h('table', { class: 'data' }, h('thead', {}, h('tr', {}, ['Shortcut', 'Text', 'Site', ''].map((t) => h('th', { scope: 'col', text: t })))), h('tbody', {}, rows))
      : h('p', { class: 'muted', text: 'No canned replies yet.' }),
    form));
}

// ---- API keys -------------------------------------------------------------------------------

async function keys(page, ctx, shown) {
  const list = await ctx.client.listApiKeys();
  const msg = status();
  const name = h('input', { required: true, placeholder: 'faq-bot' });
  const chat = h('input', { type: 'checkbox', checked: true });
  const admin = h('input', { type: 'checkbox' });
  const form = h('form', { class: 'grid-form card', 'aria-label': 'New API key' },
    h('h2', { class: 'full', text: 'Create an API key' }),
    field('key-name', 'Name', name, 'Shown as the author of its messages'),
    [h('span', { text: 'Scopes' }), h('div', { class: 'inline' }, h('label', { class: 'check' }, chat, 'chat'), h('label', { class: 'check' }, admin, 'admin'))],
    h('div', { class: 'full inline' }, h('button', { type: 'submit', class: 'btn primary', text: 'Create key' }), msg));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const scopes = [chat.checked && 'chat', admin.checked && 'admin'].filter(Boolean);
    if (!name.value.trim() || !scopes.length) { msg.textContent = 'A name and at least one scope are needed.'; return; }
    try {
      const r = await ctx.client.createApiKey(name.value.trim(), scopes);
      keys(page, ctx, r);
    } catch (err) { msg.textContent = `Could not create: ${errText(err)}`; }
  });
  const secretBox = shown ? h('div', { class: 'card', role: 'alert' },
    h('h2', { text: `Secret of "${shown.apiKey.name}"` }),
    h('p', { text: 'Copy it now: it is shown once and only its hash is stored.' }),
    h('div', { class: 'secret', id: 'api-secret', text: shown.secret }),
    h('button', { type: 'button', class: 'btn small', text: 'Copy', onclick: () => copyText(shown.secret) })) : null;
  replace(page, h('div', { class: 'stack' }, h('h1', { text: 'API keys' }), secretBox,
    list.length ? h('table', { class: 'data' },
      h('thead', {}, h('tr', {}, ['Name', 'Scopes', 'Created', 'State', ''].map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', {}, list.map((k) => h('tr', {}, h('td', { text: k.name }), h('td', { text: k.scopes.join(', ') }), h('td', { text: fullTime(k.createdAt) }),
        h('td', { text: k.active ? 'Active' : 'Revoked' }),
        h('td', {}, k.active ? h('button', { type: 'button', class: 'btn small danger', text: 'Revoke', onclick: async () => {
          if (!confirm(`Revoke "${k.name}"? Services using it stop working.`)) return;
          try { await ctx.client.revokeApiKey(k.id); keys(page, ctx); } catch (e) { msg.textContent = `Could not revoke: ${errText(e)}`; }
        } }) : null)))))
      : h('p', { class: 'muted', text: 'No API keys yet.' }),
    form));
}

// ---- report ---------------------------------------------------------------------------------

async function report(page, ctx) {
  const siteList = await ctx.client.listSites();
  if (!siteList.length) { replace(page, h('p', { text: 'No site yet.' })); return; }
  const site = siteList.find((s) => s.id === ctx.arg) || siteList[0];
  const days = h('select', { id: 'report-days', 'aria-label': 'Period' }, [7, 30, 90].map((d) => h('option', { value: String(d), text: `Last ${d} days` })));
  days.value = '30';
  const picker = h('select', { id: 'report-site', 'aria-label': 'Site', onchange: (e) => { location.hash = `#/admin/report/${e.target.value}`; } },
    siteList.map((s) => h('option', { value: s.id, text: s.name })));
  picker.value = site.id;
  const out = h('div', { 'aria-live': 'polite' });
  const load = async () => {
    replace(out, h('p', { class: 'muted', text: 'Loading…' }));
    try {
      const r = await ctx.client.siteReport(site.id, Number(days.value));
      const fig = (k, v, id) => h('div', { class: 'figure', id }, h('div', { class: 'v', text: v }), h('div', { class: 'k', text: k }));
      const max = Math.max(1, ...r.perDay.map((d) => d.conversations));
      replace(out,
        h('div', { class: 'figures' },
          fig('Conversations', String(r.conversations), 'fig-conversations'),
          fig('Resolved', String(r.resolved), 'fig-resolved'),
          fig('Median first response', duration(r.medianFirstResponseMs), 'fig-first-response'),
          fig('Median resolution', duration(r.medianResolutionMs), 'fig-resolution'),
          fig(`Satisfaction (${r.ratings} rating${r.ratings === 1 ? '' : 's'})`, r.ratings ? `${r.satisfactionAverage.toFixed(1)} / 5` : '—', 'fig-satisfaction')),
        h('h2', { text: 'Conversations per day' }),
        h('div', { class: 'bars', role: 'table', 'aria-label': 'Conversations per day' },
          r.perDay.filter((d, i, a) => d.conversations > 0 || i >= a.length - 14).map((d) => h('div', { class: 'bar-row', role: 'row' },
            h('span', { role: 'cell', text: d.day }),
            h('span', { role: 'cell' }, h('span', { class: 'bar', style: `display:block;width:${(d.conversations / max) * 100}%` })),
            h('span', { role: 'cell', text: String(d.conversations) })))),
        h('h2', { text: 'Conversations per label' }),
        r.perLabel.length
          ? h('ul', { class: 'plain per-label', id: 'report-labels' }, r.perLabel.map((l) => h('li', { text: `${l.name}: ${l.conversations}` })))
          : h('p', { class: 'muted', text: 'No labelled conversation in this period.' }));
    } catch (e) { replace(out, h('p', { class: 'msg-bad', role: 'alert', text: `Could not load the report: ${errText(e)}` })); }
  };
  days.addEventListener('change', load);
  replace(page, h('div', { class: 'section-head' }, h('h1', { text: `Report: ${site.name}` }), h('div', { class: 'inline' }, picker, days)), out);
  load();
}
