/*! wsmschat widget loader. Install:
 *   <script src="https://CHAT-SERVER/widget.js" data-site="SITE_KEY" async></script>
 * Shows the launcher at once; loads the chat UI and the wasm SDK when the browser is idle or on
 * first use. Everything lives in a Shadow DOM; nothing inline is injected into the page (CSP).
 * Commands, also before this script has loaded (queue them with the snippet in the README):
 *   WsmsChat('open' | 'close' | 'toggle' | 'show' | 'hide')
 *   WsmsChat('identify', { userId, userHash, name, email })
 *   WsmsChat('update', { plan: 'pro', orderId: '1001' })   custom attributes the site declares
 *   WsmsChat('shutdown')                       forget the visitor on this browser (logout)
 *   WsmsChat('on' | 'off', 'message' | 'unread' | 'open' | 'close' | 'ready', fn)
 */
(function () {
  'use strict';
  var w = window, d = document, VERSION = '__VERSION__';
  if (w.__wsmschat) return;
  w.__wsmschat = true;

  var script = d.currentScript || d.querySelector('script[data-site][src*="widget"]');
  var settings = w.WsmsChatSettings || {};
  function opt(name, attr) {
    if (settings[name] != null) return settings[name];
    var v = script && script.getAttribute('data-' + (attr || name));
    return v == null ? undefined : v;
  }
  var src = script ? script.src : location.href;
  var srcUrl = new URL(src, location.href);
  var cfg = {
    site: opt('site'),
    server: String(opt('server') || srcUrl.origin).replace(/\/+$/, ''),
    assets: opt('assets') || new URL(/\/widget\/widget\.js$/.test(srcUrl.pathname) ? './' : 'widget/', srcUrl).href,
    color: opt('color'),
    position: opt('position') === 'left' ? 'left' : 'right',
    greeting: opt('greeting'),
    locale: opt('locale'),
    topics: opt('topics'),
    prechat: opt('prechat'),
    title: opt('title'),
    version: VERSION
  };
  if (!/\/$/.test(cfg.assets)) cfg.assets += '/';
  // An email's "continue the conversation" link: take the token out of the address bar (it is
  // a credential) and open the chat on that conversation.
  var cont = /(^#|&)wsmschat-continue=([\w.-]+)/.exec(location.hash);
  if (cont) {
    cfg.continuation = cont[2];
    try { history.replaceState(history.state, '', location.href.replace(/#?&?wsmschat-continue=[\w.-]+/, '')); } catch (e) {}
  }
  if (!cfg.site) {
    console.error('wsmschat: the script tag needs data-site="SITE_KEY"');
    return;
  }

  // The command queue: calls before the UI has loaded wait here.
  var queue = [];
  var prior = w.WsmsChat && w.WsmsChat.q;
  if (prior) for (var i = 0; i < prior.length; i++) queue.push([].slice.call(prior[i]));
  var ui = null;
  function WsmsChat() {
    var args = [].slice.call(arguments);
    if (ui) return ui.command(args);
    if (args[0] === 'shutdown') {
      forget();
      return;
    }
    if (args[0] === 'hide') host.hidden = true;
    if (args[0] === 'show') host.hidden = false;
    queue.push(args);
    if (args[0] === 'open' || args[0] === 'toggle') load();
  }
  w.WsmsChat = WsmsChat;

  function forget() {
    try {
      w.localStorage.removeItem('wsmschat:' + cfg.site + ':token');
      w.localStorage.removeItem('wsmschat:' + cfg.site + ':outbox');
    } catch (e) { /* storage blocked: nothing was kept */ }
  }

  function svg(paths) {
    var ns = 'http://www.w3.org/2000/svg';
    var s = d.createElementNS(ns, 'svg');
    s.setAttribute('viewBox', '0 0 24 24');
    s.setAttribute('aria-hidden', 'true');
    s.setAttribute('focusable', 'false');
    for (var i = 0; i < paths.length; i++) {
      var p = d.createElementNS(ns, 'path');
      p.setAttribute('d', paths[i]);
      s.appendChild(p);
    }
    return s;
  }

  // The host element and its shadow root: page CSS cannot reach inside, ours cannot leak out.
  var host = d.createElement('wsmschat-widget');
  if (cfg.color) host.style.setProperty('--wsms-accent', cfg.color);
  var root = host.attachShadow({ mode: 'open' });
  var link = d.createElement('link');
  link.rel = 'stylesheet';
  link.href = cfg.assets + 'widget.css?v=' + VERSION;
  var frame = d.createElement('div');
  frame.className = 'wsms pos-' + cfg.position;
  frame.hidden = true; // until the stylesheet is in: no flash of unstyled launcher
  var launcher = d.createElement('button');
  launcher.type = 'button';
  launcher.className = 'launcher';
  launcher.setAttribute('aria-haspopup', 'dialog');
  launcher.setAttribute('aria-expanded', 'false');
  launcher.setAttribute('aria-label', 'Open chat');
  var iconChat = svg(['M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-4.5 3.6A.6.6 0 0 1 3.5 21V18H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z']);
  iconChat.setAttribute('class', 'icon-chat');
  var iconClose = svg(['M6.4 5 12 10.6 17.6 5 19 6.4 13.4 12l5.6 5.6-1.4 1.4-5.6-5.6L6.4 19 5 17.6l5.6-5.6L5 6.4z']);
  iconClose.setAttribute('class', 'icon-close');
  var badge = d.createElement('span');
  badge.className = 'badge';
  badge.hidden = true;
  launcher.appendChild(iconChat);
  launcher.appendChild(iconClose);
  launcher.appendChild(badge);
  frame.appendChild(launcher);
  root.appendChild(link);
  root.appendChild(frame);
  link.addEventListener('load', function () { frame.hidden = false; });
  link.addEventListener('error', function () {
    console.error('wsmschat: could not load ' + link.href + ' (is style-src allowing ' + srcUrl.origin + '?)');
  });

  var loading = null;
  if (cont) queue.push(['open']);
  function load() {
    if (!loading) {
      loading = import(cfg.assets + 'ui.js?v=' + VERSION)
        .then(function (m) {
          return m.mount({ root: root, host: host, frame: frame, launcher: launcher, badge: badge, cfg: cfg, queue: queue });
        })
        .then(function (api) {
          ui = api;
        })
        .catch(function (e) {
          loading = null;
          console.error('wsmschat: could not load the chat UI from ' + cfg.assets + ' (check script-src and \'wasm-unsafe-eval\' in your Content-Security-Policy)', e);
        });
    }
    return loading;
  }

  launcher.addEventListener('click', function () {
    if (!ui) {
      queue.push(['toggle']);
      load();
    }
  });
  launcher.addEventListener('pointerenter', load);
  launcher.addEventListener('focus', load);

  function attach() {
    (d.body || d.documentElement).appendChild(host);
    var idle = w.requestIdleCallback || function (f) { return setTimeout(f, 1500); };
    cont ? load() : idle(load, { timeout: 4000 });
  }
  if (d.body) attach();
  else d.addEventListener('DOMContentLoaded', attach);
})();
