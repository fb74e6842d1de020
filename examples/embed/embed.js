// Adds the chat widget's script tag, as a site owner's template would. The chat server comes from
// `config.js` beside this page (`window.WSMSCHAT_DEMO.server`): the chat server's demo listener
// generates it, and the shipped file names http://localhost:8080 for any other static server.
// Never from the page's URL: a `?server=` link would load anyone's script into this page.
(function () {
  var params = new URLSearchParams(location.search);
  var cfg = window.WSMSCHAT_DEMO || {};
  var server;
  try {
    var u = new URL(cfg.server || 'http://localhost:8080');
    if ((u.protocol === 'http:' || u.protocol === 'https:') && !u.username && !u.password) server = u.origin;
  } catch (e) { /* falls through */ }
  if (!server) {
    console.error('wsmschat demo: config.js must set WSMSCHAT_DEMO.server to an http(s) origin');
    return;
  }
  var site = cfg.site || 'demo';
  var s = document.createElement('script');
  s.src = server + '/widget.js';
  s.async = true;
  s.setAttribute('data-site', site);
  // Look-and-feel options only: none of them names a place to load anything from.
  var locale = params.get('locale');
  if (locale && /^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$/.test(locale)) s.setAttribute('data-locale', locale);
  var color = params.get('color');
  if (color && /^#[0-9A-Fa-f]{3,8}$/.test(color)) s.setAttribute('data-color', color);
  if (params.get('prechat')) s.setAttribute('data-prechat', 'true');
  document.head.appendChild(s);
  var shown = document.getElementById('snippet');
  if (shown) {
    shown.textContent = '<script src="' + server + '/widget.js" data-site="' + site + '" async></script>';
  }
  var open = document.getElementById('open-chat');
  if (open) open.addEventListener('click', function () { window.WsmsChat('open'); });
})();
