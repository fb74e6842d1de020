// Opening hours (issue #15) in a real browser: an admin sets the site's time zone (Tokyo), a
// weekly schedule and today and tomorrow as closed dates, and an out-of-office reply, on the
// admin page. Customers in two time zones (New York in English, Berlin in German) see that the
// team is closed and when it is back, in their own language and clock; a customer who writes
// gets the site's reply once, as text, and the console shows it in the conversation.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { stack, ROOT, ARTIFACTS, browser, newPage, openConsole, openShop, sendText, waitForBubble, waitFor, W } from './harness.mjs';

const s = stack();
let server, shop;

before(async () => {
  server = await s.startServer({ args: ['--console-dir', join(ROOT, 'console/dist')] });
  shop = await s.startStatic();
});

async function customer(locale, timezoneId) {
  const ctx = await (await browser()).newContext({ locale, timezoneId, viewport: { width: 1280, height: 800 } });
  const page = await newPage(ctx);
  await openShop(page, shop, server);
  await page.locator(W.launcher).click();
  return page;
}

// Tokyo has no daylight saving time: 09:00 there is 00:00 UTC.
const tokyoDate = (ms) => new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Tokyo' }).format(new Date(ms));
const DAY = 86400000;
const AWAY = 'Our team is off for the holidays. <b>We read everything</b> when we are back.';

test('a site closed today shows when it reopens in two time zones, and replies once out of office', async () => {
  const now = Date.now();
  const [today, tomorrow, after] = [0, 1, 2].map((d) => tokyoDate(now + d * DAY));
  const back = Date.parse(`${after}T00:00:00Z`); // 09:00 in Tokyo, the day after tomorrow

  const admin = await openConsole(server, { viewport: { width: 1400, height: 1000 } });
  await admin.locator('a.navlink:has-text("Admin")').click();
  await admin.locator('#site-time-zone').fill('Asia/Tokyo');
  for (let d = 1; d <= 7; d++) await admin.locator(`#site-hours-${d}`).fill('09:00-12:00, 12:00-17:00');
  await admin.locator('#site-closed-dates').fill(`${today}\n${tomorrow}`);
  await admin.locator('#site-away').fill(AWAY);
  // A malformed day is refused by the form, naming the day.
  await admin.locator('#site-hours-3').fill('9 to 5');
  await admin.locator('form.grid-form button:has-text("Save site")').click();
  await admin.locator('.action-msg:has-text("Wednesday: write the hours like 09:00-17:00")').waitFor();
  await admin.locator('#site-hours-3').fill('09:00-12:00, 12:00-17:00');
  await admin.locator('form.grid-form button:has-text("Save site")').click();
  await admin.locator('.action-msg:has-text("Saved.")').waitFor();
  // What was saved comes back on a fresh page.
  await admin.reload();
  await admin.locator('#site-time-zone').waitFor();
  assert.equal(await admin.locator('#site-time-zone').inputValue(), 'Asia/Tokyo');
  assert.equal(await admin.locator('#site-hours-3').inputValue(), '09:00-12:00, 12:00-17:00');
  assert.equal(await admin.locator('#site-closed-dates').inputValue(), `${today}\n${tomorrow}`);
  assert.equal(await admin.locator('#site-away').inputValue(), AWAY);

  // New York (EST, UTC-5): back at 7 PM; Berlin (CET, UTC+1): back at 01:00, in German.
  const ny = await customer('en-US', 'America/New_York');
  const subtitle = 'wsmschat-widget .subtitle';
  await ny.locator(`${subtitle}:has-text("We are closed now")`).waitFor({ timeout: 10000 });
  const nyText = await ny.locator(subtitle).textContent();
  // As the page's own Intl writes it (Chromium's ICU may put a narrow space before PM).
  const fmt = (page, locale) => page.evaluate(([ms, l]) => new Intl.DateTimeFormat(l, { weekday: 'long', hour: '2-digit', minute: '2-digit' }).format(new Date(ms)), [back, locale]);
  const nyWhen = await fmt(ny, 'en');
  assert.match(nyWhen, /^\p{L}+ 07:00\sPM$/u);
  assert.ok(nyText.includes(`back ${nyWhen}`), nyText);
  const berlin = await customer('de-DE', 'Europe/Berlin');
  await berlin.locator(`${subtitle}:has-text("Wir haben gerade geschlossen")`).waitFor({ timeout: 10000 });
  const beText = await berlin.locator(subtitle).textContent();
  const beWhen = await fmt(berlin, 'de');
  assert.match(beWhen, /^\p{L}+, 01:00$/u);
  assert.ok(beText.includes(`wieder da: ${beWhen}`), beText);

  // Writing while closed: the notice says when, and the site's own words follow the message,
  // once, as text (no bold element from the site's markup).
  await ny.locator(W.topic('Order')).click();
  await ny.locator('wsmschat-widget .notice:has-text("We are closed now. Leave your message")').waitFor();
  await sendText(ny, 'Is my order shipped?');
  await waitForBubble(ny, 'Is my order shipped?');
  await waitForBubble(ny, AWAY);
  assert.equal(await ny.locator('wsmschat-widget .bubble b').count(), 0);
  await ny.locator(`wsmschat-widget .notice:has-text("when we are back (${nyWhen})")`).waitFor();
  await ny.locator(W.panel).screenshot({ path: join(ARTIFACTS, 'widget-closed.png') });
  await sendText(ny, 'Hello?');
  await waitForBubble(ny, 'Hello?');
  await new Promise((r) => setTimeout(r, 700));
  const texts = await ny.locator(W.bubbles).allTextContents();
  assert.equal(texts.filter((t) => t === AWAY).length, 1, 'one reply per conversation');

  // The console shows it in the conversation as a system line.
  // It waits in the queue (the admin is online, but the site is closed): Unassigned.
  await admin.locator('a.navlink:has-text("Inbox")').click();
  await admin.locator('.tabs button.tab:has-text("Unassigned")').click();
  await admin.locator('#conv-list li', { hasText: 'Hello?' }).locator('a').click();
  await admin.locator(`li.msg.system:has-text("Out-of-office reply sent: ${AWAY}")`).waitFor();

  // Back to always open (every day empty): the widget no longer says closed.
  await admin.locator('a.navlink:has-text("Admin")').click();
  for (let d = 1; d <= 7; d++) await admin.locator(`#site-hours-${d}`).fill('');
  await admin.locator('form.grid-form button:has-text("Save site")').click();
  await admin.locator('.action-msg:has-text("Saved.")').waitFor();
  const later = await customer('en-US', 'America/New_York');
  await waitFor(async () => /We are (online|away)/.test(await later.locator(subtitle).textContent()), { what: 'open again' });
  for (const p of [admin, ny, berlin, later]) await p.context().close();
});

test("a site's own widget texts replace the built-in ones, per language", async () => {
  const admin = await openConsole(server, { viewport: { width: 1400, height: 1000 } });
  await admin.locator('a.navlink:has-text("Admin")').click();
  await admin.locator('#site-texts').fill('topicQuestion = What can we do for you?\nde.topicQuestion = Wobei können wir helfen?\ntitle = Shop <i>help</i>\nbroken line');
  await admin.locator('form.grid-form button:has-text("Save site")').click();
  await admin.locator('.action-msg:has-text("Widget texts: write")').waitFor();
  await admin.locator('#site-texts').fill('topicQuestion = What can we do for you?\nde.topicQuestion = Wobei können wir helfen?\ntitle = Shop <i>help</i>');
  await admin.locator('form.grid-form button:has-text("Save site")').click();
  await admin.locator('.action-msg:has-text("Saved.")').waitFor();
  await admin.reload();
  await admin.locator('#site-texts').waitFor();
  assert.match(await admin.locator('#site-texts').inputValue(), /^de\.topicQuestion = Wobei/);

  const en = await customer('en-US', 'UTC');
  await en.locator('wsmschat-widget .question:has-text("What can we do for you?")').waitFor({ timeout: 10000 });
  assert.equal(await en.locator('wsmschat-widget .title').textContent(), 'Shop <i>help</i>', 'as text');
  const de = await customer('de-DE', 'Europe/Berlin');
  await de.locator('wsmschat-widget .question:has-text("Wobei können wir helfen?")').waitFor({ timeout: 10000 });
  // Strings the site did not replace stay the widget's own German.
  await de.locator('wsmschat-widget .topic:has-text("Order")').waitFor();
  assert.match(await de.locator('wsmschat-widget .subtitle').textContent(), /Wir sind/);
  for (const p of [admin, en, de]) await p.context().close();
});
