// The inbox: the lists (mine, unassigned, all), their filters, counts and search.
import { h, clear, replace } from './dom.js';
import { shortWhen, errText } from './format.js';
import { t, num } from './i18n.js';
import { PAGE, statusLabel, S, ui, shell } from './state.js';
import { sessionExpired } from './app.js';
import { updateTitle } from './live.js';

// ---- inbox ----------------------------------------------------------------------------------


export function renderInbox() {
  ui.tabs = {};
  const tab = (name, label) => {
    const count = h('span', { class: 'count' });
    const b = h('button', { type: 'button', class: 'tab', 'aria-pressed': String(S.list.name === name), onclick: () => setList({ name }) }, label, ' ', count);
    ui.tabs[name] = { b, count };
    return b;
  };
  ui.status = h('select', { id: 'f-status', onchange: (e) => setList({ status: e.target.value }) },
    h('option', { value: '', text: t('inbox.anyStatus') }), h('option', { value: 'queued', text: t('status.queued') }),
    h('option', { value: 'open', text: t('status.open') }), h('option', { value: 'resolved', text: t('status.resolved') }));
  ui.status.value = S.list.status;
  ui.topic = h('select', { id: 'f-topic', onchange: (e) => setList({ topic: e.target.value }) });
  fillTopics();
  ui.label = h('select', { id: 'f-label', onchange: (e) => setList({ labelId: e.target.value }) });
  fillLabels();
  let searchTimer = 0;
  ui.search = h('input', { id: 'f-search', type: 'search', placeholder: t('inbox.searchPlaceholder'), title: t('inbox.searchHint'), value: S.list.query,
    oninput: (e) => { clearTimeout(searchTimer); searchTimer = setTimeout(() => setList({ query: e.target.value.trim() }), 300); } });
  ui.listEl = h('ul', { class: 'conv-list', id: 'conv-list', 'aria-label': t('inbox.conversations'), onkeydown: listKeys });
  ui.listInfo = h('p', { class: 'list-info muted', role: 'status' });
  ui.more = h('button', { type: 'button', class: 'btn ghost more', text: t('inbox.loadMore'), hidden: true, onclick: () => loadList(false) });
  ui.rows = new Map();
  ui.inboxPane = h('section', { class: 'pane inbox', 'aria-label': t('inbox.label') },
    h('div', { class: 'tabs', role: 'group', 'aria-label': t('inbox.lists') },
      tab('mine', t('inbox.mine')), tab('unassigned', t('inbox.unassigned')), tab('all', t('inbox.all')), tab('snoozed', t('inbox.snoozed'))),
    h('div', { class: 'filters' },
      h('label', { class: 'sr-only', for: 'f-status', text: t('inbox.status') }), ui.status,
      h('label', { class: 'sr-only', for: 'f-topic', text: t('inbox.topic') }), ui.topic,
      h('label', { class: 'sr-only', for: 'f-label', text: t('inbox.labelFilter') }), ui.label,
      h('label', { class: 'sr-only', for: 'f-search', text: t('inbox.search') }), ui.search),
    ui.listEl, ui.listInfo, ui.more);
  ui.convPane = h('section', { class: 'pane conversation', 'aria-label': t('inbox.conversationPane') },
    h('div', { class: 'empty' }, h('p', { text: t('inbox.pick') })));
  ui.visitorPane = h('aside', { class: 'pane visitor', 'aria-label': t('inbox.visitorPane') }, h('p', { class: 'muted', text: t('inbox.visitorHint') }));
  ui.layout = h('div', { class: 'inbox-layout' }, ui.inboxPane, ui.convPane, ui.visitorPane);
  replace(shell.main, ui.layout);
  updateCounts();
  // Page the inbox in as the end of the list scrolls into view.
  const io = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && S.nextPageToken && !S.listLoading) loadList(false);
  }, { root: ui.listEl });
  ui.sentinel = h('li', { class: 'sentinel', 'aria-hidden': 'true' });
  io.observe(ui.sentinel);
}

export function fillTopics() {
  if (!ui.topic) return;
  const cur = S.list.topic;
  replace(ui.topic, h('option', { value: '', text: t('inbox.anyTopic') }), [...S.topics].sort().map((t) => h('option', { value: t, text: t })));
  ui.topic.value = cur;
}

export function fillLabels() {
  if (!ui.label) return;
  const cur = S.list.labelId;
  replace(ui.label, h('option', { value: '', text: t('inbox.anyLabel') }),
    [...S.labels.values()].map((l) => h('option', { value: l.id, text: l.name })));
  ui.label.value = S.labels.has(cur) ? cur : '';
  ui.label.hidden = S.labels.size === 0;
}

/** A conversation's labels as coloured chips (names and colours are the site's, as text). */
export function labelChips(c) {
  const known = (c.labelIds || []).map((id) => S.labels.get(id)).filter(Boolean);
  if (!known.length) return null;
  return h('span', { class: 'labels' }, known.map((l) => h('span', { class: 'label-chip', style: `--label: ${l.color}`, text: l.name })));
}

function setList(change) {
  Object.assign(S.list, change);
  if (ui.tabs) for (const [n, tb] of Object.entries(ui.tabs)) tb.b.setAttribute('aria-pressed', String(n === S.list.name));
  loadList(true);
}

/** "plan:pro" (an attribute key, a colon, a value) searches that attribute exactly. */
function attributeQuery(q) {
  const m = /^([A-Za-z][A-Za-z0-9_]{0,39}):\s*([^/\s].*)$/.exec(q);
  return m ? { key: m[1], value: m[2].trim() } : null;
}

function filterFor(name, withPaging) {
  const f = {};
  if (name === 'mine') f.assigneeId = 'me';
  if (name === 'unassigned') f.unassigned = true;
  // Snoozed conversations wait in their own list until they wake.
  f.snooze = name === 'snoozed' ? 'snoozed' : 'awake';
  if (S.list.status) f.status = S.list.status;
  if (S.list.topic) f.topic = S.list.topic;
  if (S.list.query) {
    const a = attributeQuery(S.list.query);
    if (a) f.attribute = a;
    else f.query = S.list.query;
  }
  if (S.list.labelId) f.labelId = S.list.labelId;
  if (withPaging) f.pageSize = PAGE;
  return f;
}

let listGen = 0;
export async function loadList(reset) {
  if (!S.client) return;
  const gen = reset ? ++listGen : listGen;
  const f = filterFor(S.list.name, true);
  if (!reset) {
    if (!S.nextPageToken) return;
    f.pageToken = S.nextPageToken;
  }
  S.listLoading = true;
  if (reset) ui.listInfo.textContent = t('common.loading');
  try {
    const page = await S.client.listConversations(f);
    if (gen !== listGen) return;
    for (const c of page.conversations) upsertConv(c);
    const ids = page.conversations.map((c) => c.id);
    S.listIds = reset ? ids : [...S.listIds, ...ids.filter((id) => !S.listIds.includes(id))];
    S.nextPageToken = page.nextPageToken;
    S.counts[S.list.name] = page.total;
    S.capped[S.list.name] = page.totalCapped;
    renderList();
    refreshCounts();
  } catch (e) {
    if (gen === listGen) ui.listInfo.textContent = t('inbox.loadFailed', { error: errText(e) });
    if (e && e.code === 16) sessionExpired();
  } finally {
    S.listLoading = false;
  }
}

export let countsTimer = 0;
function refreshCounts() {
  clearTimeout(countsTimer);
  countsTimer = setTimeout(async () => {
    if (!S.client) return;
    try {
      const names = ['mine', 'unassigned', 'all', 'snoozed'];
      const pages = await Promise.all(names.map((n) => S.client.listConversations({ ...filterFor(n, false), pageSize: 1 })));
      names.forEach((n, i) => { S.counts[n] = pages[i].total; S.capped[n] = pages[i].totalCapped; });
      updateCounts();
    } catch { /* keep the old figures */ }
  }, 400);
}

function updateCounts() {
  if (!ui.tabs) return;
  for (const [n, tb] of Object.entries(ui.tabs)) {
    const v = S.counts[n];
    // A search in more messages than the server reads counts a lower bound: "5,000+".
    tb.count.textContent = v === null || v === undefined ? '' : num(v) + (S.capped[n] ? '+' : '');
  }
}

export function upsertConv(c) {
  const old = S.convs.get(c.id);
  // Keep the newest view (stream events and list pages may cross).
  if (old && old.updatedAt > c.updatedAt && old.lastSeq > c.lastSeq) return old;
  S.convs.set(c.id, c);
  if (c.topic && !S.topics.has(c.topic)) { S.topics.add(c.topic); fillTopics(); }
  return c;
}

function matches(c, name = S.list.name) {
  const l = S.list;
  if (name === 'mine' && c.assigneeId !== S.me.id) return false;
  if (name === 'unassigned' && c.assigneeId) return false;
  if (!!c.snoozed !== (name === 'snoozed')) return false;
  if (l.status && c.status !== l.status) return false;
  if (l.topic && c.topic !== l.topic) return false;
  if (l.labelId && !(c.labelIds || []).includes(l.labelId)) return false;
  const attr = l.query && attributeQuery(l.query);
  if (attr) {
    // Visitor attributes are not on the conversation: the server's answer decides for those.
    if ((c.attributes?.[attr.key] || '').toLowerCase() !== attr.value.toLowerCase() && !S.listIds.includes(c.id)) return false;
  } else if (l.query) {
    const q = l.query.toLowerCase();
    if (!(`${c.visitorName} ${c.lastMessagePreview}`.toLowerCase().includes(q)) && !S.listIds.includes(c.id)) return false;
  }
  return true;
}

/** A conversation changed or got a message: put it where it belongs in the visible list. */
export function placeInList(c, old) {
  if (S.route !== 'inbox' || !ui.listEl) return;
  const inList = S.listIds.includes(c.id);
  const should = matches(c);
  // Counts follow at once; the debounced refresh below corrects them from the server.
  for (const name of ['mine', 'unassigned', 'all', 'snoozed']) {
    const n = S.counts[name];
    if (typeof n !== 'number') continue;
    const was = name === S.list.name ? inList : !!old && matches(old, name);
    const is = name === S.list.name ? should : matches(c, name);
    if (was !== is) S.counts[name] = Math.max(0, n + (is ? 1 : -1));
  }
  if (should) {
    S.listIds = [c.id, ...S.listIds.filter((id) => id !== c.id)];
    S.listIds.sort((a, b) => (S.convs.get(b)?.updatedAt || 0) - (S.convs.get(a)?.updatedAt || 0));
  } else if (inList) {
    S.listIds = S.listIds.filter((id) => id !== c.id);
  }
  scheduleRenderList();
  refreshCounts();
}

let listRaf = 0;
export function scheduleRenderList() {
  if (listRaf) return;
  listRaf = requestAnimationFrame(() => { listRaf = 0; renderList(); });
}

function isUnread(c) {
  const read = Math.max(c.agentReadSeq || 0, S.localRead.get(c.id) || 0);
  return c.lastSeq > read && !(S.cv && S.cv.id === c.id && document.hasFocus());
}

function renderRow(c) {
  let li = ui.rows.get(c.id);
  const unread = isUnread(c);
  const selected = S.cv && S.cv.id === c.id;
  const key = `${c.updatedAt}|${c.lastSeq}|${c.status}|${c.assigneeId}|${unread}|${selected}|${c.visitorName}|${c.rating}|${(c.labelIds || []).join()}|${S.labels.size}|${c.snoozed}|${c.snoozedUntil}`;
  if (li && li.dataset.key === key) return li;
  const name = c.visitorName || t('common.visitor');
  const a = h('a', { href: `#/c/${encodeURIComponent(c.id)}`, class: 'row', 'aria-current': selected ? 'true' : null },
    h('span', { class: 'row-top' },
      unread ? h('span', { class: 'unread-dot', title: t('inbox.unread') }, h('span', { class: 'sr-only', text: t('inbox.unreadSr') })) : null,
      h('span', { class: 'name', text: name }),
      h('time', { class: 'when', datetime: new Date(c.updatedAt).toISOString(), text: shortWhen(c.updatedAt) })),
    h('span', { class: 'preview', text: c.lastMessagePreview || '…' }),
    h('span', { class: 'row-meta' },
      h('span', { class: `status ${c.status}`, text: statusLabel(c.status) }),
      h('span', { class: 'topic', text: c.topic }),
      c.assigneeName ? h('span', { class: 'assignee', text: c.assigneeId === S.me.id ? t('inbox.assigneeMe') : c.assigneeName }) : null,
      c.rating ? h('span', { class: 'rating', text: `★ ${num(c.rating)}` }) : null,
      c.snoozed ? h('span', { class: 'snoozed', text: c.snoozedUntil ? t('inbox.snoozedUntil', { when: shortWhen(c.snoozedUntil) }) : t('inbox.snoozedReply') }) : null,
      labelChips(c)));
  const fresh = h('li', { class: unread ? 'unread' : '', dataset: { id: c.id, key } }, a);
  if (li) li.replaceWith(fresh);
  ui.rows.set(c.id, fresh);
  return fresh;
}

function renderList() {
  if (!ui.listEl) return;
  const focusedId = document.activeElement && ui.listEl.contains(document.activeElement) ? document.activeElement.closest('li')?.dataset.id : null;
  const frag = document.createDocumentFragment();
  for (const id of S.listIds) {
    const c = S.convs.get(id);
    if (c) frag.appendChild(renderRow(c));
  }
  frag.appendChild(ui.sentinel);
  clear(ui.listEl).appendChild(frag);
  if (focusedId) ui.rows.get(focusedId)?.querySelector('a')?.focus();
  ui.listInfo.textContent = S.listIds.length ? '' : t(S.list.query ? 'inbox.noMatch' : 'inbox.empty');
  ui.more.hidden = !S.nextPageToken;
  updateCounts();
  updateTitle();
}

function listKeys(e) {
  if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
  const links = [...ui.listEl.querySelectorAll('a.row')];
  const i = links.indexOf(document.activeElement);
  if (i < 0) return;
  e.preventDefault();
  links[Math.max(0, Math.min(links.length - 1, i + (e.key === 'ArrowDown' ? 1 : -1)))].focus();
}
