// Live events from the SDK (messages, conversations, typing, read marks, presence) and the
// agent's notifications (title, sound, desktop).
import { announce } from './format.js';
import { t } from './i18n.js';
import { baseTitle, prefs, S } from './state.js';
import { refreshAgents } from './app.js';
import { fillTopics, upsertConv, placeInList, scheduleRenderList } from './inbox.js';
import { scheduleLog, markRead, setTyping, renderConvHeader } from './conversation.js';

// ---- live events ----------------------------------------------------------------------------

async function ensureConv(id) {
  let c = S.convs.get(id);
  if (c) return c;
  try {
    c = upsertConv(await S.client.getConversation(id));
    return c;
  } catch { return null; }
}

export async function onMessage(m) {
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
    // The log renders from the view (the `view` event that follows); read marks need the seq now.
    S.cv.maxSeq = Math.max(S.cv.maxSeq, m.seq);
    if (m.authorKind === 'visitor') {
      setTyping(null);
      if (document.hasFocus()) markRead();
    }
  }
  if (m.authorKind === 'visitor') notify(c, m);
}

export function onConversation(c) {
  const old = S.convs.get(c.id);
  S.convs.set(c.id, c);
  if (c.topic && !S.topics.has(c.topic)) { S.topics.add(c.topic); fillTopics(); }
  placeInList(c, old);
  if (S.cv && S.cv.id === c.id) {
    S.cv.conv = c;
    renderConvHeader();
    scheduleLog();
    if (old && JSON.stringify(old.attributes || {}) !== JSON.stringify(c.attributes || {})) refreshContextSoon();
  }
  if (old && old.assigneeId !== c.assigneeId && c.assigneeId === S.me.id) {
    announce(t('live.assigned', { name: c.visitorName || t('live.aVisitor') }));
    if (!old || old.status !== c.status || old.assigneeId !== c.assigneeId) notify(c, null);
  } else if (!old && c.assigneeId === S.me.id) {
    announce(t('live.newAssigned', { name: c.visitorName || t('live.aVisitor') }));
  }
  if (S.agents.length) refreshAgentsSoon();
}

/** A visitor's attributes or page trail changed (the event has only ids): the open
 *  conversation's visitor panel reloads them, once for a burst of changes. */
export function onVisitor(ev) {
  if (S.cv && S.cv.conv?.visitorId === ev.visitorId) refreshContextSoon();
}
let contextTimer = 0;
function refreshContextSoon() {
  clearTimeout(contextTimer);
  contextTimer = setTimeout(() => S.cv?.refreshContext?.(), 250);
}

export let agentsTimer = 0;
export function refreshAgentsSoon() {
  clearTimeout(agentsTimer);
  agentsTimer = setTimeout(refreshAgents, 1500);
}

export function onTyping(ev) {
  if (!S.cv || ev.conversationId !== S.cv.id || ev.authorKind !== 'visitor') return;
  setTyping(ev.on ? t('live.typing', { name: ev.authorName || t('live.theVisitor') }) : null);
}

export function onRead(r) {
  const c = S.convs.get(r.conversationId);
  if (!c) return;
  const next = { ...c };
  if (r.readerKind === 'visitor') next.visitorReadSeq = Math.max(c.visitorReadSeq, r.seq);
  else next.agentReadSeq = Math.max(c.agentReadSeq, r.seq);
  S.convs.set(c.id, next);
  if (S.cv && S.cv.id === c.id) S.cv.conv = next;
  scheduleRenderList();
}

/** The open conversation's view changed (a message, a send's status, a read mark). */
export function onView(e) {
  if (S.cv && e.conversationId === S.cv.id) scheduleLog();
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
      const n = new Notification(c.visitorName || t('common.visitor'), { body: m ? m.text.slice(0, 200) : t('live.notifyAssigned'), tag: c.id });
      n.onclick = () => { window.focus(); location.hash = `#/c/${encodeURIComponent(c.id)}`; n.close(); };
    } catch { /* some platforms need a service worker */ }
  }
}

export function updateTitle() {
  document.title = S.unseen > 0 ? `(${S.unseen}) ${baseTitle()}` : baseTitle();
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
