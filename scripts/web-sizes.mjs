// Reports the sizes of the built web assets (raw and gzipped) and checks them against the
// budgets stated in the README. Usage: node scripts/web-sizes.mjs [widget/dist] [--json]
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';

const dir = process.argv.slice(2).find((a) => !a.startsWith('--')) || 'widget/dist';
const KB = 1024;
// Budgets in gzipped bytes (see README "Widget size budget").
const parts = [
  { name: 'loader (widget.js)', files: ['widget.js'], budget: 5 * KB },
  { name: 'UI (ui, strings, dom, files)', files: ['ui.js', 'strings.js', 'dom.js', 'files.js'], budget: 16 * KB },
  { name: 'CSS (widget.css)', files: ['widget.css'], budget: 6 * KB },
  { name: 'SDK JS glue', files: ['wsmschat_widget_sdk.js'], budget: 10 * KB },
  // 128 -> 130 KB: email continuity and transcripts (+1.1 KB wasm, see README); 130 -> 132 KB:
  // opening hours, snoozing and the site's widget texts (+0.5 KB); 132 -> 134 KB: custom
  // attributes and the page trail (+1.7 KB: two calls, one shared future, no response decoding).
  { name: 'SDK wasm', files: ['wsmschat_widget_sdk_bg.wasm'], budget: 134 * KB },
];
// The full SDK (agent and admin calls) is for the console and integrators, not the widget;
// upload.js (the composer's files and the image viewer) loads when a visitor first attaches a
// file or opens an image.
const extra = [
  { name: 'upload + viewer (on use)', files: ['upload.js'], budget: 4 * KB },
  { name: 'full SDK JS glue', files: ['wsmschat_sdk.js'], budget: 14 * KB },
  // 150 -> 160 KB: the webhook admin calls (+3.4 KB) and what the console needs next.
  // 160 -> 164 KB: blocks and the audit log (+0.8 KB) and what the desk features need next.
  // 164 -> 168 KB: opening hours in the site form (+1.3 KB) and snoozing (+0.6 KB). The
  // console's SDK, not the widget's: visitors never download it. 168 -> 172 KB: custom
  // attributes (definitions, values, the list filter) and the page trail (+3.7 KB).
  { name: 'full SDK wasm', files: ['wsmschat_sdk_bg.wasm'], budget: 172 * KB },
];
// 150 -> 152 KB: the email link, the transcript download and email (1.5 KB, see README).
// 152 -> 154 KB: refusal reasons (block, quotas) read from grpc-status-details-bin and
// shown in the visitor's language (+1.6 KB, see README).
// 154 -> 156 KB: custom attributes (`WsmsChat('update', ...)`) and the page trail (+2.1 KB:
// wasm 1.7, UI 0.2, glue 0.1). Only 0.1 KB is left: the next feature brings its own saving.
const TOTAL_BUDGET = 156 * KB;

let total = 0, totalRaw = 0, over = [];
const measure = (p) => {
  let raw = 0, gz = 0;
  for (const f of p.files) {
    const data = readFileSync(join(dir, f));
    raw += statSync(join(dir, f)).size;
    gz += gzipSync(data, { level: 9 }).length;
  }
  if (gz > p.budget) over.push(`${p.name}: ${gz} B gzipped > budget ${p.budget} B`);
  return { name: p.name, raw, gzip: gz, budget: p.budget };
};
// A language other than English: one module in i18n/, fetched beside the SDK when it is the
// one shown; the row is the largest of them.
try {
  const langs = readdirSync(join(dir, 'i18n')).filter((f) => f.endsWith('.js'));
  const sized = langs.map((f) => ({ f, gz: gzipSync(readFileSync(join(dir, 'i18n', f)), { level: 9 }).length }));
  sized.sort((a, b) => b.gz - a.gz);
  if (sized.length) {
    extra.push({ name: `a language (largest: ${sized[0].f}; ${sized.length} in all)`, files: ['i18n/' + sized[0].f], budget: 2 * KB });
  }
} catch { /* no i18n folder: English only */ }
const rows = parts.map(measure);
for (const r of rows) { total += r.gzip; totalRaw += r.raw; }
const extraRows = extra.map(measure);
if (total > TOTAL_BUDGET) over.push(`total: ${total} B gzipped > budget ${TOTAL_BUDGET} B`);

if (process.argv.includes('--json')) {
  console.log(JSON.stringify({ rows, total: { raw: totalRaw, gzip: total, budget: TOTAL_BUDGET }, extra: extraRows }));
} else {
  const k = (n) => (n / KB).toFixed(1).padStart(7) + ' KB';
  console.log('asset'.padEnd(22) + 'raw'.padStart(10) + 'gzip'.padStart(10) + 'budget'.padStart(10));
  for (const r of rows) console.log(r.name.padEnd(22) + k(r.raw) + k(r.gzip) + k(r.budget));
  console.log('widget total'.padEnd(22) + k(totalRaw) + k(total) + k(TOTAL_BUDGET));
  for (const r of extraRows) console.log(r.name.padEnd(22) + k(r.raw) + k(r.gzip) + k(r.budget));
}
if (over.length) {
  console.error('Over budget:\n  ' + over.join('\n  '));
  process.exit(1);
}
