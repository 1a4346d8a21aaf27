// The second factor on the demo page, in headless Chromium against the real keycard server that
// .ci/browser-test.sh starts (on the real clock): sign up and log in, enrol an authenticator app
// through the page (the QR image under the page's CSP, the key shown), confirm it with a code
// computed here from that key (otpauth, for the current time: the server's clock is this
// machine's), the recovery codes shown once; new recovery codes ask for a step-up, answered with
// a recovery code; log out, log in again: the page asks for the second factor, refuses a spent
// code, takes the right one, signed in; a reload keeps the session; the factor is removed. The
// login's mfa_token is never readable by a script (storage, cookies, the address, the page).
//
// A TOTP code works once per 30-second step: where a second code would fall in a step already
// used, the test answers with the next step's code (keycard allows one step of skew) instead of
// waiting.
//
// Environment: KEYCARD_URL, ARTIFACTS_DIR, CHROMIUM.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import path from 'node:path';

import * as OTPAuth from 'otpauth';
import { chromium } from 'playwright-core';

import { LAUNCH, readableState, serveWebFromDisk, signedIn, signedOut } from './harness.js';

const BASE = process.env.KEYCARD_URL;
assert.ok(BASE, 'KEYCARD_URL must point at a running keycard server (see .ci/browser-test.sh)');
const ARTIFACTS = process.env.ARTIFACTS_DIR || path.resolve(import.meta.dirname, '../../target/browser-artifacts');

const email = `katherine+${Date.now()}@example.com`;
const password = 'correct horse battery staple';
const RECOVERY_CODE = /^[0-9a-z]{5}(-[0-9a-z]{5}){3}$/;
const PERIOD = 30;

let browser;
let context;
let page;
const problems = []; // page errors and console errors but the refusals the steps ask for
const consoleLines = []; // everything the page logged, searched for the mfa_token
let totp; // the authenticator app: the key read off the page
let recoveryCodes; // the codes the page shows now
let oldCodes; // the codes they replaced
const usedSteps = new Set(); // TOTP steps whose code keycard has taken

/// Records page errors; failed loads are expected for 400 (a wrong code) and 401 (a refused
/// password, a change that needs a step-up, an expired access token).
function watch(p, name) {
  p.on('pageerror', (err) => problems.push(`${name}: ${err.message}`));
  p.on('console', (msg) => {
    consoleLines.push(msg.text());
    const status = /Failed to load resource: the server responded with a status of (\d+)/.exec(msg.text())?.[1];
    if (msg.type() === 'error' && !['400', '401'].includes(status)) problems.push(`${name}: ${msg.text()}`);
  });
  return p;
}

async function shot(name) {
  await page.screenshot({ path: path.join(ARTIFACTS, name), fullPage: true });
}

/// The current TOTP step and its code, as keycard computes them (same machine, same clock).
function codeNow() {
  return codeAt(Date.now());
}

/// The TOTP step and code at `ms` (Unix milliseconds).
function codeAt(ms) {
  return { step: Math.floor(ms / 1000 / PERIOD), code: totp.generate({ timestamp: ms }) };
}

async function shownRecoveryCodes() {
  await page.waitForSelector('#mfa-recovery:not([hidden])');
  const codes = await page.$$eval('#mfa-recovery-codes li', (items) => items.map((li) => li.textContent));
  assert.equal(codes.length, 10);
  for (const code of codes) assert.match(code, RECOVERY_CODE);
  assert.equal(new Set(codes).size, 10);
  return codes;
}

/// Everything a script on the page can reach, as one string.
async function scriptReadable() {
  const state = await readableState(page);
  const pageText = await page.evaluate(() => document.documentElement.outerHTML);
  const pending = await page.evaluate(() => JSON.stringify(keycard.mfaPending()));
  return JSON.stringify({ state, url: page.url(), pageText, pending, history: await page.evaluate(() => history.state) });
}

describe('second factor (TOTP) on the demo page in headless Chromium', { concurrency: false }, () => {
  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await chromium.launch(LAUNCH);
    context = await browser.newContext({ viewport: { width: 1280, height: 1100 } });
    await serveWebFromDisk(context, BASE);
    page = watch(await context.newPage(), 'mfa');
  });

  after(async () => {
    await browser?.close();
  });

  it('enrols an authenticator app through the page: QR image, key, a code, ten recovery codes', async () => {
    await page.goto(`${BASE}/`);
    await signedOut(page);
    assert.equal(await page.isVisible('#mfa-signed-out'), true);
    await page.fill('#email', email);
    await page.fill('#password', password);
    await page.click('#signup');
    await signedIn(page);
    await page.waitForSelector('#mfa-signed-in:not([hidden])');
    await page.waitForSelector('#mfa-none:not([hidden])');

    const enrolled = page.waitForResponse((r) => r.url() === `${BASE}/auth/mfa/totp` && r.request().method() === 'POST');
    await page.click('#mfa-enrol');
    assert.equal((await enrolled).status(), 200);
    await page.waitForSelector('#mfa-enrolment:not([hidden])');
    const secret = (await page.textContent('#mfa-secret')).trim();
    assert.match(secret, /^[A-Z2-7]{32}$/, 'a 160-bit base32 key');
    // The QR code is a data: SVG the page's CSP (img-src data:) lets the browser draw.
    const qr = await page.$eval('#mfa-qr', (img) => ({ src: img.src, complete: img.complete, width: img.naturalWidth }));
    assert.match(qr.src, /^data:image\/svg\+xml;base64,/);
    await page.waitForFunction(() => document.getElementById('mfa-qr').complete && document.getElementById('mfa-qr').naturalWidth > 0);
    await shot('mfa-01-enrol.png');

    totp = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), algorithm: 'SHA1', digits: 6, period: PERIOD });

    // A wrong code is refused and the enrolment stays open.
    const { step, code } = codeNow();
    const wrong = code === '000000' ? '111111' : '000000';
    await page.fill('#mfa-confirm-code', wrong);
    await page.click('#mfa-confirm');
    await page.waitForSelector('#mfa-error:not([hidden])');
    assert.equal(await page.isVisible('#mfa-enrolment'), true);

    const confirmed = page.waitForResponse((r) => r.url() === `${BASE}/auth/mfa/totp/confirm`);
    await page.fill('#mfa-confirm-code', code);
    await page.click('#mfa-confirm');
    assert.equal((await confirmed).status(), 200);
    usedSteps.add(step);
    recoveryCodes = await shownRecoveryCodes();
    assert.equal(await page.isVisible('#mfa-enrolment'), false);
    assert.equal(await page.textContent('#mfa-secret'), '', 'the key leaves the page once confirmed');
    await page.waitForSelector('#mfa-factors:not([hidden])');
    assert.equal(await page.$$eval('#mfa-factors tbody tr', (rows) => rows.length), 1);
    assert.equal(await page.getAttribute('#mfa-codes-left', 'data-left'), '10');
    await shot('mfa-02-recovery-codes.png');
    await page.click('#mfa-recovery-done');
    assert.equal(await page.isVisible('#mfa-recovery'), false);
  });

  it('asks for a step-up before new recovery codes, answered with a recovery code; the new token says mfa', async () => {
    // This session signed in with the password alone: keycard wants the new factor first, and
    // keycard.js says so in a way an app can test for.
    const refusal = await page.evaluate(() => keycard.mfa.regenerateRecoveryCodes().then(
      () => null,
      (e) => ({ name: e.name, status: e.status, code: e.code, stepUpRequired: e.stepUpRequired, maxAge: e.maxAge }),
    ));
    assert.deepEqual(refusal, {
      name: 'KeycardError', status: 401, code: 'insufficient_user_authentication', stepUpRequired: true, maxAge: 600,
    });
    const answers = [];
    const record = (r) => {
      const p = new URL(r.url()).pathname;
      if (['/auth/mfa/recovery-codes', '/auth/step-up'].includes(p)) answers.push(`${p} ${r.status()}`);
    };
    page.on('response', record);
    await page.click('#mfa-regenerate');
    await page.waitForSelector('#step-up-form:not([hidden])');
    assert.match(await page.textContent('#step-up-reason'), /second factor/);
    assert.equal(await page.inputValue('#step-up-method'), 'code');
    await shot('mfa-03-step-up.png');
    // The code of this step was spent on the enrolment: a recovery code, not a wait.
    await page.selectOption('#step-up-method', 'recoveryCode');
    await page.fill('#step-up-answer', recoveryCodes[0]);
    await page.click('#step-up');
    const fresh = await shownRecoveryCodes();
    page.off('response', record);
    assert.deepEqual(answers, ['/auth/mfa/recovery-codes 401', '/auth/step-up 200', '/auth/mfa/recovery-codes 200']);
    assert.equal(await page.isVisible('#step-up-form'), false);
    assert.equal(fresh.filter((c) => recoveryCodes.includes(c)).length, 0, 'ten new codes');
    const claims = await page.evaluate(() => keycard.claims());
    assert.ok(claims.amr.includes('mfa'), `amr ${JSON.stringify(claims.amr)}`);
    assert.ok(Math.abs(claims.auth_time - Date.now() / 1000) < 30, 'auth_time is now');
    await page.waitForSelector('#mfa-codes-left[data-left="10"]');
    const old = recoveryCodes;
    recoveryCodes = fresh;
    await page.click('#mfa-recovery-done');
    oldCodes = old;
  });

  it('logs in again: the page asks for the second factor, refuses a spent code, takes the right one', async (t) => {
    await page.click('#logout');
    await signedOut(page);
    assert.equal((await context.cookies(`${BASE}/auth/refresh`)).find((c) => c.name === '__Secure-keycard_refresh'), undefined);

    await page.fill('#email', email);
    await page.fill('#password', password);
    const login = page.waitForResponse((r) => r.url() === `${BASE}/auth/login`);
    await page.click('#login');
    const loginAnswer = await login;
    assert.equal(loginAnswer.status(), 200);
    const challenge = await loginAnswer.json();
    assert.equal(challenge.mfa_required, true);
    assert.match(challenge.mfa_token, /^kcmf_/);
    assert.deepEqual([...challenge.methods].sort(), ['recovery_code', 'totp']);
    assert.equal(challenge.access_token, undefined);
    const mfaToken = challenge.mfa_token;

    await page.waitForSelector('#mfa-form:not([hidden])');
    assert.equal(await page.isVisible('#auth-form'), false);
    assert.equal(await page.getAttribute('#status', 'data-state'), 'out');
    assert.equal(await page.evaluate(() => keycard.session()), null);
    const pending = await page.evaluate(() => keycard.mfaPending());
    assert.equal(pending.mfaRequired, true);
    assert.deepEqual([...pending.methods].sort(), ['recovery_code', 'totp']);
    // No cookie came with the challenge.
    assert.equal((await context.cookies(`${BASE}/auth/refresh`)).find((c) => c.name === '__Secure-keycard_refresh'), undefined);
    assert.ok(!(await scriptReadable()).includes(mfaToken), 'the mfa_token is readable by a script');
    await shot('mfa-04-code-step.png');

    // A recovery code the regeneration replaced: refused, and the page asks again.
    const verifies = [];
    page.on('request', (req) => req.url() === `${BASE}/auth/mfa/verify` && verifies.push(req));
    await page.click('#mfa-use-recovery');
    assert.match(await page.textContent('#mfa-label'), /Recovery code/);
    await page.fill('#mfa-code', oldCodes[1]);
    const refused = page.waitForResponse((r) => r.url() === `${BASE}/auth/mfa/verify`);
    await page.click('#mfa-verify');
    const refusedAnswer = await refused;
    assert.equal(refusedAnswer.status(), 400);
    assert.equal((await refusedAnswer.json()).error, 'invalid_mfa');
    await page.waitForSelector('#error:not([hidden])');
    assert.equal(await page.isVisible('#mfa-form'), true, 'the same login may answer again');

    // The authenticator app's code: this step's, or, when keycard already took it, the next
    // step's (keycard accepts one step of skew either way, and only a step newer than any it
    // took), so the app's code signs in on every run without waiting.
    let { step, code } = codeNow();
    if (usedSteps.has(step)) ({ step, code } = codeAt(Date.now() + PERIOD * 1000));
    await page.click('#mfa-use-recovery'); // back to the app's code
    assert.match(await page.textContent('#mfa-label'), /authenticator app/);
    await page.fill('#mfa-code', code);
    usedSteps.add(step);
    t.diagnostic(`answered with the authenticator app's code of step ${step}`);
    const verified = page.waitForResponse((r) => r.url() === `${BASE}/auth/mfa/verify`);
    await page.click('#mfa-verify');
    const answer = await verified;
    assert.equal(answer.status(), 200, 'signed in with the app\'s code');
    const body = await answer.json();
    await signedIn(page);
    await page.waitForSelector('#me-output:not([hidden])');
    assert.equal(await page.textContent('#who'), email);

    // Both answers carried the same mfa_token, which only keycard.js held.
    assert.equal(verifies.length, 2);
    for (const req of verifies) assert.equal(JSON.parse(req.postData()).mfa_token, mfaToken);
    assert.ok(!verifies.some((req) => req.url().includes(mfaToken)));
    // The cookies of a login: refresh (HttpOnly) and CSRF, as the answer says.
    const refresh = (await context.cookies(`${BASE}/auth/refresh`)).find((c) => c.name === '__Secure-keycard_refresh');
    assert.ok(refresh && refresh.httpOnly && refresh.value.startsWith('kcrt_'));
    const csrf = (await context.cookies(`${BASE}/`)).find((c) => c.name === '__Host-keycard_csrf');
    assert.equal(csrf.value, body.csrf_token);
    assert.equal(body.refresh_token, undefined, 'cookie delivery, like the login');
    const claims = await page.evaluate(() => keycard.claims());
    assert.ok(claims.amr.includes('mfa') && claims.amr.includes('otp'), `amr ${JSON.stringify(claims.amr)}`);
    assert.equal(await page.evaluate(() => keycard.mfaPending()), null);

    const readable = await scriptReadable();
    assert.ok(!readable.includes(mfaToken), 'the mfa_token is readable by a script');
    assert.ok(!readable.includes('kcmf_'), 'an mfa_token is readable by a script');
    assert.ok(!consoleLines.some((line) => line.includes(mfaToken)), 'the mfa_token reached the console');
    await page.waitForSelector('#mfa-codes-left[data-left="10"]');
    await shot('mfa-05-signed-in.png');
  });

  it('keeps the session over a reload, without asking for the code again', async () => {
    await page.reload();
    await signedIn(page);
    await page.waitForSelector('#mfa-factors:not([hidden])');
    assert.equal(await page.isVisible('#mfa-form'), false);
    const claims = await page.evaluate(() => keycard.claims());
    assert.ok(claims.amr.includes('mfa'), 'the refreshed token keeps the session\'s amr');
  });

  it('removes the factor (a fresh sign-in with it needs no step-up); the password alone logs in again', async () => {
    // A fresh sign-in with the factor: removing it needs no step-up now.
    const removed = page.waitForResponse((r) => r.url().startsWith(`${BASE}/auth/mfa/factors/`));
    await page.click('#mfa-factors .remove-factor');
    assert.equal((await removed).status(), 204);
    await page.waitForSelector('#mfa-none:not([hidden])');
    assert.equal(await page.isVisible('#mfa-factors'), false);
    assert.equal(await page.isVisible('#step-up-form'), false);

    // A password login: no second step any more.
    const res = await fetch(`${BASE}/auth/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email, password, delivery: 'body' }),
    });
    assert.equal(res.status, 200);
    const tokens = await res.json();
    assert.equal(tokens.mfa_required, undefined);
    assert.ok(tokens.access_token);
  });

  it('saw no errors on the page', () => {
    assert.deepEqual(problems, []);
  });
});
