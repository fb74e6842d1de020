// Webhooks end to end, through the console: the admin adds an endpoint for the demo site in the
// site settings and copies its secret (shown once); a customer writes in the widget; a real
// HTTP receiver gets "conversation.created" then "message.created", every request checked with
// the `standardwebhooks` package (an implementation independent of the server's). The receiver
// then answers 500: the delivery is retried on the server's schedule (here 300 ms, 600 ms), the
// console's delivery log shows it failed (HTTP 500, 3 attempts, the answer's excerpt), "Resend"
// delivers it with the same webhook-id. Rotating the secret signs with the new one only;
// delete removes the endpoint.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import {
  stack, ROOT, PASSWORD, ARTIFACTS, browser, newPage, openShop, sendText, waitForBubble, waitFor, sleep, W
} from './harness.mjs';

const s = stack();
const FAIL_BODY = 'receiver down for the test';

/** A real HTTP receiver: records every request (headers, raw body, arrival time) and answers
 *  `status` (switchable). */
async function startReceiver() {
  const r = { requests: [], status: 200 };
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let body = null;
      try { body = JSON.parse(raw); } catch { /* checked below */ }
      const status = r.status;
      r.requests.push({ at: Date.now(), method: req.method, path: req.url, headers: { ...req.headers }, raw, body, status });
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(status === 200 ? 'ok' : FAIL_BODY);
    });
  });
  await new Promise((res) => server.listen(0, '127.0.0.1', res));
  r.url = `http://127.0.0.1:${server.address().port}/hooks/wsmschat`;
  r.close = () => new Promise((res) => { server.closeAllConnections(); server.close(res); });
  return r;
}

/** Checks a request with the Standard Webhooks reference library; returns the parsed body. */
function verify(secret, q) {
  const headers = {
    'webhook-id': q.headers['webhook-id'], 'webhook-timestamp': q.headers['webhook-timestamp'], 'webhook-signature': q.headers['webhook-signature'],
  };
  return new Webhook(secret).verify(q.raw, headers);
}

const messageText = (q) => q.body?.data?.message?.text;

test('webhooks: add an endpoint in the console, signed deliveries, retries, the delivery log, resend, rotate, delete', async () => {
  const server = await s.startServer({ args: ['--console-dir', join(ROOT, 'console/dist'), '--webhooks-allow-private', '--webhook-retry', '300ms,600ms'] });
  const shop = await s.startStatic();
  const receiver = await startReceiver();
  s.own(() => receiver.close());
  // What the receiver got, in the output whatever happens (a failure's first clue).
  s.own(() => console.log(`receiver got: ${receiver.requests.map((q) => `${q.body?.type} ${q.headers['webhook-id']} -> ${q.status}`).join(', ')}`));

  // The admin opens the demo site's settings: a Webhooks section, no endpoint yet.
  const context = await (await browser()).newContext({ viewport: { width: 1280, height: 900 } });
  const adm = await newPage(context);
  // Confirm dialogs (rotate, delete) are accepted here (the harness dismisses them).
  adm.removeAllListeners('dialog');
  adm.on('dialog', (d) => { adm.dialogs.push(d.message()); d.accept().catch(() => {}); });
  await adm.goto(`${server.url}/console/`);
  await adm.locator('#login-email').fill('admin@example.com');
  await adm.locator('#login-password').fill(PASSWORD);
  await adm.locator('form.login button[type=submit]').click();
  // Online (the stream is up): the customer's conversation is assigned to the admin at once.
  await adm.locator('.conn:has-text("Connected")').waitFor({ timeout: 15000 });
  await adm.locator('a.navlink:has-text("Admin")').click();
  await adm.locator('#webhooks h2:has-text("Webhooks")').waitFor();
  await adm.locator('#webhook-list:has-text("No endpoints yet")').waitFor();

  // The form's defaults: conversation events and messages, not private notes.
  for (const e of ['conversation-created', 'conversation-assigned', 'conversation-resolved', 'conversation-reopened', 'message-created']) {
    assert.equal(await adm.locator(`#wh-ev-${e}`).isChecked(), true, `${e} checked by default`);
  }
  assert.equal(await adm.locator('#wh-ev-note-created').isChecked(), false, 'note.created unchecked by default');
  // Labels name every input.
  assert.equal(await adm.getByLabel('URL', { exact: true }).count(), 1);
  assert.equal(await adm.getByLabel('Description', { exact: true }).count(), 1);

  // A refused URL: the server's reason is shown, nothing is created.
  await adm.locator('#wh-url').fill('ftp://127.0.0.1/x');
  await adm.locator('#wh-ev-message-created').check();
  await adm.locator('#webhook-submit').click();
  // type=url accepts ftp://: the server refuses it.
  await waitFor(async () => /Could not save the endpoint: .*https:\/\//.test(await adm.locator('#webhook-form-msg').textContent()), { what: 'refused URL error' });

  await adm.locator('#wh-url').fill(receiver.url);
  await adm.locator('#wh-description').fill('Receiver of the browser test');
  await adm.locator('#webhook-submit').click();
  await adm.locator('#webhook-secret').waitFor();
  const secret = await adm.locator('#webhook-secret').inputValue();
  assert.match(secret, /^whsec_[A-Za-z0-9+/]{32}$/, 'a Standard Webhooks secret');
  assert.match(await adm.locator('#webhook-secret-box').textContent(), /will not be shown again/);
  assert.equal(await adm.locator('#webhook-secret').evaluate((el) => el.readOnly), true);
  const row = adm.locator('#webhook-list tbody tr', { hasText: receiver.url });
  await row.waitFor();
  assert.equal(await row.locator('input.wh-enabled').isChecked(), true);
  assert.match(await row.locator('.wh-events').textContent(), /message\.created/);
  assert.doesNotMatch(await row.locator('.wh-events').textContent(), /note\.created/);
  assert.match(await row.textContent(), /Receiver of the browser test/);
  assert.equal(await row.locator('.wh-last-success').textContent(), 'Never');
  // The form is back to a new endpoint's defaults.
  assert.equal(await adm.locator('#wh-url').inputValue(), '');
  await adm.locator('#webhooks').screenshot({ path: join(ARTIFACTS, 'webhooks-created.png') });

  // A customer writes in the widget.
  const shopCtx = await (await browser()).newContext();
  const customer = await newPage(shopCtx);
  await openShop(customer, shop, server);
  await customer.locator(W.launcher).click();
  await customer.locator(W.topic('Order')).click();
  const first = `Hello webhooks ${Date.now()}`;
  await sendText(customer, first);
  await waitForBubble(customer, first);

  // The receiver gets conversation.created, then message.created, signed with the secret.
  const msg1 = await waitFor(() => receiver.requests.find((q) => q.body?.type === 'message.created' && messageText(q) === first),
    { timeout: 15000, what: 'message.created of the first message' });
  const convId = msg1.body.data.conversation.id;
  assert.ok(convId, 'the body carries the conversation');
  assert.equal(msg1.body.data.message.conversationId, convId);
  const ofConv = receiver.requests.filter((q) => q.body?.data?.conversation?.id === convId);
  assert.equal(ofConv[0].body.type, 'conversation.created', `first event of the conversation: ${ofConv.map((q) => q.body.type)}`);
  assert.ok(ofConv.indexOf(msg1) > 0, 'message.created after conversation.created');
  assert.equal(messageText(ofConv[0]), first, 'conversation.created carries the first message');
  for (const q of [ofConv[0], msg1]) {
    assert.equal(q.method, 'POST');
    assert.equal(q.path, '/hooks/wsmschat');
    assert.match(q.headers['content-type'], /^application\/json/);
    assert.equal(q.headers['webhook-id'], q.body.data.eventId, 'webhook-id is data.eventId');
    assert.match(q.headers['webhook-signature'], /^v1,[A-Za-z0-9+/]+=*$/);
    assert.ok(Math.abs(Number(q.headers['webhook-timestamp']) - q.at / 1000) < 30, 'webhook-timestamp is now');
    assert.ok(!Number.isNaN(Date.parse(q.body.timestamp)), `RFC 3339 timestamp: ${q.body.timestamp}`);
    assert.equal(q.body.data.siteId, msg1.body.data.siteId);
    const parsed = verify(secret, q);
    assert.equal(parsed.type, q.body.type);
  }
  assert.notEqual(ofConv[0].headers['webhook-id'], msg1.headers['webhook-id'], 'one id per event');
  assert.ok(msg1.body.data.visitor?.id, 'the visitor is in the body');
  // The verification is real: another secret, or a changed body, is refused.
  const other = 'whsec_' + Buffer.alloc(24, 7).toString('base64');
  assert.throws(() => verify(other, msg1), /signature/i, 'another secret must not verify');
  assert.throws(() => verify(secret, { ...msg1, raw: msg1.raw.replace(first, first + '!') }), /signature/i, 'a changed body must not verify');

  // The assignment to the admin (online) follows; it is delivered before the receiver fails,
  // so that the failing message is the only delivery that fails.
  const assigned = await waitFor(() => receiver.requests.find((q) => q.body?.type === 'conversation.assigned' && q.body.data.conversation.id === convId),
    { timeout: 10000, what: 'conversation.assigned' });
  assert.ok(receiver.requests.indexOf(assigned) > receiver.requests.indexOf(msg1), 'in order');
  await sleep(300);

  // The receiver fails: 1 attempt + 2 retries (300 ms, 600 ms), then the delivery is failed.
  receiver.status = 500;
  const second = `Second message ${Date.now()}`;
  await sendText(customer, second);
  await waitForBubble(customer, second);
  const failedAttempts = await waitFor(() => {
    const qs = receiver.requests.filter((q) => messageText(q) === second && q.body.type === 'message.created');
    return qs.length >= 3 && qs;
  }, { timeout: 20000, what: 'three attempts of the second message' });
  const eventId = failedAttempts[0].headers['webhook-id'];
  assert.ok(failedAttempts.every((q) => q.headers['webhook-id'] === eventId && q.status === 500), 'the same webhook-id on every attempt');
  const gaps = [failedAttempts[1].at - failedAttempts[0].at, failedAttempts[2].at - failedAttempts[1].at];
  console.log(`gaps between the failed attempts: ${gaps.join(' ms, ')} ms`);
  assert.ok(gaps[0] >= 250, `first retry waits about 300 ms: ${gaps}`);
  assert.ok(gaps[1] >= 500, `second retry waits about 600 ms: ${gaps}`);
  assert.ok(gaps[1] > gaps[0], `the waits grow: ${gaps}`);
  for (const q of failedAttempts) verify(secret, q);

  // The console's delivery log (after a refresh) shows it failed: HTTP 500, 3 attempts.
  await row.locator('button:has-text("Deliveries")').click();
  await adm.locator('#deliveries h3:has-text("Deliveries to")').waitFor();
  const logRow = adm.locator(`#delivery-log tr[data-event="${eventId}"]`);
  await waitFor(async () => {
    await adm.locator('#deliveries-refresh').click();
    await adm.locator('#delivery-log').waitFor();
    return (await logRow.count()) === 1 && (await logRow.getAttribute('data-state')) === 'failed';
  }, { timeout: 15000, interval: 300, what: 'the failed delivery in the log' });
  assert.equal(await logRow.locator('.wh-state').textContent(), 'Failed');
  assert.equal(await logRow.locator('.wh-attempts').textContent(), '3');
  assert.equal(await logRow.locator('.wh-result').textContent(), 'HTTP 500');
  assert.equal(await logRow.locator('pre.wh-response code').textContent(), FAIL_BODY);
  assert.match(await logRow.locator('.wh-latency').textContent(), /^\d+$/);
  assert.equal(await logRow.locator('td code').first().textContent(), 'message.created');
  assert.equal(await logRow.locator('a.wh-conv').textContent(), convId);
  // The first message's deliveries are there too, delivered.
  const okRow = adm.locator(`#delivery-log tr[data-event="${msg1.headers['webhook-id']}"]`);
  assert.equal(await okRow.getAttribute('data-state'), 'delivered');
  assert.equal(await okRow.locator('.wh-result').textContent(), 'HTTP 200');
  assert.equal(await okRow.locator('.wh-attempts').textContent(), '1');
  // The filter: failed only.
  await adm.locator('#delivery-filter').selectOption('failed');
  await waitFor(async () => {
    const states = await adm.locator('#delivery-log tbody tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.state));
    return (await logRow.count()) === 1 && states.length === 1 && states[0] === 'failed';
  }, { what: 'failed filter: only the failed delivery' });
  await adm.locator('#delivery-filter').selectOption('pending');
  await adm.locator('#delivery-log:has-text("No pending delivery")').waitFor();
  await adm.locator('#delivery-filter').selectOption('');
  await logRow.waitFor();
  // The endpoint's counts.
  await adm.locator('#webhooks-refresh').click();
  await waitFor(async () => (await row.locator('.wh-failed').textContent()) === '1 failed', { what: 'failed count' });
  assert.notEqual(await row.locator('.wh-last-success').textContent(), 'Never');
  await adm.locator('#webhooks').screenshot({ path: join(ARTIFACTS, 'webhooks-failed.png') });

  // The receiver is back: "Resend" delivers it, with the same webhook-id.
  receiver.status = 200;
  const before = receiver.requests.length;
  await logRow.locator('button:has-text("Resend")').click();
  const resent = await waitFor(() => receiver.requests.slice(before).find((q) => q.headers['webhook-id'] === eventId),
    { timeout: 10000, what: 'the resent delivery' });
  assert.equal(resent.status, 200);
  assert.equal(messageText(resent), second);
  assert.equal(verify(secret, resent).data.eventId, eventId);
  await waitFor(async () => {
    await adm.locator('#deliveries-refresh').click();
    await logRow.waitFor();
    return (await logRow.getAttribute('data-state')) === 'delivered';
  }, { timeout: 10000, interval: 300, what: 'the resent delivery delivered in the log' });
  assert.equal(await logRow.locator('.wh-result').textContent(), 'HTTP 200');
  assert.equal(await logRow.locator('pre.wh-response code').textContent(), 'ok');
  await adm.locator('#webhooks-refresh').click();
  await waitFor(async () => (await row.locator('.wh-failed').textContent()) === '0 failed', { what: 'failed count back to 0' });

  // Rotate the secret: the new one is shown once, and signs what follows; the old one no longer does.
  await adm.locator('#webhook-secret-box button:has-text("hide")').click();
  assert.equal(await adm.locator('#webhook-secret').count(), 0);
  await row.locator('button:has-text("Rotate secret")').click();
  await adm.locator('#webhook-secret-box:has-text("New signing secret")').waitFor();
  const rotated = await adm.locator('#webhook-secret').inputValue();
  assert.match(rotated, /^whsec_/);
  assert.notEqual(rotated, secret);
  const third = `Third message ${Date.now()}`;
  await sendText(customer, third);
  const msg3 = await waitFor(() => receiver.requests.find((q) => messageText(q) === third && q.body.type === 'message.created'),
    { timeout: 10000, what: 'the third message' });
  assert.equal(verify(rotated, msg3).data.message.text, third);
  assert.throws(() => verify(secret, msg3), /signature/i, 'the old secret no longer signs');

  // Every request the receiver got verifies, with the secret of its time.
  const verifies = (key, q) => { try { verify(key, q); return true; } catch { return false; } };
  receiver.requests.forEach((q, i) => {
    const key = verifies(secret, q) ? secret : rotated;
    assert.ok(verifies(key, q), `request ${i} (${q.body?.type}) verifies with neither secret`);
    assert.equal(q.headers['webhook-id'], verify(key, q).data.eventId);
  });
  console.log(`${receiver.requests.length} requests verified`);
  // The secret is not shown again after a reload.
  await adm.reload();
  await row.waitFor();
  assert.equal(await adm.locator('#webhook-secret').count(), 0);

  // Edit: fewer events, another description (the form says it edits, then is back to adding).
  await row.locator('button:has-text("Edit")').click();
  await adm.locator('#webhook-form h3:has-text("Edit")').waitFor();
  assert.equal(await adm.locator('#wh-url').inputValue(), receiver.url);
  assert.equal(await adm.locator('#wh-ev-conversation-assigned').isChecked(), true);
  await adm.locator('#wh-ev-conversation-assigned').uncheck();
  await adm.locator('#wh-description').fill('Edited in the test');
  await adm.locator('#webhook-submit:has-text("Save endpoint")').click();
  await adm.locator('#webhook-form h3:has-text("Add an endpoint")').waitFor();
  await waitFor(async () => /Edited in the test/.test(await row.textContent()), { what: 'edited description' });
  assert.doesNotMatch(await row.locator('.wh-events').textContent(), /conversation\.assigned/);
  assert.match(await row.locator('.wh-events').textContent(), /message\.created/);
  // Disable and enable again.
  await row.locator('input.wh-enabled').uncheck();
  await waitFor(async () => (await row.locator('td', { hasText: /^Off$/ }).count()) === 1, { what: 'disabled' });
  assert.equal(await row.locator('input.wh-enabled').isChecked(), false);
  await row.locator('input.wh-enabled').check();
  await waitFor(async () => (await row.locator('td', { hasText: /^On$/ }).count()) === 1, { what: 'enabled again' });

  // Delete (confirmed): the endpoint is gone.
  await row.locator('button:has-text("Delete")').click();
  await adm.locator('#webhook-list:has-text("No endpoints yet")').waitFor();
  assert.ok(adm.dialogs.some((d) => /Delete the endpoint/.test(d)), 'delete asks first');

  await sleep(200);
  assert.deepEqual(adm.consoleErrors, []);
  assert.deepEqual(customer.consoleErrors, []);
});
