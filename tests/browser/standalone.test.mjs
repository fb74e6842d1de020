// One self-contained binary: the server binary copied alone into an empty directory (no
// repository folders beside it, none named by a flag) serves the demo page, the widget and the
// console from the copy built into it. A customer asks on the demo page; the admin, logged into
// the console from the same binary, sees the question and answers; the customer gets it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stack, BIN, PASSWORD, ARTIFACTS, browser, newPage, sendText, waitForBubble, W } from './harness.mjs';

const s = stack();

test('a binary alone in an empty directory serves the widget, the demo page and the console', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wsmschat-alone-'));
  s.own(() => rmSync(dir, { recursive: true, force: true }));
  const bin = join(dir, 'wsmschat');
  copyFileSync(BIN, bin);
  assert.deepEqual(readdirSync(dir), ['wsmschat'], 'nothing but the binary');
  const server = await s.startServer({ bin, cwd: dir, bare: true, dataDir: join(dir, 'data') });
  assert.ok(server.demoUrl, 'the demo page is served');

  // The customer, on the demo page (its own origin), loads the widget from the binary.
  const shopCtx = await (await browser()).newContext();
  const customer = await newPage(shopCtx);
  const fromServer = [];
  const missing = [];
  customer.on('response', (r) => { if (r.status() === 404) missing.push(r.url()); });
  customer.on('response', (r) => { if (r.url().startsWith(server.url.replace('127.0.0.1', 'localhost'))) fromServer.push(r); });
  await customer.goto(`${server.demoUrl}/`);
  await customer.locator(W.launcher).waitFor({ state: 'visible', timeout: 15000 });
  await customer.locator(W.launcher).click();
  await customer.locator(W.topic('Order')).click();
  await sendText(customer, 'Is this served by one binary?');
  await waitForBubble(customer, 'Is this served by one binary?');
  // What the widget fetched came compressed and versioned from the embedded copy.
  const wasm = fromServer.find((r) => r.url().includes('_bg.wasm'));
  assert.ok(wasm, `the widget loaded its wasm from the server: ${fromServer.map((r) => r.url())}`);
  const h = await wasm.allHeaders();
  assert.equal(h['content-encoding'], 'br');
  assert.equal(h['cache-control'], 'public, max-age=31536000, immutable');
  assert.ok(h.etag);

  // The admin, in the console served by the same binary, answers.
  const adminCtx = await (await browser()).newContext({ viewport: { width: 1280, height: 800 } });
  const admin = await newPage(adminCtx);
  admin.on('response', (r) => { if (r.status() === 404) missing.push(r.url()); });
  await admin.goto(`${server.url}/console/`);
  await admin.locator('#login-email').fill('admin@example.com');
  await admin.locator('#login-password').fill(PASSWORD);
  await admin.locator('form.login button[type=submit]').click();
  await admin.locator('.conn:has-text("Connected")').waitFor({ timeout: 15000 });
  await admin.locator('.tab:has-text("All")').click();
  await admin.locator('#conv-list li a', { hasText: 'Is this served by one binary?' }).click();
  await admin.locator('#composer').fill('Yes: widget, console and demo, all from it.');
  await admin.locator('#composer').press('Enter');
  await waitForBubble(customer, 'Yes: widget, console and demo, all from it.');
  await admin.screenshot({ path: join(ARTIFACTS, 'standalone-console.png') });
  assert.deepEqual(missing, [], 'nothing the pages asked for is missing');
  assert.deepEqual(customer.consoleErrors, []);
  assert.deepEqual(admin.consoleErrors, []);
});
