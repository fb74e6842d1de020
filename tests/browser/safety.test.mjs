// Safety (issue #15) in a real browser: an agent blocks a customer from the console's visitor
// panel with a reason; that customer's open widget shows the neutral "chat unavailable" at once
// (and again after a reload), another customer chats on; unblocking from the admin page brings
// the customer back. A site's hourly cap on new conversations per address gives the widget a
// clear message in the visitor's language instead of an endless "waiting".
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { stack, ROOT, ARTIFACTS, browser, newPage, openConsole, openShop, sendText, waitForBubble, W } from './harness.mjs';

const s = stack();
let server, shop;

before(async () => {
  server = await s.startServer({ args: ['--console-dir', join(ROOT, 'console/dist')] });
  shop = await s.startStatic();
});

async function customer(lang = 'en-US') {
  const ctx = await (await browser()).newContext({ locale: lang, viewport: { width: 1280, height: 800 } });
  const page = await newPage(ctx);
  await openShop(page, shop, server);
  return page;
}

async function ask(page, text) {
  await page.locator(W.launcher).click();
  await page.locator(W.topic('Order')).click();
  await sendText(page, text);
  await waitForBubble(page, text);
}

const unavailable = 'wsmschat-widget p.error:has-text("The chat is not available right now.")';

test('a customer blocked from the console sees "chat unavailable"; others chat on; unblock', async () => {
  const mallory = await customer();
  await ask(mallory, 'You will all pay for this');
  const bob = await customer();
  await ask(bob, 'Where is my parcel?');

  const a = await openConsole(server);
  await a.locator('#conv-list li', { hasText: 'You will all pay for this' }).locator('a').click();
  await a.locator('#safety #block-reason').waitFor();
  assert.match(await a.locator('#visitor-pane').textContent(), /IP address127\.0\.0\.1/);
  await a.locator('#block-kind').selectOption('visitor');
  await a.locator('#block-reason').fill('threats');
  await a.locator('#block-submit').click();
  await a.locator('#safety-title:has-text("Blocked")').waitFor();
  await a.locator('#safety .blocks li:has-text("threats")').waitFor();

  // Mallory's open widget ends at once, neutrally; a reload stays there.
  await mallory.locator(unavailable).waitFor({ timeout: 10000 });
  assert.equal(await mallory.locator(W.input).isVisible(), false, 'no composer');
  await mallory.screenshot({ path: join(ARTIFACTS, 'widget-blocked.png') });
  await mallory.reload();
  await mallory.locator(W.launcher).click();
  await mallory.locator(unavailable).waitFor({ timeout: 10000 });
  // Bob is not affected.
  await sendText(bob, 'Still here');
  await waitForBubble(bob, 'Still here');

  // The admin page lists the block and the audit log; Unblock lets Mallory back in.
  await a.locator('a.navlink:has-text("Admin")').click();
  await a.locator('#blocks-admin tr:has-text("threats")').waitFor();
  await a.locator('#audit-log li:has-text("block visitor")').waitFor();
  await a.locator('#blocks-admin tr:has-text("threats") button:has-text("Unblock")').click();
  await a.locator('#blocks-admin h2:has-text("Blocked (0)")').waitFor();
  await a.locator('#audit-log li:has-text("unblock visitor")').waitFor();
  await mallory.reload();
  await mallory.locator(W.launcher).click();
  await mallory.locator(W.input).or(mallory.locator(W.topic('Order'))).first().waitFor({ timeout: 10000 });
  assert.equal(await mallory.locator(unavailable).count(), 0);
  for (const p of [mallory, bob, a]) await p.context().close();
});

test('the hourly cap on new conversations from one address says when to come back, in German', async () => {
  // One conversation from this address, then the site allows one per address and hour (the
  // admin page's setting).
  const first = await customer();
  await ask(first, 'My first question');
  await first.context().close();
  const a = await openConsole(server);
  await a.locator('a.navlink:has-text("Admin")').click();
  await a.locator('#site-per-ip').fill('1');
  await a.locator('form.grid-form button:has-text("Save site")').click();
  await a.locator('.action-msg:has-text("Saved.")').waitFor();
  await a.context().close();
  const late = await customer('de-DE');
  await late.locator(W.launcher).click();
  await late.locator(W.topic('Order')).click();
  await sendText(late, 'Hallo?');
  await late.locator('wsmschat-widget .refusal:has-text("Bitte versuchen Sie es in")').waitFor({ timeout: 10000 });
  const text = await late.locator('wsmschat-widget .refusal').textContent();
  assert.match(text, /in \d+ Min\./);
  // The send is marked failed (not "waiting" forever), with retry and remove.
  await late.locator('wsmschat-widget .msg.mine:has-text("Hallo?") .status.failed').waitFor();
  await late.context().close();
});
