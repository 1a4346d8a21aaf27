// keycard.js under keycard's own rate limit, in headless Chromium: a refresh answered 429
// `Retry-After: 2` is waited out and the session survives; two tabs of one browser wait once
// (keycard sees one refresh during the wait, not one per tab); 503, 502 and a network error
// during a refresh keep the session, also when the retries run out.
//
// Starts its own keycard (KEYCARD_BIN, set by .ci/browser-test.sh) with 30 refreshes a minute per
// IP (one comes back every 2 s) and a metrics token, so the counts are keycard's own:
// `keycard_rate_limited_total{rule="refresh_ip"}` and `keycard_refreshes_total{outcome="rotated"}`.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { chromium } from 'playwright-core';

import { LAUNCH, serveWebFromDisk, sleep, watch } from './harness.js';

const BIN = process.env.KEYCARD_BIN;
assert.ok(BIN, 'KEYCARD_BIN must name the keycard binary (see .ci/browser-test.sh)');
const METRICS_TOKEN = 'backoff-test-metrics-token';
const password = 'correct horse battery staple';

let server;
let dir;
let BASE;
let browser;
const problems = [];

/// keycard on a free loopback port with a fresh database; resolves to its base URL.
function startKeycard() {
  dir = mkdtempSync(path.join(tmpdir(), 'keycard-backoff-'));
  const args = ['serve', '--bind', '127.0.0.1:0', '--database', path.join(dir, 'keycard.db')];
  args.push('--access-ttl', '5m', '--leeway', '0s', '--reuse-interval', '0s', '--email-verification', 'off');
  const env = {
    ...process.env,
    KEYCARD_LOG: 'info',
    NO_COLOR: '1',
    KEYCARD_REFRESH_PER_IP_PER_MINUTE: '30',
    KEYCARD_METRICS_TOKEN: METRICS_TOKEN,
  };
  server = spawn(BIN, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let log = '';
    const onData = (chunk) => {
      log += chunk;
      const m = /addr=127\.0\.0\.1:(\d+)/.exec(log);
      if (m) resolve(`http://127.0.0.1:${m[1]}`);
    };
    server.stdout.on('data', onData);
    server.stderr.on('data', onData);
    server.on('exit', (code) => reject(new Error(`keycard exited (${code}):\n${log}`)));
    setTimeout(() => reject(new Error(`keycard did not report its address:\n${log}`)), 15000);
  });
}

/// A counter from keycard's /metrics (0 when absent).
async function metric(name, label) {
  const res = await fetch(`${BASE}/metrics`, { headers: { Authorization: `Bearer ${METRICS_TOKEN}` } });
  assert.equal(res.status, 200, 'metrics');
  const text = await res.text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(label));
  return line ? Number(line.trim().split(/\s+/).pop()) : 0;
}

const rateLimitedRefreshes = () => metric('keycard_rate_limited_total', 'rule="refresh_ip"');
const rotations = () => metric('keycard_refreshes_total', 'outcome="rotated"');

/// Spends this IP's refresh budget (refresh tokens that do not exist: the limit is checked first)
/// until keycard answers 429 `Retry-After: 2`, i.e. right after a refresh was spent, so the next
/// one is more than a second away. Resolves to the number of 429s keycard answered meanwhile.
async function spendRefreshBudget() {
  let refused = 0;
  for (let i = 0; i < 200; i++) {
    const res = await fetch(`${BASE}/auth/refresh`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refresh_token: 'not-a-refresh-token' }),
    });
    await res.arrayBuffer();
    if (res.status === 429) {
      refused += 1;
      if (res.headers.get('retry-after') === '2') return refused;
      await sleep(100);
    }
  }
  throw new Error('keycard never answered 429 Retry-After: 2');
}

/// A browser context whose tabs get an empty favicon (keycard has none at /favicon.ico, and the
/// 404 would count as a console error).
async function newContext() {
  const context = await browser.newContext({ bypassCSP: true });
  await serveWebFromDisk(context, BASE);
  await context.route('**/favicon.ico', (route) => route.fulfill({ status: 204, body: '' }));
  return context;
}

/// A tab on keycard's origin with keycard.js loaded as `window.kc` (no demo page: nothing else
/// refreshes behind the test's back).
async function tab(context, name, options = {}) {
  const page = watch(await context.newPage(), name, problems);
  await page.goto(`${BASE}/keycard.js`);
  await page.evaluate(async (options) => {
    const { createKeycard } = await import('/keycard.js');
    window.kc = createKeycard(options);
  }, options);
  return page;
}

/// Passes every POST /auth/refresh of `context` on to keycard and records when it went out, its
/// status and Retry-After, and when it was answered. Right before the first one goes out, this IP's
/// refresh budget is spent, so keycard answers it 429 `Retry-After: 2` however long the test took
/// to get there (spent any earlier, the budget can come back meanwhile on a loaded machine).
/// `spent`: the 429s the spending itself drew, which keycard's counter includes. `settled()`
/// resolves once every refresh seen so far is recorded with its answer.
async function limitFirstRefresh(context, tabs = new Map()) {
  const log = { refreshes: [], spent: 0, pending: [], settled: () => Promise.all(log.pending) };
  await context.route('**/auth/refresh', (route) => {
    const request = route.request();
    if (request.method() !== 'POST') return route.continue();
    const entry = { at: 0, status: null, retryAfter: null, answeredAt: 0, tab: tabs.get(request.frame().page()) ?? '?' };
    log.refreshes.push(entry);
    const first = log.refreshes.length === 1;
    const recorded = (async () => {
      if (first) log.spent += await spendRefreshBudget();
      entry.at = Date.now();
      await route.continue();
      const res = await request.response().catch(() => null);
      entry.answeredAt = Date.now();
      if (res) {
        entry.status = res.status();
        entry.retryAfter = (await res.allHeaders())['retry-after'] ?? null;
      }
    })();
    log.pending.push(recorded);
    return recorded;
  });
  return log;
}

/// Refreshes in the page; resolves to the session after it and when (on this clock) it was done.
async function timedRefresh(page) {
  const sessionId = await page.evaluate(async () => (await window.kc.refresh())?.sessionId ?? null);
  return { sessionId, doneAt: Date.now() };
}

const meStatus = (page) => page.evaluate(async () => (await window.kc.fetch('/auth/me')).status);

describe('keycard.js under a rate limit, in headless Chromium', { concurrency: false }, () => {
  before(async () => {
    BASE = await startKeycard();
    browser = await chromium.launch(LAUNCH);
  });

  after(async () => {
    await browser?.close();
    server?.kill();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  // First, while this IP's refresh budget is whole: keycard itself answers the refreshes let through.
  it('keeps the session through a 503, a network error and a 502 during a refresh, and when the retries run out', async () => {
    problems.length = 0; // each test answers for its own pages
    const context = await newContext();
    const page = await tab(context, 'outage', { retry: { baseDelay: 0.1 } });
    const email = `outage+${Date.now()}@example.com`;
    const login = await page.evaluate(
      async ([email, password]) => {
        await window.kc.signup(email, password);
        return window.kc.login(email, password);
      },
      [email, password],
    );
    // Injected in the browser (keycard never sees these): then the real keycard answers.
    const failures = ['503', 'abort', '502'];
    let sent = 0;
    await context.route('**/auth/refresh', (route) => {
      sent += 1;
      const failure = failures.shift();
      if (failure === 'abort') return route.abort('connectionreset');
      if (failure) return route.fulfill({ status: Number(failure), body: 'down for a moment' });
      return route.continue();
    });
    const rotatedBefore = await rotations();
    const { sessionId } = await timedRefresh(page);
    assert.equal(sessionId, login.sessionId, 'the same session');
    assert.equal(sent, 4, 'three failures, then the refresh that got through');
    assert.equal((await rotations()) - rotatedBefore, 1);

    // Down for good: the retries give up, the error is thrown, the session stays.
    await context.unroute('**/auth/refresh');
    await context.route('**/auth/refresh', (route) => route.fulfill({ status: 503, body: 'down' }));
    const failed = await page.evaluate(() => window.kc.refresh().then(() => null, (err) => ({ status: err.status, code: err.code })));
    assert.deepEqual(failed, { status: 503, code: 'http_503' });
    assert.equal(await page.evaluate(() => window.kc.session()?.sessionId), login.sessionId, 'still logged in');
    assert.equal(await meStatus(page), 200, 'calls go on with the access token');
    await context.unroute('**/auth/refresh');
    assert.equal((await timedRefresh(page)).sessionId, login.sessionId, 'back: the next refresh goes through');
    assert.deepEqual(problems.filter((p) => !/status of (429|50[23])|net::ERR_CONNECTION_RESET/.test(p)), []);
    await context.close();
  });

  it('waits out a 429 Retry-After: 2 on a refresh, and the session survives', async () => {
    problems.length = 0; // each test answers for its own pages
    const context = await newContext();
    const page = await tab(context, 'single tab');
    const email = `patient+${Date.now()}@example.com`;
    const login = await page.evaluate(
      async ([email, password]) => {
        await window.kc.signup(email, password);
        return window.kc.login(email, password);
      },
      [email, password],
    );

    const [limitedBefore, rotatedBefore] = [await rateLimitedRefreshes(), await rotations()];
    const log = await limitFirstRefresh(context);
    const { sessionId, doneAt } = await timedRefresh(page);
    await log.settled();
    const { refreshes } = log;

    assert.deepEqual(
      refreshes.map((r) => [r.status, r.retryAfter]),
      [
        [429, '2'],
        [200, null],
      ],
      'one 429 Retry-After: 2, then one refresh that gets through',
    );
    const waited = refreshes[1].at - refreshes[0].answeredAt;
    assert.ok(waited >= 1900, `asked again ${waited} ms after the 429, before Retry-After`);
    assert.ok(doneAt - refreshes[0].answeredAt < 6000, `done ${doneAt - refreshes[0].answeredAt} ms after the 429`);
    assert.equal(sessionId, login.sessionId, 'the same session');
    assert.equal((await rateLimitedRefreshes()) - limitedBefore - log.spent, 1, 'keycard refused one refresh');
    assert.equal((await rotations()) - rotatedBefore, 1, 'keycard rotated once');
    assert.equal(await meStatus(page), 200, 'calls go on');
    assert.equal(await page.evaluate(() => localStorage.getItem('keycard-refresh-not-before')), null, 'the wait is over');
    assert.deepEqual(problems.filter((p) => !/status of 429/.test(p)), []);
    await context.close();
  });

  it('two tabs of one browser hit by a 429 wait once: one refresh during the wait, not one per tab', async () => {
    problems.length = 0; // each test answers for its own pages
    const context = await newContext();
    const first = await tab(context, 'tab 1');
    const second = await tab(context, 'tab 2');
    const email = `tabs+${Date.now()}@example.com`;
    const login = await first.evaluate(
      async ([email, password]) => {
        await window.kc.signup(email, password);
        return window.kc.login(email, password);
      },
      [email, password],
    );
    // The second tab takes the first tab's login from the channel (no refresh).
    await second.waitForFunction(() => window.kc.session() !== null, null, { timeout: 5000 });

    const [limitedBefore, rotatedBefore] = [await rateLimitedRefreshes(), await rotations()];
    const log = await limitFirstRefresh(context, new Map([[first, 'tab 1'], [second, 'tab 2']]));
    const [one, two] = await Promise.all([timedRefresh(first), timedRefresh(second)]);
    await log.settled();
    const { refreshes } = log;
    const t0 = refreshes[0]?.at ?? 0;
    const story = JSON.stringify(refreshes.map((r) => ({ ...r, at: r.at - t0, answeredAt: r.answeredAt - t0 })));

    assert.deepEqual(
      refreshes.map((r) => [r.status, r.retryAfter]),
      [
        [429, '2'],
        [200, null],
      ],
      `one 429 for both tabs, then one tab refreshes for both: ${story}`,
    );
    const limited = refreshes[0];
    const waited = refreshes[1].at - limited.answeredAt;
    assert.ok(waited >= 1900, `a tab asked keycard ${waited} ms after the 429, during the wait`);
    for (const [name, result] of [
      ['tab 1', one],
      ['tab 2', two],
    ]) {
      // Neither tab is done before the refresh after the wait was answered.
      assert.ok(result.doneAt >= refreshes[1].answeredAt, `${name} was done before the wait was over`);
      assert.ok(result.doneAt - limited.answeredAt < 6000, `${name} done ${result.doneAt - limited.answeredAt} ms after the 429`);
      assert.equal(result.sessionId, login.sessionId, `${name} keeps the session`);
    }
    assert.equal((await rateLimitedRefreshes()) - limitedBefore - log.spent, 1, 'keycard refused one refresh');
    assert.equal((await rotations()) - rotatedBefore, 1, 'keycard rotated once');
    assert.equal(await meStatus(first), 200);
    assert.equal(await meStatus(second), 200);
    assert.deepEqual(problems.filter((p) => !/status of 429/.test(p)), []);
    await context.close();
  });

});
