// Adds the chat widget's script tag, as a site owner's template would. The chat server is the
// `?server=` query parameter (so this page can be served from any origin), else this page's
// own origin when the chat server itself serves it (/demo/), else http://localhost:8080.
(function () {
  var params = new URLSearchParams(location.search);
  var server = params.get('server') ||
    (location.pathname.indexOf('/demo/') === 0 ? location.origin : 'http://localhost:8080');
  server = server.replace(/\/+$/, '');
  var s = document.createElement('script');
  s.src = server + '/widget.js';
  s.async = true;
  s.setAttribute('data-site', params.get('site') || 'demo');
  if (params.get('locale')) s.setAttribute('data-locale', params.get('locale'));
  if (params.get('color')) s.setAttribute('data-color', params.get('color'));
  if (params.get('prechat')) s.setAttribute('data-prechat', params.get('prechat'));
  document.head.appendChild(s);
  var shown = document.getElementById('snippet');
  if (shown) {
    shown.textContent = '<script src="' + server + '/widget.js" data-site="' +
      (params.get('site') || 'demo') + '" async></script>';
  }
  var open = document.getElementById('open-chat');
  if (open) open.addEventListener('click', function () { window.WsmsChat('open'); });
})();
