// Delivery across a server crash: SIGKILL mid-conversation, messages typed while the server is
// down are delivered after it returns; nothing lost, nothing duplicated, on both sides.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  stack, browser, newPage, openShop, sendText, bubbleTexts, waitForBubble, waitFor, W
} from './harness.mjs';

const s = stack();
let server, shop, agent;

test('SIGKILL and restart of the server mid-conversation loses and duplicates nothing', async () => {
  server = await s.startServer();
  shop = await s.startStatic();
  agent = await s.startAgent(server);
  const context = await (await browser()).newContext();
  const page = await newPage(context);
  await openShop(page, shop, server);
  await page.locator(W.launcher).click();
  await page.locator(W.topic('Payment')).click();
  await sendText(page, 'I was charged twice');
  const first = await agent.next((e) => e.event === 'message' && e.text === 'I was charged twice');
  const conversationId = first.conversationId;
  agent.send({ cmd: 'send', conversationId, text: 'Let me check that for you.' });
  await waitForBubble(page, 'Let me check that for you.');

  // Crash the server (no graceful shutdown), type while it is down.
  await agent.kill();
  await server.kill('SIGKILL');
  await page.locator('wsmschat-widget .banner').waitFor({ state: 'visible', timeout: 30000 });
  await sendText(page, 'Sent while the server was down (1)');
  await sendText(page, 'Sent while the server was down (2)');
  await page.locator('wsmschat-widget .msg.mine .status.waiting, wsmschat-widget .msg.mine .status.sending').first().waitFor({ timeout: 10000 });

  // Same port, same data: the server comes back; the SDK reconnects and flushes its outbox.
  server = await s.startServer({ dataDir: server.dataDir, port: server.port });
  agent = await s.startAgent(server);
  agent.send({ cmd: 'watch', conversationId, afterSeq: first.seq });
  // The outbox may flush (1) before this agent's inbox stream opens and (2) after: the watch
  // then replays (1) after the live (2). Each arrives once; the order is by seq.
  for (const n of [1, 2]) {
    await agent.next((e) => e.event === 'message' && e.text === `Sent while the server was down (${n})`, 40000, 'messages sent while down');
  }
  await page.locator('wsmschat-widget .banner').waitFor({ state: 'hidden', timeout: 30000 });
  agent.send({ cmd: 'send', conversationId, text: 'Found it: refunded the second charge.' });
  await waitForBubble(page, 'Found it: refunded the second charge.', 20000);

  const expected = [
    'I was charged twice', 'Let me check that for you.',
    'Sent while the server was down (1)', 'Sent while the server was down (2)',
    'Found it: refunded the second charge.'
  ];
  await waitFor(async () => JSON.stringify(await bubbleTexts(page)) === JSON.stringify(expected), { what: 'exact history after restart', timeout: 15000 });
  // The agent saw each visitor message once; by seq they are in the order they were typed.
  const fromVisitor = agent.events.filter((e) => e.event === 'message' && e.conversationId === conversationId && e.authorKind === 'visitor');
  assert.deepEqual(fromVisitor.sort((a, b) => a.seq - b.seq).map((e) => e.text), ['Sent while the server was down (1)', 'Sent while the server was down (2)']);
  const seqs = agent.events.filter((e) => e.event === 'message' && e.conversationId === conversationId).map((e) => e.seq);
  assert.equal(new Set(seqs).size, seqs.length, `a message reached the agent twice: ${seqs}`);

  // A reload reads the same from the store.
  await page.reload();
  await page.locator(W.launcher).click();
  await waitFor(async () => JSON.stringify(await bubbleTexts(page)) === JSON.stringify(expected), { what: 'history after reload' });
  await context.close();
});
