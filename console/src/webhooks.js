// A site's webhooks (part of its admin settings): the endpoints, their signing secrets (shown
// once, on create and rotate), and each endpoint's delivery log with resend. The server POSTs
// each event as JSON signed per Standard Webhooks (webhook-id, webhook-timestamp,
// webhook-signature headers); retries, ordering and the log are the server's.
import { h, clear, replace } from './dom.js';
import { errText, copyText, fullTime, preciseTime } from './format.js';

/** [event, what it means, checked in a new endpoint's form]. */
export const EVENTS = [
  ['conversation.created', 'A visitor starts a conversation', true],
  ['conversation.assigned', 'A conversation is assigned, joined or transferred', true],
  ['conversation.resolved', 'A conversation is resolved', true],
  ['conversation.reopened', 'A resolved conversation is reopened', true],
  ['message.created', 'A visitor or an agent sends a message', true],
  ['note.created', 'An agent writes a private note (internal: send only to systems your team trusts)', false],
  ['rating.submitted', 'A visitor rates a conversation', false],
  ['visitor.identified', 'A visitor gives an email or is identified by your site\'s user id', false],
];
const STATE_LABEL = { pending: 'Pending', delivered: 'Delivered', failed: 'Failed' };
const PAGE = 50;

const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

/** The "Webhooks" section of a site's settings page (loads itself). */
export function webhooksSection(ctx, site) {
  const st = {
    list: [], // Webhook
    editing: null, // the Webhook the form edits (null: the form adds one)
    log: null, // the open delivery log: { w, filter, rows, more, slot, msg, head }
  };
  const msg = h('p', { class: 'action-msg', role: 'status', id: 'webhooks-msg' });
  const secretSlot = h('div');
  const listSlot = h('div', { class: 'table-wrap' }, h('p', { class: 'muted', text: 'Loading…' }));
  const logSlot = h('div');
  const refresh = h('button', { type: 'button', class: 'btn small', id: 'webhooks-refresh', text: 'Refresh', onclick: () => load() });

  // ---- the endpoints --------------------------------------------------------------------

  async function load() {
    refresh.disabled = true;
    try {
      st.list = await ctx.client.listWebhooks(site.id);
      renderList();
      if (st.log) {
        const w = st.list.find((x) => x.id === st.log.w.id);
        if (w) { st.log.w = w; await loadLog(); } else closeLog();
      }
    } catch (e) {
      replace(listSlot, h('p', { class: 'msg-bad', role: 'alert', text: `Could not load the webhooks: ${errText(e)}` }));
    } finally { refresh.disabled = false; }
  }

  function renderList() {
    if (!st.list.length) {
      replace(listSlot, h('p', { class: 'muted', id: 'webhook-list', text: 'No endpoints yet: add one below to have events of this site POSTed to your systems.' }));
      return;
    }
    replace(listSlot, h('table', { class: 'data', id: 'webhook-list', 'aria-label': 'Webhook endpoints' },
      h('thead', {}, h('tr', {}, ['Endpoint', 'Events', 'Enabled', 'Queue', 'Last success', ''].map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', {}, st.list.map(endpointRow))));
  }

  function endpointRow(w) {
    const enabled = h('input', { type: 'checkbox', checked: w.enabled, class: 'wh-enabled', 'aria-label': `Enabled: ${w.url}` });
    enabled.addEventListener('change', async () => {
      enabled.disabled = true;
      try {
        await ctx.client.updateWebhook({ ...w, enabled: enabled.checked }, false);
        msg.textContent = enabled.checked ? `${w.url} enabled.` : `${w.url} disabled: nothing is sent to it until it is enabled again.`;
        await load();
      } catch (e) {
        enabled.checked = !enabled.checked;
        msg.textContent = `Could not change the endpoint: ${errText(e)}`;
      } finally { enabled.disabled = false; }
    });
    const open = st.log && st.log.w.id === w.id;
    return h('tr', { dataset: { webhook: w.id } },
      h('td', { class: 'wh-endpoint' },
        h('code', { class: 'wh-url', text: w.url }),
        w.description ? h('div', { class: 'muted small', text: w.description }) : null,
        w.disabledReason ? h('p', { class: 'wh-warning', text: `⚠ ${w.disabledReason}. Fix the receiver, then enable the endpoint again.` }) : null,
        !w.disabledReason && w.failingSince ? h('p', { class: 'wh-failing small', text: `Failing since ${fullTime(w.failingSince)}` }) : null),
      h('td', { class: 'small' }, h('ul', { class: 'plain wh-events' }, w.events.map((e) => h('li', {}, h('code', { text: e }))))),
      h('td', {}, h('label', { class: 'check' }, enabled, h('span', { 'aria-hidden': 'true', text: w.enabled ? 'On' : 'Off' }))),
      h('td', { class: 'small wh-queue nowrap' },
        h('div', { class: 'wh-pending', text: `${w.pending} pending` }),
        h('div', { class: w.failed ? 'wh-failed msg-bad' : 'wh-failed', text: `${w.failed} failed` })),
      h('td', { class: 'small wh-last-success', text: w.lastSuccessAt ? fullTime(w.lastSuccessAt) : 'Never' }),
      h('td', {}, h('div', { class: 'inline' },
        h('button', { type: 'button', class: 'btn small', 'aria-pressed': String(!!open), 'aria-label': `Deliveries of ${w.url}`, text: 'Deliveries',
          onclick: () => (open ? closeLog() : openLog(w)) }),
        h('button', { type: 'button', class: 'btn small', 'aria-label': `Edit ${w.url}`, text: 'Edit', onclick: () => edit(w) }),
        h('button', { type: 'button', class: 'btn small danger', 'aria-label': `Rotate the secret of ${w.url}`, text: 'Rotate secret', onclick: () => rotate(w) }),
        h('button', { type: 'button', class: 'btn small danger', 'aria-label': `Delete ${w.url}`, text: 'Delete', onclick: () => remove(w) }))));
  }

  async function rotate(w) {
    if (!confirm(`Rotate the signing secret of ${w.url}? The old secret stops signing at once: the receiver must verify with the new one.`)) return;
    try {
      const r = await ctx.client.updateWebhook({ ...w }, true);
      showSecret(r.webhook, r.secret, true);
      msg.textContent = 'Secret rotated.';
      await load();
    } catch (e) { msg.textContent = `Could not rotate the secret: ${errText(e)}`; }
  }

  async function remove(w) {
    if (!confirm(`Delete the endpoint ${w.url}? Nothing more is sent to it and its delivery log is deleted.`)) return;
    try {
      await ctx.client.deleteWebhook(w.id);
      if (st.log && st.log.w.id === w.id) closeLog();
      if (st.editing && st.editing.id === w.id) stopEditing();
      msg.textContent = `${w.url} deleted.`;
      await load();
    } catch (e) { msg.textContent = `Could not delete the endpoint: ${errText(e)}`; }
  }

  /** The secret of a new or rotated endpoint: the server returns it this once. */
  function showSecret(w, secret, rotated) {
    const input = h('input', { id: 'webhook-secret', class: 'snippet', value: secret, readOnly: true, 'aria-label': `Signing secret of ${w.url}` });
    const copyMsg = h('span', { class: 'action-msg', role: 'status' });
    replace(secretSlot, h('div', { class: 'card secret-box', role: 'alert', id: 'webhook-secret-box' },
      h('h3', { text: `${rotated ? 'New signing secret' : 'Signing secret'} of ${w.url}` }),
      h('p', { text: 'Copy it now into the receiver: it will not be shown again (the server keeps it only to sign). Receivers verify the webhook-signature header with it, e.g. with a Standard Webhooks library.' }),
      h('div', { class: 'inline' }, input,
        h('button', { type: 'button', class: 'btn small', text: 'Copy', onclick: async () => { copyMsg.textContent = (await copyText(secret, input)) ? 'Copied' : 'Select it and copy'; } }),
        copyMsg),
      h('div', { class: 'inline' }, h('button', { type: 'button', class: 'btn small', text: 'I have copied it: hide', onclick: () => clear(secretSlot) }))));
    input.focus();
    input.select();
  }

  // ---- the delivery log -----------------------------------------------------------------

  function openLog(w) {
    const filter = h('select', { id: 'delivery-filter' },
      [['', 'All'], ['pending', 'Pending'], ['failed', 'Failed'], ['delivered', 'Delivered']].map(([v, t]) => h('option', { value: v, text: t })));
    filter.addEventListener('change', () => loadLog());
    const lmsg = h('p', { class: 'action-msg', role: 'status', id: 'deliveries-msg' });
    const head = h('h3', { id: 'deliveries-title', text: `Deliveries to ${w.url}` });
    const resendAll = h('button', { type: 'button', class: 'btn small', id: 'resend-failed', text: 'Resend all failed', onclick: async () => {
      resendAll.disabled = true;
      try {
        const n = await ctx.client.resendWebhookDeliveries(st.log.w.id);
        lmsg.textContent = n ? `${plural(n, 'delivery', 'deliveries')} queued again.` : 'No failed delivery to resend.';
        await load();
      } catch (e) { lmsg.textContent = `Could not resend: ${errText(e)}`; } finally { resendAll.disabled = false; }
    } });
    const slot = h('div', { class: 'table-wrap' });
    st.log = { w, filter, slot, msg: lmsg, head, rows: [] };
    replace(logSlot, h('section', { class: 'deliveries stack', id: 'deliveries', 'aria-labelledby': 'deliveries-title' },
      h('div', { class: 'section-head' }, head,
        h('button', { type: 'button', class: 'btn small ghost', text: 'Close deliveries', onclick: () => closeLog() })),
      h('div', { class: 'inline' },
        h('label', { for: 'delivery-filter', text: 'Show' }), filter,
        h('button', { type: 'button', class: 'btn small', id: 'deliveries-refresh', text: 'Refresh deliveries', onclick: () => loadLog() }),
        resendAll, lmsg),
      slot));
    renderList(); // the pressed state of its button
    loadLog();
  }

  function closeLog() {
    st.log = null;
    clear(logSlot);
    renderList();
  }

  /** Reads the newest page again (or, with `older`, the page after the rows shown). */
  async function loadLog(older = false) {
    const log = st.log;
    if (!log) return;
    log.head.textContent = `Deliveries to ${log.w.url}`;
    if (!log.rows.length || !older) replace(log.slot, h('p', { class: 'muted', text: 'Loading…' }));
    try {
      const opts = { limit: PAGE };
      if (log.filter.value) opts.state = log.filter.value;
      let rows;
      if (older && log.rows.length) {
        // Events of one millisecond (a conversation's "created" and its first message) can
        // straddle a page: ask from that millisecond on and drop the rows already shown.
        opts.beforeMs = log.rows[log.rows.length - 1].createdAt + 1;
        const seen = new Set(log.rows.map((d) => d.eventId));
        const page = await ctx.client.listWebhookDeliveries(log.w.id, opts);
        const fresh = page.filter((d) => !seen.has(d.eventId));
        rows = log.rows.concat(fresh);
        log.more = page.length === PAGE && fresh.length > 0;
      } else {
        rows = await ctx.client.listWebhookDeliveries(log.w.id, opts);
        log.more = rows.length === PAGE;
      }
      if (st.log !== log) return; // closed or switched meanwhile
      log.rows = rows;
      renderLog(log);
    } catch (e) {
      if (st.log === log) replace(log.slot, h('p', { class: 'msg-bad', role: 'alert', text: `Could not load the deliveries: ${errText(e)}` }));
    }
  }

  function renderLog(log) {
    if (!log.rows.length) {
      replace(log.slot, h('p', { class: 'muted', id: 'delivery-log', text: log.filter.value ? `No ${log.filter.value} delivery.` : 'No delivery yet: events of this site appear here as they happen.' }));
      return;
    }
    replace(log.slot,
      h('table', { class: 'data deliveries-table', id: 'delivery-log', 'aria-label': `Deliveries to ${log.w.url}` },
        h('thead', {}, h('tr', {}, ['Time', 'Event', 'Conversation', 'State', 'Attempts', 'Result', 'Latency (ms)', 'Response', '']
          .map((t) => h('th', { scope: 'col', text: t })))),
        h('tbody', {}, log.rows.map((d) => deliveryRow(log, d)))),
      log.more ? h('button', { type: 'button', class: 'btn small more', text: 'Show older deliveries', onclick: () => loadLog(true) }) : null);
  }

  function deliveryRow(log, d) {
    const result = d.lastStatusCode
      ? h('span', { class: `nowrap ${d.lastStatusCode >= 200 && d.lastStatusCode < 300 ? 'msg-ok' : 'msg-bad'}`, text: `HTTP ${d.lastStatusCode}` })
      : d.lastError ? h('span', { class: 'msg-bad', text: d.lastError })
        : h('span', { class: 'muted', text: d.attempts ? '—' : 'Not tried yet' });
    const resend = d.state === 'failed' || d.state === 'delivered'
      ? h('button', { type: 'button', class: 'btn small', text: 'Resend', 'aria-label': `Resend ${d.eventType} of ${preciseTime(d.createdAt)}`, onclick: async (e) => {
        e.currentTarget.disabled = true;
        try {
          const n = await ctx.client.resendWebhookDeliveries(log.w.id, [d.eventId]);
          log.msg.textContent = n ? `${d.eventType} queued again.` : `${d.eventType} was not queued (already pending?).`;
          await load();
        } catch (err) { log.msg.textContent = `Could not resend: ${errText(err)}`; }
      } })
      : null;
    return h('tr', { dataset: { event: d.eventId, state: d.state }, title: `Event ${d.eventId}` },
      h('td', { class: 'small nowrap', text: preciseTime(d.createdAt) }),
      h('td', {}, h('code', { text: d.eventType || '?' })),
      h('td', { class: 'small' }, d.conversationId
        ? h('a', { href: `#/c/${encodeURIComponent(d.conversationId)}`, class: 'wh-conv', title: d.conversationId, text: d.conversationId })
        : h('span', { class: 'muted', text: '—' })),
      h('td', { class: 'wh-state' }, h('span', { class: `status ${d.state}`, text: STATE_LABEL[d.state] || d.state }),
        d.state === 'pending' && d.nextAttemptAt ? h('div', { class: 'muted small', text: `next try ${preciseTime(d.nextAttemptAt)}` }) : null),
      h('td', { class: 'num wh-attempts', text: String(d.attempts) }),
      h('td', { class: 'small wh-result', title: d.lastAttemptAt ? `Last attempt ${preciseTime(d.lastAttemptAt)}` : null }, result),
      h('td', { class: 'num wh-latency', text: d.attempts ? String(d.lastLatencyMs) : '—' }),
      h('td', { class: 'wh-response-cell' }, d.lastResponse ? h('pre', { class: 'wh-response' }, h('code', { text: d.lastResponse })) : h('span', { class: 'muted', text: '—' })),
      h('td', {}, resend));
  }

  // ---- the add / edit form --------------------------------------------------------------

  const url = h('input', { id: 'wh-url', type: 'url', required: true, placeholder: 'https://hooks.example.com/wsmschat', autocomplete: 'off' });
  const description = h('input', { id: 'wh-description', maxlength: '200', placeholder: 'CRM sync' });
  const boxes = new Map(EVENTS.map(([name, , dflt]) => [name, h('input', { type: 'checkbox', id: `wh-ev-${name.replace('.', '-')}`, value: name, checked: dflt })]));
  const fmsg = h('p', { class: 'action-msg', role: 'status', id: 'webhook-form-msg' });
  const title = h('h3', { class: 'full', text: 'Add an endpoint' });
  const submit = h('button', { type: 'submit', class: 'btn primary', id: 'webhook-submit', text: 'Add endpoint' });
  const cancel = h('button', { type: 'button', class: 'btn', text: 'Cancel', hidden: true, onclick: () => stopEditing() });
  const form = h('form', { class: 'grid-form', id: 'webhook-form', 'aria-label': 'Webhook endpoint' },
    title,
    h('label', { for: 'wh-url', text: 'URL' }),
    h('div', {}, url, h('p', { class: 'hint', text: 'Where the server POSTs each event as JSON. Public https:// addresses only (unless the server allows private ones).' })),
    h('span', { id: 'wh-events-label', text: 'Events' }),
    h('div', { class: 'wh-event-list', role: 'group', 'aria-labelledby': 'wh-events-label' },
      EVENTS.map(([name, what]) => h('label', { class: 'check', for: boxes.get(name).id }, boxes.get(name), h('code', { text: name }), h('span', { class: 'muted', text: what })))),
    h('label', { for: 'wh-description', text: 'Description' }),
    h('div', {}, description, h('p', { class: 'hint', text: 'A note for admins (optional).' })),
    h('div', { class: 'full inline' }, submit, cancel, fmsg));

  function edit(w) {
    st.editing = w;
    url.value = w.url;
    description.value = w.description;
    for (const [name, b] of boxes) b.checked = w.events.includes(name);
    title.textContent = `Edit ${w.url}`;
    submit.textContent = 'Save endpoint';
    cancel.hidden = false;
    fmsg.textContent = '';
    url.focus();
  }

  function stopEditing() {
    st.editing = null;
    form.reset(); // back to the defaults (checked attributes: the new-endpoint choice)
    title.textContent = 'Add an endpoint';
    submit.textContent = 'Add endpoint';
    cancel.hidden = true;
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    fmsg.textContent = '';
    const events = [...boxes].filter(([, b]) => b.checked).map(([name]) => name);
    if (!url.value.trim()) { fmsg.textContent = 'A URL is needed.'; url.focus(); return; }
    if (!events.length) { fmsg.textContent = 'Pick at least one event.'; return; }
    const data = { url: url.value.trim(), events, description: description.value.trim() };
    submit.disabled = true;
    try {
      if (st.editing) {
        await ctx.client.updateWebhook({ ...st.editing, ...data }, false);
        msg.textContent = `${data.url} saved.`;
        stopEditing();
      } else {
        const r = await ctx.client.createWebhook({ siteId: site.id, ...data });
        stopEditing();
        msg.textContent = `${data.url} added.`;
        showSecret(r.webhook, r.secret, false);
      }
      await load();
    } catch (err) {
      fmsg.textContent = `Could not save the endpoint: ${errText(err)}`;
    } finally { submit.disabled = false; }
  });
  // form.reset() restores what the `checked` attribute says: make it the default choice.
  for (const [name, b] of boxes) b.defaultChecked = EVENTS.find(([n]) => n === name)[2];

  load();
  return h('section', { class: 'card stack webhooks', id: 'webhooks', 'aria-labelledby': 'webhooks-title' },
    h('div', { class: 'section-head' }, h('h2', { id: 'webhooks-title', text: 'Webhooks' }), refresh),
    h('p', { class: 'hint', text: 'Your systems are told what happens on this site: each event is POSTed as JSON, signed per Standard Webhooks, retried for over a day while the receiver fails, in order per conversation.' }),
    secretSlot, msg, listSlot, logSlot, form);
}
