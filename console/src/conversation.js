// The open conversation: its header and actions, the log (rendered from the SDK's merged
// view), read marks and the composer.
import { h, replace } from './dom.js';
import { time, fullTime, announce, errText } from './format.js';
import { t, num, dateFormat } from './i18n.js';
import { HISTORY_PAGE, statusLabel, SDK, S, ui } from './state.js';
import { upsertConv, placeInList, scheduleRenderList, labelChips } from './inbox.js';
import { refreshAgentsSoon } from './live.js';
import { loadVisitor } from './visitor.js';
import { attachmentsView } from './files.js';
import { Tray, Viewer } from './upload.js';

// The attachment UI (code shared with the widget, which has its own strings) asks for its
// strings by the widget's keys: the console's are those under `file.`.
export const ft = (key, vars) => t(`file.${key}`, vars);
const refresh = (a) => S.client.attachment(a.id);
export const viewer = new Viewer(document.body, { t: ft, refresh });
const files = (m) => attachmentsView(m.attachments, { t: ft, open: (a, el) => viewer.open(a, el), refresh });

// ---- conversation view ----------------------------------------------------------------------

export function closeConversation() {
  clearTimeout(readTimer);
  S.cv = null;
  replace(ui.convPane, h('div', { class: 'empty' }, h('p', { text: t('inbox.pick') })));
  replace(ui.visitorPane, h('p', { class: 'muted', text: t('inbox.visitorHint') }));
  scheduleRenderList();
}

export async function openConversation(id) {
  if (!ui.convPane) return;
  const cv = {
    id, conv: S.convs.get(id) || null, nodes: new Map(), minSeq: 0, maxSeq: 0, logQueued: false,
    hasMore: false, loadingOlder: false, typingTimer: 0, typingSent: false, typingIdle: 0, mode: 'text',
  };
  S.cv = cv;
  cv.header = h('div', { class: 'conv-header' });
  cv.older = h('button', { type: 'button', class: 'btn ghost small older', text: t('conv.loadEarlier'), hidden: true, onclick: loadOlder });
  cv.msgs = h('ol', { class: 'messages', 'aria-label': t('conv.messages') });
  cv.log = h('div', { class: 'log', role: 'log', 'aria-live': 'polite', 'aria-relevant': 'additions', tabindex: '0', 'aria-label': t('conv.history') },
    cv.older, cv.msgs);
  cv.log.addEventListener('scroll', () => {
    if (cv.log.scrollTop < 40 && cv.hasMore && !cv.loadingOlder) loadOlder();
    if (nearBottom()) cv.jump.hidden = true;
  });
  cv.jump = h('button', { type: 'button', class: 'btn small jump', hidden: true, text: t('conv.newMessages'), onclick: () => { scrollToBottom(); cv.jump.hidden = true; } });
  cv.typing = h('div', { class: 'typing', 'aria-live': 'polite' });
  cv.composer = renderComposer(cv);
  replace(ui.convPane, cv.header, h('div', { class: 'log-wrap' }, cv.log, cv.jump), cv.typing, cv.composer);
  scheduleRenderList();
  // Open the SDK's view now, so live messages arriving while history loads are kept.
  S.client.view(id);
  try {
    const [conv] = await Promise.all([S.client.getConversation(id), S.client.history(id, { limit: HISTORY_PAGE })]);
    if (S.cv !== cv) return;
    upsertConv(conv);
    cv.conv = S.convs.get(id);
    renderConvHeader();
    renderLog();
    scrollToBottom();
    markRead();
    loadVisitor(cv);
  } catch (e) {
    if (S.cv === cv) replace(ui.convPane, h('div', { class: 'empty', role: 'alert' }, h('p', { text: t('conv.openFailed', { error: errText(e) }) })));
  }
}

function nearBottom() {
  const l = S.cv.log;
  return l.scrollHeight - l.scrollTop - l.clientHeight < 80;
}
function scrollToBottom() { const l = S.cv.log; l.scrollTop = l.scrollHeight; }

async function loadOlder() {
  const cv = S.cv;
  if (!cv || cv.loadingOlder || !cv.hasMore) return;
  cv.loadingOlder = true;
  cv.older.textContent = t('common.loading');
  try {
    cv.log.setAttribute('aria-busy', 'true'); // older messages are not news: keep the live region quiet
    // The page merges into the view; renderLog keeps what the agent was reading in place.
    await S.client.history(cv.id, { beforeSeq: cv.minSeq, limit: HISTORY_PAGE });
    if (S.cv !== cv) return;
    renderLog();
  } catch (e) {
    announce(t('conv.loadEarlierFailed', { error: errText(e) }));
  } finally {
    setTimeout(() => cv.log.removeAttribute('aria-busy'), 0);
    cv.loadingOlder = false;
    cv.older.textContent = t('conv.loadEarlier');
  }
}

/** A system message's line, from its structured event (the stored text is English). */
const SYSTEM_TEXT = {
  assigned: (s) => t('sys.assigned', { name: s.agentName }),
  joined: (s) => t('sys.joined', { name: s.agentName }),
  transferred: (s) => t('sys.transferred', { name: s.agentName }),
  resolved: () => t('sys.resolved'),
  reopened: () => t('sys.reopened'),
  rated: (s) => t('sys.rated', { score: s.score }),
  away: (s, m) => t('sys.away', { text: m.text }),
};

function messageEl(m) {
  const when = h('time', { datetime: new Date(m.createdAt).toISOString(), title: fullTime(m.createdAt), text: time(m.createdAt) });
  if (m.kind === 'system') {
    const s = m.system || { kind: '' };
    const text = (SYSTEM_TEXT[s.kind] || (() => m.text || t('sys.other')))(s, m);
    return h('li', { class: 'msg system', dataset: { seq: m.seq } }, h('span', { text }), ' · ', when);
  }
  const mine = m.authorKind !== 'visitor';
  const cls = ['msg', mine ? 'out' : 'in', m.kind === 'note' ? 'note' : '', m.authorId === S.me.id ? 'own' : ''].join(' ');
  const status = mine && m.kind === 'text' ? h('span', { class: 'send-status' }) : null;
  const li = h('li', { class: cls, dataset: { seq: m.seq, who: `${m.authorKind}:${m.authorId}:${m.kind}`, at: m.createdAt } },
    h('div', { class: 'meta' },
      h('span', { class: 'author', text: m.authorName || (m.authorId === S.me.id ? S.me.name : t(mine ? 'common.agent' : 'common.visitor')) }),
      m.kind === 'note' ? h('span', { class: 'tag note-tag', text: t('conv.note') }) : null,
      when, status),
    m.text ? h('div', { class: 'bubble', title: `${m.authorName} · ${fullTime(m.createdAt)}`, text: m.text }) : null,
    files(m));
  return li;
}

/** Renders the log once per burst of `view` events. */
export function scheduleLog() {
  const cv = S.cv;
  if (!cv || cv.logQueued) return;
  cv.logQueued = true;
  queueMicrotask(() => {
    cv.logQueued = false;
    if (S.cv === cv) renderLog();
  });
}

/** The log renders the SDK's merged view (`client.view`): stored messages by seq, then this
 *  console's sends not stored yet. Nodes are kept by key (seq, or the send's clientMsgId) and
 *  built again only when what they show changed; the reading position stays put when older
 *  messages come in above it. */
function renderLog() {
  const cv = S.cv;
  if (!cv) return;
  const v = S.client.view(cv.id);
  const stick = nearBottom();
  const anchor = stick ? null : cv.msgs.firstElementChild;
  const anchorTop = anchor ? anchor.offsetTop : 0;
  const prevMax = cv.maxSeq;
  const nodes = new Map();
  const els = [];
  for (const m of v.messages) {
    const stored = m.status === 'sent';
    const key = stored ? `s${m.seq}` : `p${m.clientMsgId}`;
    const sig = stored ? 'sent' : `${m.status}|${m.error || ''}`;
    let node = cv.nodes.get(key);
    if (!node || node.sig !== sig) node = { el: stored ? messageEl(m) : sendEl(cv, m), sig };
    nodes.set(key, node);
    els.push(node.el);
    if (stored) cv.maxSeq = Math.max(cv.maxSeq, m.seq);
  }
  cv.nodes = nodes;
  let cur = cv.msgs.firstChild;
  for (const el of els) {
    if (el === cur) cur = cur.nextSibling;
    else cv.msgs.insertBefore(el, cur);
  }
  while (cur) {
    const next = cur.nextSibling;
    cur.remove();
    cur = next;
  }
  for (const el of els) groupWithPrevious(el);
  cv.minSeq = v.oldestSeq;
  cv.hasMore = v.hasMore;
  cv.older.hidden = !v.hasMore;
  updateReadMarks(v.visitorReadSeq);
  if (stick) scrollToBottom();
  else {
    if (anchor && anchor.isConnected) cv.log.scrollTop += anchor.offsetTop - anchorTop;
    if (cv.maxSeq > prevMax) cv.jump.hidden = false;
  }
}

/** A send of this console not stored yet: sending, waiting for the network, or refused. */
function sendEl(cv, m) {
  const [cls, label] = m.status === 'failed' ? ['failed', t('conv.notSent', { error: m.error || t('conv.refused') })]
    : m.status === 'waiting' ? ['waiting', t('conv.waiting')] : ['sending', t('conv.sending')];
  return h('li', { class: `msg out own ${m.kind === 'note' ? 'note' : ''} pending`, dataset: { cmid: m.clientMsgId } },
    h('div', { class: 'meta' }, h('span', { class: 'author', text: S.me.name }),
      m.kind === 'note' ? h('span', { class: 'tag note-tag', text: t('conv.note') }) : null,
      h('span', { class: `send-status ${cls}`, text: label }),
      m.status === 'failed' ? [
        h('button', { type: 'button', class: 'btn small retry', text: t('conv.retry'), onclick: () => sendMessage(cv, m.text, m.kind, m.clientMsgId, m.attachments) }),
        h('button', { type: 'button', class: 'btn small ghost', text: t('conv.discard'), onclick: () => S.client.discard(m.clientMsgId) }),
      ] : null),
    m.text ? h('div', { class: 'bubble', text: m.text }) : null,
    files(m));
}

/** Consecutive messages of one author within 5 minutes show the author line once. */
function groupWithPrevious(el) {
  const prev = el.previousElementSibling;
  const same = !!prev && !!el.dataset.who && prev.dataset.who === el.dataset.who
    && Number(el.dataset.at) - Number(prev.dataset.at) < 5 * 60 * 1000;
  el.classList.toggle('cont', same);
}

function updateReadMarks(viewRead = 0) {
  const cv = S.cv;
  if (!cv || !cv.conv) return;
  const read = Math.max(cv.conv.visitorReadSeq || 0, viewRead);
  for (const el of cv.msgs.querySelectorAll('.msg.out:not(.pending) .send-status')) {
    const seq = Number(el.closest('li').dataset.seq);
    const state = seq <= read ? 'read' : 'sent';
    const label = t(`conv.${state}`);
    if (el.textContent !== label) { el.textContent = label; el.className = `send-status ${state}`; }
  }
}

export let readTimer = 0;
export function markRead() {
  const cv = S.cv;
  if (!cv || !cv.maxSeq) return;
  S.localRead.set(cv.id, Math.max(S.localRead.get(cv.id) || 0, cv.maxSeq));
  scheduleRenderList();
  clearTimeout(readTimer);
  readTimer = setTimeout(() => {
    if (!S.client || S.cv !== cv) return;
    const c = S.convs.get(cv.id);
    if (c && c.agentReadSeq >= cv.maxSeq) return;
    S.client.markRead(cv.id, cv.maxSeq).catch(() => {});
  }, 300);
}

export function setTyping(text) {
  const cv = S.cv;
  if (!cv) return;
  clearTimeout(cv.typingTimer);
  cv.typing.textContent = text || '';
  if (text) cv.typingTimer = setTimeout(() => { cv.typing.textContent = ''; }, 8000);
}

/** [value, label] of the snooze menu (09:00 in the agent's clock, see snoozeUntil). */
function snoozes() {
  const nine = dateFormat({ hour: '2-digit', minute: '2-digit' }).format(new Date(2000, 0, 1, 9, 0));
  return [['', t('conv.snoozePick')], ['reply', t('conv.snoozeReply')], ['1h', t('conv.snoozeHour')],
    ['tomorrow', t('conv.snoozeTomorrow', { time: nine })], ['monday', t('conv.snoozeMonday', { time: nine })]];
}

/** When a snooze choice ends, ms (0: at the customer's next message), in the agent's clock. */
function snoozeUntil(choice) {
  if (choice === 'reply') return 0;
  if (choice === '1h') return Date.now() + 3600000;
  const d = new Date();
  d.setHours(9, 0, 0, 0);
  d.setDate(d.getDate() + (choice === 'tomorrow' ? 1 : ((8 - d.getDay()) % 7) || 7));
  return d.getTime();
}

export function renderConvHeader() {
  const cv = S.cv;
  const c = cv.conv;
  if (!c) return;
  const mine = c.assigneeId === S.me.id;
  const actions = [];
  if (!mine && c.status !== 'resolved') actions.push(h('button', { type: 'button', class: 'btn primary', onclick: () => act('join', 'conv.taken'), text: t('conv.take') }));
  cv.assignSel = h('select', { id: 'assign-to', 'aria-label': t(c.assigneeId ? 'conv.transferTo' : 'conv.assignTo') });
  actions.push(h('span', { class: 'assign' }, cv.assignSel,
    h('button', { type: 'button', class: 'btn', text: t(c.assigneeId ? 'conv.transfer' : 'conv.assign'), onclick: () => {
      if (cv.assignSel.value) act('assign', 'conv.assignedDone', cv.assignSel.value);
    } })));
  if (c.status === 'resolved') actions.push(h('button', { type: 'button', class: 'btn', onclick: () => act('reopen', 'conv.reopenedDone'), text: t('conv.reopen') }));
  else actions.push(h('button', { type: 'button', class: 'btn', onclick: () => act('resolve', 'conv.resolvedDone'), text: t('conv.resolve') }));
  if (c.status === 'open') {
    if (c.snoozed) actions.push(h('button', { type: 'button', class: 'btn', id: 'wake', onclick: () => act('wake', 'conv.woken'), text: t('conv.wake') }));
    else {
      actions.push(h('select', { id: 'snooze-pick', class: 'snooze-pick', 'aria-label': t('conv.snooze'), onchange: (e) => {
        const v = e.target.value;
        e.target.value = '';
        if (v) act('snooze', 'conv.snoozedDone', snoozeUntil(v));
      } }, snoozes().map(([v, label]) => h('option', { value: v, text: label }))));
    }
  }
  actions.push(h('button', { type: 'button', class: 'btn ghost', id: 'download-transcript', onclick: downloadTranscript, text: t('conv.transcript') }));
  const siteLabels = [...S.labels.values()].filter((l) => l.siteId === c.siteId);
  if (siteLabels.length) {
    const has = new Set(c.labelIds || []);
    actions.push(h('details', { class: 'label-picker', id: 'label-picker' },
      h('summary', { class: 'btn ghost', text: t('conv.labels') }),
      h('div', { class: 'label-menu', role: 'group', 'aria-label': t('conv.labels') }, siteLabels.map((l) => h('label', { class: 'check' },
        h('input', { type: 'checkbox', checked: has.has(l.id), dataset: { label: l.id }, onchange: async (e) => {
          const on = e.target.checked;
          try { await S.client.labelConversation(c.id, on ? [l.id] : [], on ? [] : [l.id]); } catch (err) { cv.actionMsg.textContent = t('conv.labelsFailed', { error: errText(err) }); e.target.checked = !on; }
        } }),
        h('span', { class: 'label-chip', style: `--label: ${l.color}`, text: l.name }))))));
  }
  replace(cv.header,
    h('div', { class: 'conv-title' },
      h('h2', { text: c.visitorName || t('common.visitor') }),
      h('span', { class: `status ${c.status}`, text: statusLabel(c.status) }),
      h('span', { class: 'topic', text: c.topic }),
      h('span', { class: 'muted', text: c.assigneeName ? t('conv.assignedTo', { name: mine ? t('common.me') : c.assigneeName })
        : (c.status === 'queued' ? t('conv.inQueue', { position: c.queuePosition || '?' }) : t('conv.unassigned')) }),
      c.rating ? h('span', { class: 'rating', text: t('conv.rated', { rating: c.rating }) }) : null,
      c.snoozed ? h('span', { class: 'snoozed', id: 'snoozed-chip', text: c.snoozedUntil ? t('conv.snoozedUntil', { when: fullTime(c.snoozedUntil) }) : t('conv.snoozedReply') }) : null,
      labelChips(c),
      h('button', { type: 'button', class: 'btn ghost small visitor-toggle', 'aria-controls': 'visitor-pane', onclick: () => {
        // Shown (narrow screens): its emails read again, they change while the panel is away.
        if (ui.layout.classList.toggle('show-visitor') && cv.refreshEmails) cv.refreshEmails();
      }, text: t('conv.visitorToggle') })),
    h('div', { class: 'actions', role: 'group', 'aria-label': t('conv.actions') }, actions),
    cv.actionMsg = h('p', { class: 'action-msg', role: 'status' }));
  renderAssignOptions();
}

export function renderAssignOptions() {
  const cv = S.cv;
  if (!cv || !cv.assignSel || !cv.conv) return;
  const cur = cv.assignSel.value;
  const others = S.agents.filter((a) => a.agentId !== cv.conv.assigneeId);
  const status = (s) => (['online', 'away', 'offline'].includes(s) ? t(`presence.${s}`) : s);
  replace(cv.assignSel, h('option', { value: '', text: t(cv.conv.assigneeId ? 'conv.transferToPick' : 'conv.assignToPick') }),
    others.map((a) => h('option', { value: a.agentId, text: `${a.agentId === S.me.id ? t('conv.agentMe') : a.name} · ${status(a.status)}${a.capacity ? ` · ${num(a.load)}/${num(a.capacity)}` : ''}` })));
  if ([...cv.assignSel.options].some((o) => o.value === cur)) cv.assignSel.value = cur;
}

/** `done`: the key of what the status line says when it worked. */
async function act(what, done, arg) {
  const cv = S.cv;
  if (!cv) return;
  cv.actionMsg.textContent = '…';
  try {
    if (what === 'assign') await S.client.assign(cv.id, arg);
    else if (what === 'snooze') await S.client.snooze(cv.id, arg);
    else await S.client[what](cv.id);
    const before = S.convs.get(cv.id);
    const c = upsertConv(await S.client.getConversation(cv.id));
    if (S.cv === cv) {
      cv.conv = c;
      renderConvHeader();
      cv.actionMsg.textContent = t(done);
    }
    placeInList(c, before);
    refreshAgentsSoon();
  } catch (e) {
    if (S.cv === cv) cv.actionMsg.textContent = t('conv.actFailed', { error: errText(e) });
  }
}

/** The conversation as a text file (the server's transcript: with the private notes, marked). */
async function downloadTranscript() {
  const cv = S.cv;
  if (!cv) return;
  cv.actionMsg.textContent = t('conv.transcriptBusy');
  try {
    const r = await S.client.transcript(cv.id);
    const filename = r.filename || `conversation-${cv.id}.txt`;
    const url = URL.createObjectURL(new Blob([r.text], { type: 'text/plain;charset=utf-8' }));
    const a = h('a', { href: url, download: filename, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    // Revoked once the browser has started the download (at once can cancel it in some).
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    if (S.cv === cv) cv.actionMsg.textContent = t('conv.transcriptDone', { file: filename });
  } catch (e) {
    if (S.cv === cv) cv.actionMsg.textContent = t('conv.transcriptFailed', { error: errText(e) });
  }
}

// ---- composer -------------------------------------------------------------------------------

function renderComposer(cv) {
  const ta = h('textarea', { id: 'composer', rows: '3', placeholder: t('compose.replyPlaceholder'), 'aria-label': t('compose.reply'),
    'aria-autocomplete': 'list', 'aria-controls': 'canned-list', 'aria-expanded': 'false' });
  const modeReply = h('button', { type: 'button', class: 'mode', 'aria-pressed': 'true', text: t('compose.reply') });
  const modeNote = h('button', { type: 'button', class: 'mode', 'aria-pressed': 'false', text: t('compose.note') });
  const setMode = (m) => {
    cv.mode = m;
    modeReply.setAttribute('aria-pressed', String(m === 'text'));
    modeNote.setAttribute('aria-pressed', String(m === 'note'));
    form.classList.toggle('note-mode', m === 'note');
    ta.setAttribute('aria-label', t(m === 'note' ? 'compose.noteLabel' : 'compose.reply'));
    ta.placeholder = t(m === 'note' ? 'compose.notePlaceholder' : 'compose.replyPlaceholder');
    ta.focus();
  };
  modeReply.addEventListener('click', () => setMode('text'));
  modeNote.addEventListener('click', () => setMode('note'));
  const popup = h('ul', { id: 'canned-list', class: 'canned', role: 'listbox', 'aria-label': t('compose.canned'), hidden: true });
  const sendBtn = h('button', { type: 'submit', class: 'btn primary', text: t('compose.send') });
  // Files: the paperclip, drop onto the composer, paste; a note's files stay with agents.
  const tray = new Tray({
    client: () => S.client, conversationId: () => cv.id,
    site: () => null, t: ft
  });
  cv.tray = tray;
  const picker = h('input', { type: 'file', multiple: true, hidden: true, tabindex: '-1', onchange: () => { tray.add([...picker.files]); picker.value = ''; } });
  const attachBtn = h('button', { type: 'button', class: 'btn ghost attach', 'aria-label': ft('attach'), title: ft('attach'), text: '📎', onclick: () => picker.click() });
  const form = h('form', { class: 'composer' },
    h('div', { class: 'modes', role: 'group', 'aria-label': t('compose.kind') }, modeReply, modeNote),
    popup, tray.errorEl, tray.el,
    h('div', { class: 'compose-row' }, attachBtn, picker, ta, sendBtn));
  ta.addEventListener('paste', (e) => {
    const f = e.clipboardData && e.clipboardData.files;
    if (f && f.length) { e.preventDefault(); tray.add([...f]); }
  });
  const dragging = (e) => e.dataTransfer && [...e.dataTransfer.types].includes('Files');
  form.addEventListener('dragover', (e) => { if (dragging(e)) { e.preventDefault(); form.classList.add('dropping'); } });
  form.addEventListener('dragleave', () => form.classList.remove('dropping'));
  form.addEventListener('drop', (e) => {
    form.classList.remove('dropping');
    if (!dragging(e)) return;
    e.preventDefault();
    tray.add([...e.dataTransfer.files]);
  });
  let items = [];
  let active = 0;
  const closePopup = () => { popup.hidden = true; ta.setAttribute('aria-expanded', 'false'); ta.removeAttribute('aria-activedescendant'); items = []; };
  const pick = (r) => { ta.value = r.text; closePopup(); ta.focus(); };
  const showPopup = async () => {
    const v = ta.value;
    if (!v.startsWith('/') || v.includes('\n')) return closePopup();
    if (!S.canned) {
      try { S.canned = await S.client.listCannedReplies(null); } catch { S.canned = []; }
    }
    const q = v.slice(1).toLowerCase();
    const siteId = cv.conv?.siteId;
    items = S.canned.filter((r) => (!r.siteId || r.siteId === siteId) && (r.shortcut.toLowerCase().startsWith(q) || r.text.toLowerCase().includes(q))).slice(0, 8);
    if (!items.length) {
      replace(popup, h('li', { class: 'none', text: t('compose.noCanned') }));
    } else {
      active = Math.min(active, items.length - 1);
      replace(popup, items.map((r, i) => h('li', { id: `canned-${i}`, role: 'option', 'aria-selected': String(i === active), class: i === active ? 'active' : '',
        onmousedown: (e) => { e.preventDefault(); pick(r); } }, h('strong', { text: `/${r.shortcut}` }), ' ', h('span', { text: r.text }))));
      ta.setAttribute('aria-activedescendant', `canned-${active}`);
    }
    popup.hidden = false;
    ta.setAttribute('aria-expanded', 'true');
  };
  ta.addEventListener('input', () => { active = 0; showPopup(); ownTyping(cv, ta.value.length > 0); });
  ta.addEventListener('blur', () => setTimeout(closePopup, 150));
  ta.addEventListener('keydown', (e) => {
    if (!popup.hidden && items.length) {
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        active = (active + (e.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length;
        showPopup();
        return;
      }
      if (e.key === 'Enter' || e.key === 'Tab') { e.preventDefault(); pick(items[active]); return; }
    }
    if (e.key === 'Escape' && !popup.hidden) { e.preventDefault(); closePopup(); return; }
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = ta.value;
    if (!text.trim() && tray.empty) return;
    let attachments = [];
    if (!tray.empty) {
      sendBtn.disabled = true;
      const ok = await tray.ready();
      sendBtn.disabled = false;
      if (!ok) { tray.error(ft('uploadFailedSend')); return; }
      attachments = tray.attachments();
      tray.clear();
    }
    ta.value = '';
    closePopup();
    ownTyping(cv, false);
    sendMessage(cv, text, cv.mode, undefined, attachments);
    if (attachments.length) setTimeout(() => loadVisitor(cv), 500);
    ta.focus();
  });
  return form;
}

function ownTyping(cv, on) {
  clearTimeout(cv.typingIdle);
  if (on) {
    const now = Date.now();
    if (!cv.typingSent || now - cv.typingSentAt > 3000) {
      cv.typingSent = true;
      cv.typingSentAt = now;
      if (cv.mode !== 'note') S.client.typing(cv.id, true).catch(() => {});
    }
    cv.typingIdle = setTimeout(() => ownTyping(cv, false), 4000);
  } else if (cv.typingSent) {
    cv.typingSent = false;
    S.client.typing(cv.id, false).catch(() => {});
  }
}

/** Sends (or sends again, with the same clientMsgId) a reply or note; the view shows its
 *  progress and the stored message. */
function sendMessage(cv, text, kind, cmid, attachments) {
  S.client.send(text, { conversationId: cv.id, kind, clientMsgId: cmid || SDK.ChatClient.newId(), attachments: attachments || [] }).then((ack) => {
    S.localRead.set(cv.id, Math.max(S.localRead.get(cv.id) || 0, ack.seq));
  }, () => { /* shown as failed in the view */ });
  scrollToBottom();
}
