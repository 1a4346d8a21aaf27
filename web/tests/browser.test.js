// End-to-end test of the browser flow in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core) against a real keycard server, started by .ci/browser-test.sh with a 5 s
// access-token lifetime and no leeway.
//
// Environment: KEYCARD_URL (http://127.0.0.1:PORT), KEYCARD_SERVER_LOG (the server's log file),
// ARTIFACTS_DIR (screenshots), CHROMIUM (browser path, default /usr/bin/chromium).

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import path from 'node:path';

import { chromium } from 'playwright-core';

import { startAttacker } from './attacker.js';
import { LAUNCH, readableState, recordRefreshes, serveWebFromDisk, signedIn, signedOut, sleep, watch as watchFor } from './harness.js';

const BASE = process.env.KEYCARD_URL;
assert.ok(BASE, 'KEYCARD_URL must point at a running keycard server (see .ci/browser-test.sh)');
const ARTIFACTS = process.env.ARTIFACTS_DIR || path.resolve(import.meta.dirname, '../../target/browser-artifacts');
const SERVER_LOG = process.env.KEYCARD_SERVER_LOG;
const ACCESS_TTL_MS = 5000;

const email = `ada+${Date.now()}@example.com`;
const password = 'correct horse battery staple';

let browser;
let context;
let page; // the first tab
let page2; // the second tab
const problems = []; // console errors (CSP violations, exceptions) from every page
const refreshes = []; // every POST /auth/refresh the browser made: {at, page, csrf, cookie, status, error}
let loginResponse; // the login's JSON body (the test harness may read it; page scripts may not)
let loginAt; // when that access token was issued
const watch = (p, name) => watchFor(p, name, problems);

async function settle(promiseOrList) {
  await Promise.all([].concat(promiseOrList));
  await sleep(300); // let the response listeners above finish
}

async function shot(p, name) {
  const file = path.join(ARTIFACTS, name);
  await p.screenshot({ path: file, fullPage: true });
  return file;
}

/// keycard's cookies in the browser's jar (the harness sees HttpOnly ones too).
async function keycardCookies(ctx) {
  return ctx.cookies([`${BASE}/`, `${BASE}/auth/refresh`]);
}

async function cookieNamed(ctx, name) {
  return (await keycardCookies(ctx)).find((c) => c.name === name);
}

function statusOf(p, call) {
  return p.evaluate(call);
}

describe('keycard browser flow in headless Chromium', { concurrency: false }, () => {
  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await chromium.launch(LAUNCH);
    context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    await serveWebFromDisk(context, BASE);
    recordRefreshes(context, 'main', refreshes);
    page = watch(await context.newPage(), 'tab 1');
  });

  after(async () => {
    await browser?.close();
  });

  it('serves the demo page with a strict CSP, and keycard.js as JavaScript', async () => {
    const res = await fetch(`${BASE}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/html/);
    const csp = res.headers.get('content-security-policy');
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    for (const asset of ['/keycard.js', '/demo.js']) {
      const js = await fetch(BASE + asset);
      assert.equal(js.status, 200, asset);
      assert.match(js.headers.get('content-type'), /^application\/javascript/, asset);
    }

    await page.goto(`${BASE}/`);
    await signedOut(page);
    // No session cookie: the page did not even try a silent refresh.
    assert.equal(refreshes.length, 0, 'a page without a session cookie must not call /auth/refresh');
    await shot(page, '01-logged-out.png');
  });

  it('signs up and logs in through the page; Chrome keeps the Secure cookies on http://127.0.0.1', async () => {
    await page.fill('#email', email);
    await page.fill('#password', password);
    const login = page.waitForResponse((r) => r.url().endsWith('/auth/login'));
    await page.click('#signup');
    loginResponse = await (await login).json();
    loginAt = Date.now();
    await signedIn(page);
    await page.waitForSelector('#me-output:not([hidden])');
    assert.match(await page.textContent('#me-output'), new RegExp(email.replace(/[+.]/g, '\\$&')));
    assert.match(await page.textContent('#who'), /ada\+/);
    const claims = await page.textContent('#claims');
    assert.match(claims, /sid/);
    assert.match(claims, new RegExp(loginResponse.session_id));
    assert.match(await page.textContent('#countdown'), /^0:0[0-5]$/);

    // The browser accepted the __Secure- cookies over plain http on loopback, with every attribute.
    const refresh = await cookieNamed(context, '__Secure-keycard_refresh');
    assert.ok(refresh, 'Chrome stored the __Secure-keycard_refresh cookie on http://127.0.0.1');
    assert.ok(refresh.value.startsWith('kcrt_'));
    assert.equal(refresh.httpOnly, true);
    assert.equal(refresh.secure, true);
    assert.equal(refresh.sameSite, 'Strict');
    assert.equal(refresh.path, '/auth');
    assert.ok(refresh.expires > Date.now() / 1000 + 86400, 'a persistent cookie (Max-Age from the session)');
    const csrf = await cookieNamed(context, '__Host-keycard_csrf');
    assert.ok(csrf);
    assert.equal(csrf.httpOnly, false);
    assert.equal(csrf.secure, true);
    assert.equal(csrf.sameSite, 'Strict');
    assert.equal(csrf.path, '/');
    assert.equal(csrf.value, loginResponse.csrf_token);
    assert.equal(loginResponse.refresh_token, undefined, 'cookie delivery keeps the refresh token out of the body');

    await page.waitForSelector('#sessions:not([hidden])');
    await shot(page, '02-logged-in.png');
  });

  it('leaves no token where a script could read it: document.cookie, Web Storage, IndexedDB, Cache Storage', async () => {
    const refresh = (await cookieNamed(context, '__Secure-keycard_refresh')).value;
    const state = await readableState(page);
    assert.match(state.cookie, /__Host-keycard_csrf=/, 'the CSRF cookie is readable (double submit)');
    assert.doesNotMatch(state.cookie, /keycard_refresh/);
    const everything = JSON.stringify(state);
    for (const secret of [refresh, loginResponse.access_token, 'kcrt_', loginResponse.access_token.split('.')[1]]) {
      assert.ok(!everything.includes(secret), `script-readable state contains ${secret.slice(0, 12)}…`);
    }
    assert.deepEqual(state.localStorage, {});
    assert.deepEqual(state.sessionStorage, {});
    assert.deepEqual(state.indexedDB, {});
    // And the module exposes no token property: only the decoded claims, for display.
    const exposed = await page.evaluate(() => JSON.stringify({ session: keycard.session(), keys: Object.keys(keycard) }));
    assert.ok(!exposed.includes(loginResponse.access_token));
  });

  it('stays logged in across a reload: a silent refresh restores the session from the cookie', async () => {
    const before = refreshes.length;
    const sidBefore = await page.evaluate(() => keycard.claims().sid);
    const jtiBefore = await page.evaluate(() => keycard.claims().jti);
    await page.reload();
    await signedIn(page);
    await settle([]);
    const after = refreshes.slice(before);
    assert.equal(after.length, 1, 'exactly one refresh on load');
    assert.equal(after[0].status, 200);
    assert.equal(await page.evaluate(() => keycard.claims().sid), sidBefore, 'same session');
    assert.notEqual(await page.evaluate(() => keycard.claims().jti), jtiBefore, 'a new access token');
    assert.equal(await statusOf(page, () => keycard.fetch('/auth/me').then((r) => r.status)), 200);
  });

  it('lists sessions and revokes another one from the page', async () => {
    // A second device logs in (a native client, refresh token in the body).
    const res = await fetch(`${BASE}/auth/login`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        'User-Agent': 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0',
      },
      body: JSON.stringify({ email, password, delivery: 'body' }),
    });
    assert.equal(res.status, 200);
    const other = await res.json();
    await page.click('#reload-sessions');
    await page.waitForSelector(`#sessions tr[data-id="${other.session_id}"]`);
    assert.equal(await page.locator('#sessions tbody tr').count(), 2);
    assert.equal(await page.locator('#sessions tbody tr[data-current="true"]').count(), 1);
    await shot(page, '03-sessions.png');

    await page.click(`#sessions tr[data-id="${other.session_id}"] button`);
    await page.waitForSelector(`#sessions tr[data-id="${other.session_id}"]`, { state: 'detached' });
    assert.equal(await page.locator('#sessions tbody tr').count(), 1);
    const dead = await fetch(`${BASE}/auth/refresh`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refresh_token: other.refresh_token }),
    });
    assert.equal(dead.status, 401, 'the revoked session cannot refresh');
  });

  it('two tabs hitting 401 at the same moment refresh once and both stay logged in', async () => {
    page2 = watch(await context.newPage(), 'tab 2');
    await page2.goto(`${BASE}/`);
    await signedIn(page2);
    await settle([]);
    // The login's access token has expired by now (the server allows no leeway).
    await sleep(Math.max(0, loginAt + ACCESS_TTL_MS + 1200 - Date.now()));
    // Both tabs hold the same fresh token (tab 1 takes tab 2's result from the channel), so no
    // timer is due during the next second.
    await page.evaluate(() => keycard.refresh());
    await sleep(200);
    const [t1, t2] = await Promise.all([page, page2].map((p) => p.evaluate(() => keycard.session().claims.jti)));
    assert.equal(t1, t2, 'the tabs share one access token');

    // Make the next /auth/me of each tab carry an expired token, so the server itself answers
    // 401 invalid_token to both at the same moment.
    const expired = loginResponse.access_token;
    const statuses = { 'tab 1': [], 'tab 2': [] };
    for (const [p, name] of [[page, 'tab 1'], [page2, 'tab 2']]) {
      let swapped = false;
      await p.route('**/auth/me', (route) => {
        const headers = route.request().headers();
        if (!swapped) {
          swapped = true;
          headers.authorization = `Bearer ${expired}`;
        }
        return route.continue({ headers });
      });
      p.on('response', (r) => r.url().endsWith('/auth/me') && statuses[name].push(r.status()));
    }
    const before = refreshes.length;
    const results = await Promise.all(
      [page, page2].map((p) => p.evaluate(() => keycard.fetch('/auth/me').then((r) => r.status))),
    );
    await settle([]);
    assert.deepEqual(results, [200, 200], 'both calls succeed after one refresh');
    assert.deepEqual(statuses['tab 1'].slice(0, 2), [401, 200]);
    assert.deepEqual(statuses['tab 2'].slice(0, 2), [401, 200]);
    const during = refreshes.slice(before);
    assert.equal(during.length, 1, `one refresh for both tabs, not ${during.length}`);
    assert.equal(during[0].status, 200);
    await Promise.all([page.unroute('**/auth/me'), page2.unroute('**/auth/me')]);
  });

  it('two tabs whose proactive refresh timers fire together never present one refresh token twice', async () => {
    const before = refreshes.length;
    const started = Date.now();
    // Three token lifetimes; both tabs' timers are due at the same instant each time.
    for (let i = 0; i < 6; i += 1) {
      await sleep(ACCESS_TTL_MS / 2);
      const statuses = await Promise.all(
        [page, page2].map((p) => p.evaluate(() => keycard.fetch('/auth/me').then((r) => r.status))),
      );
      assert.deepEqual(statuses, [200, 200]);
    }
    await settle([]);
    const during = refreshes.slice(before);
    const elapsed = Date.now() - started;
    // The token is renewed a fifth of its lifetime early: once per 4 s, for both tabs together.
    const maxExpected = Math.ceil(elapsed / (ACCESS_TTL_MS * 0.8)) + 1;
    assert.ok(during.length >= 2, `the tabs kept refreshing (${during.length})`);
    assert.ok(during.length <= maxExpected, `${during.length} refreshes in ${elapsed} ms: the tabs did not share them`);
    assert.ok(during.every((r) => r.status === 200), JSON.stringify(during));
    // Both tabs can call the API, and the session is still there.
    for (const p of [page, page2]) {
      assert.equal(await p.evaluate(() => keycard.fetch('/auth/me').then((r) => r.status)), 200);
    }
    const sessions = await page2.evaluate(() => keycard.fetch('/auth/sessions').then((r) => r.json()));
    assert.ok(sessions.some((s) => s.current), 'the session is still listed');
    await page.click('#reload-sessions');
    await page2.bringToFront();
    await shot(page2, '04-second-tab.png');
  });

  it('without Web Locks, the BroadcastChannel fallback also refreshes once for two tabs', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    await serveWebFromDisk(ctx, BASE);
    recordRefreshes(ctx, 'no-locks', refreshes);
    await ctx.addInitScript(() => {
      Object.defineProperty(Navigator.prototype, 'locks', { get: () => undefined, configurable: true });
    });
    try {
      const a = watch(await ctx.newPage(), 'no-locks tab 1');
      const b = watch(await ctx.newPage(), 'no-locks tab 2');
      await a.goto(`${BASE}/`);
      assert.equal(await a.evaluate(() => navigator.locks), undefined);
      await signedOut(a);
      await a.fill('#email', email);
      await a.fill('#password', password);
      await a.click('#login');
      await signedIn(a);
      await b.goto(`${BASE}/`);
      await signedIn(b);
      await settle([]);
      const mine = () => refreshes.filter((r) => r.context === 'no-locks');
      const before = mine().length;
      const started = Date.now();
      for (let i = 0; i < 4; i += 1) {
        await sleep(ACCESS_TTL_MS / 2);
        // At the same moment, both tabs ask for a refresh (as on a 401).
        const got = await Promise.all([a, b].map((p) => p.evaluate(() => keycard.refresh().then((s) => !!s))));
        assert.deepEqual(got, [true, true]);
      }
      await settle([]);
      const during = mine().slice(before);
      const elapsed = Date.now() - started;
      assert.ok(during.every((r) => r.status === 200), JSON.stringify(during));
      // Four forced rounds plus the timers: without coordination it would be at least 8.
      assert.ok(during.length <= 4 + Math.ceil(elapsed / (ACCESS_TTL_MS * 0.8)), `${during.length} refreshes`);
      for (const p of [a, b]) {
        assert.equal(await p.evaluate(() => keycard.fetch('/auth/me').then((r) => r.status)), 200);
      }
      await a.evaluate(() => keycard.logout());
      await signedOut(b);
    } finally {
      await ctx.close();
    }
  });

  it('refuses forged cross-origin POSTs to /auth/refresh, from another port and another site', async () => {
    // A fresh token first, so the real tab's timer stays quiet during the attack.
    await page.evaluate(() => keycard.refresh());
    const cookieBefore = (await cookieNamed(context, '__Secure-keycard_refresh')).value;
    const attacker = await startAttacker(BASE);
    const before = refreshes.length;
    try {
      const evil = await context.newPage(); // its console fills with the CORS errors it earned
      // Same site, other origin (cookies ignore ports, so the refresh cookie is sent): the
      // Origin allow-list refuses it, and CORS hides the answer anyway.
      await evil.goto(`${attacker.sameSite}/fetch`);
      const fetched = await evil.evaluate(() => window.results);
      assert.match(fetched.simple, /^blocked/, `a credentialed fetch was readable: ${fetched.simple}`);
      assert.match(fetched.withHeader, /^blocked/, `a fetch with X-CSRF-Token was readable: ${fetched.withHeader}`);
      assert.equal(fetched.noCors, 'opaque');

      const form = evil.waitForResponse((r) => r.url().endsWith('/auth/refresh'));
      await evil.goto(`${attacker.sameSite}/form`);
      const formResponse = await form;
      assert.equal(formResponse.status(), 403);
      assert.equal((await formResponse.json()).error, 'csrf_failed');
      await shot(evil, '05-forged-form-post.png');

      // Cross site (localhost vs 127.0.0.1): SameSite=Strict keeps the cookie home.
      const crossSite = evil.waitForResponse((r) => r.url().endsWith('/auth/refresh'));
      await evil.goto(`${attacker.crossSite}/form`);
      const crossSiteResponse = await crossSite;
      assert.equal(crossSiteResponse.status(), 401);
      assert.equal((await crossSiteResponse.json()).error, 'invalid_grant');
      await settle([]);

      const fromAttacker = (r) => r.page.startsWith(attacker.sameSite) || r.page.startsWith(attacker.crossSite);
      const forged = refreshes.slice(before).filter(fromAttacker);
      assert.ok(forged.length >= 3, `the forged requests reached the server: ${JSON.stringify(forged)}`);
      // Answered 401/403, or (status null) failed in the browser: CORS refused the preflight of
      // the request with X-CSRF-Token, and hid the answer of the simple one.
      assert.ok(
        forged.every((r) => r.status === null || r.status === 401 || r.status === 403),
        `a forged refresh got a token: ${JSON.stringify(forged)}`,
      );
      assert.ok(forged.filter((r) => r.csrf).every((r) => r.status === null), 'the preflight was refused');
      await evil.close();
    } finally {
      await attacker.close();
    }
    // Nothing was spent: the real tab's next refresh presents the very cookie the attacker's
    // requests carried, and it still works.
    assert.equal((await cookieNamed(context, '__Secure-keycard_refresh')).value, cookieBefore);
    const next = refreshes.length;
    assert.ok(await page.evaluate(() => keycard.refresh()), 'the real tab still refreshes');
    await settle([]);
    const real = refreshes.slice(next);
    assert.equal(real.length, 1);
    assert.equal(real[0].status, 200);
    assert.equal(real[0].cookie, cookieBefore);
  });

  it('logs out: cookies cleared in the browser, and even a kept copy of the refresh cookie is dead', async () => {
    const kept = (await keycardCookies(context)).filter((c) =>
      ['__Secure-keycard_refresh', '__Host-keycard_csrf'].includes(c.name));
    assert.equal(kept.length, 2);
    const csrf = kept.find((c) => c.name === '__Host-keycard_csrf').value;
    await page.click('#logout');
    await signedOut(page);
    await signedOut(page2); // the other tab heard it on the channel
    assert.equal(await cookieNamed(context, '__Secure-keycard_refresh'), undefined);
    assert.equal(await cookieNamed(context, '__Host-keycard_csrf'), undefined);
    assert.doesNotMatch(await page.evaluate(() => document.cookie), /keycard/);
    // The device cookie outlives the session: this browser stays a known device for login throttling.
    const device = await cookieNamed(context, '__Host-keycard_device');
    assert.ok(device && device.httpOnly && device.secure && device.path === '/', JSON.stringify(device));

    const refreshFromPage = (token) =>
      page.evaluate(async (t) => {
        const r = await fetch('/auth/refresh', { method: 'POST', credentials: 'include', headers: { 'X-CSRF-Token': t } });
        return [r.status, (await r.json()).error];
      }, token);
    assert.deepEqual(await refreshFromPage(csrf), [401, 'invalid_grant'], 'no cookie left to refresh with');

    // A copy of the cookies taken before logout (as malware might) no longer works either.
    await context.addCookies(kept);
    assert.deepEqual(await refreshFromPage(csrf), [401, 'invalid_grant'], 'the revoked session cannot refresh');
    await context.clearCookies();

    await page.reload();
    await signedOut(page);
    assert.equal(await page.evaluate(() => keycard.session()), null);
    await shot(page, '06-logged-out-again.png');
  });

  it('renders the interactive API reference at /docs from the server alone, under its strict CSP', async () => {
    const res = await fetch(`${BASE}/docs`);
    assert.equal(res.status, 200);
    const csp = res.headers.get('content-security-policy');
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /style-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);

    // A context of its own: nothing here touches the demo's cookies or refresh bookkeeping.
    const docsContext = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    try {
      const docs = watch(await docsContext.newPage(), 'docs');
      const requests = [];
      docs.on('request', (req) => requests.push(req.url()));
      // CSP violations also reach the console (and so `problems`); recorded here to name them.
      await docs.addInitScript(() => {
        window.cspViolations = [];
        document.addEventListener('securitypolicyviolation', (e) =>
          window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
      });
      await docs.goto(`${BASE}/docs`);

      // Swagger UI rendered the operations of /openapi.json, grouped by tag.
      const login = docs.locator('.opblock-summary-path', { hasText: /^\/auth\/login$/ });
      await login.waitFor({ timeout: 15000 });
      for (const path of ['/auth/refresh', '/auth/sessions/{id}', '/.well-known/jwks.json', '/docs']) {
        assert.equal(await docs.locator('.opblock-summary-path', { hasText: path }).count() > 0, true, path);
      }
      assert.equal(await docs.locator('.opblock-tag', { hasText: 'discovery' }).count(), 1);

      // Markdown descriptions are rendered: backticks become <code>, none is left in the text.
      const info = docs.locator('.info .description');
      assert.equal(await info.locator('code', { hasText: 'ErrorBody' }).count(), 1, 'the API description');
      assert.doesNotMatch(await info.textContent(), /`/);
      await login.click();
      const loginOp = docs.locator('.opblock', { has: login });
      const description = loginOp.locator('.opblock-description');
      await description.waitFor();
      assert.ok(await description.locator('code', { hasText: '__Host-keycard_csrf' }).count() > 0, 'login');
      assert.doesNotMatch(await description.textContent(), /`/);

      // And it is interactive: "Try it out" on GET /healthz calls this server.
      const health = docs.locator('.opblock', {
        has: docs.locator('.opblock-summary-path', { hasText: /^\/healthz$/ }),
      });
      await health.locator('.opblock-summary').click();
      await health.locator('button.try-out__btn').click();
      const answered = docs.waitForResponse((r) => r.url() === `${BASE}/healthz`);
      await health.locator('button.execute').click();
      assert.equal((await answered).status(), 200);
      await health.locator('.live-responses-table .response-col_status', { hasText: '200' }).waitFor();
      await shot(docs, '07-api-docs.png');

      assert.deepEqual(await docs.evaluate(() => window.cspViolations), [], 'CSP violations on /docs');
      for (const path of ['/docs', '/docs/swagger-ui-bundle.js', '/docs/swagger-ui.css', '/docs/docs.js', '/openapi.json']) {
        assert.ok(requests.includes(BASE + path), `${path} was loaded`);
      }
      const elsewhere = requests.filter((url) => !url.startsWith(`${BASE}/`));
      assert.deepEqual(elsewhere, [], 'every request of /docs goes to the keycard server');
      assert.deepEqual(problems.filter((p) => p.startsWith('docs:')), [], 'console errors on /docs');
    } finally {
      await docsContext.close();
    }
  });

  it('saw no refresh-token reuse, and no errors on any page', async () => {
    const reused = refreshes.filter((r) => r.error === 'refresh_token_reused');
    assert.deepEqual(reused, [], 'a refresh token was presented twice');
    // Every successful refresh presented a distinct cookie and CSRF token (a second presentation
    // would have been answered refresh_token_reused).
    const real = refreshes.filter((r) => r.status === 200);
    assert.ok(real.length >= 8, `${real.length} refreshes`);
    assert.equal(new Set(real.map((r) => r.csrf)).size, real.length, 'a CSRF token (and its cookie) was sent twice');
    const cookies = real.map((r) => r.cookie).filter(Boolean);
    assert.equal(new Set(cookies).size, cookies.length, 'a refresh cookie was sent twice');
    if (SERVER_LOG) {
      const log = readFileSync(SERVER_LOG, 'utf8');
      assert.doesNotMatch(log, /reuse detected/, 'the server detected refresh-token reuse');
    }
    assert.deepEqual(problems, []);
    console.log(`# ${refreshes.length} refresh requests observed (${real.length} successful, each with its own cookie)`);
  });
});
