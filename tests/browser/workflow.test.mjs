// Support workflow in the widget: leave a message when nobody is online, unread badge and title
// while the panel is closed, rating after resolve, the command queue before load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  stack, browser, newPage, openShop, sendText, waitForBubble, waitFor, W, ARTIFACTS
} from './harness.mjs';
import { startSmtp } from './smtp.mjs';

const s = stack();
let server, shop, agent;

test('nobody online: leave a message; an agent answers later; unread badge, title, rating', async () => {
  // A server that sends email: only such a server may offer the visitor a reply by email.
  const smtp = await startSmtp();
  s.own(() => smtp.close());
  server = await s.startServer({ args: ['--smtp-url', `smtp://127.0.0.1:${smtp.port}`, '--mail-from', 'support@shop.test',
    '--public-url', 'http://127.0.0.1:1'] });
  shop = await s.startStatic();
  const context = await (await browser()).newContext();
  const page = await newPage(context);
  // Commands queued before widget.js loads are run once it has.
  await page.addInitScript(() => {
    window.WsmsChat = window.WsmsChat || function () { (window.WsmsChat.q = window.WsmsChat.q || []).push(arguments); };
    window.__unread = [];
    window.WsmsChat('on', 'unread', (n) => window.__unread.push(n));
  });
  await openShop(page, shop, server);
  await page.locator(W.launcher).click();
  await page.locator(W.topic('Order')).waitFor();
  assert.match(await page.locator(W.topic('Order')).textContent(), /offline/);
  await page.locator(W.topic('Order')).click();
  await sendText(page, 'Can I return shoes after 30 days?');
  await waitForBubble(page, 'Can I return shoes after 30 days?');
  // Stored: the widget draws the list again then (the email form survives it).
  await page.locator('wsmschat-widget .msg.mine .status:has-text("Sent")').waitFor({ timeout: 10000 });
  const notice = page.locator('wsmschat-widget .notice');
  await notice.waitFor({ timeout: 10000 });
  assert.match(await notice.textContent(), /No agent is online/);
  await notice.locator('input[type=email]').fill('kim@example.com');
  await notice.locator('button[type=submit]').click();
  await page.locator('wsmschat-widget .notice:has-text("kim@example.com")').waitFor({ timeout: 10000 });
  await page.screenshot({ path: join(ARTIFACTS, 'leave-a-message.png') });

  // The visitor closes the panel; an agent comes online, takes the queued conversation, answers.
  await page.locator('wsmschat-widget .panel .icon-btn[aria-label="Close chat"]').click();
  await page.locator(W.panel).waitFor({ state: 'hidden' });
  const originalTitle = await page.title();
  agent = await s.startAgent(server);
  const conv = await agent.next((e) => e.event === 'conversation' && e.status === 2, 10000, 'auto-assigned conversation');
  agent.send({ cmd: 'send', conversationId: conv.id, text: 'Yes, within 60 days.' });
  await page.locator(W.badge).waitFor({ state: 'visible', timeout: 10000 });
  assert.equal(await page.locator(W.badge).textContent(), '1');
  await waitFor(async () => (await page.title()).startsWith('(1) '), { what: 'title notification' });
  assert.deepEqual(await page.evaluate(() => window.__unread.at(-1)), 1);

  // Opening reads it: badge gone, title restored, the agent sees the read receipt.
  await page.locator(W.launcher).click();
  await waitForBubble(page, 'Yes, within 60 days.');
  await page.locator(W.badge).waitFor({ state: 'hidden' });
  assert.equal(await page.title(), originalTitle);
  await agent.next((e) => e.event === 'read' && e.readerKind === 'visitor' && e.conversationId === conv.id, 10000, 'read receipt');

  // Resolve: the visitor rates it.
  agent.send({ cmd: 'resolve', conversationId: conv.id });
  const rating = page.locator('wsmschat-widget .card.rating');
  await rating.waitFor({ timeout: 10000 });
  await rating.locator('.star[aria-label="5 of 5"]').click();
  await rating.locator('textarea').fill('Quick and clear, thanks');
  await page.screenshot({ path: join(ARTIFACTS, 'rating.png') });
  await rating.locator('button.btn:not(.ghost)').click();
  const rated = await agent.next((e) => e.event === 'conversation' && e.id === conv.id && e.rating === 5, 10000, 'rating');
  assert.equal(rated.rating, 5);
  await page.locator('wsmschat-widget .card.rating:has-text("Thank you")').waitFor();

  // And a new conversation from there.
  await rating.locator('button.ghost').click();
  await page.locator(W.topic('Payment')).waitFor();
  assert.deepEqual(page.consoleErrors, []);
  await context.close();
});

test('keyboard only: open with Enter, pick a topic, send, Escape returns focus to the launcher', async () => {
  const context = await (await browser()).newContext();
  const page = await newPage(context);
  await openShop(page, shop, server);
  await page.locator(W.launcher).focus();
  await page.keyboard.press('Enter');
  await page.locator(W.panel).waitFor({ state: 'visible' });
  await page.locator(W.topic('Product')).waitFor();
  await waitFor(() => page.evaluate(() => document.querySelector('wsmschat-widget').shadowRoot.activeElement?.className === 'topic'), { what: 'focus on the first topic' });
  await page.keyboard.press('Enter');
  await waitFor(() => page.evaluate(() => document.querySelector('wsmschat-widget').shadowRoot.activeElement?.tagName === 'TEXTAREA'), { what: 'focus on the composer' });
  await page.keyboard.type('Typed with the keyboard only');
  await page.keyboard.press('Enter');
  await waitForBubble(page, 'Typed with the keyboard only');
  assert.equal(await page.locator('wsmschat-widget [role=log]').getAttribute('aria-live'), 'polite');
  await page.keyboard.press('Escape');
  await page.locator(W.panel).waitFor({ state: 'hidden' });
  assert.equal(await page.evaluate(() => document.querySelector('wsmschat-widget').shadowRoot.activeElement?.className), 'launcher');
  await context.close();
});
