// wsmschat agent console: plain ES modules on the wasm SDK the widget uses (the full build with
// the agent calls, `wsmschat_sdk.js`, served by the chat server at /sdk/).
//
// Server: this page's origin, or the one an operator configures in this folder's index.html
// (<meta name="wsmschat-server" content="https://chat.example.com">) when the console is hosted
// elsewhere. Never a query parameter: code is imported from that server and the login password
// is sent to it, so it must not come from a link (security review F1).
//
// This file boots the console (login, session), draws the shell and routes; the parts live in
// inbox.js, live.js (stream events, notifications), conversation.js (the log and composer),
// visitor.js (the visitor panel), admin.js; state.js holds what they share; i18n.js the
// languages (English, German: the agent's choice, else the browser's).
import { h, replace } from './dom.js';
import { announce, errText } from './format.js';
import { t, LANGS, lang, pickLang, setLang } from './i18n.js';
import { SESSION_KEY, HISTORY_PAGE, baseTitle, SERVER, SDK, loadSdk, readJson, writeJson, prefs, savePrefs, S, app, shell, ui } from './state.js';
import { renderInbox, loadList, countsTimer, fillLabels, scheduleRenderList } from './inbox.js';
import { onMessage, onConversation, onVisitor, agentsTimer, onTyping, onRead, onView, updateTitle } from './live.js';
import { closeConversation, openConversation, readTimer, renderAssignOptions, renderConvHeader } from './conversation.js';

// ---- boot -----------------------------------------------------------------------------------

function fatal(title, text) {
  replace(app(), h('div', { class: 'login-wrap' }, h('div', { class: 'card login', role: 'alert' },
    h('h1', { text: title }), h('p', { text }))));
  app().removeAttribute('aria-busy');
}

/** The words of the static page (index.html is English until the language is known). */
function pageTexts() {
  const skip = document.querySelector('a.skip');
  if (skip) skip.textContent = t('page.skip');
  const boot = app().querySelector('.boot');
  if (boot) boot.textContent = t('boot.loading');
  document.title = baseTitle();
}

async function boot() {
  // The language first (German loads beside the SDK), so nothing shows in the wrong one.
  const langReady = setLang(pickLang(prefs.lang)).then(pageTexts);
  if (!SERVER) {
    await langReady;
    return fatal(t('boot.misconfigured'), t('boot.misconfiguredText'));
  }
  try {
    await Promise.all([loadSdk(), langReady]);
  } catch (e) {
    await langReady;
    return fatal(t('boot.loadFailed'), t('boot.loadFailedText', { server: SERVER, error: errText(e) }));
  }
  if (new URLSearchParams(location.search).has('server')) {
    // Old links: say why the parameter does nothing instead of silently using another server.
    announce(t('boot.serverParam', { server: SERVER }));
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
      else return showLogin(['boot.unreachable', { error: errText(e) }]);
    }
  }
  showLogin();
}

/** `message`: a string, or [key, vars] (said again in the new language after a switch). */
function showLogin(message, keep) {
  app().removeAttribute('aria-busy');
  document.title = baseTitle();
  const err = h('p', { class: 'form-error', role: 'alert', id: 'login-error' });
  let said = message;
  const say = (m) => { said = m; err.textContent = !m ? '' : Array.isArray(m) ? t(...m) : m; };
  say(message);
  const email = h('input', { id: 'login-email', type: 'email', name: 'email', autocomplete: 'username', required: true, value: keep?.email });
  const password = h('input', { id: 'login-password', type: 'password', name: 'password', autocomplete: 'current-password', required: true, value: keep?.password });
  const button = h('button', { class: 'btn primary', type: 'submit', text: t('login.submit') });
  const form = h('form', { class: 'card login', 'aria-labelledby': 'login-title', novalidate: true },
    h('h1', { id: 'login-title', text: t('login.title') }),
    h('p', { class: 'muted', text: t('login.lead') }),
    h('label', { for: 'login-email', text: t('login.email') }), email,
    h('label', { for: 'login-password', text: t('login.password') }), password,
    err, button);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    say(null);
    if (!email.value.trim() || !password.value) {
      say(['login.missing']);
      return;
    }
    button.disabled = true;
    button.textContent = t('login.busy');
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
      button.textContent = t('login.submit');
      if (e && (e.code === 16 || e.code === 7 || e.code === 5 || e.code === 3)) {
        say(['login.wrong']);
      } else {
        say(['login.failed', { error: errText(e) }]);
      }
      password.select();
      password.focus();
    }
  });
  // The language switch keeps what was typed (and the message, in the new language).
  const langs = langSwitch('login-lang', () => showLogin(said, { email: email.value, password: password.value }));
  replace(app(), h('main', { id: 'main', class: 'login-wrap' }, h('div', { class: 'login-col' }, form, langs)));
  email.focus();
}

/** The language picker (login screen, my menu): each language named in itself. `redraw`
 *  runs once the new language is loaded; the choice is kept for the next visits. */
function langSwitch(id, redraw) {
  const sel = h('select', { id, class: 'lang-pick', onchange: async () => {
    sel.disabled = true;
    prefs.lang = await setLang(sel.value);
    savePrefs();
    pageTexts();
    redraw();
    document.getElementById(id)?.focus();
  } }, LANGS.map(([code, name]) => h('option', { value: code, lang: code, text: name, selected: code === lang() })));
  return h('div', { class: 'lang-switch' }, h('label', { for: id, text: t('lang.label') }), sel);
}

/** Everything drawn again in the language now shown; the session, the stream, the lists and
 *  the open conversation (with its draft) stay. */
function redrawAll() {
  if (!S.client) return;
  const draft = document.getElementById('composer')?.value || '';
  const menuOpen = !!shell.menu?.open;
  S.route = '';
  S.cv = null;
  renderShell();
  route();
  if (menuOpen) shell.menu.open = true;
  const composer = document.getElementById('composer');
  if (composer && draft) composer.value = draft;
  updateTitle();
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

export function sessionExpired() {
  if (!S.client) return;
  const c = S.client;
  localStorage.removeItem(SESSION_KEY);
  S.client = null;
  resetState();
  try { c.close(); } catch { /* closed */ }
  showLogin(['session.ended']);
}

function resetState() {
  S.convs.clear(); S.localRead.clear(); S.listIds = []; S.cv = null; S.canned = null; S.agents = [];
  S.counts = { mine: null, unassigned: null, all: null }; S.capped = {}; S.unseen = 0; S.me = null; S.route = '';
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
  refreshLabels();
  client.on('message', onMessage);
  client.on('conversation', onConversation);
  client.on('typing', onTyping);
  client.on('read', onRead);
  client.on('presence', onPresence);
  client.on('visitor', onVisitor);
  client.on('state', onState);
  client.on('view', onView);
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


function renderShell() {
  app().removeAttribute('aria-busy');
  const isAdmin = S.me.role === 'admin';
  shell.conn = h('span', { class: 'conn', role: 'status' });
  showConn();
  shell.presence = h('select', { id: 'presence', 'aria-label': t('presence.mine'), onchange: (e) => setPresence(e.target.value) },
    h('option', { value: 'online', text: t('presence.online') }), h('option', { value: 'away', text: t('presence.away') }));
  shell.presence.value = S.presence;
  shell.dot = h('span', { class: `dot ${S.presence}`, 'aria-hidden': 'true' });
  shell.notify = h('button', { class: 'btn ghost small', type: 'button', onclick: askNotifications });
  updateNotifyButton();
  const sound = h('input', { type: 'checkbox', id: 'sound', checked: prefs.sound, onchange: (e) => { prefs.sound = e.target.checked; savePrefs(); } });
  shell.navInbox = h('a', { href: '#/inbox', class: 'navlink', text: t('nav.inbox') });
  shell.navAdmin = isAdmin ? h('a', { href: '#/admin/sites', class: 'navlink', text: t('nav.admin') }) : null;
  shell.main = h('main', { id: 'main', tabindex: '-1' });
  replace(app(), h('div', { class: 'shell' },
    h('header', { class: 'topbar' },
      h('span', { class: 'brand', text: 'wsmschat' }),
      h('nav', { 'aria-label': t('nav.main') }, shell.navInbox, shell.navAdmin),
      h('div', { class: 'spacer' }),
      shell.conn,
      h('label', { class: 'presence' }, shell.dot, h('span', { class: 'sr-only', text: t('presence.mine') }), shell.presence),
      shell.notify,
      h('label', { class: 'check small' }, sound, ' ', t('shell.sound')),
      myMenu(),
      h('button', { class: 'btn ghost small', type: 'button', onclick: logout, text: t('shell.logout') })),
    shell.main));
}

/** The logged-in agent's own menu (their name in the top bar): who they are, the console's
 *  language, and whether the server emails them alerts (customers waiting while nobody of
 *  their topics is online, and the daily digest). */
function myMenu() {
  const msg = h('p', { class: 'action-msg', role: 'status', id: 'my-alerts-msg' });
  const alerts = h('input', { type: 'checkbox', id: 'my-email-alerts', checked: !S.me.emailAlertsOff });
  alerts.addEventListener('change', () => setEmailAlerts(alerts, msg));
  const menu = h('details', { class: 'me-menu' },
    h('summary', { class: 'me', title: S.me.email }, S.me.name, S.me.role === 'admin' ? h('span', { class: 'tag', text: t('me.tagAdmin') }) : null),
    h('div', { class: 'me-panel card', role: 'group', 'aria-label': t('me.settings') },
      h('p', { class: 'muted small', text: S.me.email }),
      langSwitch('my-lang', redrawAll),
      h('label', { class: 'check', for: 'my-email-alerts' }, alerts, t('me.alerts')),
      msg));
  // A menu: closed by Escape or a click elsewhere.
  menu.addEventListener('keydown', (e) => { if (e.key === 'Escape' && menu.open) { menu.open = false; menu.querySelector('summary').focus(); } });
  shell.menu = menu;
  return menu;
}
document.addEventListener('click', (e) => {
  const menu = shell.menu;
  if (menu && menu.open && !menu.contains(e.target)) menu.open = false;
});

async function setEmailAlerts(box, msg) {
  const off = !box.checked;
  box.disabled = true;
  msg.textContent = t('common.saving');
  try {
    const agent = await S.client.setEmailAlerts(off);
    if (!S.client) return;
    S.me = { ...S.me, emailAlertsOff: agent && agent.id === S.me.id ? !!agent.emailAlertsOff : off };
    // The session kept for a reload has the agent as it was at login: keep it current (the
    // server has no call for an agent to read themselves again).
    const saved = readJson(SESSION_KEY, null);
    if (saved && saved.token === S.client.token) writeJson(SESSION_KEY, { ...saved, agent: S.me });
    msg.textContent = t(S.me.emailAlertsOff ? 'me.alertsOff' : 'me.alertsOn');
  } catch (e) {
    msg.textContent = t('common.saveFailed', { error: errText(e) });
  } finally {
    box.disabled = false;
    if (S.me) box.checked = !S.me.emailAlertsOff;
  }
}

function updateNotifyButton() {
  if (!shell.notify) return;
  if (!('Notification' in window)) { shell.notify.hidden = true; return; }
  const p = Notification.permission;
  shell.notify.hidden = p === 'granted';
  shell.notify.textContent = t(p === 'denied' ? 'notify.blocked' : 'notify.enable');
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
    announce(t('presence.now', { status: t(`presence.${v}`) }));
  } catch (e) {
    announce(t('presence.failed', { error: errText(e) }));
  }
}

function onState(s) {
  const was = S.conn;
  S.conn = s.state;
  if (s.state === 'online' && (was === 'offline' || was === 'connecting') && S.everOnline) catchUp();
  if (s.state === 'online') S.everOnline = true;
  showConn();
}

const CONN = ['online', 'connecting', 'offline', 'closed'];
/** The connection's state in the top bar (before the stream's first word: connecting). */
function showConn() {
  if (!shell.conn) return;
  const state = S.conn === 'idle' ? 'connecting' : S.conn;
  shell.conn.textContent = CONN.includes(state) ? t(`conn.${state}`) : state;
  shell.conn.className = S.conn === 'idle' ? 'conn' : `conn ${S.conn}`;
}

/** After a reconnect: the stream replays the conversations it knows; the lists and the open
 *  conversation are read again so nothing created meanwhile is missed. */
function catchUp() {
  if (S.route === 'inbox') loadList(true);
  const cv = S.cv;
  // The page merges into the conversation's view (a `view` event renders it).
  if (cv) S.client.history(cv.id, { limit: HISTORY_PAGE }).catch(() => {});
  cv?.refreshContext?.(); // visitor events missed while offline
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

/** The labels of every site this agent sees (filter, chips, the header's picker). */
export async function refreshLabels() {
  try {
    const list = await S.client.listLabels('');
    S.labels = new Map(list.map((l) => [l.id, l]));
    fillLabels();
    if (S.cv) renderConvHeader();
    scheduleRenderList();
  } catch { /* the inbox works without them */ }
}

export async function refreshAgents() {
  try {
    S.agents = await S.client.listAgentPresence();
    for (const a of S.agents) for (const t of a.topics) S.topics.add(t);
    if (S.cv) renderAssignOptions();
  } catch { /* shown where needed */ }
}

// ---- routing --------------------------------------------------------------------------------

window.addEventListener('hashchange', route);

export function route() {
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
        h('h1', { text: t('adminOnly.title') }),
        h('p', { text: t('adminOnly.text') }),
        h('a', { href: '#/inbox', class: 'btn', text: t('adminOnly.back') }))));
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

boot();
