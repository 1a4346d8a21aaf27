// The mailed-link flows in headless Chromium against a real keycard server delivering through a
// real SMTP server (aiosmtpd writing a Maildir), both started by .ci/browser-test.sh: forgot
// password on the demo page → the mail → the link → a new password → logged in with it; the
// signup's verification link; an address change cancelled, confirmed, then undone. Link scanners
// (a plain GET, and a browser that opens the page and runs its script without clicking) spend
// nothing.
//
// Environment: KEYCARD_URL, MAILDIR (the SMTP server's Maildir), ARTIFACTS_DIR, CHROMIUM.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import path from 'node:path';

import { chromium } from 'playwright-core';

import { LAUNCH, serveWebFromDisk, signedIn, signedOut } from './harness.js';
import { waitForLink } from './mailbox.js';

const BASE = process.env.KEYCARD_URL;
const MAILDIR = process.env.MAILDIR;
assert.ok(BASE, 'KEYCARD_URL must point at a running keycard server (see .ci/browser-test.sh)');
assert.ok(MAILDIR, 'MAILDIR must name the Maildir of the SMTP server keycard delivers to (see .ci/browser-test.sh)');
const ARTIFACTS = process.env.ARTIFACTS_DIR || path.resolve(import.meta.dirname, '../../target/browser-artifacts');

const password = 'correct horse battery staple';
const newPassword = 'a brand new passphrase 42';
const LINK_PAGES = ['/auth/password/reset', '/auth/email/verify', '/auth/email/confirm', '/auth/email/cancel'];

let browser;
const problems = []; // console errors and exceptions on every page, except the answers expected

/// Records page errors. Failed loads are expected only for the statuses a step asks for (a
/// refused login, a weak password), passed in `allowed`.
function watch(p, name, allowed = new Set()) {
  p.on('pageerror', (err) => problems.push(`${name}: ${err.message}`));
  p.on('console', (msg) => {
    const status = /Failed to load resource: the server responded with a status of (\d+)/.exec(msg.text())?.[1];
    if (msg.type() === 'error' && !allowed.has(Number(status))) problems.push(`${name}: ${msg.text()}`);
  });
  return p;
}

async function signup(email) {
  const res = await fetch(`${BASE}/auth/signup`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email, password }),
  });
  assert.equal(res.status, 201);
}

/// A POST of `body` as JSON, as an HTTP client would: `[status, error code]`.
async function postJson(path, body) {
  const res = await fetch(BASE + path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  return [res.status, (await res.json().catch(() => ({}))).error];
}

async function loginStatus(email, pw) {
  const res = await fetch(`${BASE}/auth/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email, password: pw, delivery: 'body' }),
  });
  return [res.status, (await res.json()).error];
}

async function shot(p, name) {
  await p.screenshot({ path: path.join(ARTIFACTS, name), fullPage: true });
}

/// A link scanner: a plain HTTP GET of the link (the fragment never leaves the client), then a
/// browser of its own that opens the page, runs its script and waits for the network to settle,
/// but clicks nothing. Asserts that neither sent the token anywhere.
async function scan(url, token, name) {
  const res = await fetch(url);
  assert.equal(res.status, 200, `GET ${url}`);
  assert.match(res.headers.get('content-type'), /^text\/html/);
  await res.text();

  const ctx = await browser.newContext();
  await serveWebFromDisk(ctx, BASE);
  try {
    const scanner = watch(await ctx.newPage(), `scanner ${name}`);
    const sent = [];
    scanner.on('request', (req) => sent.push({ method: req.method(), url: req.url(), body: req.postData() || '' }));
    await scanner.goto(url, { waitUntil: 'networkidle' });
    // The script ran: it took the token out of the address.
    await scanner.waitForFunction(() => location.hash === '');
    // Failures name the requests by method and path only: the token stays out of test output.
    const named = (list) => list.map((r) => `${r.method} ${new URL(r.url).pathname}`);
    assert.deepEqual(named(sent.filter((r) => r.method !== 'GET')), [], 'opening the page posted nothing');
    assert.deepEqual(named(sent.filter((r) => r.url.includes(token) || r.body.includes(token))), [],
      'no request carried the token');
  } finally {
    await ctx.close();
  }
}

describe('mailed links in headless Chromium, through a real SMTP server', { concurrency: false }, () => {
  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await chromium.launch(LAUNCH);
  });

  after(async () => {
    await browser?.close();
  });

  it('serves each page a mailed link opens under a strict CSP, without spending anything on GET', async () => {
    for (const page of LINK_PAGES) {
      const res = await fetch(BASE + page);
      assert.equal(res.status, 200, page);
      assert.match(res.headers.get('content-type'), /^text\/html/, page);
      const csp = res.headers.get('content-security-policy');
      assert.match(csp, /script-src 'self'/, page);
      assert.match(csp, /frame-ancestors 'none'/, page);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, page);
      assert.equal(res.headers.get('referrer-policy'), 'no-referrer', page);
      assert.doesNotMatch(await res.text(), /<script>/, `${page} has an inline script`);
    }
    for (const script of ['/reset.js', '/link.js']) {
      const res = await fetch(BASE + script);
      assert.equal(res.status, 200, script);
      assert.match(res.headers.get('content-type'), /^application\/javascript/, script);
    }

    // Opened without a token, each page says so and offers nothing to click.
    const ctx = await browser.newContext();
    await serveWebFromDisk(ctx, BASE);
    try {
      const p = watch(await ctx.newPage(), 'no token');
      await p.goto(`${BASE}/auth/email/verify`);
      await p.waitForSelector('#link-status[data-state="failed"]');
      assert.match(await p.textContent('#link-status'), /no token/);
      assert.equal(await p.isVisible('#link-action'), false);
      await p.goto(`${BASE}/auth/password/reset`);
      await p.waitForSelector('#reset-status[data-state="failed"]');
      assert.equal(await p.isVisible('#reset-form'), false);
    } finally {
      await ctx.close();
    }
  });

  it('forgot password → the mail → the link → a new password → logged in with it, not the old one', async () => {
    const email = `grace+${Date.now()}@example.com`;
    await signup(email);
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await serveWebFromDisk(ctx, BASE);
    try {
      const page = watch(await ctx.newPage(), 'forgot', new Set([401, 422]));
      await page.goto(`${BASE}/`);
      await signedOut(page);

      // The demo page's "forgot password" screen, prefilled from the login form.
      await page.fill('#email', email);
      await page.click('#show-forgot');
      assert.equal(await page.inputValue('#forgot-email'), email);
      const asked = page.waitForResponse((r) => r.url() === `${BASE}/auth/password/forgot`);
      await page.click('#forgot');
      const answer = await asked;
      assert.equal(answer.status(), 202);
      assert.equal(answer.request().headers().cookie, undefined, 'no cookie travels with it');
      await page.waitForSelector('#email-status:not([hidden])');
      assert.equal(await page.textContent('#email-status'), (await answer.json()).message);
      await shot(page, 'mail-01-forgot.png');

      // The mail, through the SMTP server: a link to keycard's own form on this origin.
      const { url, token, mail } = await waitForLink(MAILDIR, { to: email, base: BASE, linkPath: '/auth/password/reset' });
      assert.match(token, /^kcpr_/);
      assert.ok(!url.includes('?'), `the token travels in the fragment only: ${url}`);
      assert.ok(mail.html && mail.html.includes(token), 'the HTML part carries the link too');

      // Scanners open the link first: a GET, and a browser running the page's script.
      await scan(url, token, 'reset');

      // The person opens it: the token leaves the address bar at once.
      const resets = [];
      page.on('request', (req) => req.url() === `${BASE}/auth/password/reset` && req.method() === 'POST' && resets.push(req));
      await page.goto(url);
      await page.waitForFunction(() => location.hash === '');
      assert.equal(page.url(), `${BASE}/auth/password/reset`);

      // A weak password (long enough for the form, but a common one) is refused by keycard, and
      // the token stays usable.
      await page.fill('#new-password', 'password123');
      await page.click('#reset-form button');
      await page.waitForSelector('#reset-status[data-state="failed"]');
      assert.match(await page.textContent('#reset-status'), /password/i);
      assert.equal(await page.getAttribute('#reset-status', 'class'), 'error');
      assert.equal(await page.isEnabled('#reset-form button'), true);

      await page.fill('#new-password', newPassword);
      const done = page.waitForResponse((r) => r.url() === `${BASE}/auth/password/reset` && r.request().method() === 'POST');
      await page.click('#reset-form button');
      assert.equal((await done).status(), 204, 'the token the scanners saw was still good');
      await page.waitForSelector('#reset-status[data-state="done"]');
      await shot(page, 'mail-02-reset.png');
      assert.equal(resets.length, 2);
      for (const req of resets) {
        assert.equal(JSON.parse(req.postData()).token, token);
        assert.equal((await req.allHeaders()).cookie, undefined, 'the reset posts the token alone');
      }

      // Spent: the link does not work twice.
      const again = await postJson('/auth/password/reset', { token, new_password: 'yet another passphrase 7' });
      assert.deepEqual(again, [400, 'invalid_reset_token']);

      // Back on the demo page: the old password is refused, the new one logs in.
      await page.goto(`${BASE}/`);
      await signedOut(page);
      await page.fill('#email', email);
      await page.fill('#password', password);
      await page.click('#login');
      await page.waitForSelector('#error:not([hidden])');
      assert.match(await page.textContent('#error'), /\S/);
      assert.equal(await page.getAttribute('#status', 'data-state'), 'out');
      await page.fill('#password', newPassword);
      await page.click('#login');
      await signedIn(page);
      await page.waitForSelector('#me-output:not([hidden])');
      assert.equal(await page.textContent('#who'), email);
      await shot(page, 'mail-03-logged-in.png');
      assert.deepEqual(await loginStatus(email, password), [401, 'invalid_credentials']);
    } finally {
      await ctx.close();
    }
  });

  it('verify email: the signup mail → the link → "Confirm my address" → the token says email_verified', async () => {
    const email = `hedy+${Date.now()}@example.com`;
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await serveWebFromDisk(ctx, BASE);
    try {
      const page = watch(await ctx.newPage(), 'verify', new Set([400]));
      await page.goto(`${BASE}/`);
      await signedOut(page);
      await page.fill('#email', email);
      await page.fill('#password', password);
      await page.click('#signup');
      await signedIn(page);
      await page.waitForSelector('#verified:not([hidden])');
      assert.equal(await page.textContent('#verified'), 'not verified');
      assert.equal(await page.evaluate(() => keycard.claims().email_verified), false);

      const first = await waitForLink(MAILDIR, { to: email, base: BASE, linkPath: '/auth/email/verify' });
      assert.match(first.token, /^kcev_/);
      // "Resend" on the demo page mails another link.
      const resent = page.waitForResponse((r) => r.url() === `${BASE}/auth/email/verify/resend`);
      await page.click('#resend-mine');
      assert.equal((await resent).status(), 202);
      await page.waitForSelector('#email-status:not([hidden])');
      const { url, token } = await waitForLink(MAILDIR, { to: email, base: BASE, linkPath: '/auth/email/verify', seen: [first.token] });

      await scan(url, token, 'verify');

      const tab = watch(await ctx.newPage(), 'verify link', new Set([400]));
      await tab.goto(url);
      await tab.waitForFunction(() => location.hash === '');
      assert.equal(await tab.textContent('#link-action'), 'Confirm my address');
      const posted = tab.waitForResponse((r) => r.url() === `${BASE}/auth/email/verify` && r.request().method() === 'POST');
      await tab.click('#link-action');
      const answer = await posted;
      assert.equal(answer.status(), 200, 'the token the scanners saw was still good');
      assert.deepEqual(await answer.json(), { status: 'verified' });
      await tab.waitForSelector('#link-status[data-state="done"]');
      await shot(tab, 'mail-04-verified.png');

      // The demo page's next token says so.
      await page.evaluate(() => keycard.refresh());
      assert.equal(await page.evaluate(() => keycard.claims().email_verified), true);
      await page.waitForSelector('#verified:not(.unverified)');
      assert.equal(await page.textContent('#verified'), 'verified');
      assert.equal(await page.isVisible('#resend-mine'), false);

      // Spent: the link does not work twice, and the first link was replaced by the resent one.
      for (const spent of [token, first.token]) {
        assert.deepEqual(await postJson('/auth/email/verify', { token: spent }), [400, 'invalid_verification_token']);
      }
    } finally {
      await ctx.close();
    }
  });

  it('change email: cancelled from the old address; confirmed from the new one (only it logs in); then undone from the old', async () => {
    const email = `ida+${Date.now()}@example.com`;
    const newEmail = `ida.new+${Date.now()}@example.org`;
    await signup(email);
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await serveWebFromDisk(ctx, BASE);
    try {
      const page = watch(await ctx.newPage(), 'change', new Set([400, 401]));
      await page.goto(`${BASE}/`);
      await signedOut(page);
      await page.fill('#email', email);
      await page.fill('#password', password);
      await page.click('#login');
      await signedIn(page);
      await page.waitForSelector('#email-signed-in:not([hidden])');
      assert.equal(await page.textContent('#current-email'), email);

      // A wrong password is refused in the card, and the session stays.
      await page.fill('#new-email', newEmail);
      await page.fill('#change-password', 'not my password 9');
      await page.click('#change-email');
      await page.waitForSelector('#email-error:not([hidden])');
      assert.equal(await page.getAttribute('#status', 'data-state'), 'in');

      const request = async (seen) => {
        await page.fill('#new-email', newEmail);
        await page.fill('#change-password', password);
        const pending = [];
        const record = (r) => {
          if (r.url() === `${BASE}/auth/email` && r.request().method() === 'POST') {
            pending.push(r.json().catch(() => ({})).then((body) => `${r.status()} ${body.error ?? ''}`.trim()));
          }
        };
        page.on('response', record);
        await page.click('#change-email');
        await page.waitForSelector('#email-status:not([hidden]), #email-error:not([hidden])');
        page.off('response', record);
        const answers = await Promise.all(pending);
        // The last answer is the one shown; before it at most one 401 invalid_token (the access
        // token expired on the way: keycard.fetch refreshed and sent it again).
        assert.equal(answers.at(-1), '202', `POST /auth/email answered ${answers.join(', ')}`);
        assert.ok(answers.slice(0, -1).every((a) => a === '401 invalid_token') && answers.length <= 2, answers.join(', '));
        assert.equal(await page.isVisible('#email-status'), true);
        const confirm = await waitForLink(MAILDIR, { to: newEmail, base: BASE, linkPath: '/auth/email/confirm', seen });
        const cancel = await waitForLink(MAILDIR, { to: email, base: BASE, linkPath: '/auth/email/cancel', seen });
        assert.match(confirm.token, /^kcec_/);
        assert.match(cancel.token, /^kcex_/);
        return { confirm, cancel };
      };

      // First request: the old address cancels it.
      const first = await request([]);
      await scan(first.cancel.url, first.cancel.token, 'cancel');
      await scan(first.confirm.url, first.confirm.token, 'confirm');
      const tab = watch(await ctx.newPage(), 'change links', new Set([400]));
      // As from the mail: a fresh load of the page (the same page with another fragment would not reload).
      const open = async (url) => {
        await tab.goto('about:blank');
        await tab.goto(url);
        await tab.waitForFunction(() => location.hash === '');
      };
      await open(first.cancel.url);
      assert.equal(await tab.textContent('#link-action'), 'Cancel the change');
      await tab.click('#link-action');
      await tab.waitForSelector('#link-status[data-state="done"]');
      await shot(tab, 'mail-05-cancelled.png');
      // The cancelled change's confirmation link is dead.
      await open(first.confirm.url);
      await tab.click('#link-action');
      await tab.waitForSelector('#link-status[data-state="failed"]');
      assert.equal(await tab.isDisabled('#link-action'), true);
      assert.deepEqual(await loginStatus(newEmail, password), [401, 'invalid_credentials']);

      // Second request: the new address confirms it.
      const second = await request([first.confirm.token, first.cancel.token]);
      await scan(second.confirm.url, second.confirm.token, 'confirm 2');
      // Opened in the same tab as the first confirmation link: only the fragment differs, and
      // the page loads itself again to take the new token.
      await tab.goto(second.confirm.url);
      await tab.waitForFunction(() => location.hash === '');
      assert.equal(await tab.textContent('#link-action'), 'Confirm my new address');
      const posted = tab.waitForResponse((r) => r.url() === `${BASE}/auth/email/confirm` && r.request().method() === 'POST');
      await tab.click('#link-action');
      assert.deepEqual(await (await posted).json(), { status: 'changed' });
      await tab.waitForSelector('#link-status[data-state="done"]');
      await shot(tab, 'mail-06-changed.png');

      assert.equal((await loginStatus(newEmail, password))[0], 200);
      assert.deepEqual(await loginStatus(email, password), [401, 'invalid_credentials']);
      await page.click('#me');
      await page.waitForFunction((e) => document.getElementById('current-email').textContent === e, newEmail);

      // The old address's cancel link still undoes it (a thief's change): the old address is back
      // and every session ends, the demo page's too.
      await open(second.cancel.url);
      await tab.click('#link-action');
      await tab.waitForSelector('#link-status[data-state="done"]');
      assert.equal((await loginStatus(email, password))[0], 200);
      assert.deepEqual(await loginStatus(newEmail, password), [401, 'invalid_credentials']);
      await page.evaluate(() => keycard.refresh());
      await signedOut(page);
    } finally {
      await ctx.close();
    }
  });

  it('saw no errors on any page', () => {
    assert.deepEqual(problems, []);
  });
});
