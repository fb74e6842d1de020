// The SDK's merged conversation view in a real browser: the widget's own SDK build on a
// third-party page, against a real server. What a UI renders comes from `view()` alone.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { stack, browser, newPage } from './harness.mjs';

const s = stack();
let server, shop;

before(async () => {
  server = await s.startServer();
  shop = await s.startStatic({ pages: { '/blank.html': { body: '<!doctype html><title>sdk</title>' } } });
  shop.useServer(server.url);
});

test('view(): pending sends, then each message once by seq; refused sends stay until discarded', async () => {
  const context = await (await browser()).newContext();
  const page = await newPage(context);
  await page.goto(`${shop.url}/blank.html`);
  const r = await page.evaluate(async (server) => {
    const m = await import(`${server}/widget/wsmschat_widget_sdk.js`);
    await m.default();
    const { ChatClient } = m;
    const brief = (v) => v.messages.map((x) => `${x.seq}:${x.status}:${x.text}`);
    const until = async (fn, what) => {
      for (let i = 0; i < 200; i++) {
        if (fn()) return;
        await new Promise((res) => setTimeout(res, 25));
      }
      throw new Error('timed out: ' + what);
    };
    const out = {};
    const a = await ChatClient.connect({ server, siteKey: 'demo' });
    const events = [];
    a.on('view', (e) => events.push(`${e.conversationId}|${e.topic}`));
    a.start();
    // Two sends before the first Ack: both shown at once under the topic, in order.
    const first = a.send('one', { topic: 'Order' });
    const second = a.send('two', { topic: 'Order' });
    out.draft = brief(a.view('', 'Order'));
    const ack = await first;
    await second;
    const id = ack.conversationId;
    out.draftAfter = brief(a.view('', 'Order'));
    out.toldNewConversation = events.includes(`${id}|Order`);
    await a.send('three', { conversationId: id });
    // The stream's copies replace the Acks' stand-ins: still three lines, no duplicate.
    await until(() => { const v = a.view(id).messages; return v.length === 3 && v.every((x) => x.status === 'sent'); }, 'three stored lines');
    out.live = brief(a.view(id));
    // A refused send (no such conversation) stays, failed with the server's reason.
    const refused = await a.send('lost', { conversationId: 'c_doesnotexist0000' }).then(() => 'sent', (e) => e.codeName);
    const failed = a.view('c_doesnotexist0000').messages;
    out.refused = refused;
    out.failed = failed.map((x) => `${x.status}:${x.text}:${!!x.error}`);
    out.discarded = a.discard(failed[0].clientMsgId);
    out.afterDiscard = a.view('c_doesnotexist0000').messages.length;
    // A second tab of the same visitor: history and the live stream merge into one view.
    const b = await ChatClient.connect({ server, siteKey: 'demo' });
    b.start();
    await b.history(id, { limit: 2 });
    out.tabNewest = brief(b.view(id));
    out.tabHasMore = b.view(id).hasMore;
    await b.history(id, { beforeSeq: b.view(id).oldestSeq, limit: 2 });
    await a.send('four', { conversationId: id });
    await until(() => b.view(id).messages.length === 4, 'four in the second tab');
    out.tab = brief(b.view(id));
    out.tabHasMoreAfter = b.view(id).hasMore;
    // Read marks: the visitor's own mark shows in the view at once.
    await b.markRead(id, 4);
    out.visitorRead = b.view(id).visitorReadSeq;
    a.close();
    b.close();
    return out;
  }, server.url);

  assert.deepEqual(r.draft, ['0:sending:one', '0:sending:two']);
  assert.deepEqual(r.draftAfter, [], 'the sends left the draft once the conversation existed');
  assert.ok(r.toldNewConversation, 'a view event named the new conversation and its topic');
  assert.deepEqual(r.live, ['1:sent:one', '2:sent:two', '3:sent:three']);
  assert.notEqual(r.refused, 'sent');
  assert.deepEqual(r.failed, ['failed:lost:true']);
  assert.equal(r.discarded, true);
  assert.equal(r.afterDiscard, 0);
  assert.deepEqual(r.tabNewest, ['2:sent:two', '3:sent:three']);
  assert.equal(r.tabHasMore, true);
  assert.deepEqual(r.tab, ['1:sent:one', '2:sent:two', '3:sent:three', '4:sent:four']);
  assert.equal(r.tabHasMoreAfter, false);
  assert.equal(r.visitorRead, 4);
  assert.deepEqual(page.consoleErrors.filter((e) => e.startsWith('pageerror')), []);
  await context.close();
});
