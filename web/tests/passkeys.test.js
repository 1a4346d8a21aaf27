// Passkeys on the demo page, in headless Chromium with a virtual authenticator (the DevTools
// protocol's WebAuthn domain: a CTAP2 platform authenticator with resident keys and user
// verification), against a keycard of its own: sign up, add a passkey with a name (a fresh login
// is recent enough), see it listed; new recovery codes ask for a step-up, answered with "Use your
// passkey"; rename it; log out and sign in with "Sign in with a passkey",
// no password; a reload keeps the session, a second tab shares it; the email field's autofill
// (conditional mediation) started at page load signs in; a password login asks for the passkey
// as its second factor; a step-up with the passkey; the passkey removed, after which keycard
// refuses it. No passkey_token or mfa_token is ever readable by a script.
//
// The autofill: Chromium's virtual authenticator answers a conditional request at once when its
// automatic presence simulation is on, as if the user had picked the passkey from the email
// field's autofill list (the list itself is browser UI no page or test can click). With the
// simulation off, a conditional request waits like a real one waiting for the user, and turning
// the simulation on later does not answer it; a new request (the button's) is answered. The test
// turns the simulation off before each step in which the page's autofill must not sign in by
// itself (the button, the password), and checks which request signed in.
//
// WebAuthn does not work on an IP address: keycard (no app_url, no webauthn_origins) is the
// relying party `localhost`, so the server is bound to 127.0.0.1 and browsed as
// http://localhost:PORT.
//
// Environment: KEYCARD_BIN (the keycard binary), ARTIFACTS_DIR, CHROMIUM. keycard builds the demo
// page into its binary; WEB_FROM_DISK=1 serves this checkout's index.html, demo.js, keycard.js and
// style.css instead (with keycard's own headers), to test page changes against a binary built
// before them.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { chromium } from 'playwright-core';

import { LAUNCH, readableState, serveWebFromDisk, signedIn, signedOut } from './harness.js';

const BIN = process.env.KEYCARD_BIN;
assert.ok(BIN, 'KEYCARD_BIN must name the keycard binary (see .ci/browser-test.sh)');
const ARTIFACTS = process.env.ARTIFACTS_DIR || path.resolve(import.meta.dirname, '../../target/browser-artifacts');

const email = `grace+${Date.now()}@example.com`;
const password = 'correct horse battery staple';
const RECOVERY_CODE = /^[0-9a-z]{5}(-[0-9a-z]{5}){3}$/;

let server;
let serverLog = '';
let dir;
let BASE;
let browser;
let context;
let page;
let cdp; // the first tab's DevTools session (its virtual authenticator)
let authenticatorId;
const problems = []; // page errors, and console errors but the refusals the steps ask for
const consoleLines = []; // everything the pages logged, searched for the tokens
const secrets = new Set(); // every passkey_token and mfa_token keycard gave the page
const passkeyCalls = []; // "METHOD /path status" of every passkey and MFA call the pages made

/// keycard on a free loopback port with a fresh database; resolves to its base URL, on
/// `localhost` (the relying party id), not 127.0.0.1.
function startKeycard() {
  dir = mkdtempSync(path.join(tmpdir(), 'keycard-passkeys-'));
  const args = ['serve', '--bind', '127.0.0.1:0', '--database', path.join(dir, 'keycard.db')];
  args.push('--access-ttl', '5m', '--leeway', '0s', '--email-verification', 'off');
  server = spawn(BIN, args, { env: { ...process.env, KEYCARD_LOG: 'info', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    const onData = (chunk) => {
      serverLog += chunk;
      const m = /addr=127\.0\.0\.1:(\d+)/.exec(serverLog);
      if (m) resolve(`http://localhost:${m[1]}`);
    };
    server.stdout.on('data', onData);
    server.stderr.on('data', onData);
    server.on('exit', (code) => reject(new Error(`keycard exited (${code}):\n${serverLog}`)));
    setTimeout(() => reject(new Error(`keycard did not report its address:\n${serverLog}`)), 15000);
  });
}

/// Records page errors and what the pages logged; failed loads are expected for 400 and 401
/// (a refused passkey, an expired access token).
function watch(p, name) {
  p.on('pageerror', (err) => problems.push(`${name}: ${err.message}`));
  p.on('console', (msg) => {
    consoleLines.push(msg.text());
    const status = /Failed to load resource: the server responded with a status of (\d+)/.exec(msg.text())?.[1];
    if (msg.type() === 'error' && !['400', '401'].includes(status)) problems.push(`${name}: ${msg.text()}`);
  });
  p.on('response', async (res) => {
    const url = new URL(res.url());
    if (!/^\/auth\/(passkeys|mfa|step-up|login)/.test(url.pathname)) return;
    passkeyCalls.push(`${res.request().method()} ${url.pathname} ${res.status()}`);
    const body = await res.json().catch(() => null);
    if (body?.passkey_token) secrets.add(body.passkey_token);
    if (body?.mfa_token) secrets.add(body.mfa_token);
  });
  return p;
}

/// Which WebAuthn requests the page made: `mediation` of each navigator.credentials.get
/// (`conditional` for the autofill) and each create. A wrapper only: the calls go through.
function recordCeremonies() {
  window.__ceremonies = [];
  const credentials = navigator.credentials;
  const get = credentials.get.bind(credentials);
  const create = credentials.create.bind(credentials);
  credentials.get = (options) => {
    const entry = { kind: 'get', mediation: options?.mediation || 'optional', outcome: 'pending' };
    window.__ceremonies.push(entry);
    return get(options).then(
      (c) => ((entry.outcome = 'credential'), c),
      (e) => {
        entry.outcome = e.name;
        throw e;
      },
    );
  };
  credentials.create = (options) => {
    const entry = { kind: 'create', outcome: 'pending' };
    window.__ceremonies.push(entry);
    return create(options).then(
      (c) => ((entry.outcome = 'credential'), c),
      (e) => {
        entry.outcome = e.name;
        throw e;
      },
    );
  };
}

const ceremonies = (p = page) => p.evaluate(() => window.__ceremonies);

async function shot(name) {
  await page.screenshot({ path: path.join(ARTIFACTS, name), fullPage: true });
}

/// The virtual authenticator answers (or, off, leaves waiting) the next requests.
async function presence(enabled) {
  await cdp.send('WebAuthn.setAutomaticPresenceSimulation', { authenticatorId, enabled });
}

/// GET /auth/me through the page's keycard.js: `{status, body}`.
function me(p = page) {
  return p.evaluate(async () => {
    const res = await keycard.fetch('/auth/me');
    return { status: res.status, body: await res.json() };
  });
}

/// The passkey factors keycard lists for the signed-in account (`GET /auth/mfa`).
async function passkeyFactors() {
  const list = await page.evaluate(() => keycard.mfa.list());
  return list.factors.filter((f) => f.kind === 'passkey');
}

/// The page's autofill request is waiting for the user: a conditional get the page started after
/// `since` ceremonies, still pending.
async function autofillWaiting(since) {
  await page.waitForFunction(
    (n) => window.__ceremonies.slice(n).some((c) => c.kind === 'get' && c.mediation === 'conditional' && c.outcome === 'pending'),
    since,
    { timeout: 10000 },
  );
}

/// No token of a ceremony or a login's second step is readable by a script: storage, cookies,
/// IndexedDB, Cache Storage, the address, the page, the history, the console.
async function assertNoSecretReadable(p = page) {
  const state = await readableState(p);
  const pageText = await p.evaluate(() => document.documentElement.outerHTML);
  const readable = JSON.stringify({ state, url: p.url(), pageText, history: await p.evaluate(() => history.state) });
  for (const token of secrets) {
    assert.ok(!readable.includes(token), 'a passkey_token or mfa_token is readable by a script');
    assert.ok(!consoleLines.some((line) => line.includes(token)), 'a token reached the console');
  }
  for (const prefix of ['kcpk_', 'kcmf_', 'kcrt_']) assert.ok(!readable.includes(prefix), `${prefix}… is readable by a script`);
  assert.deepEqual(state.localStorage, {}, 'nothing in localStorage');
  assert.deepEqual(state.sessionStorage, {}, 'nothing in sessionStorage');
}

describe('passkeys on the demo page in headless Chromium (virtual authenticator)', { concurrency: false }, () => {
  let recoveryCodes;
  let factorId;
  let registeredUse; // last_used_at right after the registration

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    BASE = await startKeycard();
    browser = await chromium.launch(LAUNCH);
    context = await browser.newContext({ viewport: { width: 1280, height: 1300 } });
    await context.addInitScript(recordCeremonies);
    await serveWebFromDisk(context, BASE);
    page = watch(await context.newPage(), 'passkeys');
    cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    ({ authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'internal',
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
        // A synced passkey (backup eligible and backed up), as most passkeys are now.
        defaultBackupEligibility: true,
        defaultBackupState: true,
      },
    }));
  });

  after(async () => {
    await browser?.close();
    server?.kill();
    if (dir) rmSync(dir, { recursive: true, force: true });
    try {
      writeFileSync(path.join(ARTIFACTS, 'passkeys-server.log'), serverLog);
    } catch {
      // no artifacts directory: nothing to keep
    }
  });

  it('signs up at http://localhost and adds a named passkey: listed, ten recovery codes shown once', async () => {
    await page.goto(`${BASE}/`);
    await signedOut(page);
    assert.equal(await page.getAttribute('#email', 'autocomplete'), 'username webauthn');
    assert.equal(await page.isVisible('#passkey-login'), true);
    assert.equal(await page.evaluate(() => keycard.passkeys.supported()), true);
    await page.fill('#email', email);
    await page.fill('#password', password);
    await page.click('#signup');
    await signedIn(page);
    await page.waitForSelector('#passkeys-signed-in:not([hidden])');
    await page.waitForSelector('#passkeys-none:not([hidden])');

    await page.fill('#passkey-name', 'Test laptop');
    const registered = page.waitForResponse((r) => r.url() === `${BASE}/auth/passkeys/register`);
    await page.click('#passkey-add');
    const answer = await registered;
    assert.equal(answer.status(), 200, await answer.text());
    const added = await answer.json();
    assert.equal(added.name, 'Test laptop');
    assert.ok(added.factor_id);
    factorId = added.factor_id;
    // (The request's body is not checked here: keycard.fetch sends a cloned Request, whose body
    // the DevTools protocol does not report. The sign-in's below is.)

    // The account's first factor: ten recovery codes, shown once.
    await page.waitForSelector('#passkey-recovery:not([hidden])');
    recoveryCodes = await page.$$eval('#passkey-recovery-codes li', (items) => items.map((li) => li.textContent));
    assert.deepEqual(recoveryCodes, added.recovery_codes);
    assert.equal(recoveryCodes.length, 10);
    for (const code of recoveryCodes) assert.match(code, RECOVERY_CODE);

    // Listed, on the page and by keycard.
    await page.waitForSelector('#passkeys:not([hidden])');
    const rows = await page.$$eval('#passkeys tbody tr', (trs) => trs.map((tr) => ({
      id: tr.dataset.id, name: tr.querySelector('.passkey-name').textContent, backedUp: tr.dataset.backedUp,
    })));
    assert.deepEqual(rows, [{ id: factorId, name: 'Test laptop', backedUp: 'true' }]);
    const [factor, ...more] = await passkeyFactors();
    assert.equal(more.length, 0);
    assert.equal(factor.id, factorId);
    assert.equal(factor.name, 'Test laptop');
    assert.equal(factor.backed_up, true);
    // keycard counts the registration as a use (last_used_at = created_at); null would do too.
    registeredUse = factor.last_used_at;
    assert.ok(registeredUse === null || Date.parse(registeredUse) >= Date.parse(factor.created_at) - 1000, `last_used_at ${registeredUse}`);
    assert.ok(Math.abs(Date.parse(factor.created_at) - Date.now()) < 60000, `created_at ${factor.created_at}`);
    // The authenticator holds one discoverable credential for the relying party localhost.
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    assert.equal(credentials.length, 1);
    assert.equal(credentials[0].isResidentCredential, true);
    assert.equal(credentials[0].rpId, 'localhost');
    // The authenticator app card counts the same recovery codes; it has no app of its own.
    await page.waitForSelector('#mfa-codes-left[data-left="10"]');
    assert.equal(await page.isVisible('#mfa-factors'), false);
    await shot('passkeys-01-added.png');
    await page.click('#passkey-recovery-done');
    assert.equal(await page.isVisible('#passkey-recovery'), false);
    await assertNoSecretReadable();
  });

  it('asks for a step-up before new recovery codes, answered with "Use your passkey"', async () => {
    // This session signed in with the password alone; keycard wants the new factor first.
    const calls = passkeyCalls.length;
    const before = await page.evaluate(() => keycard.session());
    await page.click('#mfa-regenerate');
    await page.waitForSelector('#step-up-form:not([hidden])');
    await page.waitForSelector('#step-up-passkey:not([hidden])');
    await shot('passkeys-02-step-up.png');
    await page.click('#step-up-passkey');
    await page.waitForSelector('#mfa-recovery:not([hidden])');
    const fresh = await page.$$eval('#mfa-recovery-codes li', (items) => items.map((li) => li.textContent));
    assert.equal(fresh.length, 10);
    assert.equal(fresh.filter((c) => recoveryCodes.includes(c)).length, 0, 'ten new codes');
    assert.deepEqual(passkeyCalls.slice(calls).filter((c) => c.startsWith('POST')), [
      'POST /auth/mfa/recovery-codes 401',
      'POST /auth/step-up/options 200',
      'POST /auth/step-up 200',
      'POST /auth/mfa/recovery-codes 200',
    ]);
    assert.equal(await page.isVisible('#step-up-form'), false);
    const after = await page.evaluate(() => keycard.session());
    assert.equal(after.sessionId, before.sessionId);
    assert.ok(after.claims.amr.includes('mfa'), `amr ${JSON.stringify(after.claims.amr)}`);
    recoveryCodes = fresh;
    await page.click('#mfa-recovery-done');
    await assertNoSecretReadable();
  });

  it('renames the passkey', async () => {
    await page.click('#passkeys .rename-passkey');
    await page.waitForSelector('#passkey-rename-form:not([hidden])');
    assert.equal(await page.inputValue('#passkey-new-name'), 'Test laptop');
    await page.fill('#passkey-new-name', 'Work laptop');
    const renamed = page.waitForResponse((r) => r.url() === `${BASE}/auth/mfa/factors/${factorId}` && r.request().method() === 'PATCH');
    await page.click('#passkey-rename-save');
    assert.equal((await renamed).status(), 204);
    await page.waitForFunction(() => document.querySelector('#passkeys .passkey-name')?.textContent === 'Work laptop');
    assert.equal((await passkeyFactors())[0].name, 'Work laptop');
    assert.equal(await page.isVisible('#passkey-rename-form'), false);
  });

  it('logs out and signs in with "Sign in with a passkey", no password', async () => {
    // The login form's autofill request must wait (a user who has not picked anything yet).
    await presence(false);
    const before = (await ceremonies()).length;
    await page.click('#logout');
    await signedOut(page);
    await autofillWaiting(before);
    await presence(true);

    const login = page.waitForResponse((r) => r.url() === `${BASE}/auth/passkeys/login`);
    await page.click('#passkey-login');
    const answer = await login;
    assert.equal(answer.status(), 200, await answer.text());
    await signedIn(page);
    const sent = JSON.parse(answer.request().postData());
    // The ceremony's token (keycard mints it with the MFA tokens' prefix, kcmf_).
    assert.match(sent.passkey_token, /^kc(pk|mf)_[\w-]{20,}$/);
    assert.equal(sent.credential.type, 'public-key');
    assert.ok(sent.credential.response.authenticatorData && sent.credential.response.signature);
    assert.equal(sent.password, undefined);
    assert.equal(sent.delivery, undefined, 'cookie delivery, like login()');
    const body = await answer.json();
    assert.equal(body.refresh_token, undefined);
    assert.equal(body.mfa_required, undefined);

    // The autofill request was aborted for the button's; the button's request signed in.
    const made = (await ceremonies()).slice(before).filter((c) => c.kind === 'get');
    assert.deepEqual(made.map((c) => [c.mediation, c.outcome]), [['conditional', 'AbortError'], ['optional', 'credential']]);

    const who = await me();
    assert.equal(who.status, 200);
    assert.equal(who.body.email, email);
    await page.waitForFunction((e) => document.getElementById('who').textContent === e, email);
    const claims = await page.evaluate(() => keycard.claims());
    assert.ok(!claims.amr.includes('pwd'), `amr ${JSON.stringify(claims.amr)}: no password`);
    assert.ok(claims.amr.includes('swk') || claims.amr.includes('hwk'), `amr ${JSON.stringify(claims.amr)}`);
    // The cookies of a login.
    const refresh = (await context.cookies(`${BASE}/auth/refresh`)).find((c) => c.name === '__Secure-keycard_refresh');
    assert.ok(refresh && refresh.httpOnly, 'the refresh cookie');
    const [factor] = await passkeyFactors();
    assert.ok(factor.last_used_at, 'last used now');
    assert.ok(Math.abs(Date.parse(factor.last_used_at) - Date.now()) < 60000, `last_used_at ${factor.last_used_at}`);
    if (registeredUse) assert.ok(Date.parse(factor.last_used_at) > Date.parse(registeredUse), 'the sign-in is the last use');
    await page.waitForFunction(() => document.querySelector('#passkeys .passkey-used')?.textContent !== 'never');
    await assertNoSecretReadable();
    await shot('passkeys-03-signed-in.png');
  });

  it('keeps the session over a reload, with one silent refresh', async () => {
    const sid = (await page.evaluate(() => keycard.session())).sessionId;
    const refreshes = [];
    const onRequest = (req) => req.url() === `${BASE}/auth/refresh` && refreshes.push(req.method());
    page.on('request', onRequest);
    await page.reload();
    await signedIn(page);
    page.off('request', onRequest);
    assert.deepEqual(refreshes, ['POST']);
    assert.equal((await page.evaluate(() => keycard.session())).sessionId, sid);
    const who = await me();
    assert.equal(who.status, 200);
    assert.equal(who.body.email, email);
    await assertNoSecretReadable();
  });

  it('a second tab sees the same session', async () => {
    const sid = (await page.evaluate(() => keycard.session())).sessionId;
    const second = watch(await context.newPage(), 'second tab');
    await second.goto(`${BASE}/`);
    await signedIn(second);
    assert.equal((await second.evaluate(() => keycard.session())).sessionId, sid);
    const who = await me(second);
    assert.equal(who.status, 200);
    assert.equal(who.body.email, email);
    // The first tab took the second tab's refresh and goes on.
    assert.equal((await me()).status, 200);
    await assertNoSecretReadable(second);
    await second.close();
  });

  it("signs in from the email field's autofill (conditional mediation) started at page load", async () => {
    await presence(false);
    const before = (await ceremonies()).length;
    await page.click('#logout');
    await signedOut(page);
    await autofillWaiting(before);
    // Picked at once: the virtual authenticator answers the conditional request of the page load.
    await presence(true);
    const login = page.waitForResponse((r) => r.url() === `${BASE}/auth/passkeys/login`);
    await page.reload();
    const answer = await login;
    assert.equal(answer.status(), 200, await answer.text());
    await signedIn(page);
    const made = await ceremonies();
    assert.deepEqual(made.map((c) => [c.kind, c.mediation, c.outcome]), [['get', 'conditional', 'credential']]);
    assert.equal(await page.isVisible('#passkey-login'), false, 'signed in: the login form is gone');
    assert.ok((await page.textContent('#log')).includes('signed in with a passkey from the autofill'));
    const who = await me();
    assert.equal(who.status, 200);
    assert.equal(who.body.email, email);
    await assertNoSecretReadable();
  });

  it('asks for the passkey as the second factor of a password login', async () => {
    await presence(false);
    const before = (await ceremonies()).length;
    await page.click('#logout');
    await signedOut(page);
    await autofillWaiting(before);
    await presence(true);

    await page.fill('#email', email);
    await page.fill('#password', password);
    const login = page.waitForResponse((r) => r.url() === `${BASE}/auth/login`);
    await page.click('#login');
    const challenge = await (await login).json();
    assert.equal(challenge.mfa_required, true);
    assert.match(challenge.mfa_token, /^kcmf_/);
    assert.ok(challenge.methods.includes('webauthn'), `methods ${JSON.stringify(challenge.methods)}`);
    assert.equal(challenge.access_token, undefined);
    const allowed = challenge.webauthn.publicKey.allowCredentials.map((c) => c.id);
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    assert.equal(allowed.length, 1);
    assert.equal(Buffer.from(allowed[0], 'base64url').toString('base64'), credentials[0].credentialId, 'the options list this passkey');

    await page.waitForSelector('#mfa-form:not([hidden])');
    await page.waitForSelector('#mfa-passkey:not([hidden])');
    const callsBefore = passkeyCalls.length;
    assert.equal(await page.evaluate(() => keycard.session()), null);
    await assertNoSecretReadable();
    await shot('passkeys-04-second-factor.png');

    const verified = page.waitForResponse((r) => r.url() === `${BASE}/auth/mfa/verify`);
    await page.click('#mfa-use-passkey');
    const answer = await verified;
    assert.equal(answer.status(), 200, await answer.text());
    const sent = JSON.parse(answer.request().postData());
    assert.equal(sent.mfa_token, challenge.mfa_token);
    assert.equal(sent.webauthn.type, 'public-key');
    await signedIn(page);
    const claims = await page.evaluate(() => keycard.claims());
    assert.ok(claims.amr.includes('pwd') && claims.amr.includes('mfa'), `amr ${JSON.stringify(claims.amr)}`);
    const who = await me();
    assert.equal(who.status, 200);
    assert.equal(who.body.email, email);
    assert.equal(await page.evaluate(() => keycard.mfaPending()), null);

    // The autofill request was aborted by the password form: it signed nobody in.
    const made = (await ceremonies()).slice(before).filter((c) => c.kind === 'get');
    assert.deepEqual(made.map((c) => [c.mediation, c.outcome]), [['conditional', 'AbortError'], ['optional', 'credential']]);
    assert.deepEqual(passkeyCalls.slice(callsBefore).filter((c) => c.startsWith('POST')), ['POST /auth/mfa/verify 200']);
    await assertNoSecretReadable();
  });

  it('steps up with the passkey: a fresh auth_time on the same session', async () => {
    const before = await page.evaluate(() => keycard.session());
    await new Promise((r) => setTimeout(r, 1100)); // auth_time has whole seconds
    const calls = passkeyCalls.length;
    const after = await page.evaluate(() => keycard.stepUp({ passkey: true }));
    assert.deepEqual(passkeyCalls.slice(calls).filter((c) => c.startsWith('POST')), ['POST /auth/step-up/options 200', 'POST /auth/step-up 200']);
    assert.equal(after.sessionId, before.sessionId);
    assert.ok(after.claims.auth_time > before.claims.auth_time, 'a new auth_time');
    assert.ok(after.claims.amr.includes('mfa'), `amr ${JSON.stringify(after.claims.amr)}`);
    await assertNoSecretReadable();
  });

  it('removes the passkey: gone from the list, and keycard refuses it', async () => {
    const removed = page.waitForResponse((r) => r.url() === `${BASE}/auth/mfa/factors/${factorId}` && r.request().method() === 'DELETE');
    await page.click('#passkeys .remove-passkey');
    assert.equal((await removed).status(), 204);
    await page.waitForSelector('#passkeys-none:not([hidden])');
    assert.equal(await page.isVisible('#passkeys'), false);
    assert.deepEqual(await passkeyFactors(), []);
    assert.equal(await page.isVisible('#step-up-form'), false);

    // The device still has it; keycard no longer takes it.
    const refused = await page.evaluate(() => keycard.loginWithPasskey().then(
      () => null,
      (e) => ({ status: e.status, code: e.code }),
    ));
    assert.deepEqual(refused, { status: 401, code: 'invalid_credentials' });
    // The password alone signs in again (the last factor took the recovery codes with it).
    const res = await fetch(`${BASE}/auth/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email, password, delivery: 'body' }),
    });
    assert.equal(res.status, 200);
    const tokens = await res.json();
    assert.equal(tokens.mfa_required, undefined);
    assert.ok(tokens.access_token);
    await assertNoSecretReadable();
    await shot('passkeys-05-removed.png');
  });

  it('saw no errors on the page', () => {
    assert.deepEqual(problems, []);
  });
});
