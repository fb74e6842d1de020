// Transcripts and the team's alert settings end to end, against an SMTP server started by this
// test (smtp.mjs, whose MIME decoding is not the server's mail library):
// - a customer on the demo page writes while nobody is online (the admin gets an alert email),
//   leaves an address in the widget, an agent (wsmschat-agent) answers, the admin adds a private
//   note in the console, the agent resolves. In the widget the customer downloads the
//   conversation (a text file with both messages, without the note) and has it emailed ("Your
//   conversation with Demo Shop", both messages, no note); asking again at once is refused with
//   the "10 minutes" error. In the console the admin downloads the transcript from the
//   conversation view: the messages and the note, marked "(private note)".
// - the console settings: the agent's "Email me alerts" checkbox (their menu) survives a reload
//   and a new login; the site's team address saves (an invalid one is refused in the form); then
//   a customer waiting while nobody is online alerts the team address and not the admin who
//   turned alerts off.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  stack, ROOT, PASSWORD, ARTIFACTS, browser, newPage, sendText, waitForBubble, waitFor, sleep, W
} from './harness.mjs';
import { startSmtp, parsePart, leaves, partText, decodeWords } from './smtp.mjs';

const s = stack();

const ADMIN = 'admin@example.com';
const ALERTS_LABEL = 'Email me alerts (customers waiting while nobody is online, daily digest)';
const TEAM_LABEL = 'Team address for alerts and the daily digest';

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
  await page.locator('#login-email').fill(ADMIN);
  await page.locator('#login-password').fill(PASSWORD);
  await page.locator('form.login button[type=submit]').click();
  await page.locator('.conn:has-text("Connected")').waitFor({ timeout: 15000 });
  return { context, page };
}

function startEmailServer(smtp) {
  return s.startServer({ args: ['--console-dir', join(ROOT, 'console/dist'),
    '--smtp-url', `smtp://127.0.0.1:${smtp.port}`, '--mail-from', 'support@shop.test',
    '--public-url', 'http://127.0.0.1:1', '--email-minute-ms', '100', '--email-retry', '300ms,600ms'] });
}

/** Opens, in the console, the conversation whose last message is `text`; its id. */
async function openInConsole(adm, text) {
  await adm.locator('a.navlink:has-text("Inbox")').click();
  await adm.locator('.tab:has-text("All")').click();
  await adm.locator('#conv-list li a', { hasText: text }).click();
  await waitFor(async () => /^#\/c\//.test(await adm.evaluate(() => location.hash)), { what: 'conversation route' });
  return decodeURIComponent((await adm.evaluate(() => location.hash)).slice('#/c/'.length));
}

/** Clicks `button` and reads the file the page downloads: { name, text }. */
async function download(page, button) {
  const [dl] = await Promise.all([page.waitForEvent('download', { timeout: 10000 }), button.click()]);
  const failure = await dl.failure();
  assert.equal(failure, null, 'the download completes');
  return { name: dl.suggestedFilename(), text: readFileSync(await dl.path(), 'utf8') };
}

/** The decoded text part of a message the SMTP server got, and its subject. */
function decodeMail(mail) {
  const msg = parsePart(mail.raw.toString('latin1'));
  const textPart = leaves(msg).find((p) => p.type === 'text/plain');
  assert.ok(textPart, 'a text part');
  return { subject: decodeWords(msg.get('subject')), text: partText(textPart.part).replace(/\r\n/g, '\n'), msg };
}

/** My menu in the console's top bar, opened; its alerts checkbox. */
async function alertsBox(page) {
  const box = page.getByLabel(ALERTS_LABEL, { exact: true });
  if (!(await box.isVisible())) await page.locator('.topbar summary.me').click();
  await box.waitFor({ state: 'visible' });
  return box;
}

function reportSmtp(smtp, passed) {
  if (!passed.ok) console.log(`smtp got ${smtp.messages.length} message(s)${smtp.messages.map((m) => `\n---- to ${m.to}\n${m.raw.toString('latin1').slice(0, 3000)}`).join('')}`);
  else console.log(`smtp got ${smtp.messages.length} message(s): ${smtp.messages.map((m) => `${m.to.join(' ')} "${decodeMail(m).subject}"`).join(', ')}`);
}

test('transcripts: the customer downloads and emails theirs from the widget (once per 10 minutes), the agent downloads it from the console', async () => {
  const smtp = await startSmtp();
  s.own(() => smtp.close());
  const passed = { ok: false };
  s.own(() => reportSmtp(smtp, passed));
  const server = await startEmailServer(smtp);
  const stamp = Date.now();
  const VISITOR_EMAIL = 'lin.customer@example.com';
  const FIRST = `Do the Trail Runner 3 run small? (${stamp})`;
  const REPLY = `They run true to size; take your usual one. (${stamp})`;
  const NOTE = `Customer asked about sizes before, see order 1042 (${stamp})`;

  // The customer writes while nobody is online and leaves an address in the widget.
  const visitorCtx = await (await browser()).newContext();
  const visitor = await visitorPage(visitorCtx);
  await visitor.goto(`${server.demoUrl}/`);
  await visitor.locator(W.launcher).click();
  await visitor.locator(W.topic('Product')).click();
  await sendText(visitor, FIRST);
  await waitForBubble(visitor, FIRST);
  // Stored: the email form is drawn then (see email.test.mjs).
  await visitor.locator('wsmschat-widget .msg.mine .status:has-text("Sent")').waitFor({ timeout: 10000 });
  const emailInput = visitor.locator('wsmschat-widget .notice form.inline-form input[type=email]');
  await emailInput.waitFor({ timeout: 10000 });
  await emailInput.fill(VISITOR_EMAIL);
  await emailInput.press('Enter');
  await visitor.locator(`wsmschat-widget .notice:has-text("we will write to ${VISITOR_EMAIL}")`).waitFor({ timeout: 10000 });

  // Nobody was online: the admin (alerts on by default) is emailed about the waiting customer.
  const alertTo = (to) => smtp.messages.filter((m) => m.to.includes(to) && decodeMail(m).text.includes(FIRST));
  await waitFor(() => alertTo(ADMIN).length > 0, { timeout: 10000, what: 'the alert to the admin' });
  assert.match(decodeMail(alertTo(ADMIN)[0]).subject, /is waiting \(Product\) - Demo Shop$/);

  // The admin opens it in the console; an agent answers; the admin adds a private note.
  const { page: adm } = await consoleLogin(server);
  const conversationId = await openInConsole(adm, FIRST);
  const agent = await s.startAgent(server);
  agent.send({ cmd: 'send', conversationId, text: REPLY, requestId: 'reply' });
  await agent.next((e) => e.event === 'ack' && e.requestId === 'reply', 10000, 'reply stored');
  await waitForBubble(visitor, REPLY);
  await adm.locator('.composer .mode:has-text("Private note")').click();
  await adm.locator('#composer').fill(NOTE);
  await adm.locator('#composer').press('Enter');
  await adm.locator('.msg.note:not(.pending) .bubble', { hasText: NOTE }).waitFor({ timeout: 10000 });
  agent.send({ cmd: 'resolve', conversationId, requestId: 'resolve' });

  // The widget: the rating card offers the transcript, as a file and by email.
  const card = visitor.locator('wsmschat-widget .card.rating');
  await card.waitFor({ timeout: 10000 });
  const mailBtn = card.locator('button.link', { hasText: 'Email it to me' });
  const dlBtn = card.locator('button.link', { hasText: 'Download the conversation' });
  await mailBtn.waitFor();
  const t0 = Date.now();
  const file = await download(visitor, dlBtn);
  console.log(`widget download: ${file.name}, ${file.text.length} chars, ${Date.now() - t0} ms`);
  assert.equal(file.name, `conversation-${conversationId}.txt`);
  assert.match(file.text, /^Conversation with Demo Shop\n/);
  assert.ok(file.text.includes(FIRST), `the visitor's message in the file:\n${file.text}`);
  assert.ok(file.text.includes(REPLY), `the agent's reply in the file:\n${file.text}`);
  assert.ok(file.text.indexOf(FIRST) < file.text.indexOf(REPLY), 'in order');
  assert.ok(!file.text.includes(NOTE), 'no private note in the visitor\'s transcript');
  assert.ok(!file.text.includes('(private note)'));

  // By email: the widget says where to, the SMTP server gets it. The answer is held back
  // while the customer closes and opens the chat (the card is drawn again, as any event
  // redraws it): it must land on the card on the page, not on the one that was replaced.
  const status = card.locator('[role=status]');
  let release;
  const held = new Promise((r) => { release = r; });
  let asked;
  const askedP = new Promise((r) => { asked = r; });
  await visitor.route('**/wsmschat.v1.ChatService/EmailTranscript', async (route) => {
    asked();
    await held;
    await route.continue();
  });
  await mailBtn.click();
  await askedP;
  await visitor.locator(W.launcher).click();
  await visitor.locator(W.launcher).click();
  await card.waitFor({ timeout: 10000 });
  const sentAt = Date.now(); // the request leaves the browser now
  release();
  await waitFor(async () => (await status.textContent()) === `Thanks, we will write to ${VISITOR_EMAIL}.`,
    { what: 'the widget saying where the transcript goes', timeout: 10000 });
  await visitor.unroute('**/wsmschat.v1.ChatService/EmailTranscript');
  const transcripts = () => smtp.messages.filter((m) => m.to.includes(VISITOR_EMAIL) && decodeMail(m).subject.startsWith('Your conversation'));
  await waitFor(() => transcripts().length > 0, { timeout: 10000, what: 'the transcript email' });
  console.log(`transcript email received ${transcripts()[0].at - sentAt} ms after the click`);
  const mail = decodeMail(transcripts()[0]);
  assert.equal(mail.subject, 'Your conversation with Demo Shop');
  assert.deepEqual(transcripts()[0].to, [VISITOR_EMAIL]);
  assert.match(decodeWords(mail.msg.get('from')), /Demo Shop.*<support@shop\.test>/);
  assert.ok(mail.text.includes(FIRST), `the visitor's message in the email:\n${mail.text}`);
  assert.ok(mail.text.includes(REPLY), `the reply in the email:\n${mail.text}`);
  assert.ok(!mail.text.includes(NOTE), 'no private note in the email');
  await visitor.screenshot({ path: join(ARTIFACTS, 'transcript-widget.png') });

  // Again at once: refused, said in the widget; no second email.
  await mailBtn.click();
  await waitFor(async () => /10 minutes/.test(await status.textContent()), { what: 'the "10 minutes" error', timeout: 10000 });
  console.log(`widget error shown: ${JSON.stringify(await status.textContent())}`);
  await sleep(1000);
  assert.equal(transcripts().length, 1, 'one transcript email');
  assert.deepEqual(visitor.errors, []);

  // The console: the transcript with the note, marked.
  await adm.locator('.conv-header .status:has-text("Resolved")').waitFor({ timeout: 10000 });
  const staff = await download(adm, adm.locator('#download-transcript'));
  assert.equal(staff.name, `conversation-${conversationId}.txt`);
  for (const t of [FIRST, REPLY, NOTE]) assert.ok(staff.text.includes(t), `${JSON.stringify(t)} in the console's transcript:\n${staff.text}`);
  assert.match(staff.text, new RegExp(`\\(private note\\):\\n${NOTE.replace(/[()]/g, '\\$&')}\\n`), 'the note is marked');
  assert.match(staff.text, /-- resolved --/);
  assert.equal(await adm.locator('.conv-header .action-msg').textContent(), `Downloaded conversation-${conversationId}.txt`);
  await adm.locator('.conv-header').screenshot({ path: join(ARTIFACTS, 'transcript-console-header.png') });
  assert.deepEqual(adm.consoleErrors, []);
  await visitorCtx.close();
  passed.ok = true;
});

test('console settings: my alert emails off survives a reload; the team address saves; then only the team is alerted', async () => {
  const smtp = await startSmtp();
  s.own(() => smtp.close());
  const passed = { ok: false };
  s.own(() => reportSmtp(smtp, passed));
  const server = await startEmailServer(smtp);
  const { page: adm } = await consoleLogin(server);

  // My menu: alerts on by default; off, saved on the server.
  let box = await alertsBox(adm);
  assert.equal(await box.isChecked(), true, 'alerts are on by default');
  await box.uncheck();
  await adm.locator('#my-alerts-msg:has-text("Alert emails are off.")').waitFor({ timeout: 10000 });
  await adm.screenshot({ path: join(ARTIFACTS, 'transcript-my-menu.png'), clip: { x: 700, y: 0, width: 700, height: 220 } });
  await adm.reload();
  await adm.locator('.conn:has-text("Connected")').waitFor({ timeout: 15000 });
  box = await alertsBox(adm);
  assert.equal(await box.isChecked(), false, 'off after a reload');
  // Escape closes the menu.
  await adm.keyboard.press('Escape');
  await box.waitFor({ state: 'hidden' });

  // The site's team address: an invalid one is refused in the form, a valid one saved.
  await adm.locator('a.navlink:has-text("Admin")').click();
  const team = adm.getByLabel(TEAM_LABEL, { exact: true });
  await team.waitFor();
  assert.equal(await team.inputValue(), '', 'no team address on the demo site');
  assert.equal(await team.getAttribute('type'), 'email');
  const form = adm.locator('form[aria-label="Site settings"]');
  const siteName = await adm.locator('#site-name').inputValue();
  const delay = await adm.locator('#site-email-delay').inputValue();
  await team.fill('not an address');
  await form.locator('button[type=submit]').click();
  await form.locator('.action-msg:has-text("The team address is not an email address")').waitFor();
  await team.fill('team@shop.test');
  await form.locator('button[type=submit]').click();
  await form.locator('.action-msg:has-text("Saved.")').waitFor();
  await adm.reload();
  await adm.getByLabel(TEAM_LABEL, { exact: true }).waitFor();
  assert.equal(await adm.getByLabel(TEAM_LABEL, { exact: true }).inputValue(), 'team@shop.test', 'saved');
  assert.equal(await adm.locator('#site-name').inputValue(), siteName, 'the other fields kept');
  assert.equal(await adm.locator('#site-email-delay').inputValue(), delay);
  await form.screenshot({ path: join(ARTIFACTS, 'transcript-site-settings.png') });
  // Emptied and saved again, then set back: the field clears too.
  await adm.getByLabel(TEAM_LABEL, { exact: true }).fill('');
  await form.locator('button[type=submit]').click();
  await form.locator('.action-msg:has-text("Saved.")').waitFor();
  await adm.reload();
  assert.equal(await adm.getByLabel(TEAM_LABEL, { exact: true }).inputValue(), '', 'cleared');
  await adm.getByLabel(TEAM_LABEL, { exact: true }).fill('team@shop.test');
  await form.locator('button[type=submit]').click();
  await form.locator('.action-msg:has-text("Saved.")').waitFor();
  assert.deepEqual(adm.consoleErrors, []);

  // What the settings do: nobody online (the admin goes away), a customer writes: the team
  // address is alerted, the admin (alerts off) is not.
  await adm.locator('#presence').selectOption('away');
  await sleep(300);
  const visitorCtx = await (await browser()).newContext();
  const visitor = await visitorPage(visitorCtx);
  await visitor.goto(`${server.demoUrl}/`);
  await visitor.locator(W.launcher).click();
  await visitor.locator(W.topic('Order')).waitFor();
  assert.match(await visitor.locator(W.topic('Order')).textContent(), /offline/);
  await visitor.locator(W.topic('Order')).click();
  const text = `Where is order 1043? (${Date.now()})`;
  await sendText(visitor, text);
  await waitForBubble(visitor, text);
  const alertTo = (to) => smtp.messages.filter((m) => m.to.includes(to) && decodeMail(m).text.includes(text));
  await waitFor(() => alertTo('team@shop.test').length > 0, { timeout: 10000, what: 'the alert to the team address' });
  assert.match(decodeMail(alertTo('team@shop.test')[0]).subject, /is waiting \(Order\) - Demo Shop$/);
  await sleep(1500);
  assert.equal(alertTo(ADMIN).length, 0, 'no alert to the admin who turned them off');
  assert.equal(smtp.rcpts.filter((a) => a === ADMIN).length, 0);
  assert.deepEqual(visitor.errors, []);
  await visitorCtx.close();
  passed.ok = true;
});

// The console shows the agent as the server's Login answer has them: after a new login (another
// browser, or after logging out) the checkbox must show the state saved on the server. The
// server's store reads the agent of a login with `agent_by_email` (server/src/store/directory.rs),
// whose SELECT once had password_hash where agent_from_row reads email_alerts_off (column 8):
// the Login answer always said emailAlertsOff = false.
test('a new login shows my alert emails as saved on the server', async () => {
  const smtp = await startSmtp();
  s.own(() => smtp.close());
  const server = await startEmailServer(smtp);
  const first = await consoleLogin(server);
  const box = await alertsBox(first.page);
  await box.uncheck();
  await first.page.locator('#my-alerts-msg:has-text("Alert emails are off.")').waitFor({ timeout: 10000 });
  await first.context.close();
  // Another browser: nothing of the first one's storage, the agent as the server says.
  const other = await consoleLogin(server);
  assert.equal(await (await alertsBox(other.page)).isChecked(), false, 'off after a new login');
  await other.context.close();
});

// The widget marks read what it shows: a reply arriving while the panel is open and the page
// visible is read at once, so it is not emailed to the customer later as "unseen". The SDK
// emits `message` before it merges the message into the view (sdk-wasm/src/client/stream.rs,
// on_event), and the widget's onMessage -> notify -> markRead (widget/src/ui.js) takes the
// highest seq of currentView(), which does not have the new message yet: the read mark stays
// one message behind, and the reply was emailed though the customer saw it. markRead now counts
// the message it is called for.
test('the widget marks a reply read when it shows it (open panel, visible page)', async () => {
  const smtp = await startSmtp();
  s.own(() => smtp.close());
  const server = await startEmailServer(smtp);
  const context = await (await browser()).newContext();
  const visitor = await visitorPage(context);
  await visitor.goto(`${server.demoUrl}/`);
  const agent = await s.startAgent(server);
  await visitor.locator(W.launcher).click();
  await visitor.locator(W.topic('Payment')).click();
  const text = `Can I pay in two parts? (${Date.now()})`;
  await sendText(visitor, text);
  const msg = await agent.next((e) => e.event === 'message' && e.text === text, 10000, 'the visitor\'s message');
  agent.send({ cmd: 'send', conversationId: msg.conversationId, text: 'Yes, with the invoice option.', requestId: 'r' });
  const ack = await agent.next((e) => e.event === 'ack' && e.requestId === 'r', 10000, 'reply stored');
  await waitForBubble(visitor, 'Yes, with the invoice option.');
  assert.equal(await visitor.evaluate(() => document.visibilityState), 'visible');
  await agent.next((e) => e.event === 'read' && e.readerKind === 'visitor' && e.seq >= ack.seq, 3000, 'the visitor\'s read mark of the reply');
  await context.close();
});
