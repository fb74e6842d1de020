// Snooze (issue #15) in the console: an agent takes a conversation and snoozes it until the
// customer replies; it leaves Mine for Snoozed; the customer writing wakes it live (back in
// Mine, the chip gone); a timed snooze shows its end and Wake ends it. The customer's widget
// shows nothing of it.
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

test('an agent snoozes a conversation until the customer replies, or for an hour, and wakes it', async () => {
  const ctx = await (await browser()).newContext({ viewport: { width: 1280, height: 800 } });
  const customer = await newPage(ctx);
  await openShop(customer, shop, server);
  await customer.locator(W.launcher).click();
  await customer.locator(W.topic('Delivery')).click();
  await sendText(customer, 'My parcel is late');
  await waitForBubble(customer, 'My parcel is late');

  const a = await openConsole(server);
  const mine = a.locator('.tabs button.tab:has-text("Mine")');
  const snoozedTab = a.locator('.tabs button.tab:has-text("Snoozed")');
  const row = a.locator('#conv-list li', { hasText: 'My parcel is late' });
  // The admin is online: the conversation is theirs (Mine).
  await row.waitFor({ timeout: 10000 });
  await row.locator('a').click();
  await a.locator('#snooze-pick').selectOption('reply');
  await a.locator('#snoozed-chip:has-text("Snoozed until the customer replies")').waitFor();
  await row.waitFor({ state: 'detached' });
  await snoozedTab.locator('.count:text-is("1")').waitFor();
  await snoozedTab.click();
  await row.locator('.snoozed:has-text("until reply")').waitFor();
  await a.screenshot({ path: join(ARTIFACTS, 'console-snoozed.png') });

  // The customer writes: awake again, live.
  await sendText(customer, 'Any news?');
  await waitForBubble(customer, 'Any news?');
  await a.locator('#snoozed-chip').waitFor({ state: 'detached' });
  await row.waitFor({ state: 'detached' });
  await mine.click();
  await a.locator('#conv-list li', { hasText: 'Any news?' }).waitFor();

  // For an hour: the chip says until when; Wake ends it.
  await a.locator('#snooze-pick').selectOption('1h');
  await a.locator('#snoozed-chip:has-text("Snoozed until")').waitFor();
  assert.doesNotMatch(await a.locator('#snoozed-chip').textContent(), /customer replies/);
  await a.locator('#wake').click();
  await a.locator('#snoozed-chip').waitFor({ state: 'detached' });
  await a.locator('#snooze-pick').waitFor();
  // Nothing of it reached the customer.
  const texts = await customer.locator('wsmschat-widget .panel').innerText();
  assert.doesNotMatch(texts, /snooz/i);
  assert.deepEqual(a.consoleErrors, []);
  await a.context().close();
  await ctx.close();
});
