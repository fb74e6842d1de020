// wsmschat agent console: plain ES modules on the wasm SDK the widget uses (the full build with
// the agent calls, `wsmschat_sdk.js`, served by the chat server at /sdk/).
//
// Server: this page's origin, or the one an operator configures in this folder's index.html
// (<meta name="wsmschat-server" content="https://chat.example.com">) when the console is hosted
// elsewhere. Never a query parameter: code is imported from that server and the login password
// is sent to it, so it must not come from a link (security review F1).
import { h, clear, replace, time, fullTime, shortWhen, announce, errText } from './dom.js';

const SESSION_KEY = 'wsmschat-console:session';
const PREFS_KEY = 'wsmschat-console:prefs';
const PAGE = 50;
const HISTORY_PAGE = 50;
const DEFAULT_TOPICS = ['Product', 'Order', 'Delivery', 'Payment', 'Other'];
const STATUS_LABEL = { queued: 'Queued', open: 'Open', resolved: 'Resolved' };
const BASE_TITLE = 'wsmschat console';

/** The configured chat server as a bare origin, or null when the setting is not one. */
export function configuredOrigin(value) {
  let u;
  try { u = new URL(value); } catch { return null; }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return null;
  if (u.username || u.password) return null;
  return u.origin;
}

function serverUrl() {
  const meta = document.querySelector('meta[name="wsmschat-server"]');
  const configured = meta && meta.content.trim();
  if (!configured) return location.origin;
  return configuredOrigin(configured);
}

const SERVER = serverUrl();
let SDK = null; // the module: { default: init, ChatClient }

async function loadSdk() {
  if (SDK) return SDK;
  const mod = await import(`${SERVER}/sdk/wsmschat_sdk.js`);
  await mod.default();
  SDK = mod;
  return mod;
}

// ---- preferences and session ----------------------------------------------------------------

function readJson(key, dflt) {
  try { return JSON.parse(localStorage.getItem(key)) ?? dflt; } catch { return dflt; }
}
function writeJson(key, v) {
  try { localStorage.setItem(key, JSON.stringify(v)); } catch { /* storage blocked: memory only */ }
}
const prefs = Object.assign({ presence: 'online', sound: false }, readJson(PREFS_KEY, {}));
function savePrefs() { writeJson(PREFS_KEY, prefs); }

// ---- app state ------------------------------------------------------------------------------

const S = {
  client: null,
  me: null, // Agent
  expiresAt: 0,
  expiryTimer: 0,
  conn: 'idle',
  presence: prefs.presence,
  convs: new Map(), // id -> Conversation (everything seen)
  localRead: new Map(), // id -> seq read in this console
  list: { name: 'mine', status: '', topic: '', query: '' },
  listIds: [],
  nextPageToken: '',
  listLoading: false,
  counts: { mine: null, unassigned: null, all: null },
  topics: new Set(DEFAULT_TOPICS),
  agents: [], // AgentPresence
  canned: null,
  cv: null, // the open conversation (see openConversation)
  unseen: 0,
  route: '',
};
window.__wsmschatConsole = S; // for debugging in devtools

const app = () => document.getElementById('app');

// ---- boot -----------------------------------------------------------------------------------

function fatal(title, text) {
  replace(app(), h('div', { class: 'login-wrap' }, h('div', { class: 'card login', role: 'alert' },
    h('h1', { text: title }), h('p', { text }))));
  app().removeAttribute('aria-busy');
}

async function boot() {
  if (!SERVER) {
    return fatal('The console is misconfigured',
      'The wsmschat-server meta tag of this page must be an http(s) origin such as https://chat.example.com.');
  }
  if (new URLSearchParams(location.search).has('server')) {
    // Old links: say why the parameter does nothing instead of silently using another server.
    announce('The ?server= parameter is ignored: this console talks to ' + SERVER);
  }
  try {
    await loadSdk();
  } catch (e) {
    return fatal('The console could not load',
      `The chat SDK was not found at ${SERVER}/widget/ (${errText(e)}). Is the widget built (scripts/build-web)?`);
  }
  const saved = readJson(SESSION_KEY, null);
  if (saved && saved.token && saved.server === SERVER && saved.expiresAt > Date.now() && saved.agent) {
    const client = SDK.ChatClient.withToken({ server: SERVER, token: saved.token });
    try {
      await client.listAgentPresence(); // checks the token is still valid
      enter(client, saved.agent, saved.expiresAt);
      return;
    } catch (e) {
      client.close();
      if (e && (e.code === 16 || e.code === 7)) localStorage.removeItem(SESSION_KEY);
      else return showLogin(`Could not reach the chat server: ${errText(e)}`);
    }
  }
  showLogin();
}

function showLogin(message) {
  app().removeAttribute('aria-busy');
  document.title = BASE_TITLE;
  const err = h('p', { class: 'form-error', role: 'alert', id: 'login-error' });
  if (message) err.textContent = message;
  const email = h('input', { id: 'login-email', type: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = h('input', { id: 'login-password', type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const button = h('button', { class: 'btn primary', type: 'submit', text: 'Log in' });
  const form = h('form', { class: 'card login', 'aria-labelledby': 'login-title', novalidate: true },
    h('h1', { id: 'login-title', text: 'Agent console' }),
    h('p', { class: 'muted', text: 'Log in to answer your customers.' }),
    h('label', { for: 'login-email', text: 'Email' }), email,
    h('label', { for: 'login-password', text: 'Password' }), password,
    err, button);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    if (!email.value.trim() || !password.value) {
      err.textContent = 'Enter your email and password.';
      return;
    }
    button.disabled = true;
    button.textContent = 'Logging in…';
    try {
      const client = await SDK.ChatClient.login({ server: SERVER, email: email.value.trim(), password: password.value });
      const agent = client.agent;
      // The server's token lifetime is not exposed by the SDK's login: assume 12 h and let an
      // UNAUTHENTICATED answer end the session earlier.
      const expiresAt = Date.now() + 12 * 3600 * 1000;
      writeJson(SESSION_KEY, { server: SERVER, token: client.token, agent, expiresAt });
      enter(client, agent, expiresAt);
    } catch (e) {
      button.disabled = false;
      button.textContent = 'Log in';
      if (e && (e.code === 16 || e.code === 7 || e.code === 5 || e.code === 3)) {
        err.textContent = 'Wrong email or password. Check them and try again.';
      } else {
        err.textContent = `Could not log in: ${errText(e)}`;
      }
      password.select();
      password.focus();
    }
  });
  replace(app(), h('main', { id: 'main', class: 'login-wrap' }, form));
  email.focus();
}

async function logout() {
  const c = S.client;
  localStorage.removeItem(SESSION_KEY);
  clearTimeout(S.expiryTimer);
  S.client = null;
  resetState();
  if (c) { try { await c.logout(); } catch { /* already gone */ } }
  history.replaceState(null, '', location.pathname + location.search);
  showLogin();
}

function sessionExpired() {
  if (!S.client) return;
  const c = S.client;
  localStorage.removeItem(SESSION_KEY);
  S.client = null;
  resetState();
  try { c.close(); } catch { /* closed */ }
  showLogin('Your session has ended. Please log in again.');
}

function resetState() {
  S.convs.clear(); S.localRead.clear(); S.listIds = []; S.cv = null; S.canned = null; S.agents = [];
  S.counts = { mine: null, unassigned: null, all: null }; S.unseen = 0; S.me = null; S.route = '';
  S.nextPageToken = ''; S.everOnline = false; S.conn = 'idle';
  clearTimeout(readTimer); clearTimeout(countsTimer); clearTimeout(agentsTimer);
  for (const k of Object.keys(ui)) delete ui[k];
}

function enter(client, agent, expiresAt) {
  S.client = client;
  S.me = agent;
  S.expiresAt = expiresAt;
  clearTimeout(S.expiryTimer);
  S.expiryTimer = setTimeout(sessionExpired, Math.min(expiresAt - Date.now(), 2 ** 31 - 1));
  for (const t of agent.topics || []) S.topics.add(t);
  client.on('message', onMessage);
  client.on('conversation', onConversation);
  client.on('typing', onTyping);
  client.on('read', onRead);
  client.on('presence', onPresence);
  client.on('state', onState);
  client.on('outbox', onOutbox);
  client.on('ready', () => {
    if (S.presence === 'away') client.setPresence('away').catch(() => {});
  });
  client.on('error', (e) => { if (e && e.code === 16) sessionExpired(); });
  client.start({ inbox: true });
  renderShell();
  route();
  refreshAgents();
}

// ---- shell ----------------------------------------------------------------------------------

const shell = {};

function renderShell() {
  app().removeAttribute('aria-busy');
  const isAdmin = S.me.role === 'admin';
  shell.conn = h('span', { class: 'conn', role: 'status', text: 'Connecting…' });
  shell.presence = h('select', { id: 'presence', 'aria-label': 'My status', onchange: (e) => setPresence(e.target.value) },
    h('option', { value: 'online', text: 'Online' }), h('option', { value: 'away', text: 'Away' }));
  shell.presence.value = S.presence;
  shell.dot = h('span', { class: `dot ${S.presence}`, 'aria-hidden': 'true' });
  shell.notify = h('button', { class: 'btn ghost small', type: 'button', onclick: askNotifications });
  updateNotifyButton();
  const sound = h('input', { type: 'checkbox', id: 'sound', checked: prefs.sound, onchange: (e) => { prefs.sound = e.target.checked; savePrefs(); } });
  shell.navInbox = h('a', { href: '#/inbox', class: 'navlink', text: 'Inbox' });
  shell.navAdmin = isAdmin ? h('a', { href: '#/admin/sites', class: 'navlink', text: 'Admin' }) : null;
  shell.main = h('main', { id: 'main', tabindex: '-1' });
  replace(app(), h('div', { class: 'shell' },
    h('header', { class: 'topbar' },
      h('span', { class: 'brand', text: 'wsmschat' }),
      h('nav', { 'aria-label': 'Main' }, shell.navInbox, shell.navAdmin),
      h('div', { class: 'spacer' }),
      shell.conn,
      h('label', { class: 'presence' }, shell.dot, h('span', { class: 'sr-only', text: 'My status' }), shell.presence),
      shell.notify,
      h('label', { class: 'check small' }, sound, ' Sound'),
      h('span', { class: 'me', title: S.me.email }, S.me.name, S.me.role === 'admin' ? h('span', { class: 'tag', text: 'admin' }) : null),
      h('button', { class: 'btn ghost small', type: 'button', onclick: logout, text: 'Log out' })),
    shell.main));
}

function updateNotifyButton() {
  if (!shell.notify) return;
  if (!('Notification' in window)) { shell.notify.hidden = true; return; }
  const p = Notification.permission;
  shell.notify.hidden = p === 'granted';
  shell.notify.textContent = p === 'denied' ? 'Notifications blocked' : 'Enable notifications';
  shell.notify.disabled = p === 'denied';
}

async function askNotifications() {
  try { await Notification.requestPermission(); } catch { /* unsupported */ }
  updateNotifyButton();
}

async function setPresence(v) {
  S.presence = v;
  prefs.presence = v;
  savePrefs();
  shell.dot.className = `dot ${v}`;
  try {
    await S.client.setPresence(v);
    announce(`Your status is now ${v}`);
  } catch (e) {
    announce(`Could not change your status: ${errText(e)}`);
  }
}

function onState(s) {
  const was = S.conn;
  S.conn = s.state;
  if (s.state === 'online' && (was === 'offline' || was === 'connecting') && S.everOnline) catchUp();
  if (s.state === 'online') S.everOnline = true;
  if (!shell.conn) return;
  const label = { online: 'Connected', connecting: 'Connecting…', offline: 'Reconnecting…', closed: 'Disconnected', idle: '' }[s.state] || s.state;
  shell.conn.textContent = label;
  shell.conn.className = `conn ${s.state}`;
}

/** After a reconnect: the stream replays the conversations it knows; the lists and the open
 *  conversation are read again so nothing created meanwhile is missed. */
function catchUp() {
  if (S.route === 'inbox') loadList(true);
  const cv = S.cv;
  if (cv) S.client.history(cv.id, { limit: HISTORY_PAGE }).then((p) => { if (S.cv === cv) addMessages(p.messages); }).catch(() => {});
}

function onPresence(p) {
  const a = S.agents.find((x) => x.agentId === p.agentId);
  if (a) a.status = p.status;
  if (p.agentId === S.me?.id && p.status !== 'offline' && shell.presence) {
    S.presence = p.status;
    shell.presence.value = p.status;
    shell.dot.className = `dot ${p.status}`;
  }
  if (S.cv) renderAssignOptions();
}

async function refreshAgents() {
  try {
    S.agents = await S.client.listAgentPresence();
    for (const a of S.agents) for (const t of a.topics) S.topics.add(t);
    if (S.cv) renderAssignOptions();
  } catch { /* shown where needed */ }
}

// ---- routing --------------------------------------------------------------------------------

window.addEventListener('hashchange', route);

function route() {
  if (!S.client) return;
  const hash = location.hash || '#/inbox';
  const parts = hash.slice(2).split('/');
  const section = parts[0] || 'inbox';
  shell.navInbox.toggleAttribute('aria-current', section !== 'admin');
  if (shell.navAdmin) shell.navAdmin.toggleAttribute('aria-current', section === 'admin');
  if (section === 'admin') {
    S.route = 'admin';
    S.cv = null;
    if (S.me.role !== 'admin') {
      replace(shell.main, h('div', { class: 'page' }, h('div', { class: 'card notice', role: 'alert' },
        h('h1', { text: 'Admins only' }),
        h('p', { text: 'The admin pages need the admin role. Ask an admin of your team if you need a change.' }),
        h('a', { href: '#/inbox', class: 'btn', text: 'Back to the inbox' }))));
      return;
    }
    import('./admin.js').then((m) => m.renderAdmin(shell.main, { client: S.client, server: SERVER, me: S.me, section: parts[1] || 'sites', arg: parts[2] }));
    return;
  }
  const convId = section === 'c' ? decodeURIComponent(parts[1] || '') : '';
  if (S.route !== 'inbox') {
    S.route = 'inbox';
    renderInbox();
    loadList(true);
  }
  if (convId && (!S.cv || S.cv.id !== convId)) openConversation(convId);
  else if (!convId && S.cv) closeConversation();
}

// ---- inbox ----------------------------------------------------------------------------------

const ui = {};

function renderInbox() {
  ui.tabs = {};
  const tab = (name, label) => {
    const count = h('span', { class: 'count' });
    const b = h('button', { type: 'button', class: 'tab', 'aria-pressed': String(S.list.name === name), onclick: () => setList({ name }) }, label, ' ', count);
    ui.tabs[name] = { b, count };
    return b;
  };
  ui.status = h('select', { id: 'f-status', onchange: (e) => setList({ status: e.target.value }) },
    h('option', { value: '', text: 'Any status' }), h('option', { value: 'queued', text: 'Queued' }),
    h('option', { value: 'open', text: 'Open' }), h('option', { value: 'resolved', text: 'Resolved' }));
  ui.status.value = S.list.status;
  ui.topic = h('select', { id: 'f-topic', onchange: (e) => setList({ topic: e.target.value }) });
  fillTopics();
  let searchTimer = 0;
  ui.search = h('input', { id: 'f-search', type: 'search', placeholder: 'Search name, email, text', value: S.list.query,
    oninput: (e) => { clearTimeout(searchTimer); searchTimer = setTimeout(() => setList({ query: e.target.value.trim() }), 300); } });
  ui.listEl = h('ul', { class: 'conv-list', id: 'conv-list', 'aria-label': 'Conversations', onkeydown: listKeys });
  ui.listInfo = h('p', { class: 'list-info muted', role: 'status' });
  ui.more = h('button', { type: 'button', class: 'btn ghost more', text: 'Load more', hidden: true, onclick: () => loadList(false) });
  ui.rows = new Map();
  ui.inboxPane = h('section', { class: 'pane inbox', 'aria-label': 'Inbox' },
    h('div', { class: 'tabs', role: 'group', 'aria-label': 'Lists' }, tab('mine', 'Mine'), tab('unassigned', 'Unassigned'), tab('all', 'All')),
    h('div', { class: 'filters' },
      h('label', { class: 'sr-only', for: 'f-status', text: 'Status' }), ui.status,
      h('label', { class: 'sr-only', for: 'f-topic', text: 'Topic' }), ui.topic,
      h('label', { class: 'sr-only', for: 'f-search', text: 'Search' }), ui.search),
    ui.listEl, ui.listInfo, ui.more);
  ui.convPane = h('section', { class: 'pane conversation', 'aria-label': 'Conversation' },
    h('div', { class: 'empty' }, h('p', { text: 'Pick a conversation from the inbox.' })));
  ui.visitorPane = h('aside', { class: 'pane visitor', 'aria-label': 'Visitor' }, h('p', { class: 'muted', text: 'Visitor details appear here.' }));
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

function fillTopics() {
  if (!ui.topic) return;
  const cur = S.list.topic;
  replace(ui.topic, h('option', { value: '', text: 'Any topic' }), [...S.topics].sort().map((t) => h('option', { value: t, text: t })));
  ui.topic.value = cur;
}

function setList(change) {
  Object.assign(S.list, change);
  if (ui.tabs) for (const [n, t] of Object.entries(ui.tabs)) t.b.setAttribute('aria-pressed', String(n === S.list.name));
  loadList(true);
}

function filterFor(name, withPaging) {
  const f = {};
  if (name === 'mine') f.assigneeId = 'me';
  if (name === 'unassigned') f.unassigned = true;
  if (S.list.status) f.status = S.list.status;
  if (S.list.topic) f.topic = S.list.topic;
  if (S.list.query) f.query = S.list.query;
  if (withPaging) f.pageSize = PAGE;
  return f;
}

let listGen = 0;
async function loadList(reset) {
  if (!S.client) return;
  const gen = reset ? ++listGen : listGen;
  const f = filterFor(S.list.name, true);
  if (!reset) {
    if (!S.nextPageToken) return;
    f.pageToken = S.nextPageToken;
  }
  S.listLoading = true;
  if (reset) ui.listInfo.textContent = 'Loading…';
  try {
    const page = await S.client.listConversations(f);
    if (gen !== listGen) return;
    for (const c of page.conversations) upsertConv(c);
    const ids = page.conversations.map((c) => c.id);
    S.listIds = reset ? ids : [...S.listIds, ...ids.filter((id) => !S.listIds.includes(id))];
    S.nextPageToken = page.nextPageToken;
    S.counts[S.list.name] = page.total;
    renderList();
    refreshCounts();
  } catch (e) {
    if (gen === listGen) ui.listInfo.textContent = `Could not load the inbox: ${errText(e)}`;
    if (e && e.code === 16) sessionExpired();
  } finally {
    S.listLoading = false;
  }
}

let countsTimer = 0;
function refreshCounts() {
  clearTimeout(countsTimer);
  countsTimer = setTimeout(async () => {
    if (!S.client) return;
    try {
      const names = ['mine', 'unassigned', 'all'];
      const pages = await Promise.all(names.map((n) => S.client.listConversations({ ...filterFor(n, false), pageSize: 1 })));
      names.forEach((n, i) => { S.counts[n] = pages[i].total; });
      updateCounts();
    } catch { /* keep the old figures */ }
  }, 400);
}

function updateCounts() {
  if (!ui.tabs) return;
  for (const [n, t] of Object.entries(ui.tabs)) {
    const v = S.counts[n];
    t.count.textContent = v === null || v === undefined ? '' : String(v);
  }
}

function upsertConv(c) {
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
  if (l.status && c.status !== l.status) return false;
  if (l.topic && c.topic !== l.topic) return false;
  if (l.query) {
    const q = l.query.toLowerCase();
    if (!(`${c.visitorName} ${c.lastMessagePreview}`.toLowerCase().includes(q)) && !S.listIds.includes(c.id)) return false;
  }
  return true;
}

/** A conversation changed or got a message: put it where it belongs in the visible list. */
function placeInList(c, old) {
  if (S.route !== 'inbox' || !ui.listEl) return;
  const inList = S.listIds.includes(c.id);
  const should = matches(c);
  // Counts follow at once; the debounced refresh below corrects them from the server.
  for (const name of ['mine', 'unassigned', 'all']) {
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
function scheduleRenderList() {
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
  const key = `${c.updatedAt}|${c.lastSeq}|${c.status}|${c.assigneeId}|${unread}|${selected}|${c.visitorName}|${c.rating}`;
  if (li && li.dataset.key === key) return li;
  const name = c.visitorName || 'Visitor';
  const a = h('a', { href: `#/c/${encodeURIComponent(c.id)}`, class: 'row', 'aria-current': selected ? 'true' : null },
    h('span', { class: 'row-top' },
      unread ? h('span', { class: 'unread-dot', title: 'Unread' }, h('span', { class: 'sr-only', text: 'Unread: ' })) : null,
      h('span', { class: 'name', text: name }),
      h('time', { class: 'when', datetime: new Date(c.updatedAt).toISOString(), text: shortWhen(c.updatedAt) })),
    h('span', { class: 'preview', text: c.lastMessagePreview || '…' }),
    h('span', { class: 'row-meta' },
      h('span', { class: `status ${c.status}`, text: STATUS_LABEL[c.status] || c.status }),
      h('span', { class: 'topic', text: c.topic }),
      c.assigneeName ? h('span', { class: 'assignee', text: c.assigneeId === S.me.id ? 'me' : c.assigneeName }) : null,
      c.rating ? h('span', { class: 'rating', text: `★ ${c.rating}` }) : null));
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
  ui.listInfo.textContent = S.listIds.length ? '' : (S.list.query ? 'No conversation matches.' : 'Nothing here.');
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

// ---- live events ----------------------------------------------------------------------------

async function ensureConv(id) {
  let c = S.convs.get(id);
  if (c) return c;
  try {
    c = upsertConv(await S.client.getConversation(id));
    return c;
  } catch { return null; }
}

async function onMessage(m) {
  let c = S.convs.get(m.conversationId);
  const before = c;
  if (c) {
    c = { ...c, lastSeq: Math.max(c.lastSeq, m.seq), updatedAt: Math.max(c.updatedAt, m.createdAt) };
    if (m.kind === 'text') c.lastMessagePreview = m.text.slice(0, 140);
    S.convs.set(c.id, c);
  } else {
    c = await ensureConv(m.conversationId);
    if (!c) return;
  }
  if (m.authorKind === 'agent' && m.authorId === S.me.id) S.localRead.set(c.id, Math.max(S.localRead.get(c.id) || 0, m.seq));
  placeInList(c, before);
  if (S.cv && S.cv.id === m.conversationId) {
    addMessages([m]);
    if (m.authorKind === 'visitor') {
      setTyping(null);
      if (document.hasFocus()) markRead();
    }
  }
  if (m.authorKind === 'visitor') notify(c, m);
}

function onConversation(c) {
  const old = S.convs.get(c.id);
  S.convs.set(c.id, c);
  if (c.topic && !S.topics.has(c.topic)) { S.topics.add(c.topic); fillTopics(); }
  placeInList(c, old);
  if (S.cv && S.cv.id === c.id) {
    S.cv.conv = c;
    renderConvHeader();
    updateReadMarks();
  }
  if (old && old.assigneeId !== c.assigneeId && c.assigneeId === S.me.id) {
    announce(`Conversation with ${c.visitorName || 'a visitor'} assigned to you`);
    if (!old || old.status !== c.status || old.assigneeId !== c.assigneeId) notify(c, null);
  } else if (!old && c.assigneeId === S.me.id) {
    announce(`New conversation with ${c.visitorName || 'a visitor'} assigned to you`);
  }
  if (S.agents.length) refreshAgentsSoon();
}

let agentsTimer = 0;
function refreshAgentsSoon() {
  clearTimeout(agentsTimer);
  agentsTimer = setTimeout(refreshAgents, 1500);
}

function onTyping(t) {
  if (!S.cv || t.conversationId !== S.cv.id || t.authorKind !== 'visitor') return;
  setTyping(t.on ? `${t.authorName || 'The visitor'} is typing…` : null);
}

function onRead(r) {
  const c = S.convs.get(r.conversationId);
  if (!c) return;
  const next = { ...c };
  if (r.readerKind === 'visitor') next.visitorReadSeq = Math.max(c.visitorReadSeq, r.seq);
  else next.agentReadSeq = Math.max(c.agentReadSeq, r.seq);
  S.convs.set(c.id, next);
  if (S.cv && S.cv.id === c.id) { S.cv.conv = next; updateReadMarks(); }
  scheduleRenderList();
}

function onOutbox(o) {
  if (!S.cv) return;
  const el = S.cv.pending.get(o.clientMsgId);
  if (!el) return;
  if (o.status === 'waiting') setSendStatus(el, 'waiting', 'Waiting for the network…');
  else if (o.status === 'sending') setSendStatus(el, 'sending', 'Sending…');
}

// ---- notifications --------------------------------------------------------------------------

function unfocused() { return document.hidden || !document.hasFocus(); }

function notify(c, m) {
  const away = unfocused();
  // The title counts unseen customer messages; an assignment only notifies.
  if (away && m) { S.unseen += 1; updateTitle(); }
  if (!away && S.cv && S.cv.id === c.id) return;
  if (!away) return;
  if (prefs.sound) beep();
  if ('Notification' in window && Notification.permission === 'granted') {
    try {
      const n = new Notification(c.visitorName || 'Visitor', { body: m ? m.text.slice(0, 200) : 'A conversation was assigned to you', tag: c.id });
      n.onclick = () => { window.focus(); location.hash = `#/c/${encodeURIComponent(c.id)}`; n.close(); };
    } catch { /* some platforms need a service worker */ }
  }
}

function updateTitle() {
  document.title = S.unseen > 0 ? `(${S.unseen}) ${BASE_TITLE}` : BASE_TITLE;
}

function seen() {
  if (S.unseen) { S.unseen = 0; updateTitle(); }
  if (S.cv) markRead();
  scheduleRenderList();
}
window.addEventListener('focus', seen);
document.addEventListener('visibilitychange', () => { if (!document.hidden) seen(); });

let audio = null;
function beep() {
  try {
    audio ||= new AudioContext();
    const o = audio.createOscillator();
    const g = audio.createGain();
    o.frequency.value = 880;
    g.gain.setValueAtTime(0.08, audio.currentTime);
    g.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + 0.25);
    o.connect(g).connect(audio.destination);
    o.start();
    o.stop(audio.currentTime + 0.25);
  } catch { /* no audio */ }
}

// ---- conversation view ----------------------------------------------------------------------

function closeConversation() {
  clearTimeout(readTimer);
  S.cv = null;
  replace(ui.convPane, h('div', { class: 'empty' }, h('p', { text: 'Pick a conversation from the inbox.' })));
  replace(ui.visitorPane, h('p', { class: 'muted', text: 'Visitor details appear here.' }));
  scheduleRenderList();
}

async function openConversation(id) {
  if (!ui.convPane) return;
  const cv = {
    id, conv: S.convs.get(id) || null, nodes: new Map(), pending: new Map(), minSeq: Infinity, maxSeq: 0,
    hasMore: false, loadingOlder: false, typingTimer: 0, typingSent: false, typingIdle: 0, mode: 'text',
  };
  S.cv = cv;
  cv.header = h('div', { class: 'conv-header' });
  cv.older = h('button', { type: 'button', class: 'btn ghost small older', text: 'Load earlier messages', hidden: true, onclick: loadOlder });
  cv.msgs = h('ol', { class: 'messages', 'aria-label': 'Messages' });
  cv.pendingList = h('ol', { class: 'messages pending', 'aria-label': 'Sending' });
  cv.log = h('div', { class: 'log', role: 'log', 'aria-live': 'polite', 'aria-relevant': 'additions', tabindex: '0', 'aria-label': 'Conversation history' },
    cv.older, cv.msgs, cv.pendingList);
  cv.log.addEventListener('scroll', () => {
    if (cv.log.scrollTop < 40 && cv.hasMore && !cv.loadingOlder) loadOlder();
    if (nearBottom()) cv.jump.hidden = true;
  });
  cv.jump = h('button', { type: 'button', class: 'btn small jump', hidden: true, text: 'New messages ↓', onclick: () => { scrollToBottom(); cv.jump.hidden = true; } });
  cv.typing = h('div', { class: 'typing', 'aria-live': 'polite' });
  cv.composer = renderComposer(cv);
  replace(ui.convPane, cv.header, h('div', { class: 'log-wrap' }, cv.log, cv.jump), cv.typing, cv.composer);
  scheduleRenderList();
  try {
    const [conv, page] = await Promise.all([S.client.getConversation(id), S.client.history(id, { limit: HISTORY_PAGE })]);
    if (S.cv !== cv) return;
    upsertConv(conv);
    cv.conv = S.convs.get(id);
    renderConvHeader();
    cv.hasMore = page.hasMore;
    cv.older.hidden = !page.hasMore;
    addMessages(page.messages);
    scrollToBottom();
    markRead();
    loadVisitor(cv);
  } catch (e) {
    if (S.cv === cv) replace(ui.convPane, h('div', { class: 'empty', role: 'alert' }, h('p', { text: `Could not open the conversation: ${errText(e)}` })));
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
  cv.older.textContent = 'Loading…';
  try {
    const page = await S.client.history(cv.id, { beforeSeq: cv.minSeq, limit: HISTORY_PAGE });
    if (S.cv !== cv) return;
    const before = cv.log.scrollHeight;
    const top = cv.log.scrollTop;
    cv.log.setAttribute('aria-busy', 'true'); // older messages are not news: keep the live region quiet
    addMessages(page.messages);
    setTimeout(() => cv.log.removeAttribute('aria-busy'), 0);
    cv.log.scrollTop = top + (cv.log.scrollHeight - before); // keep what the agent was reading in place
    cv.hasMore = page.hasMore;
    cv.older.hidden = !page.hasMore;
  } catch (e) {
    announce(`Could not load earlier messages: ${errText(e)}`);
  } finally {
    cv.loadingOlder = false;
    cv.older.textContent = 'Load earlier messages';
  }
}

const SYSTEM_TEXT = {
  assigned: (s) => `Assigned to ${s.agentName}`,
  joined: (s) => `${s.agentName} joined`,
  transferred: (s) => `Transferred to ${s.agentName}`,
  resolved: () => 'Resolved',
  reopened: () => 'Reopened',
  rated: (s) => `The visitor rated ${s.score} of 5`,
};

function messageEl(m) {
  const when = h('time', { datetime: new Date(m.createdAt).toISOString(), title: fullTime(m.createdAt), text: time(m.createdAt) });
  if (m.kind === 'system') {
    const s = m.system || { kind: '' };
    const text = (SYSTEM_TEXT[s.kind] || (() => m.text || 'System'))(s);
    return h('li', { class: 'msg system', dataset: { seq: m.seq } }, h('span', { text }), ' · ', when);
  }
  const mine = m.authorKind !== 'visitor';
  const cls = ['msg', mine ? 'out' : 'in', m.kind === 'note' ? 'note' : '', m.authorId === S.me.id ? 'own' : ''].join(' ');
  const status = mine && m.kind === 'text' ? h('span', { class: 'send-status' }) : null;
  const li = h('li', { class: cls, dataset: { seq: m.seq, who: `${m.authorKind}:${m.authorId}:${m.kind}`, at: m.createdAt } },
    h('div', { class: 'meta' },
      h('span', { class: 'author', text: m.authorName || (mine ? 'Agent' : 'Visitor') }),
      m.kind === 'note' ? h('span', { class: 'tag note-tag', text: 'Private note' }) : null,
      when, status),
    h('div', { class: 'bubble', title: `${m.authorName} · ${fullTime(m.createdAt)}`, text: m.text }));
  return li;
}

function addMessages(list) {
  const cv = S.cv;
  if (!cv || !list.length) return;
  const stick = nearBottom();
  const sorted = [...list].sort((a, b) => a.seq - b.seq);
  const older = [];
  for (const m of sorted) {
    if (cv.nodes.has(m.seq)) continue;
    const el = messageEl(m);
    cv.nodes.set(m.seq, el);
    if (m.clientMsgId && cv.pending.has(m.clientMsgId)) {
      cv.pending.get(m.clientMsgId).remove();
      cv.pending.delete(m.clientMsgId);
    }
    if (m.seq > cv.maxSeq) {
      cv.msgs.appendChild(el);
      cv.maxSeq = m.seq;
    } else if (m.seq < cv.minSeq) {
      older.push(el);
    } else {
      // Out of order (rare): insert before the first node with a higher seq.
      const after = [...cv.msgs.children].find((n) => Number(n.dataset.seq) > m.seq);
      cv.msgs.insertBefore(el, after || null);
    }
    cv.minSeq = Math.min(cv.minSeq, m.seq);
  }
  if (older.length) cv.msgs.prepend(...older);
  for (const m of sorted) {
    const el = cv.nodes.get(m.seq);
    if (el) { groupWithPrevious(el); if (el.nextElementSibling) groupWithPrevious(el.nextElementSibling); }
  }
  updateReadMarks();
  if (stick) scrollToBottom();
  else if (sorted.some((m) => m.seq === cv.maxSeq)) cv.jump.hidden = false;
}

/** Consecutive messages of one author within 5 minutes show the author line once. */
function groupWithPrevious(el) {
  const prev = el.previousElementSibling;
  const same = !!prev && !!el.dataset.who && prev.dataset.who === el.dataset.who
    && Number(el.dataset.at) - Number(prev.dataset.at) < 5 * 60 * 1000;
  el.classList.toggle('cont', same);
}

function updateReadMarks() {
  const cv = S.cv;
  if (!cv || !cv.conv) return;
  const read = cv.conv.visitorReadSeq || 0;
  for (const el of cv.msgs.querySelectorAll('.msg.out .send-status')) {
    const seq = Number(el.closest('li').dataset.seq);
    const t = seq <= read ? 'Read' : 'Sent';
    if (el.textContent !== t) { el.textContent = t; el.className = `send-status ${t.toLowerCase()}`; }
  }
}

let readTimer = 0;
function markRead() {
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

function setTyping(text) {
  const cv = S.cv;
  if (!cv) return;
  clearTimeout(cv.typingTimer);
  cv.typing.textContent = text || '';
  if (text) cv.typingTimer = setTimeout(() => { cv.typing.textContent = ''; }, 8000);
}

function renderConvHeader() {
  const cv = S.cv;
  const c = cv.conv;
  if (!c) return;
  const mine = c.assigneeId === S.me.id;
  const actions = [];
  if (!mine && c.status !== 'resolved') actions.push(h('button', { type: 'button', class: 'btn primary', onclick: () => act('join', 'Taken'), text: 'Take' }));
  cv.assignSel = h('select', { id: 'assign-to', 'aria-label': c.assigneeId ? 'Transfer to' : 'Assign to' });
  actions.push(h('span', { class: 'assign' }, cv.assignSel,
    h('button', { type: 'button', class: 'btn', text: c.assigneeId ? 'Transfer' : 'Assign', onclick: () => {
      if (cv.assignSel.value) act('assign', 'Assigned', cv.assignSel.value);
    } })));
  if (c.status === 'resolved') actions.push(h('button', { type: 'button', class: 'btn', onclick: () => act('reopen', 'Reopened'), text: 'Reopen' }));
  else actions.push(h('button', { type: 'button', class: 'btn', onclick: () => act('resolve', 'Resolved'), text: 'Resolve' }));
  replace(cv.header,
    h('div', { class: 'conv-title' },
      h('h2', { text: c.visitorName || 'Visitor' }),
      h('span', { class: `status ${c.status}`, text: STATUS_LABEL[c.status] || c.status }),
      h('span', { class: 'topic', text: c.topic }),
      h('span', { class: 'muted', text: c.assigneeName ? `Assigned to ${mine ? 'me' : c.assigneeName}` : (c.status === 'queued' ? `In queue (#${c.queuePosition || '?'})` : 'Unassigned') }),
      c.rating ? h('span', { class: 'rating', text: `Rated ${c.rating}/5` }) : null,
      h('button', { type: 'button', class: 'btn ghost small visitor-toggle', 'aria-controls': 'visitor-pane', onclick: () => ui.layout.classList.toggle('show-visitor'), text: 'Visitor' })),
    h('div', { class: 'actions', role: 'group', 'aria-label': 'Actions' }, actions),
    cv.actionMsg = h('p', { class: 'action-msg', role: 'status' }));
  renderAssignOptions();
}

function renderAssignOptions() {
  const cv = S.cv;
  if (!cv || !cv.assignSel || !cv.conv) return;
  const cur = cv.assignSel.value;
  const others = S.agents.filter((a) => a.agentId !== cv.conv.assigneeId);
  replace(cv.assignSel, h('option', { value: '', text: cv.conv.assigneeId ? 'Transfer to…' : 'Assign to…' }),
    others.map((a) => h('option', { value: a.agentId, text: `${a.agentId === S.me.id ? 'Me' : a.name} · ${a.status}${a.capacity ? ` · ${a.load}/${a.capacity}` : ''}` })));
  if ([...cv.assignSel.options].some((o) => o.value === cur)) cv.assignSel.value = cur;
}

async function act(what, done, arg) {
  const cv = S.cv;
  if (!cv) return;
  cv.actionMsg.textContent = '…';
  try {
    if (what === 'assign') await S.client.assign(cv.id, arg);
    else await S.client[what](cv.id);
    const before = S.convs.get(cv.id);
    const c = upsertConv(await S.client.getConversation(cv.id));
    if (S.cv === cv) {
      cv.conv = c;
      renderConvHeader();
      cv.actionMsg.textContent = done;
    }
    placeInList(c, before);
    refreshAgentsSoon();
  } catch (e) {
    if (S.cv === cv) cv.actionMsg.textContent = `Could not do that: ${errText(e)}`;
  }
}

// ---- composer -------------------------------------------------------------------------------

function renderComposer(cv) {
  const ta = h('textarea', { id: 'composer', rows: '3', placeholder: 'Reply… (Enter sends, Shift+Enter new line, / for canned replies)', 'aria-label': 'Reply',
    'aria-autocomplete': 'list', 'aria-controls': 'canned-list', 'aria-expanded': 'false' });
  const modeReply = h('button', { type: 'button', class: 'mode', 'aria-pressed': 'true', text: 'Reply' });
  const modeNote = h('button', { type: 'button', class: 'mode', 'aria-pressed': 'false', text: 'Private note' });
  const setMode = (m) => {
    cv.mode = m;
    modeReply.setAttribute('aria-pressed', String(m === 'text'));
    modeNote.setAttribute('aria-pressed', String(m === 'note'));
    form.classList.toggle('note-mode', m === 'note');
    ta.setAttribute('aria-label', m === 'note' ? 'Private note (agents only)' : 'Reply');
    ta.placeholder = m === 'note' ? 'Private note: only agents see it' : 'Reply… (Enter sends, Shift+Enter new line, / for canned replies)';
    ta.focus();
  };
  modeReply.addEventListener('click', () => setMode('text'));
  modeNote.addEventListener('click', () => setMode('note'));
  const popup = h('ul', { id: 'canned-list', class: 'canned', role: 'listbox', 'aria-label': 'Canned replies', hidden: true });
  const sendBtn = h('button', { type: 'submit', class: 'btn primary', text: 'Send' });
  const form = h('form', { class: 'composer' },
    h('div', { class: 'modes', role: 'group', 'aria-label': 'Message kind' }, modeReply, modeNote),
    popup,
    h('div', { class: 'compose-row' }, ta, sendBtn));
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
      replace(popup, h('li', { class: 'none', text: 'No canned reply matches.' }));
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
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = ta.value;
    if (!text.trim()) return;
    ta.value = '';
    closePopup();
    ownTyping(cv, false);
    sendMessage(cv, text, cv.mode);
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

function setSendStatus(el, cls, text) {
  const s = el.querySelector('.send-status');
  s.className = `send-status ${cls}`;
  s.textContent = text;
}

function sendMessage(cv, text, kind, cmid) {
  cmid ||= SDK.ChatClient.newId();
  let el = cv.pending.get(cmid);
  if (!el) {
    el = h('li', { class: `msg out own ${kind === 'note' ? 'note' : ''} pending`, dataset: { cmid } },
      h('div', { class: 'meta' }, h('span', { class: 'author', text: S.me.name }),
        kind === 'note' ? h('span', { class: 'tag note-tag', text: 'Private note' }) : null,
        h('span', { class: 'send-status sending', text: 'Sending…' })),
      h('div', { class: 'bubble', text }));
    cv.pending.set(cmid, el);
    cv.pendingList.appendChild(el);
    scrollToBottom();
  } else {
    setSendStatus(el, 'sending', 'Sending…');
    el.querySelector('.retry')?.remove();
  }
  S.client.send(text, { conversationId: cv.id, kind, clientMsgId: cmid }).then((ack) => {
    S.localRead.set(cv.id, Math.max(S.localRead.get(cv.id) || 0, ack.seq));
    if (cv.nodes.has(ack.seq)) { el.remove(); cv.pending.delete(cmid); } else setSendStatus(el, 'sent', 'Sent');
  }, (e) => {
    setSendStatus(el, 'failed', `Not sent: ${errText(e)}`);
    el.querySelector('.meta').appendChild(h('button', { type: 'button', class: 'btn small retry', text: 'Retry', onclick: () => sendMessage(cv, text, kind, cmid) }));
  });
}

// ---- visitor panel --------------------------------------------------------------------------

async function loadVisitor(cv) {
  const pane = ui.visitorPane;
  pane.id = 'visitor-pane';
  if (!cv.conv?.visitorId) return;
  replace(pane, h('p', { class: 'muted', text: 'Loading visitor…' }));
  try {
    const p = await S.client.getVisitor(cv.conv.visitorId);
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

boot();
