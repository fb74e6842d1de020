// The widget end to end: a third-party page on origin A, the chat server on origin B, a
// native agent (Rust, bidi Chat over HTTP/2) on the other side.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  stack, browser, newPage, openShop, sendText, bubbleTexts, waitForBubble, waitFor, W, ARTIFACTS
} from './harness.mjs';

const s = stack();
let server, shop, agent;

before(async () => {
  server = await s.startServer();
  shop = await s.startStatic();
  agent = await s.startAgent(server);
});

test('customer on origin A chats with a native agent through the server on origin B', async () => {
  assert.notEqual(new URL(shop.url).origin, new URL(server.url).origin);
  const context = await (await browser()).newContext();
  const page = await newPage(context);
  await openShop(page, shop, server);

  // The launcher is there before anything else loaded; no stream is open yet.
  await page.locator(W.launcher).click();
  await page.locator(W.panel).waitFor({ state: 'visible' });
  await page.locator(W.topic('Delivery')).click();
  await sendText(page, 'Where is my parcel?');

  // The native agent receives it...
  const msg = await agent.next((e) => e.event === 'message' && e.text === 'Where is my parcel?', 10000, 'visitor message');
  assert.equal(msg.authorKind, 'visitor');
  const conversationId = msg.conversationId;
  const conv = await agent.next((e) => e.event === 'conversation' && e.id === conversationId && e.topic === 'Delivery');
  assert.ok(conv);

  // ...the customer sees it as sent, then the agent's typing indicator and reply.
  await waitForBubble(page, 'Where is my parcel?');
  await page.locator('wsmschat-widget .msg.mine .status:has-text("Sent")').waitFor({ timeout: 10000 });
  agent.send({ cmd: 'typing', conversationId, on: true });
  await page.locator(W.typing).waitFor({ state: 'visible', timeout: 10000 });
  assert.match(await page.locator(W.typing).textContent(), /typing/);
  await page.screenshot({ path: join(ARTIFACTS, 'typing.png') });
  agent.send({ cmd: 'send', conversationId, text: 'It left our warehouse today: https://track.example.com/ABC123' });
  await waitForBubble(page, 'It left our warehouse today: https://track.example.com/ABC123');
  await page.locator(W.typing).waitFor({ state: 'hidden', timeout: 10000 });
  const link = page.locator('wsmschat-widget .msg.theirs a').last();
  assert.equal(await link.getAttribute('href'), 'https://track.example.com/ABC123');
  assert.equal(await link.getAttribute('rel'), 'noopener noreferrer nofollow');

  // Read state, both ways: the open panel marks the reply read; the agent reads the visitor.
  const read = await agent.next((e) => e.event === 'read' && e.readerKind === 'visitor' && e.conversationId === conversationId, 10000, 'visitor read');
  assert.ok(read.seq >= 2);
  agent.send({ cmd: 'read', conversationId, seq: msg.seq });
  await page.locator('wsmschat-widget .msg.mine .status:has-text("Read")').waitFor({ timeout: 10000 });

  // The visitor's typing reaches the agent.
  await page.locator(W.input).fill('Thanks');
  await agent.next((e) => e.event === 'typing' && e.authorKind === 'visitor' && e.on, 10000, 'visitor typing');

  await page.screenshot({ path: join(ARTIFACTS, 'widget-open.png') });
  assert.deepEqual(page.consoleErrors, []);
  await context.close();
});

test('user text is shown as text, never HTML', async () => {
  const context = await (await browser()).newContext();
  const page = await newPage(context);
  await openShop(page, shop, server);
  await page.locator(W.launcher).click();
  await page.locator(W.topic('Other')).click();
  const evil = '<img src=x onerror=alert(1)>';
  await sendText(page, evil);
  const msg = await agent.next((e) => e.event === 'message' && e.text === evil, 10000, 'evil message');
  agent.send({ cmd: 'send', conversationId: msg.conversationId, text: '<script>alert(2)</script><b>bold?</b>' });
  await waitForBubble(page, evil);
  await waitForBubble(page, '<script>alert(2)</script><b>bold?</b>');
  const imgs = await page.locator('wsmschat-widget .bubble img, wsmschat-widget .bubble script, wsmschat-widget .bubble b').count();
  assert.equal(imgs, 0);
  await page.waitForTimeout(300);
  assert.deepEqual(page.dialogs, []);
  await context.close();
});

test('reload and a second tab show the full history', async () => {
  const context = await (await browser()).newContext();
  const page = await newPage(context);
  await openShop(page, shop, server);
  await page.locator(W.launcher).click();
  await page.locator(W.topic('Order')).click();
  await sendText(page, 'Order 1001: can I change the address?');
  const msg = await agent.next((e) => e.event === 'message' && e.text === 'Order 1001: can I change the address?');
  agent.send({ cmd: 'send', conversationId: msg.conversationId, text: 'Yes, which address?' });
  await waitForBubble(page, 'Yes, which address?');
  await sendText(page, '12 Harbour Street');
  await waitForBubble(page, '12 Harbour Street');
  const expected = ['Order 1001: can I change the address?', 'Yes, which address?', '12 Harbour Street'];
  await agent.next((e) => e.event === 'message' && e.text === '12 Harbour Street');

  // Reload: the conversation comes back (token in localStorage), in order, once.
  await page.reload();
  await page.locator(W.launcher).click();
  await waitFor(async () => JSON.stringify(await bubbleTexts(page)) === JSON.stringify(expected), { what: 'history after reload' });

  // A second tab of the same visitor: same history, and live messages reach both.
  const tab2 = await newPage(context);
  await openShop(tab2, shop, server);
  await tab2.locator(W.launcher).click();
  await waitFor(async () => JSON.stringify(await bubbleTexts(tab2)) === JSON.stringify(expected), { what: 'history in tab 2' });
  agent.send({ cmd: 'send', conversationId: msg.conversationId, text: 'Done, updated.' });
  await waitForBubble(page, 'Done, updated.');
  await waitForBubble(tab2, 'Done, updated.');
  await sendText(tab2, 'Thank you!');
  await waitForBubble(page, 'Thank you!');
  const all = [...expected, 'Done, updated.', 'Thank you!'];
  assert.deepEqual(await bubbleTexts(page), all);
  assert.deepEqual(await bubbleTexts(tab2), all);
  assert.deepEqual(page.consoleErrors, []);
  await context.close();
});

test('several conversations: the home screen lists them, open first; a new one starts on another topic while one is open', async () => {
  const context = await (await browser()).newContext();
  const page = await newPage(context);
  await openShop(page, shop, server);
  await page.locator(W.launcher).click();
  await page.locator(W.topic('Order')).click();
  await sendText(page, 'Order question one');
  await waitForBubble(page, 'Order question one');
  // Back from an open conversation: it is listed, and the topics are there for a new one.
  const back = 'wsmschat-widget button.back';
  await page.locator(back).click();
  const convs = 'wsmschat-widget .convs .conv';
  await page.locator(`${convs}:has-text("Order question one")`).waitFor();
  await page.locator('wsmschat-widget .question:has-text("Start a new conversation")').waitFor();
  await page.locator(`wsmschat-widget .topics:not(.convs) .topic:has-text("Payment")`).click();
  await sendText(page, 'Payment question two');
  await waitForBubble(page, 'Payment question two');
  assert.ok(!(await bubbleTexts(page)).includes('Order question one'), 'a conversation of its own');
  await page.locator(back).click();
  await page.locator(convs).nth(1).waitFor();
  assert.match(await page.locator(convs).first().textContent(), /Payment question two/, 'newest first');
  // After a reload both are still listed, and each opens its own messages.
  await page.reload();
  await page.locator(W.launcher).click();
  await page.locator(back).click();
  await page.locator(`${convs}:has-text("Order question one")`).waitFor();
  await page.locator(W.panel).screenshot({ path: join(ARTIFACTS, 'widget-conversations.png') });
  await page.locator(`${convs}:has-text("Order question one")`).click();
  await waitForBubble(page, 'Order question one');
  assert.ok(!(await bubbleTexts(page)).includes('Payment question two'));
  assert.deepEqual(page.consoleErrors, []);
  await context.close();
});
