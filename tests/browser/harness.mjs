// Test harness: real chat servers (own temp data dir, port 0), a static server for the
// third-party page on ANOTHER origin, the scriptable native agent, and headless Chromium.
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, extname, resolve, dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { before, after } from 'node:test';
import { chromium } from 'playwright-core';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = join(ROOT, 'target/debug/wsmschat');
export const AGENT_BIN = join(ROOT, 'target/debug/wsmschat-agent');
export const PASSWORD = 'test-password-1';
export const ARTIFACTS = join(ROOT, 'test-output/browser');
mkdirSync(ARTIFACTS, { recursive: true });

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

export async function waitFor(fn, { timeout = 10000, interval = 50, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) { last = e; }
    await sleep(interval);
  }
  throw new Error(`timed out waiting for ${what} (last: ${last && last.message ? last.message : JSON.stringify(last)})`);
}

/** Starts `wsmschat serve` on 127.0.0.1 (port 0 unless given) with its own data dir.
 *  `bin` + `cwd` + `bare`: another copy of the binary, run from another directory, with no
 *  static folder named (it serves what is built into it). */
export async function startServer({ dataDir, port = 0, args = [], bin = BIN, cwd = undefined, bare = false } = {}) {
  dataDir ||= mkdtempSync(join(tmpdir(), 'wsmschat-browser-'));
  const dirs = bare ? [] : ['--widget-dir', join(ROOT, 'widget/dist'), '--sdk-dir', join(ROOT, 'sdk-wasm/dist'),
    '--demo-dir', join(ROOT, 'examples/embed')];
  const env = { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' };
  if (bare) for (const k of ['WIDGET', 'SDK', 'CONSOLE', 'DEMO']) delete env[`WSMSCHAT_${k}_DIR`];
  const proc = spawn(bin, ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir,
    '--demo-password', PASSWORD, ...dirs, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env, cwd });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; if (process.env.SERVER_LOG) process.stderr.write(d); });
  let demoPort = null;
  let startTimer;
  const url = await new Promise((res, rej) => {
    const rl = createInterface({ input: proc.stdout });
    rl.on('line', (line) => {
      const d = line.match(/demo page on http:\/\/localhost:(\d+)/);
      if (d) demoPort = Number(d[1]);
      const m = line.match(/listening on (http:\/\/\S+)/);
      if (m) res(m[1]);
    });
    proc.on('exit', (code) => rej(new Error(`server exited (${code}): ${stderr}`)));
    startTimer = setTimeout(() => rej(new Error('server did not start: ' + stderr)), 20000);
  }).finally(() => clearTimeout(startTimer)); // else the timer keeps the test process alive 20 s
  const actualPort = Number(new URL(url).port);
  return {
    // 127.0.0.1, while the page is on localhost: two different origins.
    url: `http://127.0.0.1:${actualPort}`, port: actualPort, proc, dataDir,
    // The demo page: its own listener, so its own origin.
    demoUrl: demoPort ? `http://localhost:${demoPort}` : null,
    kill(signal = 'SIGTERM') {
      return new Promise((res) => {
        if (proc.exitCode !== null || proc.signalCode) return res();
        proc.once('exit', () => res());
        proc.kill(signal);
      });
    },
    cleanup() { rmSync(dataDir, { recursive: true, force: true }); }
  };
}

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.png': 'image/png' };

/** A static server for the third-party page on http://localhost:PORT (origin A).
 *  `pages` maps a path to { body, headers } for generated pages (hostile page, CSP). */
export async function startStatic({ dir = join(ROOT, 'examples/embed'), pages = {}, host = 'localhost', bind = '127.0.0.1' } = {}) {
  const state = { server: null };
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    if (path === '/favicon.ico') {
      res.writeHead(204);
      res.end();
      return;
    }
    if (path === '/config.js' && state.server) {
      // What the chat server's demo listener generates: the page learns its chat server from a
      // file beside it, never from its URL.
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(`window.WSMSCHAT_DEMO = ${JSON.stringify({ server: state.server, site: 'demo' })};\n`);
      return;
    }
    const page = pages[path];
    if (page) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', ...(page.headers || {}) });
      res.end(typeof page.body === 'function' ? page.body() : page.body);
      return;
    }
    const file = join(dir, path === '/' ? 'index.html' : path);
    if (!file.startsWith(dir) || !existsSync(file)) {
      res.writeHead(404);
      res.end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] || 'application/octet-stream' });
    res.end(readFileSync(file));
  });
  await new Promise((r) => server.listen(0, bind, r));
  const port = server.address().port;
  return {
    url: `http://${host}:${port}`, port, close: () => new Promise((r) => server.close(r)),
    /** Points the page's config.js at a chat server. */
    useServer(url) { state.server = url; },
  };
}

/** The scriptable native agent (Rust, bidi Chat over HTTP/2), speaking JSON lines. */
export async function startAgent(server, email = 'admin@example.com', password = PASSWORD) {
  const proc = spawn(AGENT_BIN, [server.url, email, password], { stdio: ['pipe', 'pipe', 'pipe'] });
  const events = [];
  const waiters = new Set();
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  createInterface({ input: proc.stdout }).on('line', (line) => {
    let ev;
    try { ev = JSON.parse(line); } catch { return; }
    events.push(ev);
    for (const w of [...waiters]) if (w.pred(ev)) { waiters.delete(w); clearTimeout(w.timer); w.res(ev); }
  });
  const agent = {
    proc, events,
    next(pred, timeout = 10000, what = 'agent event') {
      const found = events.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((res, rej) => {
        const w = { pred, res };
        waiters.add(w);
        // Cleared when the event comes: a pending timer would keep the test process alive.
        w.timer = setTimeout(() => { if (waiters.delete(w)) rej(new Error(`timed out waiting for ${what}; stderr: ${stderr}; events: ${JSON.stringify(events.slice(-8))}`)); }, timeout);
      });
    },
    send(cmd) { proc.stdin.write(JSON.stringify(cmd) + '\n'); },
    kill() {
      return new Promise((res) => {
        if (proc.exitCode !== null || proc.signalCode) return res();
        proc.once('exit', () => res());
        proc.kill('SIGKILL');
      });
    }
  };
  await agent.next((e) => e.event === 'ready', 15000, 'agent ready');
  return agent;
}

/** The running parts of one test file (servers, static pages, agents, the browser), torn down
 *  after its last test whatever failed, newest first: `const s = stack()`, then
 *  `s.startServer(..)`, `s.startStatic(..)`, `s.startAgent(..)` (the harness's starters,
 *  remembered for teardown) in a `before` hook or a test; `s.own(stop)` for anything else. */
export function stack() {
  const parts = [];
  const s = {
    async startServer(opts = {}) {
      const x = await startServer(opts);
      // A restart on the same data dir leaves the directory to the first server's teardown.
      parts.push(async () => { await x.kill(); if (!opts.dataDir) x.cleanup(); });
      return x;
    },
    async startStatic(opts) {
      const x = await startStatic(opts);
      parts.push(() => x.close());
      return x;
    },
    async startAgent(...args) {
      const x = await startAgent(...args);
      parts.push(() => x.kill());
      return x;
    },
    own(stop) { parts.push(stop); },
  };
  after(async () => {
    await closeBrowser();
    while (parts.length) {
      try { await parts.pop()(); } catch (e) { console.warn('teardown:', e); }
    }
  });
  return s;
}

let browserPromise = null;
export function browser() {
  browserPromise ||= chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
  return browserPromise;
}
export async function closeBrowser() {
  if (browserPromise) (await browserPromise).close();
  browserPromise = null;
}

/** A new page that records console errors and page errors (and fails on alert()). */
export async function newPage(context, { viewport } = {}) {
  const page = await context.newPage(viewport ? { viewport } : undefined);
  page.consoleErrors = [];
  page.consoleAll = [];
  page.dialogs = [];
  page.on('console', (m) => {
    page.consoleAll.push(`${m.type()}: ${m.text()}`);
    if (m.type() === 'error') page.consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => page.consoleErrors.push('pageerror: ' + e.message));
  page.on('dialog', (d) => { page.dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  return page;
}

/** A console page in a context of its own, logged in (the demo admin unless told) and
 *  connected; extra options go to the context (e.g. `acceptDownloads`). */
export async function openConsole(server, { email = 'admin@example.com', password = PASSWORD, viewport = { width: 1400, height: 900 }, ...contextOptions } = {}) {
  const context = await (await browser()).newContext({ viewport, ...contextOptions });
  const page = await newPage(context);
  await page.goto(`${server.url}/console/`);
  await page.locator('#login-email').fill(email);
  await page.locator('#login-password').fill(password);
  await page.locator('form.login button[type=submit]').click();
  await page.locator('.conn:has-text("Connected")').waitFor({ timeout: 15000 });
  return page;
}

/** Opens the example page (origin A) pointed at the chat server (origin B). */
export async function openShop(page, shop, server, query = '') {
  shop.useServer(server.url);
  await page.goto(`${shop.url}/${query ? '?' + query.replace(/^&/, '') : ''}`);
  await page.locator('wsmschat-widget .launcher').waitFor({ state: 'visible', timeout: 15000 });
}

// ---- widget helpers (Playwright CSS selectors pierce open shadow roots) -----------------

export const W = {
  launcher: 'wsmschat-widget .launcher',
  panel: 'wsmschat-widget .panel',
  topic: (name) => `wsmschat-widget .topic:has-text("${name}")`,
  input: 'wsmschat-widget textarea.input',
  send: 'wsmschat-widget button.send',
  bubbles: 'wsmschat-widget .msg:not(.intro) .bubble',
  typing: 'wsmschat-widget .typing',
  badge: 'wsmschat-widget .badge',
};

export async function sendText(page, text) {
  await page.locator(W.input).fill(text);
  await page.locator(W.input).press('Enter');
}

/** The texts of the message bubbles shown (not the greeting). */
export async function bubbleTexts(page) {
  return page.locator(W.bubbles).allTextContents();
}

export async function waitForBubble(page, text, timeout = 10000) {
  await waitFor(async () => (await bubbleTexts(page)).includes(text), { timeout, what: `bubble ${JSON.stringify(text)}` });
}
