// Labels (issue #15) end to end in a real browser: an admin defines a label on the admin page;
// a customer asks; the agent puts the label on the conversation from its header; the label shows
// as a chip in the header and the inbox row (live in a second console too); the inbox filters by
// it; the report counts it. Names are text, colours the site's.
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

async function ask(text) {
  const ctx = await (await browser()).newContext({ viewport: { width: 1280, height: 800 } });
  const page = await newPage(ctx);
  await openShop(page, shop, server);
  await page.locator(W.launcher).click();
  await page.locator(W.topic('Order')).click();
  await sendText(page, text);
  await waitForBubble(page, text);
  return page;
}

test('a label defined by an admin goes on a conversation, shows live, filters the inbox, is counted', async () => {
  const a = await openConsole(server);
  await a.locator('a.navlink:has-text("Admin")').click();
  await a.locator('#label-add-name').fill('Refund <b>now</b>');
  await a.locator('#label-add-color').fill('#dc2626');
  await a.locator('#label-add').click();
  await a.locator('#labels-admin li:has-text("Refund <b>now</b>")').waitFor();

  const c1 = await ask('I want my money back');
  const c2 = await ask('Where is the shop?');
  const watcher = await openConsole(server); // a second console: sees the label arrive live

  // Back in the inbox (the console reads the labels when it starts: a reload).
  await a.locator('a.navlink:has-text("Inbox")').click();
  await a.reload();
  await a.locator('.conn:has-text("Connected")').waitFor({ timeout: 15000 });
  await a.locator('.tabs button:has-text("All")').click();
  await a.locator('#conv-list li', { hasText: 'I want my money back' }).locator('a').click();
  await a.locator('#label-picker summary').click();
  await a.locator('#label-picker input[type=checkbox]').check();
  // The chip: in the header and on the inbox row, as text (no markup), in the label's colour.
  const chip = a.locator('.conv-title .label-chip:has-text("Refund <b>now</b>")');
  await chip.waitFor();
  assert.equal(await a.locator('.conv-title .label-chip b').count(), 0, 'the name is text');
  assert.match(await chip.evaluate((el) => getComputedStyle(el).borderLeftColor), /rgb\(220, 38, 38\)/);
  await a.locator('#conv-list li', { hasText: 'I want my money back' }).locator('.label-chip').waitFor();
  await watcher.locator('.tabs button:has-text("All")').click();
  await watcher.locator('#conv-list li', { hasText: 'I want my money back' }).locator('.label-chip:has-text("Refund")').waitFor({ timeout: 10000 });
  await a.screenshot({ path: join(ARTIFACTS, 'console-labels.png') });

  // The filter shows only labelled conversations.
  await a.locator('#f-label').selectOption({ label: 'Refund <b>now</b>' });
  await a.locator('#conv-list li', { hasText: 'Where is the shop?' }).waitFor({ state: 'detached' });
  assert.equal(await a.locator('#conv-list li', { hasText: 'I want my money back' }).count(), 1);
  // Unchecking takes it off.
  await a.locator('#label-picker summary').click();
  await a.locator('#label-picker input[type=checkbox]').uncheck();
  await a.locator('.conv-title .label-chip').waitFor({ state: 'detached' });
  await a.locator('#label-picker summary').click();
  await a.locator('#label-picker input[type=checkbox]').check();
  await chip.waitFor();

  // The report counts it.
  await a.locator('a.navlink:has-text("Admin")').click();
  await a.locator('.admin-nav a:has-text("Report")').click();
  await a.locator('#report-labels li:has-text("Refund <b>now</b>: 1")').waitFor();
  assert.deepEqual(a.consoleErrors || [], []);
  for (const p of [a, watcher, c1, c2]) await p.context().close();
});
