// Attachments end to end, against a real server and real Chromium: a customer pastes a
// screenshot and attaches a PDF in the widget; the agent sees the thumbnail in the console and
// downloads the PDF with its name; the agent sends an image back, and a note's file never
// reaches the customer; the image viewer opens and closes with Escape (focus returns); a
// dropped network mid-upload is retried without a second message; reload shows it all again;
// a file over the limit and a refused kind say why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import {
  stack, ROOT, BIN, ARTIFACTS, browser, newPage, openConsole, openShop, sendText, waitForBubble, waitFor, sleep, W
} from './harness.mjs';

const s = stack();
const AGENT_PW = 'agent-password-1';

/** A real PNG of w x h pixels (RGB, a gradient). */
function png(w, h) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const c = Buffer.alloc(4); c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; ihdr[9] = 2; ihdr[10] = 0; ihdr[11] = 0; ihdr[12] = 0;
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    raw[y * (w * 3 + 1)] = 0;
    for (let x = 0; x < w; x++) {
      const o = y * (w * 3 + 1) + 1 + x * 3;
      raw[o] = (x * 255 / w) | 0; raw[o + 1] = (y * 255 / h) | 0; raw[o + 2] = 160;
    }
  }
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

const PDF = Buffer.concat([Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n'), Buffer.alloc(30000, 0x20), Buffer.from('\n%%EOF\n')]);
const FILE_INPUT = 'wsmschat-widget .composer input[type=file]';
const CHIP = 'wsmschat-widget .tray .chip';

/** Pastes a PNG into the widget's text box, as a screenshot paste does. */
async function pasteScreenshot(page, bytes) {
  await page.evaluate((b64) => {
    const bin = atob(b64);
    const arr = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) arr[i] = bin.charCodeAt(i);
    const dt = new DataTransfer();
    dt.items.add(new File([arr], 'image.png', { type: 'image/png' }));
    const ta = document.querySelector('wsmschat-widget').shadowRoot.querySelector('textarea.input');
    ta.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
  }, bytes.toString('base64'));
}

test('attachments: widget and console, images and files, viewer, retry, limits, notes', async () => {
  const server = await s.startServer({ args: ['--console-dir', join(ROOT, 'console/dist')] });
  const shop = await s.startStatic();
  execFileSync(BIN, ['agent', 'create', '--data-dir', server.dataDir, '--email', 'ana@example.com', '--name', 'Ana Order',
    '--password', AGENT_PW, '--topic', 'Order', '--capacity', '5'], { stdio: 'pipe' });
  const agent = await openConsole(server, { email: 'ana@example.com', password: AGENT_PW, viewport: { width: 1280, height: 800 }, acceptDownloads: true });

  const shopCtx = await (await browser()).newContext({ acceptDownloads: true });
  const customer = await newPage(shopCtx);
  await openShop(customer, shop, server);
  await customer.locator(W.launcher).click();
  await customer.locator(W.topic('Order')).click();

  // A pasted screenshot and a PDF from the picker: a chip each, uploaded before sending.
  await pasteScreenshot(customer, png(640, 400));
  await customer.locator(FILE_INPUT).setInputFiles({ name: 'invoice.pdf', mimeType: 'application/pdf', buffer: PDF });
  await waitFor(async () => (await customer.locator(`${CHIP}.done`).count()) === 2, { what: 'two uploaded chips' })
    .catch(async (e) => {
      console.error(customer.consoleAll.join('\n'), await customer.locator('wsmschat-widget .composer-box').innerHTML());
      throw e;
    });
  assert.match(await customer.locator(CHIP).first().textContent(), /screenshot-.*\.png/);
  await sendText(customer, 'The parcel arrived like this');
  await waitForBubble(customer, 'The parcel arrived like this');
  // The thumbnail has its size before it loads (no jump), then loads.
  const thumb = customer.locator('wsmschat-widget .msg.mine .att-img img');
  await thumb.waitFor();
  assert.equal(await thumb.getAttribute('width'), '240');
  assert.equal(await thumb.getAttribute('height'), '150');
  await waitFor(() => thumb.evaluate((i) => i.complete && i.naturalWidth > 0), { what: 'thumbnail loaded' });
  await customer.locator('wsmschat-widget .msg.mine .att-file:has-text("invoice.pdf")').waitFor();
  assert.equal(await customer.locator(CHIP).count(), 0, 'the tray is empty after sending');

  // The agent sees the thumbnail and downloads the PDF under its name.
  await agent.locator('#conv-list li', { hasText: 'The parcel arrived' }).locator('a').click();
  const agentThumb = agent.locator('.log .msg.in .att-img img');
  await agentThumb.waitFor();
  await waitFor(() => agentThumb.evaluate((i) => i.complete && i.naturalWidth > 0), { what: 'agent thumbnail loaded' });
  const [download] = await Promise.all([
    agent.waitForEvent('download'),
    agent.locator('.log .msg.in .att-file:has-text("invoice.pdf")').click()
  ]);
  assert.equal(download.suggestedFilename(), 'invoice.pdf');
  const saved = await download.path();
  assert.equal((await import('node:fs')).readFileSync(saved).length, PDF.length);
  // The visitor panel lists the conversation's files.
  await waitFor(async () => /Files \(2\)/.test(await agent.locator('.pane.visitor').textContent()), { what: 'files listed' });

  // The agent sends an image back (no text), and a private note with a file.
  await agent.locator('.composer input[type=file]').setInputFiles({ name: 'label.png', mimeType: 'image/png', buffer: png(300, 300) });
  await waitFor(async () => (await agent.locator('.composer .chip.done').count()) === 1, { what: 'agent upload' });
  await agent.locator('#composer').press('Enter');
  const back = customer.locator('wsmschat-widget .msg.theirs .att-img img[alt="label.png"]');
  await back.waitFor({ timeout: 10000 });
  await agent.locator('.modes button:has-text("Private note")').click();
  await agent.locator('.composer input[type=file]').setInputFiles({ name: 'internal-notes.pdf', mimeType: 'application/pdf', buffer: PDF });
  await waitFor(async () => (await agent.locator('.composer .chip.done').count()) === 1, { what: 'note upload' });
  await agent.locator('#composer').fill('for agents only');
  await agent.locator('#composer').press('Enter');
  await agent.locator('.log .msg.note .att-file:has-text("internal-notes.pdf")').waitFor();
  await agent.locator('.modes button:has-text("Reply")').click();

  // The viewer: opens full size, Escape closes it, focus returns to the thumbnail.
  await customer.locator('wsmschat-widget .msg.theirs .att-img').click();
  const viewer = customer.locator('wsmschat-widget .viewer');
  await viewer.waitFor();
  assert.equal(await viewer.getAttribute('role'), 'dialog');
  await waitFor(() => customer.locator('wsmschat-widget .viewer-img').evaluate((i) => i.complete && i.naturalWidth === 300), { what: 'full image' });
  await customer.keyboard.press('Escape');
  await viewer.waitFor({ state: 'detached' });
  assert.ok(await customer.locator('wsmschat-widget .panel').isVisible(), 'Escape closed only the viewer');
  assert.ok(await customer.evaluate(() => document.querySelector('wsmschat-widget').shadowRoot.activeElement?.classList.contains('att-img')), 'focus returned');
  await customer.screenshot({ path: join(ARTIFACTS, 'widget-attachments.png') });

  // A dropped network mid-upload: the chip fails, Retry uploads again, one message is sent.
  let aborted = 0;
  await customer.route('**/uploads?*', (route) => { aborted++; return route.abort('connectionreset'); });
  await customer.locator(FILE_INPUT).setInputFiles({ name: 'retry-me.pdf', mimeType: 'application/pdf', buffer: PDF });
  await customer.locator(`${CHIP}.failed`).waitFor();
  assert.equal(aborted, 1);
  await customer.unroute('**/uploads?*');
  await customer.locator(`${CHIP}.failed button[aria-label^="Retry upload"]`).click();
  await customer.locator(`${CHIP}.done`).waitFor();
  await customer.locator(W.send).click();
  await customer.locator('wsmschat-widget .att-file:has-text("retry-me.pdf")').waitFor();
  await agent.locator('.log .att-file:has-text("retry-me.pdf")').waitFor();
  await sleep(500);
  assert.equal(await agent.locator('.log .att-file:has-text("retry-me.pdf")').count(), 1, 'one message');

  // Limits: too large is refused at once with the limit; a refused kind says what is taken.
  await customer.locator(FILE_INPUT).setInputFiles({ name: 'huge.zip', mimeType: 'application/zip', buffer: Buffer.alloc(11 * 1024 * 1024) });
  await waitFor(async () => /huge\.zip is too large: files up to 10 MB/.test(await customer.locator('wsmschat-widget .tray-error').textContent()), { what: 'size error' });
  await customer.locator(FILE_INPUT).setInputFiles({ name: 'page.html', mimeType: 'text/html', buffer: Buffer.from('<!doctype html><script>alert(1)</script>') });
  await customer.locator(`${CHIP}.failed`).waitFor();
  assert.match(await customer.locator(`${CHIP}.failed`).textContent(), /not accepted here/);
  await customer.locator(`${CHIP}.failed button[aria-label^="Remove"]`).click();

  // A reload shows the files again; the note's file never reached the customer.
  await customer.reload();
  await customer.locator(W.launcher).click();
  await customer.locator('wsmschat-widget .att-file:has-text("invoice.pdf")').waitFor({ timeout: 15000 });
  await customer.locator('wsmschat-widget .att-img img[alt="label.png"]').waitFor();
  assert.equal(await customer.locator('wsmschat-widget .msg.mine .att-img').count(), 1);
  const text = await customer.locator('wsmschat-widget .log').textContent();
  assert.ok(!text.includes('internal-notes.pdf') && !text.includes('for agents only'), 'no note reaches the customer');
  assert.deepEqual(customer.consoleErrors.filter((e) => !/ERR_CONNECTION_RESET|Failed to load resource/.test(e)), []);
  assert.deepEqual(customer.dialogs, []);
});
