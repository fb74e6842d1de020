// The widget on pages that try hard to break it: global resets, `* { all: unset }`, a strict
// Content-Security-Policy, blocked localStorage; and a page whose origin the site does not allow.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  stack, browser, newPage, sendText, waitForBubble, waitFor, W, ARTIFACTS
} from './harness.mjs';

const s = stack();
let server, shop, agent, foreign;

const HOSTILE_CSS = `
* { all: unset !important; }
html *, html *::before, html *::after { font: 30px/3 "Comic Sans MS", cursive !important; color: red !important;
  box-sizing: content-box !important; letter-spacing: 4px !important; text-transform: uppercase !important; }
div, span, button, svg, p, textarea, input { display: none !important; }
body { direction: rtl !important; zoom: 1.1; }
head, script, style { display: none !important; }
`;

function hostilePage(serverUrl) {
  return `<!doctype html><html><head><meta charset="utf-8"><title>Hostile</title>
<link rel="stylesheet" href="/hostile.css">
<script src="/queue.js"></script>
<script src="${serverUrl}/widget.js" data-site="demo" async></script>
</head><body><h1>A page that resets everything</h1><p>Nothing should break the chat.</p></body></html>`;
}

before(async () => {
  server = await s.startServer({ args: ['--allow-origin', 'http://127.0.0.2:*'] });
  agent = await s.startAgent(server);
  // Only the chat server's origin (plus 'wasm-unsafe-eval') is allowed: no inline anything.
  const csp = `default-src 'none'; script-src 'self' ${server.url} 'wasm-unsafe-eval'; ` +
    `style-src 'self' ${server.url}; connect-src ${server.url}; img-src 'self'; base-uri 'none'; form-action 'none'`;
  shop = await s.startStatic({
    pages: {
      '/hostile.html': { body: () => hostilePage(server.url), headers: { 'content-security-policy': csp } },
      '/hostile.css': { body: HOSTILE_CSS, headers: { 'content-type': 'text/css' } }
    }
  });
  // A page on an origin the demo site does not list (CORS lets it call, the site refuses it).
  foreign = await s.startStatic({ host: '127.0.0.2', bind: '127.0.0.2' });
});

test('hostile page: CSS resets, strict CSP, blocked localStorage; still a working widget', async () => {
  const context = await (await browser()).newContext();
  await context.addInitScript(() => {
    Object.defineProperty(window, 'localStorage', {
      get() { throw new DOMException('The operation is insecure.', 'SecurityError'); }
    });
  });
  const page = await newPage(context);
  const violations = [];
  await page.exposeFunction('__violation', (v) => violations.push(v));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => window.__violation(`${e.violatedDirective} ${e.blockedURI}`));
  });
  await page.goto(`${shop.url}/hostile.html`);
  const launcher = page.locator(W.launcher);
  await launcher.waitFor({ state: 'visible', timeout: 15000 });
  const box = await launcher.boundingBox();
  assert.ok(box.width >= 50 && box.width <= 70, `launcher width ${box.width}`);
  await launcher.click();
  await page.locator(W.panel).waitFor({ state: 'visible' });
  const font = await page.locator('wsmschat-widget .title').evaluate((el) => getComputedStyle(el).fontSize);
  assert.equal(font, '16px');
  await page.locator(W.topic('Product')).click();
  await sendText(page, 'Does the jacket come in green?');
  const msg = await agent.next((e) => e.event === 'message' && e.text === 'Does the jacket come in green?');
  agent.send({ cmd: 'send', conversationId: msg.conversationId, text: 'Yes, in forest green.' });
  await waitForBubble(page, 'Yes, in forest green.');
  await page.screenshot({ path: join(ARTIFACTS, 'hostile.png') });
  assert.deepEqual(violations, []);
  assert.deepEqual(page.consoleErrors, []);
  await context.close();
});

test('a page on an origin the site does not allow is refused with a clear console error', async () => {
  const context = await (await browser()).newContext();
  const page = await newPage(context);
  foreign.useServer(server.url);
  await page.goto(`${foreign.url}/`);
  await page.locator(W.launcher).waitFor({ state: 'visible', timeout: 15000 });
  await page.locator(W.launcher).click();
  await waitFor(() => page.consoleErrors.find((e) => /origin http:\/\/127\.0\.0\.2:\d+ is not allowed for this site/.test(e)), { what: 'console error' });
  await page.locator('wsmschat-widget .error').waitFor({ state: 'visible' });
  await context.close();
});

test('mobile layout: full-screen panel, 16px inputs', async () => {
  const context = await (await browser()).newContext({ viewport: { width: 390, height: 780 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  const page = await newPage(context);
  shop.useServer(server.url);
  await page.goto(`${shop.url}/?locale=de`);
  await page.locator(W.launcher).waitFor({ state: 'visible', timeout: 15000 });
  await page.locator(W.launcher).tap();
  await page.locator(W.panel).waitFor({ state: 'visible' });
  await page.screenshot({ path: join(ARTIFACTS, 'mobile-topics.png') });
  const panel = await page.locator(W.panel).boundingBox();
  assert.deepEqual([panel.x, panel.y, panel.width], [0, 0, 390]);
  assert.ok(panel.height >= 700, `panel height ${panel.height}`);
  await page.locator(W.topic('Delivery')).tap();
  const size = await page.locator(W.input).evaluate((el) => getComputedStyle(el).fontSize);
  assert.equal(size, '16px');
  await sendText(page, 'Hallo! Wann kommt meine Bestellung?');
  const msg = await agent.next((e) => e.event === 'message' && e.text === 'Hallo! Wann kommt meine Bestellung?');
  agent.send({ cmd: 'send', conversationId: msg.conversationId, text: 'Morgen zwischen 9 und 12 Uhr.' });
  await waitForBubble(page, 'Morgen zwischen 9 und 12 Uhr.');
  await page.screenshot({ path: join(ARTIFACTS, 'mobile-chat.png') });
  await context.close();
});
