// Reads the mail keycard sent, from the Maildir of the SMTP server .ci/browser-test.sh runs
// (aiosmtpd's Mailbox handler: one file per message in DIR/new). A small MIME reader: headers
// (unfolded), multipart bodies, quoted-printable and base64 parts, RFC 2047 encoded words.

import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { sleep } from './harness.js';

/// Every message delivered so far: `{file, headers, to, subject, text, html}`, oldest first.
export function messages(maildir) {
  const dir = path.join(maildir, 'new');
  return readdirSync(dir)
    .map((file) => ({ file, raw: readFileSync(path.join(dir, file), 'utf8') }))
    .map(({ file, raw }) => {
      const entity = parseEntity(raw);
      const leaves = leafParts(entity);
      const of = (type) => leaves.find((p) => p.type === type)?.text ?? null;
      return {
        file,
        headers: entity.headers,
        to: decodeWords(entity.headers.to || ''),
        subject: decodeWords(entity.headers.subject || ''),
        date: Date.parse(entity.headers.date || '') || 0,
        text: of('text/plain'),
        html: of('text/html'),
      };
    })
    .sort((a, b) => a.date - b.date || a.file.localeCompare(b.file));
}

/// The first link in `mail`'s plain-text part to `base + linkPath` with a `#token=`:
/// `{url, token}`, or null.
export function linkIn(mail, base, linkPath) {
  const escaped = (base + linkPath).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const match = new RegExp(`${escaped}#token=([A-Za-z0-9_-]+)`).exec(mail.text || '');
  return match ? { url: match[0], token: match[1] } : null;
}

/// Polls the Maildir (at most `timeoutMs`) for a message to `to` with a link to `linkPath`
/// that none of `seen` (tokens) holds; resolves to `{mail, url, token}`.
export async function waitForLink(maildir, { to, base, linkPath, seen = [], timeoutMs = 15000 }) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const mail of messages(maildir)) {
      if (!mail.to.includes(to)) continue;
      const link = linkIn(mail, base, linkPath);
      if (link && !seen.includes(link.token)) return { mail, ...link };
    }
    if (Date.now() > deadline) {
      const summary = messages(maildir).map((m) => `${m.to} · ${m.subject}`);
      throw new Error(`no mail to ${to} with a ${linkPath} link within ${timeoutMs} ms; the Maildir holds: ${JSON.stringify(summary)}`);
    }
    await sleep(50);
  }
}

function parseEntity(raw) {
  const blank = /\r?\n\r?\n/.exec(raw);
  const head = blank ? raw.slice(0, blank.index) : raw;
  const body = blank ? raw.slice(blank.index + blank[0].length) : '';
  const headers = {};
  for (const line of head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] ??= line.slice(colon + 1).trim();
  }
  return { headers, body };
}

function leafParts(entity) {
  const type = entity.headers['content-type'] || 'text/plain';
  if (/^multipart\//i.test(type)) {
    const boundary = /boundary="?([^";]+)"?/i.exec(type)?.[1];
    if (!boundary) return [];
    return entity.body
      .split(`--${boundary}`)
      .slice(1)
      .filter((piece) => !piece.startsWith('--'))
      .flatMap((piece) => leafParts(parseEntity(piece.replace(/^\r?\n/, ''))));
  }
  return [{ type: type.split(';')[0].trim().toLowerCase(), text: decodeBody(entity) }];
}

function decodeBody({ headers, body }) {
  const encoding = (headers['content-transfer-encoding'] || '7bit').toLowerCase();
  if (encoding === 'base64') return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  if (encoding === 'quoted-printable') return quotedPrintable(body.replace(/=\r?\n/g, ''));
  return body;
}

function quotedPrintable(text) {
  const bytes = [];
  for (let i = 0; i < text.length; i += 1) {
    if (text[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(text[i], 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/// RFC 2047: `=?utf-8?B?…?=` and `=?utf-8?Q?…?=` in headers.
function decodeWords(value) {
  return value.replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=\s*/g, (_, _charset, kind, data) =>
    kind.toUpperCase() === 'B'
      ? Buffer.from(data, 'base64').toString('utf8')
      : quotedPrintable(data.replace(/_/g, ' ')));
}
