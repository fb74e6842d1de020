// An SMTP server for the browser tests (RFC 5321's core, on a loopback port, keeping every
// message it accepts) and a MIME decoder of its own (headers, multiparts, quoted-printable,
// base64, RFC 2047 words), so what the chat server sends is checked by code that is not the
// server's mail library.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';

// ---- an SMTP server (RFC 5321's core), keeping every message ---------------------------------

/** `refuse(address)`: a reply to RCPT TO instead of 250 (e.g. '550 5.7.1 …': refused), or null. */
export async function startSmtp({ refuse = () => null } = {}) {
  // rcpts: every RCPT TO address asked, accepted or not (one per attempt to send).
  const smtp = { messages: [], sockets: new Set(), rcpts: [] };
  const server = createServer((sock) => {
    smtp.sockets.add(sock);
    sock.on('close', () => smtp.sockets.delete(sock));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    let data = false;
    let env = { from: '', to: [] };
    const reply = (line) => sock.write(line + '\r\n');
    reply('220 smtp.test ESMTP');
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (data) {
          // The message ends with CRLF.CRLF (a DATA right after 354 may end with .CRLF alone).
          const body = buf.toString('latin1');
          const end = body.startsWith('.\r\n') ? 0 : body.indexOf('\r\n.\r\n');
          if (end < 0) return;
          const raw = end === 0 ? '' : body.slice(0, end + 2);
          buf = buf.subarray(end === 0 ? 3 : end + 5);
          data = false;
          // Dot-unstuffing; the bytes kept as sent (latin1 string = one char per byte).
          const text = raw.split('\r\n').map((l) => (l.startsWith('..') ? l.slice(1) : l)).join('\r\n');
          smtp.messages.push({ at: Date.now(), from: env.from, to: env.to, raw: Buffer.from(text, 'latin1') });
          env = { from: '', to: [] };
          reply('250 2.0.0 queued');
          continue;
        }
        const nl = buf.indexOf('\r\n');
        if (nl < 0) return;
        const line = buf.subarray(0, nl).toString('latin1');
        buf = buf.subarray(nl + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') reply('250-smtp.test\r\n250 8BITMIME');
        else if (verb === 'HELO') reply('250 smtp.test');
        else if (verb === 'MAIL') { env = { from: line.replace(/^MAIL FROM:\s*/i, ''), to: [] }; reply('250 2.1.0 ok'); }
        else if (verb === 'RCPT') {
          const addr = /<([^>]*)>/.exec(line)?.[1] ?? line.replace(/^RCPT TO:\s*/i, '');
          smtp.rcpts.push(addr);
          const no = refuse(addr);
          if (no) reply(no);
          else { env.to.push(addr); reply('250 2.1.5 ok'); }
        }
        else if (verb === 'DATA') { data = true; reply('354 end with <CRLF>.<CRLF>'); }
        else if (verb === 'RSET') { env = { from: '', to: [] }; reply('250 ok'); }
        else if (verb === 'NOOP') reply('250 ok');
        else if (verb === 'QUIT') { reply('221 bye'); sock.end(); return; }
        else reply('502 5.5.2 not implemented');
      }
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  smtp.port = server.address().port;
  smtp.close = () => new Promise((r) => { for (const x of smtp.sockets) x.destroy(); server.close(r); });
  return smtp;
}

// ---- MIME, decoded here (not by the server's library) ------------------------------------

/** Headers (unfolded, names lower-cased, in order) and the body of a message or part (latin1). */
export function parsePart(raw) {
  const i = raw.indexOf('\r\n\r\n');
  const head = i < 0 ? raw : raw.slice(0, i);
  const body = i < 0 ? '' : raw.slice(i + 4);
  const headers = [];
  for (const line of head.split('\r\n')) {
    if (/^[ \t]/.test(line) && headers.length) headers[headers.length - 1][1] += ' ' + line.trim();
    else if (line.includes(':')) headers.push([line.slice(0, line.indexOf(':')).trim().toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]);
  }
  const get = (name) => (headers.find(([k]) => k === name) || [])[1];
  return { headers, get, body };
}

/** A header parameter (boundary, charset), quoted or not. */
function param(value, name) {
  const m = new RegExp(`;\\s*${name}=(?:"([^"]*)"|([^;\\s]+))`, 'i').exec(value || '');
  return m ? (m[1] ?? m[2]) : null;
}

function decodeQp(latin1) {
  const bytes = [];
  const s = latin1.replace(/=\r?\n/g, ''); // soft line breaks
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(s.slice(i + 1, i + 3))) { bytes.push(parseInt(s.slice(i + 1, i + 3), 16)); i += 2; }
    else bytes.push(s.charCodeAt(i) & 0xff);
  }
  return Buffer.from(bytes);
}

/** The decoded text of a leaf part. */
export function partText(p) {
  const cte = (p.get('content-transfer-encoding') || '7bit').toLowerCase();
  const bytes = cte === 'base64' ? Buffer.from(p.body.replace(/\s+/g, ''), 'base64')
    : cte === 'quoted-printable' ? decodeQp(p.body) : Buffer.from(p.body, 'latin1');
  const charset = (param(p.get('content-type'), 'charset') || 'us-ascii').toLowerCase();
  return new TextDecoder(charset === 'us-ascii' ? 'utf-8' : charset).decode(bytes);
}

/** Every leaf part of a message, multiparts opened. */
export function leaves(p) {
  const type = (p.get('content-type') || 'text/plain').toLowerCase();
  if (!type.startsWith('multipart/')) return [{ type: type.split(';')[0].trim(), part: p }];
  const boundary = param(p.get('content-type'), 'boundary');
  assert.ok(boundary, 'a multipart has a boundary');
  const chunks = p.body.split(`--${boundary}`);
  // chunks[0]: the preamble; the last: "--" and the epilogue.
  return chunks.slice(1, -1).map((c) => parsePart(c.replace(/^\r\n/, '').replace(/\r\n$/, ''))).flatMap(leaves);
}

/** RFC 2047 encoded words in a header (Subject, the From display name). */
export function decodeWords(v) {
  return (v || '').replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=(?:\s+(?==\?))?/g, (_, cs, enc, text) => {
    const bytes = enc.toUpperCase() === 'B' ? Buffer.from(text, 'base64') : decodeQp(text.replace(/_/g, ' '));
    return new TextDecoder(cs.toLowerCase()).decode(bytes);
  });
}
