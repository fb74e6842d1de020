// Writes a brotli (.br, quality 11) and a gzip (.gz, level 9) copy beside every compressible
// file of the given folders, when it is smaller. The server sends them to clients that accept
// them (from disk, and from the copy built into its binary: server/build.rs embeds them), so
// nothing is compressed per request. Usage: node scripts/precompress.mjs DIR...
import { readdirSync, readFileSync, writeFileSync, statSync, rmSync } from 'node:fs';
import { brotliCompressSync, gzipSync, constants } from 'node:zlib';
import { join, extname } from 'node:path';

const COMPRESSIBLE = new Set(['.js', '.mjs', '.css', '.html', '.svg', '.json', '.wasm', '.txt', '.ts', '.map']);
let files = 0, raw = 0, br = 0, gz = 0;

function walk(dir) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) { walk(p); continue; }
    if (name.endsWith('.br') || name.endsWith('.gz')) continue;
    const ext = name.endsWith('.d.ts') ? '.ts' : extname(name);
    if (!COMPRESSIBLE.has(ext)) continue;
    const data = readFileSync(p);
    const b = brotliCompressSync(data, {
      params: {
        [constants.BROTLI_PARAM_QUALITY]: 11,
        [constants.BROTLI_PARAM_SIZE_HINT]: data.length,
      },
    });
    const g = gzipSync(data, { level: 9 });
    for (const [suffix, out] of [['.br', b], ['.gz', g]]) {
      if (out.length < data.length) writeFileSync(p + suffix, out);
      else rmSync(p + suffix, { force: true });
    }
    files += 1; raw += data.length; br += Math.min(b.length, data.length); gz += Math.min(g.length, data.length);
  }
}
for (const dir of process.argv.slice(2)) walk(dir);
const kb = (n) => (n / 1024).toFixed(1);
console.log(`precompressed ${files} files: ${kb(raw)} KB -> brotli ${kb(br)} KB, gzip ${kb(gz)} KB`);
