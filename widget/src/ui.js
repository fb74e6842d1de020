// wsmschat widget UI: loaded lazily by widget.js into its Shadow DOM, on top of the wasm SDK.
// User text is only ever set with textContent / text nodes: never HTML.
import init, { ChatClient } from './wsmschat_widget_sdk.js?v=__VERSION__';

import { h, icon, linkify } from './dom.js?v=__VERSION__';
import { EN, RTL, pickLocale, loadStrings } from './strings.js?v=__VERSION__';
import { attachmentsView } from './files.js?v=__VERSION__';

// The composer's files and the image viewer load on first use (most visitors never send one).
let uploadModule = null;
const uploads = () => (uploadModule ||= import('./upload.js?v=__VERSION__'));

const ICONS = {
  close: 'M6.4 5 12 10.6 17.6 5 19 6.4 13.4 12l5.6 5.6-1.4 1.4-5.6-5.6L6.4 19 5 17.6l5.6-5.6L5 6.4z',
  back: 'M15.4 5.4 14 4l-8 8 8 8 1.4-1.4L8.8 12z',
  send: 'M3.4 20.4 21 12 3.4 3.6 3.4 10l12.6 2-12.6 2z',
  check: 'M9 16.2 4.8 12l-1.4 1.4L9 19 21 7l-1.4-1.4z',
  checks: 'M.4 13.4 1.8 12 6 16.2 5.3 17l-.7.7zM18 7l-1.4-1.4-6.3 6.3 1.4 1.4zm4.2-1.4L11.6 16.2 7.4 12 6 13.4l5.6 5.6 12-12z',
  clock: 'M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm0 18a8 8 0 1 1 0-16 8 8 0 0 1 0 16zm.5-13H11v6l5.2 3.2.8-1.3-4.5-2.7z',
  alert: 'M1 21h22L12 2zm12-3h-2v-2h2zm0-4h-2v-4h2z',
  chevron: 'M8.6 16.6 13.2 12 8.6 7.4 10 6l6 6-6 6z',
  star: 'M12 17.3 18.2 21l-1.6-7L22 9.2l-7.2-.6L12 2 9.2 8.6 2 9.2 7.5 14l-1.7 7z',
  clip: 'M16.5 6v11.5a4 4 0 0 1-8 0V5a2.5 2.5 0 0 1 5 0v10.5a1 1 0 0 1-2 0V6H10v9.5a2.5 2.5 0 0 0 5 0V5a4 4 0 0 0-8 0v12.5a5.5 5.5 0 0 0 11 0V6z'
};

function storageHas(key) {
  try { return !!window.localStorage.getItem(key); } catch { return false; }
}

// ---- the widget ------------------------------------------------------------------------

class Widget {
  constructor({ root, host, frame, launcher, badge, cfg, locale, strings }) {
    Object.assign(this, { root, host, frame, launcher, badge, cfg });
    this.locale = locale;
    // The site's own words (SiteInfo.texts, already for this language) win over ours.
    this.texts = {};
    this.t = (key, vars) => {
      let s = this.texts[key] || strings[key] || EN[key] || key;
      for (const [k, v] of Object.entries(vars || {})) s = s.replace('{' + k + '}', v);
      return s;
    };
    this.client = null;
    this.sessionPromise = null;
    this.site = null;
    this.conv = null;           // the current conversation (Conversation shape)
    this.convs = new Map();     // the visitor's conversations by id (the home screen lists them)
    this.draftTopic = null;     // chosen topic before the first message creates the conversation
    // Messages, pending sends and read marks are the SDK's: `client.view(...)` merges them.
    this.isOpen = false;
    this.unread = 0;
    this.handlers = {};
    this.identity = {};
    this.attrs = {};
    this.watchPage();
    this.typingOn = false;
    this.agentTyping = null;
    this.connState = 'idle';
    this.failed = null;
    this.rated = new Set();
    this.titleSaved = null;
    this.fmtTime = new Intl.DateTimeFormat(this.locale, { hour: '2-digit', minute: '2-digit' });
    this.fmtDay = new Intl.DateTimeFormat(this.locale, { weekday: 'long', day: 'numeric', month: 'long' });
    this.build();
  }

  // ---- structure ------------------------------------------------------------------------

  build() {
    const t = this.t;
    this.launcher.setAttribute('aria-label', t('openChat'));
    this.launcher.addEventListener('click', () => { this.unlockSound(); this.toggle(); });
    this.titleEl = h('h2', { class: 'title', id: 'wsms-title', text: this.cfg.title || t('chat') });
    this.subtitleEl = h('p', { class: 'subtitle' });
    this.avatarEl = h('span', { class: 'avatar', 'aria-hidden': 'true' });
    this.backBtn = h('button', { type: 'button', class: 'icon-btn back', 'aria-label': t('back'), hidden: true, onclick: () => this.home() }, icon(ICONS.back));
    this.closeBtn = h('button', { type: 'button', class: 'icon-btn', 'aria-label': t('closeChat'), onclick: () => this.close() }, icon(ICONS.close));
    const header = h('header', { class: 'header' },
      this.backBtn, this.avatarEl,
      h('div', { class: 'heading' }, this.titleEl, this.subtitleEl),
      this.closeBtn);
    this.banner = h('div', { class: 'banner', role: 'status', hidden: true });
    this.body = h('div', { class: 'body' });
    this.log = h('div', { class: 'log', role: 'log', 'aria-live': 'polite', 'aria-relevant': 'additions', 'aria-label': t('messages') });
    this.typingEl = h('div', { class: 'typing', 'aria-live': 'polite', hidden: true });
    this.input = h('textarea', {
      class: 'input', rows: 1, placeholder: t('placeholder'), 'aria-label': t('placeholder'), maxlength: 4000,
      onkeydown: (e) => {
        if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); this.submit(); }
      },
      oninput: () => { this.autosize(); this.onTyping(); },
      onpaste: (e) => {
        const files = e.clipboardData && e.clipboardData.files;
        if (files && files.length) { e.preventDefault(); this.attachFiles(files); }
      }
    });
    this.sendBtn = h('button', { type: 'button', class: 'send', 'aria-label': t('send'), onclick: () => this.submit() }, icon(ICONS.send));
    // Files: the paperclip, drag and drop onto the panel, paste; each uploads at once.
    this.tray = null;
    this.viewer = null;
    this.trayEl = h('div', { class: 'tray', hidden: true });
    this.trayError = h('p', { class: 'tray-error', role: 'alert', hidden: true });
    this.fileInput = h('input', {
      type: 'file', multiple: true, hidden: true, tabindex: '-1',
      onchange: () => { this.attachFiles(this.fileInput.files); this.fileInput.value = ''; }
    });
    this.attachBtn = h('button', { type: 'button', class: 'icon-btn attach', 'aria-label': t('attach'), title: t('attach'), onclick: () => this.fileInput.click() }, icon(ICONS.clip));
    this.composer = h('div', { class: 'composer-box', hidden: true }, this.trayError, this.trayEl,
      h('div', { class: 'composer' }, this.attachBtn, this.fileInput, this.input, this.sendBtn));
    this.dropEl = h('div', { class: 'drop', hidden: true, text: t('dropFiles') });
    const hasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes('Files') && !this.composer.hidden && !this.attachBtn.hidden;
    this.panel = h('div', {
      class: 'panel', role: 'dialog', 'aria-modal': 'false', 'aria-labelledby': 'wsms-title', hidden: true,
      lang: this.locale, dir: RTL.has(this.locale) ? 'rtl' : 'ltr',
      onkeydown: (e) => { if (e.key === 'Escape') { e.stopPropagation(); this.close(); } },
      ondragover: (e) => { if (hasFiles(e)) { e.preventDefault(); this.dropEl.hidden = false; } },
      ondragleave: (e) => { if (e.target === this.dropEl) this.dropEl.hidden = true; },
      ondrop: (e) => {
        this.dropEl.hidden = true;
        if (!hasFiles(e)) return;
        e.preventDefault();
        this.attachFiles(e.dataTransfer.files);
      }
    }, header, this.banner, this.body, this.typingEl, this.composer,
    h('div', { class: 'footer', text: 'wsmschat' }), this.dropEl);
    this.frame.prepend(this.panel);
    this.applyColor(this.cfg.color);
    this.renderHeader();
    // Mobile: keep the composer above the on-screen keyboard.
    const vv = window.visualViewport;
    if (vv) {
      const fit = () => this.panel.style.setProperty('--wsms-vh', vv.height + 'px');
      vv.addEventListener('resize', fit);
      fit();
    }
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && this.isOpen) this.markRead();
    });
  }

  applyColor(color) {
    if (color && /^#[0-9a-f]{3,8}$|^rgb|^hsl/i.test(color)) this.host.style.setProperty('--wsms-accent', color);
  }

  autosize() {
    this.input.style.height = 'auto';
    this.input.style.height = Math.min(this.input.scrollHeight, 120) + 'px';
  }

  // ---- commands -------------------------------------------------------------------------

  command([name, ...args]) {
    switch (name) {
      case 'open': return this.open();
      case 'close': return this.close();
      case 'toggle': return this.toggle();
      case 'show': this.host.hidden = false; return;
      case 'hide': this.host.hidden = true; return;
      case 'identify': return this.identify(args[0] || {});
      case 'update':
        // Numbers and dates as the server reads them; null removes.
        for (const [k, v] of Object.entries(args[0] || {})) this.attrs[k] = v == null ? '' : v instanceof Date ? v.toISOString().slice(0, 10) : String(v);
        return this.sendAttrs();
      case 'shutdown': return this.shutdown();
      case 'on': (this.handlers[args[0]] ||= []).push(args[1]); return;
      case 'off': this.handlers[args[0]] = (this.handlers[args[0]] || []).filter((f) => f !== args[1]); return;
      default: console.warn('wsmschat: unknown command', name);
    }
  }

  // The page's custom attributes (WsmsChat('update', {...})): kept here, sent once a session
  // exists, and again when a conversation starts (its conversation attributes).
  sendAttrs() {
    if (this.client && Object.keys(this.attrs).length) this.client.setAttributes(this.attrs).catch((e) => console.error('wsmschat: update: ' + e.message));
  }

  // Single-page apps: a navigation is reported once it settled (the title follows the route).
  watchPage() {
    let last = location.href.split('#')[0];
    const check = () => {
      const now = location.href.split('#')[0];
      if (now === last) return;
      last = now;
      clearTimeout(this.pageTimer);
      this.pageTimer = setTimeout(() => this.client && this.client.trackPage().catch(() => {}), 800);
    };
    for (const m of ['pushState', 'replaceState']) {
      const f = history[m];
      history[m] = function () { const r = f.apply(this, arguments); check(); return r; };
    }
    addEventListener('popstate', check);
  }

  emit(name, payload) {
    for (const f of this.handlers[name] || []) {
      try { f(payload); } catch (e) { console.error('wsmschat: a WsmsChat("on") handler threw', e); }
    }
  }

  toggle() { return this.isOpen ? this.close() : this.open(); }

  open() {
    if (this.isOpen) return;
    this.isOpen = true;
    this.panel.hidden = false;
    this.frame.classList.add('open');
    this.launcher.setAttribute('aria-expanded', 'true');
    this.launcher.setAttribute('aria-label', this.t('closeChat'));
    this.restoreTitle();
    this.emit('open');
    this.render();
    this.ensureSession().then((ok) => {
      if (!ok) return;
      this.client.start();
      this.render();
      this.markRead();
      const active = this.root.activeElement;
      if (!active || active === this.closeBtn) this.focusFirst();
    });
    requestAnimationFrame(() => this.focusFirst());
  }

  close() {
    if (!this.isOpen) return;
    this.isOpen = false;
    this.panel.hidden = true;
    this.frame.classList.remove('open');
    this.launcher.setAttribute('aria-expanded', 'false');
    this.launcher.setAttribute('aria-label', this.t('openChat'));
    this.stopTyping();
    this.launcher.focus();
    this.emit('close');
  }

  focusFirst() {
    if (!this.isOpen) return;
    if (!this.composer.hidden) this.input.focus();
    else (this.body.querySelector('button, input') || this.closeBtn).focus();
  }

  async identify(identity) {
    this.identity = { ...this.identity, ...identity };
    if (!this.client) return;
    const before = this.client.visitorId;
    try {
      await this.client.identify(identity);
    } catch (e) {
      console.error(e.message || e);
      return;
    }
    if (this.client.visitorId !== before) {
      this.convs = new Map(this.client.openConversations.map((c) => [c.id, c]));
      this.resetConversation(this.client.openConversations[0]);
    }
  }

  async shutdown() {
    const c = this.client;
    this.client = null;
    this.sessionPromise = null;
    if (c) await c.logout().catch(() => {});
    ChatClient.forget(this.cfg.site);
    this.identity = {};
    this.attrs = {};
    this.convs = new Map();
    this.resetConversation(null);
    this.setUnread(0);
    this.close();
  }

  // ---- session ---------------------------------------------------------------------------

  ensureSession() {
    if (this.client) return Promise.resolve(true);
    if (!this.sessionPromise) {
      this.sessionPromise = this.connect().then((ok) => {
        if (!ok) this.sessionPromise = null;
        return ok;
      });
    }
    return this.sessionPromise;
  }

  async connect() {
    for (let attempt = 1; ; attempt++) {
      try {
        const client = await ChatClient.connect({
          // The language shown when the page chose one (site texts, emails), else the browser's.
          server: this.cfg.server, siteKey: this.cfg.site, locale: this.cfg.locale ? this.locale : navigator.language, ...this.identity,
          ...(this.cfg.continuation && { continuation: this.cfg.continuation })
        });
        delete this.cfg.continuation;
        this.attach(client);
        return true;
      } catch (e) {
        if (this.cfg.continuation && e && e.codeName === 'Unauthenticated') {
          // An expired or altered email link: carry on as this browser's own visitor.
          delete this.cfg.continuation;
          continue;
        }
        const retry = e && (e.codeName === 'Unavailable' || e.codeName === 'DeadlineExceeded' || e.codeName === 'Internal' || e.codeName === 'ResourceExhausted');
        if (!retry) {
          this.failed = (e && e.message) || String(e);
          console.error(this.failed.startsWith('wsmschat') ? this.failed : 'wsmschat: ' + this.failed);
          this.render();
          return false;
        }
        if (attempt === 1) console.warn(e.message);
        this.connState = 'offline';
        this.render();
        if (!this.isOpen && attempt > 2) return false;
        await new Promise((r) => setTimeout(r, Math.min(30000, 1000 * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2)));
      }
    }
  }

  attach(client) {
    this.client = client;
    this.failed = null;
    this.site = client.site;
    this.watchHours();
    if (this.site) {
      this.texts = this.site.texts || {};
      if (!this.cfg.color) this.applyColor(this.site.color);
      if (!this.cfg.title) this.titleEl.textContent = this.texts.title || this.site.name;
      // The labels set when the panel was built, in the site's words where it has its own.
      const t = this.t;
      this.launcher.setAttribute('aria-label', t(this.isOpen ? 'closeChat' : 'openChat'));
      this.input.placeholder = t('placeholder');
      this.input.setAttribute('aria-label', t('placeholder'));
      this.sendBtn.setAttribute('aria-label', t('send'));
      this.dropEl.textContent = t('dropFiles');
    }
    this.sendAttrs();
    client.on('message', (m) => this.onMessage(m));
    client.on('conversation', (c) => this.onConversation(c));
    client.on('typing', (e) => this.onTypingEvent(e));
    client.on('read', (e) => this.onRead(e));
    client.on('state', (e) => { this.connState = e.state; this.renderBanner(); this.emit('state', e.state); });
    client.on('view', (e) => this.onView(e));
    client.on('error', (e) => { this.failed = e.message; this.render(); });
    const pending = client.pending();
    this.convs = new Map(client.openConversations.map((c) => [c.id, c]));
    const open = client.openConversations[0];
    if (open || pending.length) {
      // A conversation is going on: follow it live (for the unread badge) even while closed.
      client.start();
    }
    if (!this.conv && !this.draftTopic) {
      // Sends kept from before a reload that will start a conversation show under their topic.
      const starting = !open && pending.find((p) => !p.conversationId);
      this.resetConversation(open);
      if (starting) { this.draftTopic = starting.topic; this.render(); }
    }
    this.emit('ready');
  }

  resetConversation(conv) {
    this.conv = conv || null;
    this.draftTopic = null;
    this.agentTyping = null;
    if (this.conv) this.loadHistory();
    this.render();
  }

  async loadHistory() {
    const conv = this.conv;
    try {
      await this.client.history(conv.id, { limit: 100 });
      if (this.conv !== conv) return;
      this.unreadFromView();
      if (this.isOpen) this.markRead();
    } catch (e) {
      console.warn(e.message || e);
    }
  }

  // ---- events from the SDK -----------------------------------------------------------------

  // The conversation shown: the current one, or the sends that will start one on the chosen
  // topic; null on the home screen.
  currentView() {
    if (!this.client) return null;
    if (this.conv) return this.client.view(this.conv.id);
    if (this.draftTopic) return this.client.view('', this.draftTopic);
    return null;
  }

  // A conversation starts being shown (ours, just created, or one an agent wrote in).
  adopt(id, topic) {
    this.conv = { id, topic, status: 'queued', queuePosition: 0, agentReadSeq: 0, visitorReadSeq: 0, agentsOnline: this.onlineFor(topic), rating: 0, assigneeName: '' };
    this.draftTopic = null;
    this.client.getConversation(id).then((c) => {
      this.convs.set(c.id, c);
      if (this.conv && this.conv.id === c.id) { this.conv = c; this.render(); }
    }).catch(() => {});
    this.loadHistory();
    this.render();
  }

  onView(e) {
    // Our first send on the chosen topic was stored: its conversation is the one shown now.
    if (!this.conv && this.draftTopic && e.conversationId && e.topic === this.draftTopic) {
      this.adopt(e.conversationId, e.topic);
      return;
    }
    const shown = this.conv ? e.conversationId === this.conv.id : !e.conversationId && e.topic === this.draftTopic;
    if (shown) this.renderMessages();
  }

  onMessage(m) {
    if (m.kind === 'note') return;
    const mine = m.authorKind === 'visitor';
    if (!this.conv || this.conv.id !== m.conversationId) {
      const adopt = (!this.conv && (mine || this.draftTopic === null)) || (this.conv && this.conv.status === 'resolved' && !mine && !this.isOpen);
      if (!adopt && !(mine && this.draftTopic)) {
        if (!mine) this.notify(m, true);
        return;
      }
      this.adopt(m.conversationId, this.draftTopic || '');
    }
    if (!mine && m.authorKind !== 'system') {
      this.agentTyping = null;
      this.renderTyping();
      this.notify(m, false);
    }
    this.emit('message', m);
  }

  onConversation(c) {
    if (c.visitorId === this.client.visitorId) {
      if (!this.convs.has(c.id)) this.sendAttrs();
      this.convs.set(c.id, c);
    }
    const i = this.site ? this.site.topics.indexOf(c.topic) : -1;
    if (i >= 0 && c.status !== 'resolved') this.site.agentsOnline[i] = c.agentsOnline;
    if (this.conv && this.conv.id === c.id) {
      this.conv = c;
    } else if (!this.conv && this.draftTopic && c.topic === this.draftTopic) {
      return; // our own new conversation: adopted with its first message
    } else {
      return;
    }
    this.render();
  }

  onTypingEvent(e) {
    if (!this.conv || e.conversationId !== this.conv.id || e.authorKind === 'visitor') return;
    clearTimeout(this.agentTypingTimer);
    this.agentTyping = e.on ? (e.authorName || this.t('someone')) : null;
    if (e.on) this.agentTypingTimer = setTimeout(() => { this.agentTyping = null; this.renderTyping(); }, 8000);
    this.renderTyping();
  }

  onRead(e) {
    if (!this.conv || e.conversationId !== this.conv.id) return;
    // The view re-renders the read marks; another tab of ours reading clears the badge here.
    if (e.readerKind === 'visitor') {
      this.conv.visitorReadSeq = Math.max(this.conv.visitorReadSeq || 0, e.seq);
      this.unreadFromView();
    }
  }

  // ---- unread, title and sound -------------------------------------------------------------

  notify(m, otherConversation) {
    const visible = this.isOpen && !document.hidden && !otherConversation;
    if (visible) {
      // The SDK announces a message before its view holds it: count it in.
      this.markRead(m.seq);
      return;
    }
    this.setUnread(this.unread + 1);
    this.beep();
    if (!this.titleSaved) this.titleSaved = document.title;
    document.title = '(' + this.unread + ') ' + this.t('newMessage') + ' · ' + this.titleSaved;
  }

  unreadFromView() {
    const v = this.conv && this.currentView();
    if (!v) return;
    const readUpTo = Math.max(this.conv.visitorReadSeq || 0, v.visitorReadSeq);
    let n = 0;
    for (const m of v.messages) {
      if (m.seq > readUpTo && (m.authorKind === 'agent' || m.authorKind === 'service')) n++;
    }
    if (this.isOpen && !document.hidden) n = 0;
    this.setUnread(n);
    if (n === 0) this.restoreTitle();
  }

  setUnread(n) {
    if (n === this.unread) return;
    this.unread = n;
    this.badge.hidden = n === 0;
    this.badge.textContent = n > 9 ? '9+' : String(n);
    this.launcher.setAttribute('aria-label', this.t(this.isOpen ? 'closeChat' : 'openChat') + (n ? ' (' + n + ')' : ''));
    this.emit('unread', n);
  }

  restoreTitle() {
    if (this.titleSaved != null) {
      document.title = this.titleSaved;
      this.titleSaved = null;
    }
  }

  unlockSound() {
    // Sound only after a user gesture (browsers also require it).
    if (this.audio || !window.AudioContext) return;
    try { this.audio = new AudioContext(); } catch { this.audio = null; }
  }

  beep() {
    const a = this.audio;
    if (!a) return;
    try {
      const o = a.createOscillator(), g = a.createGain();
      o.frequency.value = 880;
      g.gain.setValueAtTime(0.0001, a.currentTime);
      g.gain.exponentialRampToValueAtTime(0.08, a.currentTime + 0.02);
      g.gain.exponentialRampToValueAtTime(0.0001, a.currentTime + 0.25);
      o.connect(g).connect(a.destination);
      o.start();
      o.stop(a.currentTime + 0.3);
    } catch { /* no sound then */ }
  }

  markRead(last = 0) {
    if (!this.client || !this.conv || !this.isOpen || document.hidden) return;
    for (const m of this.currentView().messages) last = Math.max(last, m.seq);
    this.setUnread(0);
    this.restoreTitle();
    if (last > (this.conv.visitorReadSeq || 0)) {
      this.conv.visitorReadSeq = last;
      this.client.markRead(this.conv.id, last).catch(() => {});
    }
  }

  // ---- sending -----------------------------------------------------------------------------

  onTyping() {
    if (!this.client || !this.conv) return;
    if (!this.typingOn) {
      this.typingOn = true;
      this.client.typing(this.conv.id, true).catch(() => {});
    }
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.stopTyping(), 3000);
  }

  stopTyping() {
    clearTimeout(this.typingTimer);
    if (this.typingOn && this.client && this.conv) this.client.typing(this.conv.id, false).catch(() => {});
    this.typingOn = false;
  }

  async attachFiles(list) {
    // Copied at once: a FileList empties when its input is reset or its event ends.
    const files = [...(list || [])];
    if (!files.length || !(await this.ensureSession())) return;
    const { Tray } = await uploads();
    this.tray ||= new Tray({
      client: () => this.client, conversationId: () => (this.conv ? this.conv.id : ''),
      site: () => this.site, t: this.t, el: this.trayEl, errorEl: this.trayError
    });
    this.tray.add(files);
  }

  async openImage(a, opener, seq) {
    const { Viewer } = await uploads();
    this.viewer ||= new Viewer(this.frame, { t: this.t, refresh: (x) => this.refreshLinks(seq, x) });
    this.viewer.open(a, opener);
  }

  // Fresh links of a file of message `seq` (links last about an hour): that message again.
  async refreshLinks(seq, a) {
    if (!this.client || !this.conv || !seq) return null;
    const page = await this.client.history(this.conv.id, { beforeSeq: seq + 1, limit: 1 });
    for (const m of page.messages) for (const x of m.attachments) if (x.id === a.id) return x;
    return null;
  }

  // Sends the composer's text and files, or again a send that failed (same clientMsgId:
  // stored once, its files with it).
  async submit(retryId) {
    const v = retryId && this.currentView();
    const retry = v && v.messages.find((m) => m.clientMsgId === retryId && m.status !== 'sent');
    const text = retry ? retry.text : this.input.value.trim();
    if (!(await this.ensureSession())) return;
    let attachments = retry ? retry.attachments || [] : [];
    if (!text && !retry && (!this.tray || this.tray.empty)) return;
    if (!retry && this.tray && !this.tray.empty) {
      this.sendBtn.disabled = true;
      const ok = await this.tray.ready();
      this.sendBtn.disabled = false;
      if (!ok) { this.tray.error(this.t('uploadFailedSend')); return; }
      attachments = this.tray.attachments();
      this.tray.clear();
    }
    if (!text && !attachments.length) return;
    this.client.start();
    const opts = { clientMsgId: retryId || ChatClient.newId(), attachments };
    if (this.conv) opts.conversationId = this.conv.id;
    else {
      opts.topic = this.draftTopic || (this.site && this.site.topics[0]) || '';
      this.draftTopic = opts.topic;
    }
    if (!retry) {
      this.input.value = '';
      this.autosize();
      this.stopTyping();
    }
    this.refusal = null;
    try {
      // The view shows it at once (sending, waiting, failed), then as stored.
      await this.client.send(text, opts);
    } catch (e) {
      console.warn(e.message || e);
      if (this.refused(e)) return;
      // Refused before it was queued (too long): give the text back.
      if (!retry && !this.input.value && !this.currentView().messages.some((m) => m.clientMsgId === opts.clientMsgId)) this.input.value = text;
    }
  }

  // A refusal with the server's reason: a block shows the neutral "unavailable"; a quota says
  // when to try again. True when handled.
  refused(e) {
    const reason = e && e.reason;
    if (reason === 'CHAT_UNAVAILABLE') {
      this.failed = e.message;
      this.render();
      return true;
    }
    if (reason === 'NEW_CONVERSATION_QUOTA' || reason === 'OPEN_CONVERSATION_LIMIT') {
      const minutes = Math.max(1, Math.ceil((e.retryAfterS || 3600) / 60));
      this.refusal = reason === 'NEW_CONVERSATION_QUOTA' ? this.t('quotaNew', { minutes }) : this.t('quotaOpen');
      this.renderMessages();
      return true;
    }
    return false;
  }

  onlineFor(topic) {
    if (!this.site) return 0;
    const i = this.site.topics.indexOf(topic);
    return i >= 0 ? this.site.agentsOnline[i] || 0 : this.site.agentsOnline.reduce((a, b) => a + b, 0);
  }

  // ---- opening hours: the server says open or closed and until when; the widget flips on time

  /** Outside opening hours now? ({ back }: when the team is back, ms; 0: unknown). */
  hours() {
    const s = this.site;
    if (!s) return null;
    const now = Date.now();
    if (s.closed && !(s.opensAt && now >= s.opensAt)) return { back: s.opensAt || 0 };
    if (!s.closed && s.closesAt && now >= s.closesAt) return { back: 0 };
    return null;
  }

  /** Re-renders when the site opens or closes (a page left open over night). */
  watchHours() {
    clearTimeout(this.hoursTimer);
    const s = this.site;
    const at = s && (s.closed ? s.opensAt : s.closesAt);
    if (at) this.hoursTimer = setTimeout(() => this.render(), Math.min(Math.max(0, at - Date.now()) + 500, 2 ** 31 - 1));
  }

  /** "Monday 09:00" in the visitor's language and time zone; "09:00" for later today. */
  when(ms) {
    const d = new Date(ms), now = new Date();
    const sameDay = d.toDateString() === now.toDateString();
    return sameDay ? this.fmtTime.format(d) : new Intl.DateTimeFormat(this.locale, { weekday: 'long', hour: '2-digit', minute: '2-digit' }).format(d);
  }

  /** The header's hint: closed (and when back), or how soon we reply. */
  statusText(online) {
    const t = this.t;
    const closed = this.hours();
    if (closed) return t('closed') + (closed.back ? ' · ' + t('backAt', { when: this.when(closed.back) }) : '');
    if (!online) return t('offline') + ' · ' + t('offlineHint');
    const s = this.site && this.site.typicalReplyS;
    if (!s) return t('online') + ' · ' + t('onlineHint');
    const m = Math.max(1, Math.ceil(s / 60));
    const [n, unit] = m < 60 ? [m, 'minute'] : [Math.round(m / 60), 'hour'];
    const time = new Intl.NumberFormat(this.locale, { style: 'unit', unit, unitDisplay: 'long' }).format(n);
    return t('online') + ' · ' + t('replyTime', { time });
  }

  pickTopic(topic) {
    const name = this.nameInput && this.nameInput.value.trim();
    const email = this.emailInput && this.emailInput.value.trim();
    if ((name || email) && this.client) this.identify({ ...(name && { name }), ...(email && { email }) });
    this.draftTopic = topic;
    this.refusal = null;
    this.render();
    this.input.focus();
  }

  home() {
    this.stopTyping();
    if (this.conv) this.convs.set(this.conv.id, this.conv);
    this.conv = null;
    this.draftTopic = null;
    this.render();
    this.focusFirst();
  }

  // ---- rendering ---------------------------------------------------------------------------

  render() {
    // The body is emptied and built again: a field inside it (the email form in the log) would
    // lose the focus, and the keys typed next would go nowhere.
    const focused = this.root.activeElement;
    this.renderBody();
    if (focused && focused.isConnected && this.root.activeElement !== focused) focused.focus({ preventScroll: true });
  }

  renderBody() {
    this.renderHeader();
    this.renderBanner();
    const t = this.t;
    const chatting = !!(this.conv || this.draftTopic);
    // Back to the home screen: the visitor's conversations and a new one on any topic.
    this.backBtn.hidden = !(this.draftTopic || this.conv);
    this.composer.hidden = !chatting || !!this.failed;
    this.attachBtn.hidden = !!(this.site && this.site.fileKinds === 'none');
    this.fileInput.accept = this.site && this.site.fileKinds === 'images' ? 'image/*' : '';
    this.body.replaceChildren();
    if (this.failed) {
      this.body.append(h('div', { class: 'empty' }, h('p', { class: 'error', text: t('unavailable') })));
      return;
    }
    if (!this.client && !chatting) {
      this.body.append(h('div', { class: 'empty' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), h('p', { text: t('connecting') })));
      return;
    }
    if (!chatting) {
      this.body.append(this.renderHome());
      return;
    }
    this.body.append(this.log);
    this.renderMessages();
  }

  renderHeader() {
    const t = this.t;
    const conv = this.conv;
    let online = 0;
    if (conv && conv.agentsOnline != null && conv.status !== 'resolved') online = conv.agentsOnline || (conv.assigneeName ? 1 : 0);
    else if (this.site) online = this.site.agentsOnline.reduce((a, b) => a + b, 0);
    const name = (this.site && this.site.name) || this.cfg.title || t('chat');
    this.avatarEl.textContent = (conv && conv.assigneeName ? conv.assigneeName : name).trim().charAt(0).toUpperCase();
    this.avatarEl.classList.toggle('on', online > 0 && !this.hours());
    if (conv && conv.assigneeName && conv.status === 'open') this.subtitleEl.textContent = t('chattingWith', { name: conv.assigneeName });
    else this.subtitleEl.textContent = this.statusText(online);
  }

  renderBanner() {
    const t = this.t;
    let text = '';
    if (this.connState === 'offline') text = t('reconnecting');
    this.banner.textContent = text;
    this.banner.hidden = !text;
  }

  renderHome() {
    const t = this.t;
    const site = this.site || { topics: [], agentsOnline: [], greeting: '' };
    let topics = site.topics;
    if (this.cfg.topics) {
      const only = String(this.cfg.topics).split(',').map((s) => s.trim()).filter(Boolean);
      topics = topics.filter((x) => only.includes(x));
    }
    const home = h('div', { class: 'home' },
      h('p', { class: 'greeting', text: this.cfg.greeting || this.texts.greeting || site.greeting || '' }));
    if (this.cfg.prechat != null && this.cfg.prechat !== 'false') {
      this.nameInput = h('input', { class: 'field', type: 'text', autocomplete: 'name', placeholder: t('name'), 'aria-label': t('name') });
      this.emailInput = h('input', { class: 'field', type: 'email', autocomplete: 'email', placeholder: t('email'), 'aria-label': t('email') });
      home.append(h('div', { class: 'prechat' }, this.nameInput, this.emailInput));
    }
    const list = h('ul', { class: 'topics', 'aria-label': t('topicQuestion') });
    for (const topic of topics) {
      const n = this.onlineFor(topic);
      list.append(h('li', {}, h('button', {
        type: 'button', class: 'topic', onclick: () => this.pickTopic(topic)
      }, h('span', { class: 'topic-name', text: topic }),
      h('span', { class: 'presence ' + (n ? 'on' : 'off'), text: n ? t('agentsOnline') : t('nobodyOnline') }),
      icon(ICONS.chevron, 'chev'))));
    }
    // The visitor's conversations, open ones first, newest first: back into any of them.
    const convs = [...this.convs.values()].sort((a, b) => (a.status === 'resolved') - (b.status === 'resolved') || b.updatedAt - a.updatedAt);
    if (convs.length) {
      home.append(h('p', { class: 'question', text: t('yourConversations') }), h('ul', { class: 'topics convs', 'aria-label': t('yourConversations') },
        convs.slice(0, 10).map((c) => h('li', {}, h('button', { type: 'button', class: 'topic conv', onclick: () => this.resetConversation(c) },
          h('span', { class: 'topic-name' }, h('span', { text: c.topic }), h('span', { class: 'conv-preview', text: c.lastMessagePreview || '' })),
          h('span', { class: 'presence ' + (c.status === 'resolved' ? 'off' : 'on'), text: t(c.status === 'resolved' ? 'resolvedShort' : 'openShort') }),
          icon(ICONS.chevron, 'chev'))))));
      home.append(h('p', { class: 'question', text: t('newConversation') }));
    } else home.append(h('p', { class: 'question', text: t('topicQuestion') }));
    home.append(list);
    return home;
  }

  dayLabel(ts) {
    const d = new Date(ts), now = new Date();
    const start = (x) => new Date(x.getFullYear(), x.getMonth(), x.getDate()).getTime();
    const diff = Math.round((start(now) - start(d)) / 86400000);
    if (diff === 0) return this.t('today');
    if (diff === 1) return this.t('yesterday');
    return this.fmtDay.format(d);
  }

  systemText(m) {
    const s = m.system || {};
    const name = s.agentName || this.t('someone');
    switch (s.kind) {
      case 'assigned': case 'joined': return this.t('assigned', { name });
      case 'transferred': return this.t('transferred', { name });
      case 'resolved': return this.t('resolved');
      case 'reopened': return this.t('reopened');
      case 'rated': return this.t('rated', { score: s.score });
      default: return m.text;
    }
  }

  renderMessages() {
    if (!this.log.isConnected) return;
    // Before building: appending the email form (kept across renders) to a new notice moves it
    // out of the document, and the focus with it.
    const focused = this.root.activeElement;
    const t = this.t;
    const conv = this.conv;
    const nearBottom = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 80;
    const items = [];
    const greeting = this.cfg.greeting || this.texts.greeting || (this.site && this.site.greeting);
    const topic = (conv && conv.topic) || this.draftTopic;
    if (topic) items.push(h('div', { class: 'topic-chip', text: topic }));
    if (greeting) items.push(this.bubble({ authorKind: 'agent', authorName: (this.site && this.site.name) || '', text: greeting }, { intro: true }));
    const v = this.currentView();
    const lines = v ? v.messages.filter((m) => m.kind !== 'note') : [];
    const readSeq = v ? v.agentReadSeq : 0;
    let lastDay = '';
    let lastAuthor = '';
    const lastMine = [...lines].reverse().find((m) => m.authorKind === 'visitor' && m.status === 'sent');
    for (const m of lines) {
      if (m.status !== 'sent') {
        items.push(this.bubble(m, { pending: m, last: true }));
        continue;
      }
      const day = this.dayLabel(m.createdAt);
      if (day !== lastDay) {
        items.push(h('div', { class: 'day', role: 'separator', text: day }));
        lastDay = day;
        lastAuthor = '';
      }
      if (m.system && m.system.kind === 'away') {
        // The site's out-of-office reply: its own words, from the site, as text.
        items.push(this.bubble({ ...m, authorKind: 'agent', authorName: (this.site && this.site.name) || m.authorName }, { showName: true }));
        lastAuthor = '';
        continue;
      }
      if (m.kind === 'system' || m.authorKind === 'system') {
        items.push(h('div', { class: 'system', text: this.systemText(m) }));
        lastAuthor = '';
        continue;
      }
      const author = m.authorKind + ':' + m.authorId;
      items.push(this.bubble(m, { showName: author !== lastAuthor, last: m === lastMine, readSeq }));
      lastAuthor = author;
    }
    const closed = this.hours();
    const waitText = closed && closed.back ? t('queuedClosed', { when: this.when(closed.back) }) : t('queuedOffline');
    if (conv && conv.status === 'queued') {
      // Outside opening hours the site's word wins over a position (an admin online at night
      // is not the team being open).
      const text = !closed && conv.agentsOnline > 0 && conv.queuePosition > 0 ? t('queued', { n: conv.queuePosition }) : waitText;
      const note = h('div', { class: 'notice', role: 'status' }, h('p', { text }));
      // Only a server that sends email may promise a reply by email.
      if ((closed || !(conv.agentsOnline > 0)) && this.site && this.site.emailEnabled) note.append(this.emailForm());
      items.push(note);
    } else if (!conv && this.draftTopic && (closed || this.onlineFor(this.draftTopic) === 0)) {
      items.push(h('div', { class: 'notice', role: 'status' }, h('p', { text: waitText })));
    }
    if (conv && conv.status === 'resolved') items.push(this.ratingCard());
    // A quota refused the last send (the server's reason): say so, in the visitor's language.
    if (this.refusal) items.push(h('div', { class: 'notice refusal', role: 'alert' }, h('p', { class: 'error', text: this.refusal })));
    this.log.replaceChildren(...items);
    if (focused && focused.isConnected) focused.focus();
    if (nearBottom || this.stickToBottom !== false) this.log.scrollTop = this.log.scrollHeight;
    this.renderTyping();
    this.renderHeader();
  }

  bubble(m, { showName = true, last = false, pending = null, intro = false, readSeq = 0 } = {}) {
    const t = this.t;
    const mine = m.authorKind === 'visitor';
    const row = h('div', { class: 'msg ' + (mine ? 'mine' : 'theirs') + (intro ? ' intro' : '') });
    if (!mine && showName && m.authorName) row.append(h('div', { class: 'author', text: m.authorName }));
    if (m.text || intro) row.append(h('div', { class: 'bubble', dir: 'auto' }, linkify(m.text || '')));
    if (intro) return row;
    const files = attachmentsView(m.attachments, {
      t, open: (a, el) => this.openImage(a, el, m.seq), refresh: (a) => this.refreshLinks(m.seq, a)
    });
    if (files) row.append(files);
    const meta = h('div', { class: 'meta' });
    if (m.createdAt) meta.append(h('time', { datetime: new Date(m.createdAt).toISOString(), text: this.fmtTime.format(new Date(m.createdAt)) }));
    if (mine) {
      let status, ic;
      if (pending) {
        if (pending.status === 'failed') { status = t('failed'); ic = ICONS.alert; }
        else if (pending.status === 'waiting') { status = t('waiting'); ic = ICONS.clock; }
        else { status = t('sending'); ic = ICONS.clock; }
      } else if (Math.max(readSeq, (this.conv && this.conv.agentReadSeq) || 0) >= m.seq) { status = t('read'); ic = ICONS.checks; }
      else { status = t('sent'); ic = ICONS.check; }
      const st = h('span', { class: 'status' + (pending ? ' ' + pending.status : ''), title: status }, icon(ic));
      if (last || pending) st.append(h('span', { text: status }));
      else st.append(h('span', { class: 'sr', text: status }));
      meta.append(st);
      if (pending && pending.status === 'failed') {
        meta.append(h('button', { type: 'button', class: 'link', text: t('retry'), onclick: () => this.submit(m.clientMsgId) }),
          h('button', { type: 'button', class: 'link', text: t('remove'), onclick: () => this.client.discard(m.clientMsgId) }));
      }
    }
    row.append(meta);
    return row;
  }

  emailForm() {
    const t = this.t;
    if (this.identity.email) return h('p', { class: 'small', text: t('saved', { email: this.identity.email }) });
    // One form for every render: what the visitor is typing survives new events.
    if (this.emailEl) return this.emailEl;
    const input = h('input', { class: 'field', type: 'email', autocomplete: 'email', placeholder: 'name@example.com', 'aria-label': t('email') });
    const form = h('form', {
      class: 'inline-form',
      onsubmit: (e) => {
        e.preventDefault();
        const email = input.value.trim();
        if (email && input.checkValidity()) this.identify({ email }).then(() => this.renderMessages());
      }
    }, h('label', { class: 'small', text: t('leaveEmail') }), h('div', { class: 'row' }, input, h('button', { type: 'submit', class: 'btn small-btn', text: t('save') })));
    return this.emailEl = form;
  }

  ratingCard() {
    const t = this.t;
    const conv = this.conv;
    const card = h('div', { class: 'card rating' });
    if (conv.rating || this.rated.has(conv.id)) {
      card.append(h('p', { text: t('rateThanks') }));
    } else {
      let score = 0;
      const comment = h('textarea', { class: 'field', rows: 2, placeholder: t('rateComment'), 'aria-label': t('rateComment'), maxlength: 1000 });
      const submit = h('button', { type: 'button', class: 'btn', text: t('rateSend'), disabled: true });
      const group = h('div', { class: 'stars', role: 'radiogroup', 'aria-label': t('rateQuestion') });
      const buttons = [1, 2, 3, 4, 5].map((n) => h('button', {
        type: 'button', class: 'star', role: 'radio', 'aria-checked': 'false', 'aria-label': t('star', { n }),
        onclick: () => {
          score = n;
          buttons.forEach((b, j) => {
            b.setAttribute('aria-checked', String(j + 1 === n));
            b.classList.toggle('on', j < n);
          });
          submit.disabled = false;
        }
      }, icon(ICONS.star)));
      group.append(...buttons);
      submit.addEventListener('click', async () => {
        submit.disabled = true;
        try {
          await this.client.rate(conv.id, score, comment.value.trim() || undefined);
          this.rated.add(conv.id);
          this.renderMessages();
        } catch (e) {
          submit.disabled = false;
          console.warn(e.message || e);
        }
      });
      card.append(h('p', { class: 'card-title', text: t('rateQuestion') }), group, comment, submit);
    }
    // The transcript: as a text file, or by email when the server sends email.
    // What it said survives the card being drawn again (events redraw the list).
    // An answer that arrives after a redraw goes to the card on the page, not the detached one.
    const note = h('span', { role: 'status', text: this.note && this.note[0] === conv.id ? this.note[1] : '' });
    this.noteEl = [conv.id, note];
    const say = (text) => {
      this.note = [conv.id, text];
      if (this.noteEl[0] === conv.id) this.noteEl[1].textContent = text;
    };
    const act = (label, f) => h('button', { type: 'button', class: 'link', text: t(label), onclick: () => f().catch((e) => say(e.message)) });
    card.append(h('p', { class: 'small' }, act('transcript', async () => {
      const r = await this.client.transcript(conv.id);
      const a = h('a', { href: URL.createObjectURL(new Blob([r.text], { type: 'text/plain' })), download: r.filename });
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 9e3);
    }), this.site && this.site.emailEnabled && [' · ', act('transcriptMail', async () => {
      say(t('saved', { email: await this.client.emailTranscript(conv.id) }));
    })], ' ', note));
    card.append(h('button', { type: 'button', class: 'btn ghost', text: t('newConversation'), onclick: () => this.home() }));
    return card;
  }

  renderTyping() {
    const who = this.agentTyping;
    this.typingEl.hidden = !who;
    if (who) {
      this.typingEl.replaceChildren(h('span', { class: 'dots', 'aria-hidden': 'true' }, h('i'), h('i'), h('i')), h('span', { text: this.t('typing', { name: who }) }));
    }
  }
}

let sdkReady = null;

export async function mount({ root, host, frame, launcher, badge, cfg, queue }) {
  sdkReady ||= init({ module_or_path: cfg.assets + 'wsmschat_widget_sdk_bg.wasm?v=' + cfg.version });
  // The language's strings load beside the SDK (no extra round trip before the first paint).
  const locale = pickLocale(cfg.locale);
  const [strings] = await Promise.all([loadStrings(locale), sdkReady]);
  const widget = new Widget({ root, host, frame, launcher, badge, cfg, locale, strings });
  const api = { command: (args) => widget.command(args) };
  // A returning visitor with a conversation going on: resume it now (unread badge, title).
  // Everyone else opens nothing until they open the chat.
  const kept = storageHas('wsmschat:' + cfg.site + ':token');
  if (kept) widget.ensureSession();
  while (queue.length) widget.command(queue.shift());
  return api;
}
