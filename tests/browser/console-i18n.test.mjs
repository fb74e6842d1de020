// The console in English and German (console/src/i18n.js): a German browser gets the login
// screen, the inbox and the conversation view in German (<html lang="de">, times in German,
// no English label left); the switch in the agent's menu turns it English at once, without a
// new login and with the reply draft kept, and the choice survives a reload and a logout; an
// en-US browser gets English and never loads the German strings. German has every English
// string, with the same placeholders.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { stack, ROOT, PASSWORD, ARTIFACTS, browser, newPage, openShop, sendText, waitForBubble, W } from './harness.mjs';

// The console's string modules, read as the browser does (ES modules in a folder without a
// package.json "type": imported from their text, so any Node 20 reads them alike).
const strings = async (lang) => (await import('data:text/javascript,' + encodeURIComponent(
  readFileSync(join(ROOT, `console/src/i18n/${lang}.js`), 'utf8')))).default;
const EN = await strings('en');
const DE = await strings('de');

const s = stack();
let server, shop;

before(async () => {
  server = await s.startServer({ args: ['--console-dir', join(ROOT, 'console/dist')] });
  shop = await s.startStatic();
});

/** A console page in a browser of `locale`, on the login screen (German strings, if any, seen
 *  loading in `page.requests`). */
async function openLogin(locale) {
  const context = await (await browser()).newContext({ locale, viewport: { width: 1400, height: 900 } });
  const page = await newPage(context);
  page.requests = [];
  page.on('request', (r) => page.requests.push(r.url()));
  await page.goto(`${server.url}/console/`);
  await page.locator('#login-email').waitFor();
  return page;
}

async function logIn(page, password = PASSWORD) {
  await page.locator('#login-email').fill('admin@example.com');
  await page.locator('#login-password').fill(password);
  await page.locator('form.login button[type=submit]').click();
}

/** The shell's visible text plus every label a screen reader or a tooltip gives, and every
 *  option of its menus. */
function shellWords(page) {
  return page.evaluate(() => {
    const root = document.querySelector('.shell');
    const out = [root.innerText];
    for (const el of root.querySelectorAll('[aria-label], [placeholder], [title]')) {
      for (const a of ['aria-label', 'placeholder']) if (el.hasAttribute(a)) out.push(el.getAttribute(a));
      // Titles of user data (the user agent, a page URL, the agent's email) are not the console's words.
      if (el.title && !el.closest('.facts') && !el.matches('.me')) out.push(el.title);
    }
    for (const o of root.querySelectorAll('option')) out.push(o.textContent);
    return out.join('\n');
  });
}

// The console's own words of the inbox and the conversation view, in English: none may show
// in German (user data in this test is German, the topic is the site's "Order"; "Labels",
// "Online", "Admin", "Status" are German words too).
const ENGLISH = ['Inbox', 'Mine', 'Unassigned', 'Snoozed', 'Log out', 'Sound', 'Connected', 'My status', 'Away',
  'Any status', 'Any topic', 'Search name', 'Load more', 'Queued', 'Open', 'Resolved', 'Reopen', 'Resolve', 'Take',
  'Assign', 'Transfer', 'Snooze', 'Until the customer replies', 'Download transcript', 'Reply', 'Private note',
  'Send', 'Sent', 'Read', 'Canned replies', 'Message kind', 'Attach files', 'Conversation', 'Messages', 'Visitor',
  'Pick a conversation', 'Email', 'Identity', 'Not verified', 'Page', 'Locale', 'IP address', 'First seen', 'Last seen',
  'Files', 'No files yet', 'Satisfaction', 'No rating yet', 'Other conversations', 'Safety', 'Block', 'Reason',
  'This visitor', 'Refresh', 'No emails', 'Actions', 'Lists', 'Main', 'Assigned to', 'Enable notifications',
  'Language', 'My settings', 'on Linux'];
const englishIn = (text) => ENGLISH.filter((w) => new RegExp(`(^|[^\\p{L}])${w.replace(/[()]/g, '\\$&')}($|[^\\p{L}])`, 'u').test(text));

test('German has every English string, with the same placeholders and plural forms', () => {
  const placeholders = (v) => [...new Set(Object.values(typeof v === 'object' ? v : { v }).join(' ').match(/\{\w+\}/g) || [])].sort().join();
  assert.deepEqual(Object.keys(DE).filter((k) => !(k in EN)), [], 'German keys English does not have');
  assert.deepEqual(Object.keys(EN).filter((k) => !(k in DE)), [], 'English keys German lacks');
  for (const k of Object.keys(EN)) {
    assert.equal(typeof DE[k], typeof EN[k], `${k}: plural in one language only`);
    assert.equal(placeholders(DE[k]), placeholders(EN[k]), `${k}: placeholders`);
    if (typeof EN[k] === 'object') assert.deepEqual(Object.keys(DE[k]).sort(), ['one', 'other'], `${k}: German plural forms`);
  }
  assert.ok(Object.keys(EN).length > 450, `${Object.keys(EN).length} strings`);
});

test('a German browser gets the console in German; English is one switch away and stays', async () => {
  const a = await openLogin('de-DE');
  // The login screen.
  assert.equal(await a.locator('html').getAttribute('lang'), 'de');
  assert.equal(await a.locator('#login-title').textContent(), 'Agenten-Konsole');
  assert.equal(await a.locator('label[for=login-password]').textContent(), 'Passwort');
  assert.equal(await a.locator('form.login button[type=submit]').textContent(), 'Anmelden');
  assert.equal(await a.locator('a.skip').textContent(), 'Zum Inhalt springen');
  assert.equal(await a.title(), 'wsmschat-Konsole');
  assert.equal(await a.locator('#login-lang').inputValue(), 'de');
  assert.ok(a.requests.some((u) => u.endsWith('/console/i18n/de.js')), 'German strings loaded');
  await a.locator('form.login button[type=submit]').click();
  await a.locator('#login-error:has-text("Bitte geben Sie Ihre E-Mail-Adresse und Ihr Passwort ein.")').waitFor();
  await logIn(a, 'not-the-password');
  await a.locator('#login-error:has-text("E-Mail-Adresse oder Passwort ist falsch")').waitFor();
  await a.screenshot({ path: join(ARTIFACTS, 'console-de-login.png') });

  // The inbox.
  await logIn(a);
  await a.locator('.conn.online:text-is("Verbunden")').waitFor({ timeout: 15000 });
  assert.equal(await a.locator('a.navlink[href="#/inbox"]').textContent(), 'Posteingang');
  assert.deepEqual((await a.locator('.tabs button.tab').allTextContents()).map((x) => x.replace(/\s*\d*$/, '')),
    ['Meine', 'Nicht zugewiesen', 'Alle', 'Zurückgestellt']);
  assert.equal(await a.locator('#f-search').getAttribute('placeholder'), 'Name, E-Mail, Text suchen');
  assert.equal(await a.locator('.topbar button:has-text("Abmelden")').count(), 1);
  await a.locator('.pane.conversation .empty:has-text("Wählen Sie eine Unterhaltung aus dem Posteingang.")').waitFor();

  // A customer (an English browser: the widget is the visitor's, not the agent's) writes.
  const shopCtx = await (await browser()).newContext();
  const customer = await newPage(shopCtx);
  await openShop(customer, shop, server);
  await customer.locator(W.launcher).click();
  await customer.locator(W.topic('Order')).click();
  await sendText(customer, 'Wo bleibt meine Bestellung 1001?');
  await waitForBubble(customer, 'Wo bleibt meine Bestellung 1001?');
  await a.locator('.tabs button.tab:has-text("Alle")').click();
  const row = a.locator('#conv-list li', { hasText: 'Wo bleibt meine Bestellung 1001?' });
  await row.waitFor({ timeout: 10000 });
  assert.match(await row.locator('.status').textContent(), /^(Offen|In Warteschlange)$/);

  // The conversation view: header, actions, log, composer, visitor panel.
  await row.locator('a').click();
  await a.locator('.log .msg.in .bubble:has-text("Wo bleibt meine Bestellung 1001?")').waitFor();
  await a.locator('.pane.visitor dl.facts').waitFor();
  await a.locator('#emails-title:has-text("E-Mails (0)")').waitFor();
  if (await a.locator('.actions button:text-is("Übernehmen")').count()) {
    await a.locator('.actions button:text-is("Übernehmen")').click();
  }
  await a.locator('.conv-header:has-text("Zugewiesen an mich")').waitFor();
  assert.equal(await a.locator('#download-transcript').textContent(), 'Transkript herunterladen');
  assert.equal(await a.locator('.modes button').first().textContent(), 'Antworten');
  assert.match(await a.locator('#composer').getAttribute('placeholder'), /^Antwort… \(Enter sendet/);
  assert.match(await a.locator('#snooze-pick option[value=tomorrow]').textContent(), /^Bis morgen, 09:00 Uhr$/);
  await a.locator('#composer').fill('Sie wird heute verschickt.');
  await a.locator('#composer').press('Enter');
  await a.locator('.log .msg.out:not(.pending) .send-status:text-matches("^(Gesendet|Gelesen)$")').waitFor();
  await a.locator('.actions button:text-is("Als gelöst markieren")').click();
  await a.locator('.conv-header .status:text-is("Gelöst")').waitFor();
  await a.locator('.log .msg.system:has-text("Gelöst")').waitFor();
  await a.locator('.actions button:text-is("Wieder öffnen")').waitFor();
  assert.match(await a.locator('.pane.visitor').textContent(), /Nicht bestätigt/);
  // Times in German (24 h), not the en-US "02:05 PM".
  assert.match(await a.locator('.log .msg.in time').first().textContent(), /^\d{2}:\d{2}$/);
  const words = await shellWords(a);
  assert.deepEqual(englishIn(words), [], 'English left in the German inbox and conversation view');
  await a.screenshot({ path: join(ARTIFACTS, 'console-de-conversation.png') });

  // Switch to English in the agent's menu: the same session, conversation and draft, in English.
  await a.locator('#composer').fill('Entwurf bleibt');
  await a.locator('summary.me').click();
  assert.equal(await a.locator('#my-lang').inputValue(), 'de');
  await a.locator('#my-lang').selectOption('en');
  await a.locator('.conn.online:text-is("Connected")').waitFor();
  assert.equal(await a.locator('html').getAttribute('lang'), 'en');
  assert.equal(await a.locator('a.navlink[href="#/inbox"]').textContent(), 'Inbox');
  await a.locator('.tabs button.tab:has-text("Mine")').waitFor();
  await a.locator('.conv-header .status:text-is("Resolved")').waitFor();
  await a.locator('.log .msg.system:has-text("Resolved")').waitFor();
  await a.locator('.actions button:text-is("Reopen")').waitFor();
  assert.equal(await a.locator('#composer').inputValue(), 'Entwurf bleibt');
  assert.match(await a.locator('.log .msg.in time').first().textContent(), /^\d{2}:\d{2}\s?[AP]M$/);
  assert.equal(await a.locator('#login-email').count(), 0, 'no new login');
  assert.equal(await a.title(), 'wsmschat console');
  assert.deepEqual(await a.evaluate(() => JSON.parse(localStorage.getItem('wsmschat-console:prefs')).lang), 'en');

  // Kept over a reload (the browser is still German), and on the login screen after a logout.
  await a.reload();
  await a.locator('.conn.online:text-is("Connected")').waitFor({ timeout: 15000 });
  assert.equal(await a.locator('html').getAttribute('lang'), 'en');
  await a.locator('.tabs button.tab:has-text("Unassigned")').waitFor();
  await a.locator('.topbar button:text-is("Log out")').click();
  await a.locator('form.login button[type=submit]:text-is("Log in")').waitFor();
  assert.equal(await a.locator('#login-title').textContent(), 'Agent console');

  // Back to German on the login screen: what was typed stays.
  await a.locator('#login-email').fill('admin@example.com');
  await a.locator('#login-lang').selectOption('de');
  await a.locator('form.login button[type=submit]:text-is("Anmelden")').waitFor();
  assert.equal(await a.locator('#login-email').inputValue(), 'admin@example.com');
  assert.equal(await a.locator('html').getAttribute('lang'), 'de');
  assert.deepEqual(a.consoleErrors, []);
  await a.context().close();
  await shopCtx.close();
});

test('an en-US browser gets English (no German loaded); de-AT German, fr-FR English', async () => {
  const a = await openLogin('en-US');
  assert.equal(await a.locator('html').getAttribute('lang'), 'en');
  assert.equal(await a.locator('#login-title').textContent(), 'Agent console');
  assert.equal(await a.locator('form.login button[type=submit]').textContent(), 'Log in');
  assert.equal(await a.locator('#login-lang').inputValue(), 'en');
  await logIn(a);
  await a.locator('.conn.online:text-is("Connected")').waitFor({ timeout: 15000 });
  await a.locator('.tabs button.tab:has-text("Mine")').waitFor();
  assert.equal(await a.locator('a.navlink[href="#/inbox"]').textContent(), 'Inbox');
  assert.ok(a.requests.some((u) => u.endsWith('/console/i18n/en.js')), 'English is built in');
  assert.ok(!a.requests.some((u) => u.includes('/i18n/de.js')), 'English users never load the German strings');
  assert.deepEqual(a.consoleErrors, []);
  await a.context().close();

  for (const [locale, title, lang] of [['de-AT', 'Agenten-Konsole', 'de'], ['fr-FR', 'Agent console', 'en']]) {
    const p = await openLogin(locale);
    assert.equal(await p.locator('#login-title').textContent(), title, locale);
    assert.equal(await p.locator('html').getAttribute('lang'), lang, locale);
    await p.context().close();
  }
});
