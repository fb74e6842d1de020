// Languages: the widget speaks the browser's language by default (German here), `data-locale`
// overrides it (Japanese), a right-to-left language (Arabic) is laid out right to left (the
// customer's own bubbles on the left, the text right-aligned; a screenshot), and a language the
// widget lacks falls back to English. Each language is one module, fetched only when shown.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { stack, ARTIFACTS, browser, newPage, openShop, sendText, waitForBubble, waitFor, W } from './harness.mjs';

const s = stack();
let server, shop;

before(async () => {
  server = await s.startServer();
  shop = await s.startStatic();
});

/** A customer page in a browser whose language is `lang`; the language modules it fetched. */
async function customer(lang, query = '') {
  const ctx = await (await browser()).newContext({ locale: lang, viewport: { width: 1280, height: 800 } });
  const page = await newPage(ctx);
  page.langs = [];
  page.on('request', (r) => {
    const m = r.url().match(/\/widget\/i18n\/([a-z]+)\.js/);
    if (m) page.langs.push(m[1]);
  });
  await openShop(page, shop, server, query);
  return page;
}

test('the browser language picks the widget language: German', async () => {
  const page = await customer('de-DE');
  await page.locator(W.launcher).click();
  await page.locator('wsmschat-widget .question:has-text("Worum geht es bei Ihrer Frage?")').waitFor();
  assert.equal(await page.locator(W.launcher).getAttribute('aria-label'), 'Chat schließen');
  assert.equal(await page.locator(W.panel).getAttribute('lang'), 'de');
  assert.equal(await page.locator(W.panel).getAttribute('dir'), 'ltr');
  await page.locator(W.topic('Order')).click();
  assert.equal(await page.locator(W.input).getAttribute('placeholder'), 'Nachricht schreiben…');
  assert.deepEqual(page.langs, ['de'], 'only the German module is fetched');
  assert.deepEqual(page.consoleErrors, []);
  await page.context().close();
});

test('data-locale overrides the browser: Japanese on an English browser', async () => {
  const page = await customer('en-US', 'locale=ja');
  await page.locator(W.launcher).click();
  const q = page.locator('wsmschat-widget .question');
  await q.waitFor();
  assert.match(await q.textContent(), /[\u3040-\u30ff\u4e00-\u9fff]/, 'a Japanese question');
  assert.equal(await page.locator(W.panel).getAttribute('lang'), 'ja');
  await page.locator(W.topic('Order')).click();
  await sendText(page, 'こんにちは、注文について');
  await waitForBubble(page, 'こんにちは、注文について');
  assert.match(await page.locator(W.input).getAttribute('placeholder'), /[\u3040-\u30ff\u4e00-\u9fff]/);
  assert.deepEqual(page.langs, ['ja']);
  await page.screenshot({ path: join(ARTIFACTS, 'widget-ja.png') });
  assert.deepEqual(page.consoleErrors, []);
  await page.context().close();
});

test('Arabic is laid out right to left', async () => {
  const page = await customer('ar-EG');
  await page.locator(W.launcher).click();
  const panel = page.locator(W.panel);
  await panel.waitFor();
  assert.equal(await panel.getAttribute('dir'), 'rtl');
  assert.equal(await panel.getAttribute('lang'), 'ar');
  const q = page.locator('wsmschat-widget .question');
  assert.match(await q.textContent(), /[\u0600-\u06ff]/, 'an Arabic question');
  assert.equal(await q.evaluate((e) => getComputedStyle(e).direction), 'rtl');
  assert.equal(await q.evaluate((e) => getComputedStyle(e).textAlign), 'start');
  await page.locator(W.topic('Order')).click();
  await sendText(page, 'مرحبا، لدي سؤال عن طلبي');
  await waitForBubble(page, 'مرحبا، لدي سؤال عن طلبي');
  // The customer's own bubble sits at the panel's left edge (its start in RTL is the right).
  const p = await panel.boundingBox();
  // (Measured once the log has settled: a re-render between finding and measuring the bubble
  // detaches it, and a busy machine once caught exactly that.)
  let b = null;
  await waitFor(async () => (b = await page.locator('wsmschat-widget .msg.mine .bubble').last().boundingBox()) !== null, { what: 'the bubble laid out' });
  assert.ok(b.x - p.x < 40, `own bubble on the left: bubble x ${b.x}, panel x ${p.x}`);
  assert.ok(p.x + p.width - (b.x + b.width) > 40, 'and away from the right edge');
  // The send arrow is mirrored.
  const t = await page.locator('wsmschat-widget .send svg').evaluate((e) => getComputedStyle(e).transform);
  assert.notEqual(t, 'none');
  await page.screenshot({ path: join(ARTIFACTS, 'widget-rtl-ar.png') });
  assert.deepEqual(page.consoleErrors, []);
  await page.context().close();
});

test('a language the widget lacks falls back to English and fetches nothing more', async () => {
  const page = await customer('sw-KE');
  await page.locator(W.launcher).click();
  await page.locator('wsmschat-widget .question:has-text("What is your question about?")').waitFor();
  assert.equal(await page.locator(W.panel).getAttribute('lang'), 'en');
  assert.deepEqual(page.langs, []);
  await page.context().close();
});
