// Customer context (issue #15) end to end: an admin declares attributes on the site form; the
// page sets the page-writable ones (`WsmsChat('update', ...)`); the agent sees them in the visitor
// panel, edits one the page may not set, and finds the conversation with "plan:pro"; the visitor's
// single-page-app navigation shows up in the page trail live. Values and titles are text.
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

test('attributes from the page and the agent, and the page trail, reach the console live', async () => {
  const admin = await openConsole(server, { viewport: { width: 1400, height: 1000 } });
  await admin.locator('a.navlink:has-text("Admin")').click();
  // A malformed declaration is refused by the form, naming the line.
  await admin.locator('#site-attributes').fill('plan text visitor page = Plan\nltv money visitor');
  await admin.locator('form.grid-form button:has-text("Save site")').click();
  await admin.locator('.action-msg:has-text("Attributes: \\"ltv money visitor\\"")').waitFor();
  await admin.locator('#site-attributes').fill([
    'plan text visitor page = Plan',
    'orderId text conversation page = Order <b>no</b>',
    'ltv number visitor = Lifetime value',
    'crm link visitor = CRM',
  ].join('\n'));
  await admin.locator('form.grid-form button:has-text("Save site")').click();
  await admin.locator('.action-msg:has-text("Saved.")').waitFor();
  await admin.reload();
  assert.match(await admin.locator('#site-attributes').inputValue(), /^orderId text conversation page = Order <b>no<\/b>$/m);

  // The customer's page sets what it may, then asks.
  const ctx = await (await browser()).newContext({ viewport: { width: 1280, height: 800 } });
  const page = await newPage(ctx);
  await openShop(page, shop, server);
  await page.evaluate(() => window.WsmsChat('update', { plan: 'pro', orderId: 1001 }));
  await page.locator(W.launcher).click();
  await page.locator(W.topic('Order')).click();
  await sendText(page, 'Where is order 1001?');
  await waitForBubble(page, 'Where is order 1001?');

  await admin.locator('a.navlink:has-text("Inbox")').click();
  await admin.locator('.tabs button:has-text("All")').click();
  await admin.locator('#conv-list li', { hasText: 'Where is order 1001?' }).locator('a').click();
  const attrs = admin.locator('#attributes');
  await new Promise((r) => setTimeout(r, 3000));
  await admin.screenshot({ path: join(ARTIFACTS, 'console-context-debug.png') });
  await attrs.locator('dd[data-attribute="plan"]:has-text("pro")').waitFor({ timeout: 10000 });
  await attrs.locator('dd[data-attribute="orderId"]:has-text("1001")').waitFor({ timeout: 10000 });
  assert.equal(await attrs.locator('dt:has-text("Order <b>no</b> (this conversation)")').count(), 1, 'names are text');
  assert.equal(await attrs.locator('b').count(), 0);

  // The agent sets what the page may not: a number and a link (linked, never javascript:).
  await admin.locator('#attributes-edit').click();
  await admin.locator('#attr-ltv').fill('1234.5');
  await admin.locator('#attr-crm').fill('javascript:alert(1)');
  await admin.locator('#attributes-save').click();
  await attrs.locator('.small:has-text("crm")').waitFor();
  await admin.locator('#attr-crm').fill('https://crm.example.com/customers/7');
  await admin.locator('#attributes-save').click();
  await attrs.locator('dd[data-attribute="ltv"]:has-text("1,234.5")').waitFor();
  const link = attrs.locator('dd[data-attribute="crm"] a');
  assert.equal(await link.getAttribute('href'), 'https://crm.example.com/customers/7');
  assert.equal(await link.getAttribute('rel'), 'noopener noreferrer');

  // The page may not set `ltv`: the server refuses, nothing changes.
  const refused = await page.evaluate(async () => {
    window.WsmsChat('update', { ltv: 1 });
    await new Promise((r) => setTimeout(r, 1000));
    return true;
  });
  assert.ok(refused);

  // The trail: the page the visitor opened, then a single-page-app navigation, live.
  const trail = admin.locator('#pages');
  await trail.locator('li').first().waitFor();
  await page.evaluate(() => { document.title = 'Pricing <i>plans</i>'; history.pushState({}, '', '/pricing?x=1#top'); });
  await trail.locator('li').first().locator('a:has-text("Pricing <i>plans</i>")').waitFor({ timeout: 10000 });
  const href = await trail.locator('li').first().locator('a').getAttribute('href');
  assert.match(href, /\/pricing\?x=1$/, 'the fragment is dropped');
  assert.equal(await trail.locator('i').count(), 0);
  assert.equal(await attrs.locator('dd[data-attribute="ltv"]:has-text("1,234.5")').count(), 1, 'the page could not change ltv');
  await admin.screenshot({ path: join(ARTIFACTS, 'console-context.png') });

  // The inbox finds it by an attribute, exactly.
  await admin.locator('#f-search').fill('plan:pro');
  await admin.locator('#conv-list li', { hasText: 'Where is order 1001?' }).waitFor();
  await admin.locator('#f-search').fill('plan:free');
  await admin.locator('#conv-list li', { hasText: 'Where is order 1001?' }).waitFor({ state: 'detached' });
  assert.deepEqual(admin.consoleErrors || [], []);
  await ctx.close();
  await admin.context().close();
});
