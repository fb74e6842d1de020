// A site's webhooks (part of its admin settings): the endpoints, their signing secrets (shown
// once, on create and rotate), and each endpoint's delivery log with resend. The server POSTs
// each event as JSON signed per Standard Webhooks (webhook-id, webhook-timestamp,
// webhook-signature headers); retries, ordering and the log are the server's.
import { h, clear, replace } from './dom.js';
import { errText, copyText, fullTime, preciseTime } from './format.js';
import { t, num } from './i18n.js';

/** [event, checked in a new endpoint's form]; what each means: `wh.ev.<event>`. */
export const EVENTS = [
  ['conversation.created', true],
  ['conversation.assigned', true],
  ['conversation.resolved', true],
  ['conversation.reopened', true],
  ['message.created', true],
  ['note.created', false],
  ['rating.submitted', false],
  ['visitor.identified', false],
];
const STATES = ['pending', 'delivered', 'failed'];
const stateLabel = (s) => (STATES.includes(s) ? t(`wh.${s}`) : s);
const PAGE = 50;

/** The "Webhooks" section of a site's settings page (loads itself). */
export function webhooksSection(ctx, site) {
  const st = {
    list: [], // Webhook
    editing: null, // the Webhook the form edits (null: the form adds one)
    log: null, // the open delivery log: { w, filter, rows, more, slot, msg, head }
  };
  const msg = h('p', { class: 'action-msg', role: 'status', id: 'webhooks-msg' });
  const secretSlot = h('div');
  const listSlot = h('div', { class: 'table-wrap' }, h('p', { class: 'muted', text: t('common.loading') }));
  const logSlot = h('div');
  const refresh = h('button', { type: 'button', class: 'btn small', id: 'webhooks-refresh', text: t('common.refresh'), onclick: () => load() });

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
      replace(listSlot, h('p', { class: 'msg-bad', role: 'alert', text: t('wh.loadFailed', { error: errText(e) }) }));
    } finally { refresh.disabled = false; }
  }

  function renderList() {
    if (!st.list.length) {
      replace(listSlot, h('p', { class: 'muted', id: 'webhook-list', text: t('wh.none') }));
      return;
    }
    const heads = [t('wh.endpoint'), t('wh.events'), t('wh.enabled'), t('wh.queue'), t('wh.lastSuccess'), ''];
    replace(listSlot, h('table', { class: 'data', id: 'webhook-list', 'aria-label': t('wh.endpoints') },
      h('thead', {}, h('tr', {}, heads.map((c) => h('th', { scope: 'col', text: c })))),
      h('tbody', {}, st.list.map(endpointRow))));
  }

  function endpointRow(w) {
    const enabled = h('input', { type: 'checkbox', checked: w.enabled, class: 'wh-enabled', 'aria-label': t('wh.enabledOf', { url: w.url }) });
    enabled.addEventListener('change', async () => {
      enabled.disabled = true;
      try {
        await ctx.client.updateWebhook({ ...w, enabled: enabled.checked }, false);
        msg.textContent = t(enabled.checked ? 'wh.enabledDone' : 'wh.disabledDone', { url: w.url });
        await load();
      } catch (e) {
        enabled.checked = !enabled.checked;
        msg.textContent = t('wh.changeFailed', { error: errText(e) });
      } finally { enabled.disabled = false; }
    });
    const open = st.log && st.log.w.id === w.id;
    return h('tr', { dataset: { webhook: w.id } },
      h('td', { class: 'wh-endpoint' },
        h('code', { class: 'wh-url', text: w.url }),
        w.description ? h('div', { class: 'muted small', text: w.description }) : null,
        w.disabledReason ? h('p', { class: 'wh-warning', text: t('wh.disabledReason', { reason: w.disabledReason }) }) : null,
        !w.disabledReason && w.failingSince ? h('p', { class: 'wh-failing small', text: t('wh.failingSince', { when: fullTime(w.failingSince) }) }) : null),
      h('td', { class: 'small' }, h('ul', { class: 'plain wh-events' }, w.events.map((e) => h('li', {}, h('code', { text: e }))))),
      h('td', {}, h('label', { class: 'check' }, enabled, h('span', { 'aria-hidden': 'true', text: t(w.enabled ? 'wh.on' : 'wh.off') }))),
      h('td', { class: 'small wh-queue nowrap' },
        h('div', { class: 'wh-pending', text: t('wh.pendingCount', { count: w.pending }) }),
        h('div', { class: w.failed ? 'wh-failed msg-bad' : 'wh-failed', text: t('wh.failedCount', { count: w.failed }) })),
      h('td', { class: 'small wh-last-success', text: w.lastSuccessAt ? fullTime(w.lastSuccessAt) : t('wh.never') }),
      h('td', {}, h('div', { class: 'inline' },
        h('button', { type: 'button', class: 'btn small', 'aria-pressed': String(!!open), 'aria-label': t('wh.deliveriesOf', { url: w.url }), text: t('wh.deliveries'),
          onclick: () => (open ? closeLog() : openLog(w)) }),
        h('button', { type: 'button', class: 'btn small', 'aria-label': t('wh.editOf', { url: w.url }), text: t('wh.edit'), onclick: () => edit(w) }),
        h('button', { type: 'button', class: 'btn small danger', 'aria-label': t('wh.rotateOf', { url: w.url }), text: t('wh.rotate'), onclick: () => rotate(w) }),
        h('button', { type: 'button', class: 'btn small danger', 'aria-label': t('wh.deleteOf', { url: w.url }), text: t('common.delete'), onclick: () => remove(w) }))));
  }

  async function rotate(w) {
    if (!confirm(t('wh.rotateConfirm', { url: w.url }))) return;
    try {
      const r = await ctx.client.updateWebhook({ ...w }, true);
      showSecret(r.webhook, r.secret, true);
      msg.textContent = t('wh.rotated');
      await load();
    } catch (e) { msg.textContent = t('wh.rotateFailed', { error: errText(e) }); }
  }

  async function remove(w) {
    if (!confirm(t('wh.deleteConfirm', { url: w.url }))) return;
    try {
      await ctx.client.deleteWebhook(w.id);
      if (st.log && st.log.w.id === w.id) closeLog();
      if (st.editing && st.editing.id === w.id) stopEditing();
      msg.textContent = t('wh.deleted', { url: w.url });
      await load();
    } catch (e) { msg.textContent = t('wh.deleteFailed', { error: errText(e) }); }
  }

  /** The secret of a new or rotated endpoint: the server returns it this once. */
  function showSecret(w, secret, rotated) {
    const input = h('input', { id: 'webhook-secret', class: 'snippet', value: secret, readOnly: true, 'aria-label': t('wh.secretLabel', { url: w.url }) });
    const copyMsg = h('span', { class: 'action-msg', role: 'status' });
    replace(secretSlot, h('div', { class: 'card secret-box', role: 'alert', id: 'webhook-secret-box' },
      h('h3', { text: t(rotated ? 'wh.newSecretTitle' : 'wh.secretTitle', { url: w.url }) }),
      h('p', { text: t('wh.secretOnce') }),
      h('div', { class: 'inline' }, input,
        h('button', { type: 'button', class: 'btn small', text: t('common.copy'), onclick: async () => { copyMsg.textContent = t((await copyText(secret, input)) ? 'common.copied' : 'wh.copyFallback'); } }),
        copyMsg),
      h('div', { class: 'inline' }, h('button', { type: 'button', class: 'btn small', text: t('wh.secretHide'), onclick: () => clear(secretSlot) }))));
    input.focus();
    input.select();
  }

  // ---- the delivery log -----------------------------------------------------------------

  function openLog(w) {
    const filter = h('select', { id: 'delivery-filter' },
      ['', 'pending', 'failed', 'delivered'].map((v) => h('option', { value: v, text: v ? stateLabel(v) : t('wh.all') })));
    filter.addEventListener('change', () => loadLog());
    const lmsg = h('p', { class: 'action-msg', role: 'status', id: 'deliveries-msg' });
    const head = h('h3', { id: 'deliveries-title', text: t('wh.deliveriesTo', { url: w.url }) });
    const resendAll = h('button', { type: 'button', class: 'btn small', id: 'resend-failed', text: t('wh.resendAll'), onclick: async () => {
      resendAll.disabled = true;
      try {
        const n = await ctx.client.resendWebhookDeliveries(st.log.w.id);
        lmsg.textContent = n ? t('wh.requeued', { count: n }) : t('wh.noFailed');
        await load();
      } catch (e) { lmsg.textContent = t('wh.resendFailed', { error: errText(e) }); } finally { resendAll.disabled = false; }
    } });
    const slot = h('div', { class: 'table-wrap' });
    st.log = { w, filter, slot, msg: lmsg, head, rows: [] };
    replace(logSlot, h('section', { class: 'deliveries stack', id: 'deliveries', 'aria-labelledby': 'deliveries-title' },
      h('div', { class: 'section-head' }, head,
        h('button', { type: 'button', class: 'btn small ghost', text: t('wh.closeDeliveries'), onclick: () => closeLog() })),
      h('div', { class: 'inline' },
        h('label', { for: 'delivery-filter', text: t('wh.show') }), filter,
        h('button', { type: 'button', class: 'btn small', id: 'deliveries-refresh', text: t('wh.refreshDeliveries'), onclick: () => loadLog() }),
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
    log.head.textContent = t('wh.deliveriesTo', { url: log.w.url });
    if (!log.rows.length || !older) replace(log.slot, h('p', { class: 'muted', text: t('common.loading') }));
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
      if (st.log === log) replace(log.slot, h('p', { class: 'msg-bad', role: 'alert', text: t('wh.deliveriesLoadFailed', { error: errText(e) }) }));
    }
  }

  function renderLog(log) {
    if (!log.rows.length) {
      const none = { pending: 'wh.noPending', delivered: 'wh.noDelivered', failed: 'wh.noFailedDelivery' }[log.filter.value] || 'wh.noDeliveries';
      replace(log.slot, h('p', { class: 'muted', id: 'delivery-log', text: t(none) }));
      return;
    }
    replace(log.slot,
      h('table', { class: 'data deliveries-table', id: 'delivery-log', 'aria-label': t('wh.deliveriesTo', { url: log.w.url }) },
        h('thead', {}, h('tr', {}, ['time', 'event', 'conversation', 'state', 'attempts', 'result', 'latency', 'response']
          .map((c) => h('th', { scope: 'col', text: t(`wh.col.${c}`) })), h('th', { scope: 'col' }))),
        h('tbody', {}, log.rows.map((d) => deliveryRow(log, d)))),
      log.more ? h('button', { type: 'button', class: 'btn small more', text: t('wh.older'), onclick: () => loadLog(true) }) : null);
  }

  function deliveryRow(log, d) {
    const result = d.lastStatusCode
      ? h('span', { class: `nowrap ${d.lastStatusCode >= 200 && d.lastStatusCode < 300 ? 'msg-ok' : 'msg-bad'}`, text: `HTTP ${d.lastStatusCode}` })
      : d.lastError ? h('span', { class: 'msg-bad', text: d.lastError })
        : h('span', { class: 'muted', text: d.attempts ? '—' : t('wh.notTried') });
    const resend = d.state === 'failed' || d.state === 'delivered'
      ? h('button', { type: 'button', class: 'btn small', text: t('wh.resend'), 'aria-label': t('wh.resendOf', { event: d.eventType, when: preciseTime(d.createdAt) }), onclick: async (e) => {
        e.currentTarget.disabled = true;
        try {
          const n = await ctx.client.resendWebhookDeliveries(log.w.id, [d.eventId]);
          log.msg.textContent = t(n ? 'wh.eventRequeued' : 'wh.eventNotQueued', { event: d.eventType });
          await load();
        } catch (err) { log.msg.textContent = t('wh.resendFailed', { error: errText(err) }); }
      } })
      : null;
    return h('tr', { dataset: { event: d.eventId, state: d.state }, title: t('wh.eventTitle', { id: d.eventId }) },
      h('td', { class: 'small nowrap', text: preciseTime(d.createdAt) }),
      h('td', {}, h('code', { text: d.eventType || '?' })),
      h('td', { class: 'small' }, d.conversationId
        ? h('a', { href: `#/c/${encodeURIComponent(d.conversationId)}`, class: 'wh-conv', title: d.conversationId, text: d.conversationId })
        : h('span', { class: 'muted', text: '—' })),
      h('td', { class: 'wh-state' }, h('span', { class: `status ${d.state}`, text: stateLabel(d.state) }),
        d.state === 'pending' && d.nextAttemptAt ? h('div', { class: 'muted small', text: t('wh.nextTry', { when: preciseTime(d.nextAttemptAt) }) }) : null),
      h('td', { class: 'num wh-attempts', text: num(d.attempts) }),
      h('td', { class: 'small wh-result', title: d.lastAttemptAt ? t('wh.lastAttempt', { when: preciseTime(d.lastAttemptAt) }) : null }, result),
      h('td', { class: 'num wh-latency', text: d.attempts ? num(d.lastLatencyMs) : '—' }),
      h('td', { class: 'wh-response-cell' }, d.lastResponse ? h('pre', { class: 'wh-response' }, h('code', { text: d.lastResponse })) : h('span', { class: 'muted', text: '—' })),
      h('td', {}, resend));
  }

  // ---- the add / edit form --------------------------------------------------------------

  const url = h('input', { id: 'wh-url', type: 'url', required: true, placeholder: 'https://hooks.example.com/wsmschat', autocomplete: 'off' });
  const description = h('input', { id: 'wh-description', maxlength: '200', placeholder: t('wh.descriptionPlaceholder') });
  const boxes = new Map(EVENTS.map(([name, dflt]) => [name, h('input', { type: 'checkbox', id: `wh-ev-${name.replace('.', '-')}`, value: name, checked: dflt })]));
  const fmsg = h('p', { class: 'action-msg', role: 'status', id: 'webhook-form-msg' });
  const title = h('h3', { class: 'full', text: t('wh.add') });
  const submit = h('button', { type: 'submit', class: 'btn primary', id: 'webhook-submit', text: t('wh.addButton') });
  const cancel = h('button', { type: 'button', class: 'btn', text: t('common.cancel'), hidden: true, onclick: () => stopEditing() });
  const form = h('form', { class: 'grid-form', id: 'webhook-form', 'aria-label': t('wh.form') },
    title,
    h('label', { for: 'wh-url', text: t('wh.url') }),
    h('div', {}, url, h('p', { class: 'hint', text: t('wh.urlHint') })),
    h('span', { id: 'wh-events-label', text: t('wh.events') }),
    h('div', { class: 'wh-event-list', role: 'group', 'aria-labelledby': 'wh-events-label' },
      EVENTS.map(([name]) => h('label', { class: 'check', for: boxes.get(name).id }, boxes.get(name), h('code', { text: name }), h('span', { class: 'muted', text: t(`wh.ev.${name}`) })))),
    h('label', { for: 'wh-description', text: t('wh.description') }),
    h('div', {}, description, h('p', { class: 'hint', text: t('wh.descriptionHint') })),
    h('div', { class: 'full inline' }, submit, cancel, fmsg));

  function edit(w) {
    st.editing = w;
    url.value = w.url;
    description.value = w.description;
    for (const [name, b] of boxes) b.checked = w.events.includes(name);
    title.textContent = t('wh.editOf', { url: w.url });
    submit.textContent = t('wh.saveButton');
    cancel.hidden = false;
    fmsg.textContent = '';
    url.focus();
  }

  function stopEditing() {
    st.editing = null;
    form.reset(); // back to the defaults (checked attributes: the new-endpoint choice)
    title.textContent = t('wh.add');
    submit.textContent = t('wh.addButton');
    cancel.hidden = true;
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    fmsg.textContent = '';
    const events = [...boxes].filter(([, b]) => b.checked).map(([name]) => name);
    if (!url.value.trim()) { fmsg.textContent = t('wh.needUrl'); url.focus(); return; }
    if (!events.length) { fmsg.textContent = t('wh.needEvent'); return; }
    const data = { url: url.value.trim(), events, description: description.value.trim() };
    submit.disabled = true;
    try {
      if (st.editing) {
        await ctx.client.updateWebhook({ ...st.editing, ...data }, false);
        msg.textContent = t('wh.saved', { url: data.url });
        stopEditing();
      } else {
        const r = await ctx.client.createWebhook({ siteId: site.id, ...data });
        stopEditing();
        msg.textContent = t('wh.added', { url: data.url });
        showSecret(r.webhook, r.secret, false);
      }
      await load();
    } catch (err) {
      fmsg.textContent = t('wh.saveFailed', { error: errText(err) });
    } finally { submit.disabled = false; }
  });
  // form.reset() restores what the `checked` attribute says: make it the default choice.
  for (const [name, b] of boxes) b.defaultChecked = EVENTS.find(([n]) => n === name)[1];

  load();
  return h('section', { class: 'card stack webhooks', id: 'webhooks', 'aria-labelledby': 'webhooks-title' },
    h('div', { class: 'section-head' }, h('h2', { id: 'webhooks-title', text: t('wh.title') }), refresh),
    h('p', { class: 'hint', text: t('wh.hint') }),
    secretSlot, msg, listSlot, logSlot, form);
}
