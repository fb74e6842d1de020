// The console's settings and shared state: which server, the SDK module, preferences, and
// `S`, what every part of the console reads and updates.
import { t } from './i18n.js';

export const SESSION_KEY = 'wsmschat-console:session';
const PREFS_KEY = 'wsmschat-console:prefs';
export const PAGE = 50;
export const HISTORY_PAGE = 50;
const DEFAULT_TOPICS = ['Product', 'Order', 'Delivery', 'Payment', 'Other'];
const STATUSES = ['queued', 'open', 'resolved'];
/** A conversation status as shown (an unknown one as the server names it). */
export const statusLabel = (status) => (STATUSES.includes(status) ? t(`status.${status}`) : status);
export const baseTitle = () => t('page.title');

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

export const SERVER = serverUrl();
export let SDK = null; // the module: { default: init, ChatClient }

export async function loadSdk() {
  if (SDK) return SDK;
  const mod = await import(`${SERVER}/sdk/wsmschat_sdk.js`);
  await mod.default();
  SDK = mod;
  return mod;
}

// ---- preferences and session ----------------------------------------------------------------

export function readJson(key, dflt) {
  try { return JSON.parse(localStorage.getItem(key)) ?? dflt; } catch { return dflt; }
}
export function writeJson(key, v) {
  try { localStorage.setItem(key, JSON.stringify(v)); } catch { /* storage blocked: memory only */ }
}
// `lang`: the language the agent picked ('en', 'de'); none: the browser's (i18n.js pickLang).
export const prefs = Object.assign({ presence: 'online', sound: false }, readJson(PREFS_KEY, {}));
export function savePrefs() { writeJson(PREFS_KEY, prefs); }

// ---- app state ------------------------------------------------------------------------------

export const S = {
  client: null,
  me: null, // Agent
  expiresAt: 0,
  expiryTimer: 0,
  conn: 'idle',
  presence: prefs.presence,
  convs: new Map(), // id -> Conversation (everything seen)
  localRead: new Map(), // id -> seq read in this console
  list: { name: 'mine', status: '', topic: '', query: '', labelId: '' },
  labels: new Map(), // id -> Label (of every site this agent sees)
  listIds: [],
  nextPageToken: '',
  listLoading: false,
  counts: { mine: null, unassigned: null, all: null, snoozed: null },
  // Lists whose count is a lower bound (a search in more messages than the server reads).
  capped: {},
  topics: new Set(DEFAULT_TOPICS),
  agents: [], // AgentPresence
  canned: null,
  cv: null, // the open conversation (see openConversation)
  unseen: 0,
  route: '',
};
window.__wsmschatConsole = S; // for debugging in devtools

export const app = () => document.getElementById('app');

/** DOM nodes of the shell (header, nav, main) and of the inbox layout, kept by the parts that draw them. */
export const shell = {};
export const ui = {};
