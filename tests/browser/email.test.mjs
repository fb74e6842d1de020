// Email continuity end to end, against an SMTP server started by this test (node:net): a
// customer on the demo page asks while nobody is online, leaves an address in the widget's
// "Get the reply by email too" form and leaves the page; the admin sees "Email: on" in the
// site's settings and sets the delay; an agent replies twice at once. The replies stay unseen,
// so ONE email arrives with both (text and HTML, the agent and site as sender, an unsubscribe
// header); the test decodes its MIME parts itself and opens its "Continue the conversation"
// link in a fresh browser (no localStorage): the widget opens by itself on that conversation,
// shows the whole conversation, and the token is gone from the address bar. A tampered token
// opens the browser's own (new) visitor instead. The console lists the email as sent.
// Also: without SMTP the settings say email is off (and how to turn it on) and the widget
// offers no email; an email the SMTP server refuses (5xx) is listed as failed with its reply.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  stack, ROOT, PASSWORD, ARTIFACTS, browser, newPage, sendText, waitForBubble, bubbleTexts, waitFor, sleep, W
} from './harness.mjs';
import { startSmtp, parsePart, leaves, partText, decodeWords } from './smtp.mjs';

const s = stack();

// ---- the tests --------------------------------------------------------------------------------

const VISITOR_EMAIL = 'ada.customer@example.com';
const FIRST = `Do you ship the Alpine Shell Jacket to Zürich? (${Date.now()})`;
// Non-ASCII and a long line: the text part cannot be plain 7bit, so its decoding is tested.
const REPLY1 = 'Grüße! Yes, we ship to Switzerland: it takes 3–5 working days, and the customs duties are included in the price you see at checkout, so nothing more is due on delivery.';
const REPLY2 = 'Your size (M) is in stock <b>now</b> & ready to go.';

/** A page whose console errors are kept (but the demo listener's missing /favicon.ico). */
async function visitorPage(context) {
  const p = await newPage(context);
  p.errors = [];
  p.on('console', (m) => { if (m.type() === 'error' && !/\/favicon\.ico$/.test(m.location().url || '')) p.errors.push(m.text()); });
  p.on('pageerror', (e) => p.errors.push('pageerror: ' + e.message));
  return p;
}

async function consoleLogin(server) {
  const context = await (await browser()).newContext({ viewport: { width: 1400, height: 900 } });
  const page = await newPage(context);
  await page.goto(`${server.url}/console/`);
  await page.locator('#login-email').fill('admin@example.com');
  await page.locator('#login-password').fill(PASSWORD);
  await page.locator('form.login button[type=submit]').click();
  await page.locator('.conn:has-text("Connected")').waitFor({ timeout: 15000 });
  return { context, page };
}

function startEmailServer(smtp, opts = {}) {
  return s.startServer({ ...opts, args: ['--console-dir', join(ROOT, 'console/dist'),
    '--smtp-url', `smtp://127.0.0.1:${smtp.port}`, '--mail-from', 'support@shop.test',
    '--public-url', 'http://127.0.0.1:1', '--email-minute-ms', '100', '--email-retry', '300ms,600ms'] });
}

/** A customer on the demo page asks while no agent is online, leaves `email` in the widget's
 *  "Get the reply by email too" form (offered: this server sends email) and leaves the page. */
async function customerLeavesEmail(server, topic, text, email) {
  const visitorCtx = await (await browser()).newContext();
  const visitor = await visitorPage(visitorCtx);
  await visitor.goto(`${server.demoUrl}/`);
  await visitor.locator(W.launcher).click();
  await visitor.locator(W.topic(topic)).click();
  await sendText(visitor, text);
  await waitForBubble(visitor, text);
  // Stored: the list is drawn again then (the form survives it: see the test below).
  await visitor.locator('wsmschat-widget .msg.mine .status:has-text("Sent")').waitFor({ timeout: 10000 });
  const emailInput = visitor.locator('wsmschat-widget .notice form.inline-form input[type=email]');
  await emailInput.waitFor({ timeout: 10000 });
  assert.match(await visitor.locator('wsmschat-widget .notice form.inline-form').textContent(), /Get the reply by email too/);
  await emailInput.fill(email);
  await emailInput.press('Enter');
  await visitor.locator(`wsmschat-widget .notice:has-text("we will write to ${email}")`).waitFor({ timeout: 10000 });
  assert.deepEqual(visitor.errors, []);
  // Whatever is replied from now on stays unseen.
  await visitorCtx.close();
}

/** Opens, in the console, the conversation whose last message is `text`; its id. */
async function openInConsole(adm, text) {
  await adm.locator('a.navlink:has-text("Inbox")').click();
  await adm.locator('.tab:has-text("All")').click();
  await adm.locator('#conv-list li a', { hasText: text }).click();
  await waitFor(async () => /^#\/c\//.test(await adm.evaluate(() => location.hash)), { what: 'conversation route' });
  return decodeURIComponent((await adm.evaluate(() => location.hash)).slice('#/c/'.length));
}

/** The conversation's emails to `to` in the console's visitor panel (the list may also have
 *  the team's alert about the waiting customer). */
const emailsTo = (adm, to) => adm.locator('#emails li', { hasText: `To ${to}` });

/** Clicks the Emails list's Refresh until it lists one email to `to`, in `state`. */
async function waitForEmailState(adm, to, state) {
  await waitFor(async () => {
    await adm.locator('#emails-refresh').click();
    const li = emailsTo(adm, to);
    return (await li.count()) === 1 && (await li.getAttribute('data-state')) === state;
  }, { timeout: 10000, interval: 300, what: `the email to ${to} listed as ${state}` });
}

/** The panel's Emails list is there (loaded, whatever it has). */
async function emailsLoaded(adm) {
  await waitFor(async () => /^Emails \(\d+\)$/.test(await adm.locator('#emails-title').textContent()), { what: 'the Emails list' });
}

test('email continuity: one email of the unseen replies, its link reopens the conversation in a fresh browser, the console lists it', async () => {
  const smtp = await startSmtp();
  s.own(() => smtp.close());
  // What the SMTP server got, in the output when the test failed (a failure's first clue).
  let passed = false;
  s.own(() => {
    if (!passed) console.log(`smtp got ${smtp.messages.length} message(s)${smtp.messages.map((m) => `\n---- to ${m.to}\n${m.raw.toString('latin1').slice(0, 4000)}`).join('')}`);
    else console.log(`smtp got ${smtp.messages.length} message(s), to: ${smtp.messages.map((m) => m.to.join(' ')).join(', ')}`);
  });
  const server = await startEmailServer(smtp);
  assert.ok(server.demoUrl, 'the server serves the demo page');
  const demoPage = `${server.demoUrl}/`;
  await customerLeavesEmail(server, 'Delivery', FIRST, VISITOR_EMAIL);

  // The admin: the site settings say email is on and from whom; the delay is set to 10
  // "minutes" (1 s here), the other site fields kept.
  const { page: adm } = await consoleLogin(server);
  await adm.locator('a.navlink:has-text("Admin")').click();
  await adm.locator('#site-email-status').waitFor();
  assert.equal(await adm.locator('#site-email-status').textContent(), 'Email: on (from support@shop.test)');
  const delay = adm.getByLabel('Email unseen replies after (minutes)', { exact: true });
  assert.equal(await delay.inputValue(), '0', 'the demo site uses the default delay');
  const siteName = await adm.locator('#site-name').inputValue();
  await delay.fill('10');
  await adm.locator('form[aria-label="Site settings"] button[type=submit]').click();
  await adm.locator('form[aria-label="Site settings"] .action-msg:has-text("Saved.")').waitFor();
  await adm.reload();
  await adm.locator('#site-email-delay').waitFor();
  assert.equal(await adm.locator('#site-email-delay').inputValue(), '10', 'the delay was saved');
  assert.equal(await adm.locator('#site-name').inputValue(), siteName);
  await adm.locator('form[aria-label="Site settings"]').screenshot({ path: join(ARTIFACTS, 'email-site-settings.png') });

  // The admin opens the conversation: no email to the customer yet.
  const conversationId = await openInConsole(adm, FIRST);
  await emailsLoaded(adm);
  assert.equal(await emailsTo(adm, VISITOR_EMAIL).count(), 0);

  // An agent replies twice at once.
  const agent = await s.startAgent(server);
  const sentAt = Date.now();
  agent.send({ cmd: 'send', conversationId, text: REPLY1, requestId: 'reply1' });
  agent.send({ cmd: 'send', conversationId, text: REPLY2, requestId: 'reply2' });
  for (const id of ['reply1', 'reply2']) {
    const ack = await agent.next((e) => e.event === 'ack' && e.requestId === id, 10000, `${id} stored`);
    assert.equal(ack.conversationId, conversationId);
  }

  // ONE email to the customer, with both replies; nothing more in the mailer's next passes.
  // (Other emails, to the team, are not the customer's: only theirs are counted.)
  const toVisitor = () => smtp.messages.filter((m) => m.to.includes(VISITOR_EMAIL));
  await waitFor(() => toVisitor().length > 0, { timeout: 10000, what: 'the continuity email' });
  const tookMs = toVisitor()[0].at - sentAt;
  assert.ok(tookMs >= 900, `sent after the site's delay (1 s here), not at once (${tookMs} ms)`);
  await sleep(3000);
  assert.equal(toVisitor().length, 1, 'one email for the two replies');
  assert.equal(smtp.rcpts.filter((a) => a === VISITOR_EMAIL).length, 1, 'one attempt to the customer');
  const mail = toVisitor()[0];
  assert.match(mail.from, /<support@shop\.test>/);
  assert.deepEqual(mail.to, [VISITOR_EMAIL]);

  const msg = parsePart(mail.raw.toString('latin1'));
  const from = decodeWords(msg.get('from'));
  assert.match(from, /Demo Admin \(Demo Shop\).*<support@shop\.test>/, `From: ${from}`);
  assert.match(decodeWords(msg.get('to')), new RegExp(VISITOR_EMAIL.replace(/\./g, '\\.')));
  const subject = decodeWords(msg.get('subject'));
  assert.equal(subject, 'New reply from Demo Shop');
  assert.match(msg.get('message-id') || '', /^<[^@>]+@shop\.test>$/);
  assert.match(msg.get('list-unsubscribe') || '', /^<http:\/\/127\.0\.0\.1:1\/email\/unsubscribe\?t=[^>]+>$/);
  assert.equal(msg.get('list-unsubscribe-post'), 'List-Unsubscribe=One-Click');
  assert.match(msg.get('content-type'), /^multipart\//i);
  const parts = leaves(msg);
  const textPart = parts.find((p) => p.type === 'text/plain');
  const htmlPart = parts.find((p) => p.type === 'text/html');
  assert.ok(textPart && htmlPart, `text and HTML parts (got ${parts.map((p) => p.type)})`);
  const text = partText(textPart.part).replace(/\r\n/g, '\n');
  const html = partText(htmlPart.part);
  assert.ok(text.includes(REPLY1), `the text part has the first reply:\n${text}`);
  assert.ok(text.includes(REPLY2), `the text part has the second reply:\n${text}`);
  assert.ok(text.indexOf(REPLY1) < text.indexOf(REPLY2), 'in the order they were sent');
  assert.ok(!text.includes(FIRST), 'the visitor\'s own message is not mailed back');
  // The HTML part escapes what agents write.
  assert.ok(html.includes('Your size (M) is in stock &lt;b&gt;now&lt;/b&gt; &amp; ready to go.'), 'the reply escaped in the HTML');
  assert.ok(!html.includes('<b>now</b>'));
  const links = [...text.matchAll(/Continue the conversation: (\S+)/g)].map((m) => m[1]);
  assert.equal(links.length, 1, 'one continuation link');
  const link = links[0];
  const u = new URL(link);
  assert.equal(`${u.origin}${u.pathname}`, demoPage, 'the link opens the page the customer chatted on');
  assert.match(u.hash, /^#wsmschat-continue=[\w.-]+$/);
  assert.ok(html.includes(link.replace(/&/g, '&amp;')), 'the HTML part has the same link');

  // The console lists the email as sent (Refresh: the panel loaded before it was sent).
  await waitForEmailState(adm, VISITOR_EMAIL, 'sent');
  const li = emailsTo(adm, VISITOR_EMAIL);
  assert.equal(await li.locator('.email-subject').textContent(), subject);
  assert.match(await li.locator('.email-state').textContent(), /^Sent \S.* · 1 attempt$/);
  assert.equal(await li.locator('.email-error').count(), 0);
  const listed = await adm.locator('#emails li').count();
  assert.equal(await adm.locator('#emails-title').textContent(), `Emails (${listed})`);
  await adm.locator('.pane.visitor').screenshot({ path: join(ARTIFACTS, 'email-visitor-panel.png') });

  // The link in a fresh browser (no localStorage, another device): the widget opens by itself
  // on that conversation with all of it, and the token is gone from the address bar.
  const freshCtx = await (await browser()).newContext();
  const fresh = await visitorPage(freshCtx);
  await fresh.goto(link);
  await fresh.locator(W.panel).waitFor({ state: 'visible', timeout: 15000 });
  for (const t of [FIRST, REPLY1, REPLY2]) await waitForBubble(fresh, t);
  assert.ok(!fresh.url().includes('wsmschat-continue'), `address bar: ${fresh.url()}`);
  assert.ok(!(await fresh.evaluate(() => location.href)).includes('wsmschat-continue'));
  assert.equal(await fresh.locator(W.topic('Delivery')).count(), 0, 'the conversation, not the topic list');
  // It is the same conversation: what the customer writes now reaches it.
  const more = `Great, thanks! (${Date.now()})`;
  await sendText(fresh, more);
  const got = await agent.next((e) => e.event === 'message' && e.text === more, 10000, 'the message from the fresh browser');
  assert.equal(got.conversationId, conversationId);
  assert.equal(got.authorKind, 'visitor');
  await fresh.screenshot({ path: join(ARTIFACTS, 'email-continued.png') });
  assert.deepEqual(fresh.errors, []);
  await freshCtx.close();

  // A tampered link opens nothing of that conversation: the browser's own (new) visitor.
  const token = u.hash.slice('#wsmschat-continue='.length);
  const flip = (c) => (c === 'A' ? 'B' : 'A');
  const bad = `${demoPage}#wsmschat-continue=${token.slice(0, -3)}${flip(token.at(-3))}${token.slice(-2)}`;
  const badCtx = await (await browser()).newContext();
  const badPage = await visitorPage(badCtx);
  await badPage.goto(bad);
  await badPage.locator(W.panel).waitFor({ state: 'visible', timeout: 15000 });
  await badPage.locator(W.topic('Delivery')).waitFor({ timeout: 10000 });
  assert.ok(!badPage.url().includes('wsmschat-continue'));
  await sleep(500);
  const shown = await bubbleTexts(badPage);
  for (const t of [FIRST, REPLY1, REPLY2]) assert.ok(!shown.includes(t), `a tampered link must not show ${JSON.stringify(t)}`);
  await badCtx.close();

  assert.deepEqual(adm.consoleErrors, []);
  passed = true;
});

test('without SMTP: the site settings say email is off and how to turn it on; the widget promises no email', async () => {
  const server = await s.startServer({ args: ['--console-dir', join(ROOT, 'console/dist')] });
  const visitorCtx = await (await browser()).newContext();
  const visitor = await visitorPage(visitorCtx);
  await visitor.goto(`${server.demoUrl}/`);
  await visitor.locator(W.launcher).click();
  await visitor.locator(W.topic('Order')).click();
  const first = `Anyone there? (${Date.now()})`;
  await sendText(visitor, first);
  await waitForBubble(visitor, first);
  // Nobody online: the queued notice, without the "reply by email" form.
  await visitor.locator('wsmschat-widget .notice[role=status]').waitFor({ timeout: 10000 });
  await sleep(300);
  assert.equal(await visitor.locator('wsmschat-widget .notice form').count(), 0, 'no email form without SMTP');
  assert.doesNotMatch(await visitor.locator('wsmschat-widget .notice').textContent(), /email/i);
  assert.deepEqual(visitor.errors, []);
  await visitorCtx.close();

  const { page: adm } = await consoleLogin(server);
  await adm.goto(`${server.url}/console/#/admin/sites`);
  await adm.locator('#site-email-status').waitFor();
  assert.equal(await adm.locator('#site-email-status').textContent(),
    'Email: off — start the server with --smtp-url, --mail-from and --public-url to email visitors their unseen replies');
  assert.equal(await adm.getByLabel('Email unseen replies after (minutes)', { exact: true }).count(), 1);
  // The conversation's visitor panel: no email, said so.
  await openInConsole(adm, first);
  await adm.locator('#emails-title:has-text("Emails (0)")').waitFor({ timeout: 10000 });
  assert.equal(await adm.locator('#emails').textContent(), 'No emails about this conversation yet.');
  assert.equal(await adm.locator('#emails li').count(), 0);
  assert.deepEqual(adm.consoleErrors, []);
});

test('an email the SMTP server refuses: listed as failed, with its reply, in the console', async () => {
  const smtp = await startSmtp({ refuse: (a) => (a === 'bounce@example.com' ? '550 5.7.1 relaying denied for the test' : null) });
  s.own(() => smtp.close());
  const server = await startEmailServer(smtp);
  const first = `Is the Summit Pack waterproof? (${Date.now()})`;
  await customerLeavesEmail(server, 'Product', first, 'bounce@example.com');
  const { page: adm } = await consoleLogin(server);
  const conversationId = await openInConsole(adm, first);
  await emailsLoaded(adm);
  assert.equal(await emailsTo(adm, 'bounce@example.com').count(), 0);
  const agent = await s.startAgent(server);
  agent.send({ cmd: 'send', conversationId, text: 'Yes, fully: it has taped seams.', requestId: 'reply' });
  await agent.next((e) => e.event === 'ack' && e.requestId === 'reply', 10000, 'reply stored');
  // A 5xx is final: one attempt, no retry, nothing accepted.
  const attempts = () => smtp.rcpts.filter((a) => a === 'bounce@example.com').length;
  await waitFor(() => attempts() > 0, { timeout: 10000, what: 'the attempt to send' });
  // On a narrower screen the visitor panel is a drawer: opening it reads the emails again.
  await adm.setViewportSize({ width: 1000, height: 900 });
  await adm.locator('.pane.visitor').waitFor({ state: 'hidden' });
  await waitFor(async () => {
    await adm.locator('.visitor-toggle').click(); // opens the drawer
    await adm.locator('.pane.visitor').waitFor({ state: 'visible' });
    await sleep(200);
    if ((await emailsTo(adm, 'bounce@example.com').getAttribute('data-state').catch(() => null)) === 'failed') return true;
    await adm.locator('.visitor-toggle').click(); // closes it
    return false;
  }, { timeout: 10000, interval: 300, what: 'the failed email, shown when the drawer opens' });
  const item = emailsTo(adm, 'bounce@example.com');
  assert.equal(await item.locator('.status').textContent(), 'Failed');
  assert.equal(await item.locator('.email-state').textContent(), 'Failed gave up after 1 attempt');
  assert.match(await item.locator('.email-error').textContent(), /^Last error: .*550.*relaying denied for the test/);
  await sleep(1500);
  assert.equal(attempts(), 1, 'a refused email is not retried');
  assert.equal(smtp.messages.filter((m) => m.to.includes('bounce@example.com')).length, 0);
  assert.deepEqual(adm.consoleErrors, []);
});

// The widget draws its message list again on every event (a message, a conversation update)
// and builds the "Get the reply by email too" form anew each time (ui.js emailForm() from
// renderMessages()): an address half typed was gone, and the field lost the focus. The widget
// now keeps one form across renders and gives the focus back.
test('the widget keeps an address being typed in the email form when the list is drawn again', async () => {
  const smtp = await startSmtp();
  s.own(() => smtp.close());
  const server = await startEmailServer(smtp);
  const context = await (await browser()).newContext();
  const visitor = await visitorPage(context);
  await visitor.goto(`${server.demoUrl}/`);
  await visitor.locator(W.launcher).click();
  await visitor.locator(W.topic('Payment')).click();
  await sendText(visitor, 'Can I pay by invoice?');
  await visitor.locator('wsmschat-widget .msg.mine .status:has-text("Sent")').waitFor({ timeout: 10000 });
  const emailInput = visitor.locator('wsmschat-widget .notice form.inline-form input[type=email]');
  await emailInput.fill('kim@exam');
  // Something happens meanwhile (here: the visitor's own second message).
  await sendText(visitor, 'And in instalments?');
  await waitForBubble(visitor, 'And in instalments?');
  await visitor.locator('wsmschat-widget .msg.mine .status:has-text("Sent")').last().waitFor({ timeout: 10000 });
  assert.equal(await emailInput.inputValue(), 'kim@exam', 'the address being typed is kept');
  await context.close();
});

// A conversation event (here: the visitor's own message from another tab) draws the whole
// panel again (render() empties the body and puts the log back): the email field, inside the
// log, lost the focus, so the next keys went nowhere. Seen as a flaky test above, when the
// conversation's details arrived between Playwright's focus and its typing.
test('the email field keeps the focus when a conversation event draws the panel again', async () => {
  const smtp = await startSmtp();
  s.own(() => smtp.close());
  const server = await startEmailServer(smtp);
  const context = await (await browser()).newContext();
  const visitor = await visitorPage(context);
  await visitor.goto(`${server.demoUrl}/`);
  await visitor.locator(W.launcher).click();
  await visitor.locator(W.topic('Payment')).click();
  await sendText(visitor, 'Can I pay by invoice?');
  await visitor.locator('wsmschat-widget .msg.mine .status:has-text("Sent")').waitFor({ timeout: 10000 });
  // A second tab of the same visitor, on the same conversation.
  const tab = await visitorPage(context);
  await tab.goto(`${server.demoUrl}/`);
  await tab.locator(W.launcher).click();
  await waitForBubble(tab, 'Can I pay by invoice?');
  const emailInput = visitor.locator('wsmschat-widget .notice form.inline-form input[type=email]');
  await emailInput.click();
  await visitor.keyboard.type('kim@');
  const before = await visitor.locator('wsmschat-widget .msg').count();
  await sendText(tab, 'And in instalments?');
  await waitForBubble(visitor, 'And in instalments?');
  await waitFor(async () => (await visitor.locator('wsmschat-widget .msg').count()) > before, { what: 'the other tab\'s message' });
  await sleep(300);
  await visitor.keyboard.type('example');
  assert.equal(await emailInput.inputValue(), 'kim@example', 'the keys typed after a message reach the field');
  // The connection drops and comes back: each change of state draws the whole panel (render()).
  await server.kill('SIGKILL');
  await visitor.locator('wsmschat-widget .banner').waitFor({ state: 'visible', timeout: 30000 });
  await visitor.keyboard.type('.co');
  const back = await startEmailServer(smtp, { dataDir: server.dataDir, port: server.port });
  assert.equal(back.port, server.port);
  await visitor.locator('wsmschat-widget .banner').waitFor({ state: 'hidden', timeout: 30000 });
  await visitor.keyboard.type('m');
  assert.equal(await emailInput.inputValue(), 'kim@example.com', 'the keys typed while offline and after reach the field');
  await context.close();
});
