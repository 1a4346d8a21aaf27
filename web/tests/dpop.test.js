// DPoP (RFC 9449) from keycard.js, in headless Chromium against keycard servers of its own (the
// demo page at /?dpop, which turns keycard.js's `dpop` option on): the key pair is made once,
// non-extractable, and kept as CryptoKeys in IndexedDB; every token request and every call with
// the access token carries a proof that keycard accepts, and the session is bound to the key
// (`token_type: DPoP`, `cnf.jkt` = the key's thumbprint). A thief who copies the access token out
// of the page, and the refresh cookie off the disk (the DevTools protocol's Network.getCookies,
// which sees HttpOnly cookies), gets nothing from Node: the token is refused as Bearer and with a
// proof of another key, the refresh is refused without a proof and with another key's, while the
// page goes on with the very same cookie. A reload keeps the key and the session; two tabs share
// one key, also when both make it at the same moment; a login's second factor step and a passkey
// sign-in bind the session too; a browser without Ed25519 uses P-256. A second server with
// `dpop_nonce = true` asks for nonces (`use_dpop_nonce`), and keycard.js answers them without the
// page noticing, at login, at refresh and on a protected call. Passkeys need a host name: a third
// server's issuer is http://localhost:PORT, the address its page uses (proofs' htu must name it).
//
// Proofs are checked here too, independently of keycard: signature (node:crypto), header, htm,
// htu, iat, ath. The thief's proofs are made by node:crypto with a key of its own.
//
// Environment: KEYCARD_BIN (the keycard binary), ARTIFACTS_DIR, CHROMIUM. keycard builds the demo
// page and keycard.js into its binary; WEB_FROM_DISK=1 serves this checkout's web/ files instead
// (with keycard's own headers), to test changes to them against a binary built before them.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import net from 'node:net';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import * as OTPAuth from 'otpauth';
import { chromium } from 'playwright-core';

import { LAUNCH, readableState, serveWebFromDisk, signedIn, signedOut } from './harness.js';

const BIN = process.env.KEYCARD_BIN;
assert.ok(BIN, 'KEYCARD_BIN must name the keycard binary (see .ci/browser-test.sh)');
const ARTIFACTS = process.env.ARTIFACTS_DIR || path.resolve(import.meta.dirname, '../../target/browser-artifacts');

const password = 'correct horse battery staple';
const stamp = Date.now();

const servers = []; // {name, process, log, dir}
let browser;
const problems = []; // page errors, and console errors but the refusals the steps ask for
const consoleLines = []; // everything the pages logged, searched for tokens
const calls = []; // every request the pages made to a keycard: see `record`

/// A keycard on a free loopback port with a fresh database (`env`: more settings); resolves to its
/// base URL, http://127.0.0.1:PORT, which is also its issuer (what proofs' `htu` must name).
function startKeycard(name, env = {}, { port = 0, issuer } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), `keycard-dpop-${name}-`));
  const args = ['serve', '--bind', `127.0.0.1:${port}`, '--database', path.join(dir, 'keycard.db')];
  args.push('--access-ttl', '5m', '--leeway', '0s', '--email-verification', 'off');
  if (issuer) args.push('--issuer', issuer);
  const child = spawn(BIN, args, {
    env: { ...process.env, ...env, KEYCARD_LOG: 'info', NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const server = { name, process: child, log: '', dir };
  servers.push(server);
  return new Promise((resolve, reject) => {
    const onData = (chunk) => {
      server.log += chunk;
      const m = /addr=127\.0\.0\.1:(\d+)/.exec(server.log);
      if (m) resolve(`http://127.0.0.1:${m[1]}`);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => reject(new Error(`keycard ${name} exited (${code}):\n${server.log}`)));
    setTimeout(() => reject(new Error(`keycard ${name} did not report its address:\n${server.log}`)), 15000);
  });
}

/// A loopback port free right now.
function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
    probe.on('error', reject);
  });
}

/// Records page errors and what the pages logged; failed loads are expected for 400 and 401
/// (a proof without the nonce, a refused token).
function watch(p, name) {
  p.on('pageerror', (err) => problems.push(`${name}: ${err.message}`));
  p.on('console', (msg) => {
    consoleLines.push(msg.text());
    const status = /Failed to load resource: the server responded with a status of (\d+)/.exec(msg.text())?.[1];
    if (msg.type() === 'error' && !['400', '401'].includes(status)) problems.push(`${name}: ${msg.text()}`);
  });
  return p;
}

/// Records every request a context makes to a keycard's /auth/ routes, once answered: method,
/// path, the Authorization and DPoP headers sent, the status, the error, the `token_type` of a
/// token answer, `DPoP-Nonce` and `WWW-Authenticate` answered. In memory only; nothing of it is
/// printed. `inflight[label]`: the context's requests not recorded yet. (A request is finished
/// once its answer's body is read: the steps read every body they get.)
const inflight = {};
function record(context, label) {
  inflight[label] = 0;
  const isAuth = (req) => new URL(req.url()).pathname.startsWith('/auth/');
  context.on('request', (req) => {
    if (isAuth(req)) inflight[label] += 1;
  });
  context.on('requestfailed', (req) => {
    if (isAuth(req)) inflight[label] -= 1;
  });
  context.on('requestfinished', async (req) => {
    if (!isAuth(req)) return;
    try {
      const url = new URL(req.url());
      const entry = { context: label, origin: url.origin, method: req.method(), path: url.pathname, url: req.url() };
      const headers = req.headers();
      entry.dpop = headers.dpop ?? null;
      entry.authorization = headers.authorization ?? null;
      const res = await req.response();
      entry.status = res.status();
      const answered = res.headers();
      entry.nonce = answered['dpop-nonce'] ?? null;
      entry.challenge = answered['www-authenticate'] ?? null;
      const body = res.status() === 204 ? {} : await res.json().catch(() => ({}));
      if (res.status() >= 400) entry.error = body.error ?? null;
      else if (body.access_token) entry.tokenType = body.token_type ?? null;
      calls.push(entry);
    } finally {
      inflight[label] -= 1;
    }
  });
}

/// Waits until `count` calls matching `filter` are recorded.
async function recorded(filter, count = 1) {
  for (let i = 0; i < 400; i += 1) {
    const found = calls.filter(filter);
    if (found.length >= count) return found;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`fewer than ${count} recorded calls like ${filter}`);
}

/// Waits until the pages of context `label` have had no keycard call in flight for a moment
/// (the demo page's own calls after a sign-in or a reload are over).
async function settled(label) {
  let quiet = 0;
  for (let i = 0; i < 400 && quiet < 6; i += 1) {
    quiet = inflight[label] === 0 ? quiet + 1 : 0;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(inflight[label], 0, `calls of ${label} still in flight`);
}

const b64json = (part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
const sha256 = (text) => crypto.createHash('sha256').update(text).digest('base64url');

/// RFC 7638 thumbprint of a public JWK (EC or OKP).
function thumbprint(jwk) {
  const members = jwk.kty === 'OKP' ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x } : { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y };
  return sha256(JSON.stringify(members));
}

/// Checks a proof the page sent for `method url` (and `accessToken`), here, without keycard:
/// returns its header, claims and key thumbprint.
function checkProof(proof, { method, url, accessToken = null }) {
  assert.ok(proof, `${method} ${url} carried no DPoP proof`);
  const [h, p, s, extra] = proof.split('.');
  assert.equal(extra, undefined, 'a compact JWS');
  const header = b64json(h);
  const claims = b64json(p);
  assert.equal(header.typ, 'dpop+jwt');
  assert.ok(['EdDSA', 'ES256'].includes(header.alg), `alg ${header.alg}`);
  const publicMembers = header.jwk.kty === 'OKP' ? ['crv', 'kty', 'x'] : ['crv', 'kty', 'x', 'y'];
  assert.deepEqual(Object.keys(header.jwk).sort(), publicMembers, 'the public key only');
  const key = crypto.createPublicKey({ key: header.jwk, format: 'jwk' });
  const input = Buffer.from(`${h}.${p}`);
  const signature = Buffer.from(s, 'base64url');
  const valid = header.alg === 'EdDSA'
    ? crypto.verify(null, input, key, signature)
    : crypto.verify('sha256', input, { key, dsaEncoding: 'ieee-p1363' }, signature);
  assert.ok(valid, 'the signature verifies with the proof\'s jwk');
  assert.equal(claims.htm, method);
  const target = new URL(url);
  assert.equal(claims.htu, target.origin + target.pathname, 'htu: the URL without query and fragment');
  assert.ok(Math.abs(claims.iat - Date.now() / 1000) < 30, 'iat is now');
  assert.match(claims.jti, /^[A-Za-z0-9_-]{22,}$/, 'jti: at least 128 random bits');
  if (accessToken) assert.equal(claims.ath, sha256(accessToken), 'ath: the hash of the token sent with it');
  else assert.equal(claims.ath, undefined, 'no ath without a token');
  return { header, claims, jkt: thumbprint(header.jwk) };
}

/// The thief's own key and proofs (node:crypto, Ed25519).
function thiefKey() {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
  const { crv, kty, x } = publicKey.export({ format: 'jwk' });
  return { privateKey, jwk: { crv, kty, x } };
}

function nodeProof(key, method, url, accessToken) {
  const header = { typ: 'dpop+jwt', alg: 'EdDSA', jwk: key.jwk };
  const claims = { jti: crypto.randomUUID(), htm: method, htu: url, iat: Math.floor(Date.now() / 1000) };
  if (accessToken) claims.ath = sha256(accessToken);
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${input}.${crypto.sign(null, Buffer.from(input), key.privateKey).toString('base64url')}`;
}

/// The key pair stored in the page's IndexedDB: what a script can learn of it.
function storedKey(p) {
  return p.evaluate(async () => {
    const db = await new Promise((resolve, reject) => {
      const open = indexedDB.open('keycard-dpop');
      open.onsuccess = () => resolve(open.result);
      open.onerror = () => reject(open.error);
    });
    const records = await new Promise((resolve) => {
      const all = db.transaction('keys').objectStore('keys').getAll();
      all.onsuccess = () => resolve(all.result);
    });
    db.close();
    const describe = async (record) => {
      const { privateKey, publicKey } = record;
      const exported = {};
      for (const format of ['pkcs8', 'jwk', 'raw']) {
        try {
          await crypto.subtle.exportKey(format, privateKey);
          exported[format] = 'exported';
        } catch (err) {
          exported[format] = err.name;
        }
      }
      const jwk = await crypto.subtle.exportKey('jwk', publicKey);
      return {
        id: record.id,
        alg: record.alg,
        isCryptoKey: privateKey instanceof CryptoKey && publicKey instanceof CryptoKey,
        type: privateKey.type,
        extractable: privateKey.extractable,
        algorithm: privateKey.algorithm,
        usages: privateKey.usages,
        exported,
        publicJwk: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y },
      };
    };
    return Promise.all(records.map(describe));
  });
}

/// GET /auth/me through the page's keycard.js: its status.
function me(p) {
  return p.evaluate(async () => {
    const res = await keycard.fetch('/auth/me');
    await res.text(); // read whole, as a page would
    return res.status;
  });
}

/// The access token the page sends, taken off the wire as an interceptor (or an extension) would:
/// the Authorization header of the page's next /auth/me.
async function stealAccessToken(p, base) {
  const seen = p.waitForRequest((r) => r.url() === `${base}/auth/me`);
  assert.equal(await me(p), 200);
  const authorization = await (await seen).headerValue('authorization');
  assert.ok(authorization && authorization.startsWith('DPoP '), 'the page sends its token with the DPoP scheme');
  return authorization.slice('DPoP '.length);
}

async function shot(p, name) {
  await p.screenshot({ path: path.join(ARTIFACTS, name), fullPage: true });
}

/// Signs up and logs in through the demo page.
async function signUp(p, email) {
  await p.fill('#email', email);
  await p.fill('#password', password);
  await p.click('#signup');
  await signedIn(p);
  await p.waitForSelector('#me-output:not([hidden])');
}

describe('DPoP from keycard.js in headless Chromium', { concurrency: false }, () => {
  let A; // keycard, nonces off
  let B; // keycard with dpop_nonce = true
  let context;
  let page;
  let jkt; // the thumbprint of the page's key
  const email = `dora+${stamp}@example.com`;

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    [A, B] = await Promise.all([startKeycard('plain'), startKeycard('nonce', { KEYCARD_DPOP_NONCE: 'true' })]);
    browser = await chromium.launch(LAUNCH);
    context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    await serveWebFromDisk(context, A);
    record(context, 'main');
    page = watch(await context.newPage(), 'tab 1');
  });

  after(async () => {
    await browser?.close();
    for (const server of servers) {
      server.process.kill();
      try {
        writeFileSync(path.join(ARTIFACTS, `dpop-server-${server.name}.log`), server.log);
      } catch {
        // no artifacts directory: nothing to keep
      }
      rmSync(server.dir, { recursive: true, force: true });
    }
  });

  it('signs in at /?dpop: a non-extractable key in IndexedDB, and a session bound to it', async () => {
    await page.goto(`${A}/?dpop`);
    await signedOut(page);
    assert.equal(await page.evaluate(() => keycard.dpop.enabled()), true);
    await signUp(page, email);
    await settled('main');

    // The key: one record, CryptoKeys the page can use but not read.
    const [key, ...more] = await storedKey(page);
    assert.deepEqual(more, [], 'one key pair for this keycard');
    assert.equal(key.id, A);
    assert.equal(key.isCryptoKey, true);
    assert.equal(key.type, 'private');
    assert.equal(key.extractable, false);
    assert.deepEqual(key.usages, ['sign']);
    assert.equal(key.alg, 'EdDSA', "Chromium's WebCrypto has Ed25519");
    assert.equal(key.algorithm.name, 'Ed25519');
    assert.deepEqual(key.exported, { pkcs8: 'InvalidAccessError', jwk: 'InvalidAccessError', raw: 'InvalidAccessError' });
    jkt = thumbprint(key.publicJwk);
    assert.equal(await page.evaluate(() => keycard.dpop.thumbprint()), jkt);

    // The login carried a proof of that key; keycard bound the session to it.
    const [login] = await recorded((c) => c.path === '/auth/login' && c.origin === A);
    assert.equal(login.status, 200);
    assert.equal(login.tokenType, 'DPoP');
    const proof = checkProof(login.dpop, { method: 'POST', url: `${A}/auth/login` });
    assert.equal(proof.jkt, jkt);
    assert.equal(proof.header.alg, 'EdDSA');
    const session = await page.evaluate(() => keycard.session());
    assert.equal(session.tokenType, 'DPoP');
    assert.deepEqual(session.claims.cnf, { jkt });
    assert.match(await page.textContent('#token-type'), /^DPoP/);

    // Every call with the token went as `Authorization: DPoP` with a proof for it (ath).
    const token = await stealAccessToken(page, A);
    const used = calls.filter((c) => c.origin === A && c.authorization);
    assert.ok(used.length >= 3, `the page's calls with the token: ${used.map((c) => `${c.method} ${c.path}`)}`);
    for (const call of used) {
      assert.ok(call.authorization.startsWith('DPoP '), `${call.method} ${call.path} sent the DPoP scheme`);
      assert.equal(call.status, 200, `${call.method} ${call.path}`);
      const sent = call.authorization.slice(5);
      const checked = checkProof(call.dpop, { method: call.method, url: call.url, accessToken: sent });
      assert.equal(checked.jkt, jkt);
    }
    assert.ok(used.some((c) => c.authorization.slice(5) === token));
    // No two proofs alike (keycard refuses a replayed jti).
    const jtis = calls.filter((c) => c.dpop).map((c) => b64json(c.dpop.split('.')[1]).jti);
    assert.equal(new Set(jtis).size, jtis.length);

    // Nothing a script reads holds a token: the key store holds CryptoKeys, which stringify to {}.
    const state = await readableState(page);
    const readable = JSON.stringify(state);
    assert.ok(!readable.includes(token), 'the access token is readable by a script');
    assert.ok(!readable.includes('kcrt_'), 'a refresh token is readable by a script');
    assert.deepEqual(Object.keys(state.indexedDB), ['keycard-dpop']);
    assert.deepEqual(state.localStorage, {});
    assert.ok(!consoleLines.some((line) => line.includes(token)), 'the token reached the console');
    await shot(page, 'dpop-01-signed-in.png');
  });

  it('refuses the token and the refresh cookie copied out of the browser and replayed from Node', async () => {
    const token = await stealAccessToken(page, A);
    const thief = thiefKey();
    const meUrl = `${A}/auth/me`;
    const fromNode = (headers) => fetch(meUrl, { headers });

    // The thief's own proofs are good ones: its own DPoP login works with them.
    const thiefEmail = `mallory+${stamp}@example.com`;
    assert.equal((await fetch(`${A}/auth/signup`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ email: thiefEmail, password }),
    })).status, 201);
    const own = await fetch(`${A}/auth/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', DPoP: nodeProof(thief, 'POST', `${A}/auth/login`) },
      body: JSON.stringify({ email: thiefEmail, password, delivery: 'body' }),
    });
    assert.equal(own.status, 200);
    const ownToken = (await own.json()).access_token;
    const ownMe = await fromNode({ Authorization: `DPoP ${ownToken}`, DPoP: nodeProof(thief, 'GET', meUrl, ownToken) });
    assert.equal(ownMe.status, 200, "the thief's proofs are accepted with the thief's own token");

    // The page's token: as Bearer, without a proof, with a proof of the thief's key: 401.
    const attempts = [
      ['as Bearer', { Authorization: `Bearer ${token}` }, 'invalid_token'],
      ['as DPoP without a proof', { Authorization: `DPoP ${token}` }, 'invalid_dpop_proof'],
      ['as DPoP with a proof of another key', { Authorization: `DPoP ${token}`, DPoP: nodeProof(thief, 'GET', meUrl, token) }, 'invalid_dpop_proof'],
    ];
    for (const [why, headers, code] of attempts) {
      const res = await fromNode(headers);
      const body = await res.json();
      assert.equal(res.status, 401, why);
      assert.equal(body.error, code, why);
      assert.match(res.headers.get('www-authenticate'), new RegExp(`^DPoP error="${code}"`), why);
    }
    assert.equal(await me(page), 200, 'the page itself goes on');

    // The refresh cookie, as a thief with the disk sees it (HttpOnly does not hide it there).
    const cdp = await context.newCDPSession(page);
    const { cookies } = await cdp.send('Network.getCookies', { urls: [`${A}/auth/refresh`] });
    await cdp.detach();
    const refreshCookie = cookies.find((c) => c.name === '__Secure-keycard_refresh');
    const csrfCookie = cookies.find((c) => c.name === '__Host-keycard_csrf');
    assert.ok(refreshCookie && refreshCookie.httpOnly && refreshCookie.value.startsWith('kcrt_'));
    assert.ok(csrfCookie);
    const stolen = (dpop) => fetch(`${A}/auth/refresh`, {
      method: 'POST',
      headers: {
        Cookie: `__Secure-keycard_refresh=${refreshCookie.value}; __Host-keycard_csrf=${csrfCookie.value}`,
        'X-CSRF-Token': csrfCookie.value,
        ...(dpop ? { DPoP: dpop } : {}),
      },
    });
    for (const [why, dpop] of [['without a proof', null], ['with a proof of another key', nodeProof(thief, 'POST', `${A}/auth/refresh`)]]) {
      const res = await stolen(dpop);
      const body = await res.json();
      assert.equal(res.status, 401, why);
      assert.equal(body.error, 'invalid_grant', why);
      assert.match(body.error_description, /DPoP/, why);
      assert.equal(res.headers.get('set-cookie'), null, `${why}: no new cookie`);
    }

    // The thief's refusals spent nothing: the page refreshes with that very cookie.
    const before = calls.filter((c) => c.path === '/auth/refresh').length;
    const refreshed = await page.evaluate(() => keycard.refresh());
    assert.equal(refreshed.tokenType, 'DPoP');
    assert.deepEqual(refreshed.claims.cnf, { jkt });
    const [refresh] = (await recorded((c) => c.path === '/auth/refresh', before + 1)).slice(before);
    assert.equal(refresh.status, 200);
    assert.equal(refresh.tokenType, 'DPoP');
    assert.equal(checkProof(refresh.dpop, { method: 'POST', url: `${A}/auth/refresh` }).jkt, jkt);
    const after = await context.cookies(`${A}/auth/refresh`);
    assert.notEqual(after.find((c) => c.name === '__Secure-keycard_refresh').value, refreshCookie.value, 'the cookie rotated');
    assert.equal(await me(page), 200);
  });

  it('keeps the key and the session over a reload', async () => {
    const sid = (await page.evaluate(() => keycard.session())).sessionId;
    const before = calls.filter((c) => c.path === '/auth/refresh').length;
    await page.reload();
    await signedIn(page);
    const [restore] = (await recorded((c) => c.path === '/auth/refresh', before + 1)).slice(before);
    assert.equal(restore.status, 200);
    assert.equal(checkProof(restore.dpop, { method: 'POST', url: `${A}/auth/refresh` }).jkt, jkt);
    assert.equal(await page.evaluate(() => keycard.dpop.thumbprint()), jkt);
    assert.equal((await storedKey(page)).length, 1, 'still one key');
    const session = await page.evaluate(() => keycard.session());
    assert.equal(session.sessionId, sid);
    assert.equal(session.tokenType, 'DPoP');
    assert.deepEqual(session.claims.cnf, { jkt });
    assert.equal(await me(page), 200);
    assert.equal((await page.evaluate(() => keycard.refresh())).tokenType, 'DPoP');
    assert.equal(await me(page), 200);
  });

  it('shares the key with a second tab; both tabs work, refresh and log out', async () => {
    const page2 = watch(await context.newPage(), 'tab 2');
    await page2.goto(`${A}/?dpop`);
    await signedIn(page2);
    assert.equal(await page2.evaluate(() => keycard.dpop.thumbprint()), jkt);
    const sid = (await page.evaluate(() => keycard.session())).sessionId;
    assert.equal((await page2.evaluate(() => keycard.session())).sessionId, sid);
    assert.equal(await me(page2), 200);
    assert.equal(await me(page), 200);
    // A refresh in tab 2 (its proof, the shared key) is taken by tab 1 too.
    const jti = await page2.evaluate(async () => (await keycard.refresh()).claims.jti);
    await page.waitForFunction((j) => keycard.session()?.claims.jti === j, jti);
    assert.equal(await me(page), 200);
    assert.equal(await me(page2), 200);

    // Logging out carries a proof too, and ends the session in both tabs.
    await page2.click('#logout');
    await signedOut(page2);
    await signedOut(page);
    const [logout] = await recorded((c) => c.path === '/auth/logout' && c.origin === A);
    assert.equal(logout.status, 204);
    assert.equal(checkProof(logout.dpop, { method: 'POST', url: `${A}/auth/logout` }).jkt, jkt);
    // The key stays for the next sign-in.
    assert.equal(await page.evaluate(() => keycard.dpop.thumbprint()), jkt);
    await page2.close();
  });

  it('binds the session of a login with a second factor (the code step carries the proof)', async () => {
    // A new account on the same browser: the same key. The page is signed out (the last step).
    const mfaEmail = `maria+${stamp}@example.com`;
    await signUp(page, mfaEmail);
    await settled('main');
    const enrolment = await page.evaluate(() => keycard.mfa.enrolTotp());
    const totp = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(enrolment.secret), algorithm: 'SHA1', digits: 6, period: 30 });
    const step = Math.floor(Date.now() / 30000);
    await page.evaluate(([id, code]) => keycard.mfa.confirmTotp(id, code), [enrolment.factor_id, totp.generate({ timestamp: step * 30000 })]);
    await page.click('#logout');
    await signedOut(page);

    await page.fill('#email', mfaEmail);
    await page.fill('#password', password);
    await page.click('#login');
    await page.waitForSelector('#mfa-form:not([hidden])');
    const [login] = await recorded((c) => c.path === '/auth/login' && c.origin === A && c.tokenType === undefined && c.status === 200);
    assert.equal(checkProof(login.dpop, { method: 'POST', url: `${A}/auth/login` }).jkt, jkt, 'the password step carried a proof too');
    // The step after the one the confirmation took (keycard allows one step of skew).
    await page.fill('#mfa-code', totp.generate({ timestamp: (step + 1) * 30000 }));
    await page.click('#mfa-verify');
    await signedIn(page);
    const [verify] = await recorded((c) => c.path === '/auth/mfa/verify' && c.origin === A);
    assert.equal(verify.status, 200);
    assert.equal(verify.tokenType, 'DPoP');
    assert.equal(checkProof(verify.dpop, { method: 'POST', url: `${A}/auth/mfa/verify` }).jkt, jkt);
    const session = await page.evaluate(() => keycard.session());
    assert.ok(session.claims.amr.includes('mfa'), `amr ${JSON.stringify(session.claims.amr)}`);
    assert.deepEqual(session.claims.cnf, { jkt });
    assert.equal(await me(page), 200);
  });

  it('makes one key when two tabs make theirs at the same moment', async () => {
    const ctx = await browser.newContext();
    await serveWebFromDisk(ctx, A);
    // Counts the key pairs each tab's WebCrypto makes.
    await ctx.addInitScript(() => {
      window.generated = 0;
      const generate = SubtleCrypto.prototype.generateKey;
      SubtleCrypto.prototype.generateKey = function (...args) {
        window.generated += 1;
        return generate.apply(this, args);
      };
    });
    try {
      // A third tab holds the key store (a read-write transaction kept busy) while both tabs
      // load: each looks for the key only once the store is free, and both find none.
      const holder = await ctx.newPage();
      await holder.goto(`${A}/style.css`);
      await holder.evaluate(() => new Promise((resolve, reject) => {
        const open = indexedDB.open('keycard-dpop', 1);
        open.onupgradeneeded = () => open.result.createObjectStore('keys', { keyPath: 'id' });
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
          const store = open.result.transaction('keys', 'readwrite').objectStore('keys');
          const spin = () => {
            if (!window.release) store.get('spin').onsuccess = spin;
          };
          spin();
          resolve();
        };
      }));
      const tabs = [watch(await ctx.newPage(), 'race 1'), watch(await ctx.newPage(), 'race 2')];
      await Promise.all(tabs.map((p) => p.goto(`${A}/?dpop`)));
      await Promise.all(tabs.map((p) => signedOut(p)));
      const pending = tabs.map((p) => p.evaluate(() => keycard.dpop.thumbprint()));
      assert.deepEqual(await Promise.all(tabs.map((p) => p.evaluate(() => window.generated))), [0, 0], 'no key before the store is free');
      await holder.evaluate(() => {
        window.release = true;
      });
      const [first, second] = await Promise.all(pending);
      assert.equal(first, second, 'both tabs use the same key');
      assert.deepEqual(await Promise.all(tabs.map((p) => p.evaluate(() => window.generated))), [1, 1], 'each tab made a key');
      const stored = await storedKey(tabs[0]);
      assert.equal(stored.length, 1, 'one stored');
      assert.equal(thumbprint(stored[0].publicJwk), first);

      // Both tabs work with it: tab 1 signs in, tab 2 takes its token, both call keycard.
      await signUp(tabs[0], `tabs+${stamp}@example.com`);
      await signedIn(tabs[1]);
      for (const p of tabs) {
        assert.deepEqual((await p.evaluate(() => keycard.session())).claims.cnf, { jkt: first });
        assert.equal(await me(p), 200);
      }
    } finally {
      await ctx.close();
    }
  });

  it('signs P-256 (ES256) proofs where WebCrypto has no Ed25519', async () => {
    const ctx = await browser.newContext();
    await serveWebFromDisk(ctx, A);
    record(ctx, 'p256');
    await ctx.addInitScript(() => {
      const generate = SubtleCrypto.prototype.generateKey;
      SubtleCrypto.prototype.generateKey = function (algorithm, ...rest) {
        if ((algorithm?.name ?? algorithm) === 'Ed25519') return Promise.reject(new DOMException('no Ed25519 here', 'NotSupportedError'));
        return generate.call(this, algorithm, ...rest);
      };
    });
    try {
      const p = watch(await ctx.newPage(), 'p256');
      await p.goto(`${A}/?dpop`);
      await signedOut(p);
      await signUp(p, `pam+${stamp}@example.com`);
      const [key] = await storedKey(p);
      assert.equal(key.alg, 'ES256');
      assert.deepEqual(key.algorithm, { name: 'ECDSA', namedCurve: 'P-256' });
      assert.equal(key.extractable, false);
      assert.equal(key.exported.pkcs8, 'InvalidAccessError');
      const [login] = await recorded((c) => c.context === 'p256' && c.path === '/auth/login');
      assert.equal(login.tokenType, 'DPoP');
      const proof = checkProof(login.dpop, { method: 'POST', url: `${A}/auth/login` });
      assert.equal(proof.header.alg, 'ES256');
      assert.equal(proof.jkt, thumbprint(key.publicJwk));
      assert.deepEqual((await p.evaluate(() => keycard.session())).claims.cnf, { jkt: proof.jkt });
      assert.equal(await me(p), 200);
    } finally {
      await ctx.close();
    }
  });

  it('signs in on a page whose clock is two minutes fast (proofs dated on keycard\'s clock)', async () => {
    const ctx = await browser.newContext();
    await serveWebFromDisk(ctx, A);
    record(ctx, 'clock');
    await ctx.clock.setSystemTime(Date.now() + 120_000); // the page's clock only; timers run as usual
    try {
      const p = watch(await ctx.newPage(), 'clock');
      await p.goto(`${A}/?dpop`);
      await signedOut(p);
      assert.ok((await p.evaluate(() => Date.now())) - Date.now() > 100_000, "the page's clock is fast");
      // Signed up from here: the page's first request to keycard is the login itself.
      const fastEmail = `fay+${stamp}@example.com`;
      const signup = await fetch(`${A}/auth/signup`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ email: fastEmail, password }),
      });
      assert.equal(signup.status, 201);
      const session = await p.evaluate(([e, pw]) => keycard.login(e, pw), [fastEmail, password]);
      assert.equal(session.tokenType, 'DPoP');
      // The first proof, dated on the page's clock, is refused; keycard's Date moves the next one.
      const [early, dated] = await recorded((c) => c.context === 'clock' && c.path === '/auth/login', 2);
      assert.equal(early.status, 400);
      assert.equal(early.error, 'invalid_dpop_proof');
      assert.ok(b64json(early.dpop.split('.')[1]).iat - Date.now() / 1000 > 100, 'dated on the fast clock');
      assert.equal(dated.status, 200);
      assert.equal(dated.tokenType, 'DPoP');
      checkProof(dated.dpop, { method: 'POST', url: `${A}/auth/login` }); // iat within 30 s of now
      assert.equal(calls.filter((c) => c.context === 'clock' && c.path === '/auth/login').length, 2, 'one retry');
      // From then on, first time right.
      assert.equal(await me(p), 200);
      assert.equal((await p.evaluate(() => keycard.refresh())).tokenType, 'DPoP');
      assert.equal(await me(p), 200);
      await settled('clock');
      const after = calls.filter((c) => c.context === 'clock' && c.path !== '/auth/login');
      assert.ok(after.length >= 3 && after.every((c) => c.status === 200), after.map((c) => `${c.path} ${c.status}`).join(', '));
    } finally {
      await ctx.close();
    }
  });

  it('answers server nonces (use_dpop_nonce) by itself: at login, at refresh, on a protected call', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    await serveWebFromDisk(ctx, B);
    record(ctx, 'nonce');
    // When `staleNext` is set, the next answer of /auth/sessions carries a nonce keycard never
    // issued, as a nonce past its time would be.
    let staleNext = false;
    await ctx.route(`${B}/auth/sessions`, async (route) => {
      if (!staleNext) return route.fallback();
      staleNext = false;
      const response = await route.fetch();
      await route.fulfill({ response, headers: { ...response.headers(), 'dpop-nonce': 'a-nonce-keycard-never-issued' } });
    });
    const at = (p) => (c) => c.context === 'nonce' && c.path === p;
    try {
      const p = watch(await ctx.newPage(), 'nonce');
      await p.goto(`${B}/?dpop`);
      await signedOut(p);
      await signUp(p, `nina+${stamp}@example.com`);
      await settled('nonce');

      // The login: refused for want of a nonce (keycard gives one), sent again with it.
      const [first, second] = await recorded(at('/auth/login'), 2);
      assert.equal(first.status, 400);
      assert.equal(first.error, 'use_dpop_nonce');
      assert.ok(first.nonce, 'keycard sent a nonce with the refusal');
      assert.equal(checkProof(first.dpop, { method: 'POST', url: `${B}/auth/login` }).claims.nonce, undefined);
      assert.equal(second.status, 200);
      assert.equal(second.tokenType, 'DPoP');
      assert.equal(checkProof(second.dpop, { method: 'POST', url: `${B}/auth/login` }).claims.nonce, first.nonce);
      assert.equal(calls.filter(at('/auth/login')).length, 2, 'one retry');
      assert.equal(await me(p), 200);
      assert.equal(await p.isVisible('#error'), false, 'the page saw no error');

      // A reload: the new page holds no nonce; its refresh is asked for one and sent again.
      await p.reload();
      await signedIn(p);
      await settled('nonce');
      const [refused, refreshed] = await recorded(at('/auth/refresh'), 2);
      assert.equal(refused.status, 400);
      assert.equal(refused.error, 'use_dpop_nonce');
      assert.equal(refreshed.status, 200);
      assert.equal(checkProof(refreshed.dpop, { method: 'POST', url: `${B}/auth/refresh` }).claims.nonce, refused.nonce);

      // The nonce a tab holds goes stale (here: the test puts one keycard never issued into an
      // answer): the protected call is refused with the challenge and the current nonce, and sent
      // again with it.
      staleNext = true;
      assert.equal(await p.evaluate(() => keycard.fetch('/auth/sessions').then((r) => r.text().then(() => r.status))), 200);
      const mesBefore = calls.filter(at('/auth/me')).length;
      assert.equal(await me(p), 200);
      const [stale, retried] = (await recorded(at('/auth/me'), mesBefore + 2)).slice(mesBefore);
      assert.equal(stale.status, 401);
      assert.equal(stale.error, 'use_dpop_nonce');
      assert.match(stale.challenge, /^DPoP error="use_dpop_nonce"/);
      assert.equal(b64json(stale.dpop.split('.')[1]).nonce, 'a-nonce-keycard-never-issued');
      assert.equal(retried.status, 200);
      const token = retried.authorization.slice(5);
      assert.equal(checkProof(retried.dpop, { method: 'GET', url: `${B}/auth/me`, accessToken: token }).claims.nonce, stale.nonce);
      await shot(p, 'dpop-02-nonces.png');
    } finally {
      await ctx.close();
    }
  });

  it('binds the session of a passkey sign-in (keycard named by its issuer, http://localhost)', async () => {
    // Passkeys need a host name, and proofs name the URL the page calls: this keycard's issuer
    // is http://localhost:PORT, the address the page uses.
    const port = await freePort();
    const C = `http://localhost:${port}`;
    await startKeycard('passkey', {}, { port, issuer: C });
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    await serveWebFromDisk(ctx, C);
    record(ctx, 'passkey');
    // Counts the page's autofill (conditional) passkey requests.
    await ctx.addInitScript(() => {
      window.autofills = 0;
      const get = navigator.credentials.get.bind(navigator.credentials);
      navigator.credentials.get = (options) => {
        if (options?.mediation === 'conditional') window.autofills += 1;
        return get(options);
      };
    });
    try {
      const p = watch(await ctx.newPage(), 'passkey');
      const cdp = await ctx.newCDPSession(p);
      await cdp.send('WebAuthn.enable');
      const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
        options: {
          protocol: 'ctap2',
          transport: 'internal',
          hasResidentKey: true,
          hasUserVerification: true,
          isUserVerified: true,
          automaticPresenceSimulation: true,
        },
      });
      const presence = (enabled) => cdp.send('WebAuthn.setAutomaticPresenceSimulation', { authenticatorId, enabled });
      await p.goto(`${C}/?dpop`);
      await signedOut(p);
      await signUp(p, `paula+${stamp}@example.com`);
      await settled('passkey');
      const added = await p.evaluate(() => keycard.passkeys.register({ name: 'DPoP laptop' }));
      assert.ok(added.factor_id);
      // Logged out, the page's autofill request waits (no presence); the button's is answered.
      await presence(false);
      const autofills = await p.evaluate(() => window.autofills);
      await p.click('#logout');
      await signedOut(p);
      await p.waitForFunction((n) => window.autofills > n, autofills);
      await presence(true);
      await p.click('#passkey-login');
      await signedIn(p);

      const [key] = await storedKey(p);
      const [login] = await recorded((c) => c.context === 'passkey' && c.path === '/auth/passkeys/login');
      assert.equal(login.status, 200);
      assert.equal(login.tokenType, 'DPoP');
      assert.equal(checkProof(login.dpop, { method: 'POST', url: `${C}/auth/passkeys/login` }).jkt, thumbprint(key.publicJwk));
      const session = await p.evaluate(() => keycard.session());
      assert.ok(!session.claims.amr.includes('pwd'), `amr ${JSON.stringify(session.claims.amr)}`);
      assert.deepEqual(session.claims.cnf, { jkt: thumbprint(key.publicJwk) });
      assert.equal(await me(p), 200);
    } finally {
      await ctx.close();
    }
  });

  it('saw no errors on the pages', () => {
    assert.deepEqual(problems, []);
  });
});
