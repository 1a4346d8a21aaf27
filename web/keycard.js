// keycard.js: the browser client of a keycard token service. An ES module, no dependencies.
//
//   import { createKeycard } from '/keycard.js';
//   const keycard = createKeycard();                 // same origin as the page; {dpop: true}: see "DPoP"
//   await keycard.restore();                         // after a reload: silent refresh from the cookie
//   let step = await keycard.login('ada@example.com', 'correct horse battery');
//   if (step.mfaRequired) step = await keycard.verifyMfa({ code: '123456' });  // second factor
//   const res = await keycard.fetch('/auth/me');     // Bearer added, refreshed when needed
//   await keycard.logout();                          // 'local' (default), 'global' or 'others'
//   await keycard.forgotPassword('ada@example.com');  // mailed links: see "mailed links" below
//   await keycard.mfa.enrolTotp();                   // second factors: see "second factors" below
//   await keycard.passkeys.register({ name: 'Laptop' });   // passkeys: see "passkeys" below
//   await keycard.loginWithPasskey();                // passwordless; `{conditional: true}` for autofill
//
// Where the tokens live:
// - The refresh token is in the `__Secure-keycard_refresh` cookie: HttpOnly, so no script
//   (this one included) can read it; Path=/auth, so it only travels to keycard.
// - The access token lives in this module's closure only: never localStorage, sessionStorage,
//   IndexedDB or a readable cookie. A reload loses it; `restore()` gets a new one.
// - Refreshing is a cookie-authenticated POST, so it carries `X-CSRF-Token`, copied from the
//   readable `__Host-keycard_csrf` cookie (double submit). The server rotates both cookies on
//   every refresh.
//
// Refresh tokens are single-use: presenting one twice is "reuse" and the server revokes the whole
// session. Every tab shares the cookie, so refreshes are single-flight inside a tab (one promise)
// and across the tabs of the origin (Web Locks, or a BroadcastChannel election where Web Locks
// are missing). A tab that waited for another tab's refresh takes that tab's result, broadcast
// on the channel, instead of refreshing again.
//
// Rate limits and outages are not logouts. Only keycard refusing the refresh cookie (401
// `invalid_grant` / `refresh_token_reused`, 403 `csrf_failed`) ends the session. A refresh
// answered 429 or 503 waits the `Retry-After` it was given (plus up to a quarter more, random);
// network errors and other 5xx back off exponentially with jitter; both within the `retry`
// option's bounds. The tabs of one browser share the wait: the time before which nobody may
// refresh is kept in localStorage (`keycard-refresh-not-before`, a timestamp, nothing secret) and
// broadcast on the channel, and every tab checks it under the refresh lock, so during the wait
// keycard sees no refresh from any tab, and after it one tab refreshes for all. Where Web Locks
// exist, the tab that was told to wait also holds a second lock (`keycard-refresh-backoff`) for
// the length of the wait, taken before it lets go of the refresh lock: localStorage reaches other
// tabs a moment late on a busy machine, a lock never does.
//
// Passkeys (WebAuthn): keycard sends the options of each ceremony as JSON with a single-use
// `passkey_token` (kcmf_…, 5 minutes); this client parses them with the browser's
// `PublicKeyCredential.parse…OptionsFromJSON`, runs `navigator.credentials.create/get`, and sends
// the credential's `toJSON()` back with the token. The token stays inside the call that fetched
// it (never returned, stored, put in a URL, an event or an error). The browser allows one WebAuthn
// request at a time: a pending autofill request (`loginWithPasskey({conditional: true})`) is
// aborted by any other ceremony of this client. Browsers without WebAuthn or its JSON helpers get
// `passkeys_unsupported` (status 0) before anything is sent.
//
// DPoP (RFC 9449), with the `dpop: true` option: the session is bound to a key pair this browser
// keeps, so a copied access token or refresh cookie is useless anywhere else. The pair is made
// once per origin by WebCrypto, non-extractable (Ed25519 where the browser has it, else ECDSA
// P-256), and kept as `CryptoKey` objects in IndexedDB (`keycard-dpop`): a reload and every tab
// of the origin use the same key, and no script, this one included, can read the private key's
// bytes. Every token request (login, second factor, passkey sign-in, refresh, logout) carries a
// proof in the `DPoP` header, signed with that key for that one request; keycard binds the session
// to the key and says `token_type: "DPoP"`. A bound access token then goes out as
// `Authorization: DPoP <token>` with a proof that also carries `ath` (the token's hash), to
// keycard and to the `apiOrigins`. Server nonces (`DPoP-Nonce`) are remembered per origin; a
// request refused `use_dpop_nonce` is sent once more with the new one. Proofs are dated on
// keycard's clock (its `Date`) when the page's is off by 3 s or more. Where the browser has no
// WebCrypto or IndexedDB (an insecure page, a storage-less private window), sessions stay Bearer.

const LOCK_NAME = 'keycard-refresh';
/// Held (exclusive) by the tab waiting out a 429/503 for every tab; see the header.
const BACKOFF_LOCK = 'keycard-refresh-backoff';
const CHANNEL_NAME = 'keycard';
// `__Secure-keycard_csrf`: the name before keycard made the CSRF cookie a `__Host-` cookie.
const CSRF_COOKIES = ['__Host-keycard_csrf', '__Secure-keycard_csrf', 'keycard_csrf'];
/// How long a tab that saw another tab rotate the cookie waits for that tab's broadcast.
const ADOPT_WAIT_MS = 1000;
/// Without Web Locks: how long tabs collect competing claims before the oldest one refreshes.
const ELECTION_WINDOW_MS = 60;
/// Without Web Locks: how long a tab waits for the elected tab's result before trying itself.
const ELECTION_TIMEOUT_MS = 10000;
/// keycard calls give up after this long, so a stalled refresh cannot hold every tab's lock forever.
const REQUEST_TIMEOUT_MS = 30000;
/// Where the tabs share the time before which nobody refreshes (after a 429/503/5xx/network error).
const BACKOFF_KEY = 'keycard-refresh-not-before';
/// The error of a route that needs a recent sign-in (RFC 9470).
const STEP_UP_ERROR = 'insufficient_user_authentication';
/// The `retry` option's defaults (seconds).
/// Answers keycard takes for one mfa_token.
const MFA_ANSWERS = 5;
const DEFAULT_RETRY = { attempts: 4, baseDelay: 0.5, maxDelay: 10, maxRetryAfter: 60, maxTotalWait: 60 };
/// The IndexedDB database and object store of the DPoP key pairs (one per keycard origin).
const DPOP_DB = 'keycard-dpop';
const DPOP_STORE = 'keys';
/// A server clock this far from ours (ms, from responses' `Date`) moves the proofs' `iat` onto
/// the server's clock: keycard takes proofs at most 5 s ahead of its clock and 60 s behind.
const CLOCK_SKEW_MS = 3000;

/**
 * An error answered by keycard (or a network failure): `status`, `code`, `description`.
 * `stepUpRequired` is true for 401 `insufficient_user_authentication` (the change needs a recent
 * sign-in: call `stepUp(…)`, then try again); `maxAge` is then the freshness keycard asks for, in
 * seconds, when its `WWW-Authenticate` header was readable.
 */
export class KeycardError extends Error {
  constructor(status, code, description) {
    super(description ? `${code}: ${description}` : code);
    this.name = 'KeycardError';
    this.status = status;
    this.code = code;
    this.description = description || '';
  }

  /** Whether a recent sign-in would let this call through (`stepUp`, then retry). */
  get stepUpRequired() {
    return this.code === STEP_UP_ERROR;
  }
}

/**
 * A keycard client for one page.
 *
 * Options:
 * - `baseUrl`: where keycard runs; default: this page's origin.
 * - `apiOrigins`: origins `fetch()` may send the access token to; default: the page's and keycard's.
 *   A call to any other origin throws, so the token never leaks to a third party.
 * - `refreshMargin`: seconds before expiry to refresh proactively (default 60, at most a fifth of the
 *   token's lifetime).
 * - `retry`: how a refresh that failed for a passing reason (429, 5xx, network error) is tried
 *   again: `{attempts: 4, baseDelay: 0.5, maxDelay: 10, maxRetryAfter: 60, maxTotalWait: 60}`
 *   (seconds; give any subset), or `false` for one attempt per refresh. The session is kept
 *   whatever happens.
 * - `dpop`: `true` binds sessions to a non-extractable key of this browser (DPoP, RFC 9449; see
 *   the header); default `false` (Bearer). Turn it on in every page of the origin that uses
 *   keycard.js: a page without it cannot refresh a bound session.
 */
export function createKeycard(options = {}) {
  const here = globalThis.location ? globalThis.location.href : 'http://localhost/';
  const baseUrl = new URL(options.baseUrl || '/', here).origin;
  const apiOrigins = new Set((options.apiOrigins || [new URL(here).origin, baseUrl]).map((o) => new URL(o).origin));
  const refreshMargin = options.refreshMargin ?? 60;
  const retry = options.retry === false ? { ...DEFAULT_RETRY, attempts: 1 } : { ...DEFAULT_RETRY, ...(options.retry || {}) };
  const tabId = Math.random().toString(36).slice(2) + Date.now().toString(36);
  const dpopWanted = options.dpop === true;

  // --- state, in this closure only ---------------------------------------------------------
  let current = null; // { accessToken, expiresAt (ms, local clock), lifetimeMs, sessionId, bound (DPoP) }
  let generation = 0; // bumped each time `current` changes
  let csrfInMemory = null; // the body's csrf_token: the fallback when the cookie is not readable
  let inflight = null; // this tab's refresh, shared by every caller
  let timer = null;
  let notBeforeHere = 0; // this tab's copy of the shared backoff (where localStorage is unusable)
  // A login waiting for its second factor: { token, methods, expiresAt, answersLeft }. The
  // mfa_token lives here only: never in storage, a URL, an event or an error.
  let pendingMfa = null;
  // The pending autofill (conditional) passkey request: { controller, settled, renewing }.
  let autofill = null;
  let ceremonies = 0; // WebAuthn requests with a browser prompt in flight
  const listeners = new Set();
  const adoptWaiters = new Set();
  const election = { claims: new Map(), busyUntil: 0 }; // fallback without Web Locks
  // DPoP: the key (a promise of `{alg, privateKey, jwk, jkt}`, or of `null` where the browser
  // cannot keep one), the latest `DPoP-Nonce` of each origin, and the server's clock offset.
  let dpopKeyPromise = null;
  const dpopNonces = new Map();
  let clockSkewMs = 0;

  const channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel(CHANNEL_NAME) : null;
  if (channel) channel.onmessage = (event) => onMessage(event.data || {});

  function emit(event) {
    for (const fn of listeners) {
      try {
        fn(event);
      } catch (err) {
        console.error('keycard listener failed', err);
      }
    }
  }

  function setSession(token, { broadcast }) {
    // Expiry on the local clock, from `expires_in`: the JWT's `exp` is on the server's clock.
    const lifetimeMs = token.lifetimeMs ?? token.expires_in * 1000;
    current = {
      accessToken: token.access_token,
      expiresAt: token.expiresAt ?? Date.now() + lifetimeMs,
      lifetimeMs,
      sessionId: token.session_id,
      // DPoP-bound: the answer's `token_type`, else (another tab's token) the token's `cnf`.
      bound: token.bound ?? (token.token_type ? /^dpop$/i.test(token.token_type) : isBoundJwt(token.access_token)),
    };
    generation += 1;
    clearNotBefore();
    if (token.csrf_token) csrfInMemory = token.csrf_token;
    schedule();
    if (broadcast && channel) {
      channel.postMessage({
        type: 'token',
        from: tabId,
        access_token: current.accessToken,
        expiresAt: current.expiresAt,
        lifetimeMs: current.lifetimeMs,
        session_id: current.sessionId,
        bound: current.bound,
        csrf: readCsrf(),
      });
    }
    emit({ type: 'session', session: snapshot() });
    return current.accessToken;
  }

  function clearSession({ broadcast, reason }) {
    const had = current !== null;
    current = null;
    generation += 1;
    csrfInMemory = null;
    clearTimeout(timer);
    if (broadcast && channel) channel.postMessage({ type: 'logout', from: tabId, reason });
    if (had) emit({ type: 'session', session: null, reason });
  }

  function onMessage(msg) {
    if (msg.from === tabId) return;
    if (msg.type === 'token') {
      // Another tab logged in or refreshed: its token is as good as ours, and newer.
      if (!current || msg.expiresAt >= current.expiresAt) {
        const { access_token, expiresAt, lifetimeMs, session_id, bound } = msg;
        setSession({ access_token, expiresAt, lifetimeMs, session_id, bound }, { broadcast: false });
        emit({ type: 'adopted', from: 'another tab' });
      }
      for (const waiter of adoptWaiters) waiter(msg);
      election.busyUntil = 0;
    } else if (msg.type === 'logout') {
      clearSession({ broadcast: false, reason: msg.reason || 'logged out in another tab' });
      for (const waiter of adoptWaiters) waiter(msg);
      election.busyUntil = 0;
    } else if (msg.type === 'refresh-failed') {
      for (const waiter of adoptWaiters) waiter(msg);
      election.busyUntil = 0;
    } else if (msg.type === 'backoff') {
      notBeforeHere = Math.max(notBeforeHere, Number(msg.until) || 0);
    } else if (msg.type === 'claim') {
      election.claims.set(msg.from, msg.at);
      election.busyUntil = Date.now() + ELECTION_TIMEOUT_MS;
    }
  }

  // --- cookies and time --------------------------------------------------------------------

  function readCookie(name) {
    if (typeof document === 'undefined') return null;
    for (const part of document.cookie.split(';')) {
      const eq = part.indexOf('=');
      if (eq > 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
    }
    return null;
  }

  /// The CSRF token: from the cookie when keycard shares the page's origin (so every tab sees the
  /// latest rotation), else the last one a response body gave this tab.
  function readCsrf() {
    for (const name of CSRF_COOKIES) {
      const value = readCookie(name);
      if (value) return value;
    }
    return csrfInMemory;
  }

  function needsRefresh() {
    return !current || Date.now() >= current.expiresAt - proactiveMs();
  }

  /// Refresh this long before expiry: `refreshMargin`, but at most a fifth of the lifetime.
  function proactiveMs() {
    return Math.min(refreshMargin * 1000, current.lifetimeMs / 5);
  }

  function schedule() {
    clearTimeout(timer);
    if (!current) return;
    const due = current.expiresAt - proactiveMs() - Date.now();
    const seen = generation;
    timer = setTimeout(() => {
      if (generation !== seen) return;
      backgroundRefresh();
    }, Math.max(0, due));
  }

  /// A refresh nobody waits for (the timer, a tab coming back): a passing failure is reported
  /// and tried again once the shared wait is over; the session stays.
  function backgroundRefresh() {
    refresh({ proactive: Boolean(current) && Date.now() < current.expiresAt }).catch((err) => {
      emit({ type: 'error', error: err });
      if (!current || !isTransient(err)) return;
      clearTimeout(timer);
      const seen = generation;
      timer = setTimeout(() => {
        if (generation === seen) backgroundRefresh();
      }, Math.max(1000, sharedNotBefore() - Date.now()));
    });
  }

  // The DPoP key is read (or made) at once, so the first login does not wait for IndexedDB.
  if (dpopWanted) dpopKey();

  // A tab coming back from the background may have slept through its timer.
  if (typeof document !== 'undefined') {
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible' && current && needsRefresh()) backgroundRefresh();
    });
  }

  // --- HTTP ------------------------------------------------------------------------------

  /// A request to keycard. `proof`: with DPoP on, a proof goes with it (token requests: login,
  /// second factor, refresh, logout), and a `use_dpop_nonce` refusal is sent once more with the
  /// nonce keycard gave. `accessToken`: sent as `Authorization: DPoP` with a proof of it when it
  /// is bound, else as Bearer. `init.headers` is a plain object.
  async function call(path, init = {}, { proof = false, accessToken = null } = {}) {
    const url = baseUrl + path;
    const method = (init.method || 'GET').toUpperCase();
    const bound = accessToken !== null && isBound(accessToken);
    for (let attempt = 1; ; attempt += 1) {
      const dpop = proof || bound ? await dpopProof(method, url, bound ? accessToken : undefined) : null;
      const headers = { ...init.headers };
      if (accessToken !== null) headers.Authorization = `${bound ? 'DPoP' : 'Bearer'} ${accessToken}`;
      if (dpop) headers.DPoP = dpop.proof;
      let res;
      try {
        const signal = typeof AbortSignal.timeout === 'function' ? AbortSignal.timeout(REQUEST_TIMEOUT_MS) : undefined;
        res = await fetch(url, { credentials: 'include', signal, ...init, headers });
      } catch (err) {
        throw new KeycardError(0, 'network_error', String(err && err.message ? err.message : err));
      }
      noteResponse(url, res);
      emit({ type: 'request', method: init.method || 'GET', path, status: res.status });
      if (dpop && attempt === 1 && (await proofRetry(url, res, dpop))) continue;
      return res;
    }
  }

  // --- DPoP (RFC 9449) ---------------------------------------------------------------------

  /// This browser's key for keycard (made on first use, then the same one from IndexedDB in every
  /// tab), or `null` when DPoP is off or the browser cannot keep a key.
  function dpopKey() {
    if (!dpopWanted || !dpopSupported()) return Promise.resolve(null);
    if (!dpopKeyPromise) {
      dpopKeyPromise = loadDpopKey(baseUrl).catch((err) => {
        // No key (IndexedDB refused, say): this page's sessions stay Bearer.
        emit({ type: 'error', error: new KeycardError(0, 'dpop_unavailable', `no DPoP key: ${err && err.message ? err.message : err}`) });
        return null;
      });
    }
    return dpopKeyPromise;
  }

  /// A proof for `method url` (and `accessToken`: its `ath`), with the origin's latest nonce:
  /// `{proof, nonce, skew}` (`skew`: the clock offset its `iat` used), or `null` without a key.
  async function dpopProof(method, url, accessToken) {
    const key = await dpopKey();
    if (!key) return null;
    const target = new URL(url);
    const nonce = dpopNonces.get(target.origin) ?? null;
    const skew = clockSkewMs;
    const claims = {
      jti: randomId(),
      htm: method,
      htu: target.origin + target.pathname, // without query and fragment (RFC 9449 §4.2)
      iat: Math.floor((Date.now() + skew) / 1000),
    };
    if (accessToken) claims.ath = await sha256Base64url(accessToken);
    if (nonce !== null) claims.nonce = nonce;
    return { proof: await signProof(key, claims), nonce, skew };
  }

  /// Keeps what a response says for later proofs: its `DPoP-Nonce`, and (from keycard) the
  /// offset of keycard's clock when it is far from ours.
  function noteResponse(url, res) {
    const origin = new URL(url).origin;
    const nonce = res.headers.get('DPoP-Nonce');
    if (nonce) dpopNonces.set(origin, nonce);
    if (!dpopWanted || origin !== baseUrl) return;
    const date = Date.parse(res.headers.get('Date') || '');
    if (Number.isNaN(date)) return;
    // `Date` has whole seconds: the server's clock is up to a second past it.
    const offset = date + 500 - Date.now();
    clockSkewMs = Math.abs(offset) >= CLOCK_SKEW_MS ? offset : 0;
  }

  /// Whether `res` refused the proof `sent` for a reason a new proof fixes: for want of a nonce
  /// (RFC 9449 §8, §9) when a new one came with the refusal, or as dated out of keycard's window
  /// (`invalid_dpop_proof`) when the refusal's `Date` moved the clock offset. Then the request is
  /// worth one more try, and `res` is read to its end (let go of).
  async function proofRetry(url, res, sent) {
    if (res.status !== 400 && res.status !== 401) return false;
    const nonce = dpopNonces.get(new URL(url).origin);
    const newNonce = Boolean(nonce) && nonce !== sent.nonce;
    const newClock = clockSkewMs !== sent.skew;
    if (!newNonce && !newClock) return false;
    const challenge = /^\s*DPoP\b/i.test(res.headers.get('WWW-Authenticate') || '') ? res.headers.get('WWW-Authenticate') : '';
    let error = /error="([a-z_]+)"/.exec(challenge)?.[1];
    if (!error) {
      try {
        error = (await res.clone().json()).error;
      } catch {
        return false;
      }
    }
    const retry = (error === 'use_dpop_nonce' && newNonce) || (error === 'invalid_dpop_proof' && newClock);
    if (retry) await res.arrayBuffer().catch(() => null);
    return retry;
  }

  /// Whether `token` is DPoP-bound: the held token's `token_type`, else its `cnf` claim.
  function isBound(token) {
    if (current && current.accessToken === token) return current.bound;
    return isBoundJwt(token);
  }

  async function failure(res) {
    let body = {};
    try {
      body = await res.json();
    } catch {
      // not JSON: keep the status only
    }
    const err = new KeycardError(res.status, body.error || `http_${res.status}`, body.error_description || '');
    if (err.stepUpRequired) {
      const maxAge = /max_age=(\d+)/.exec(res.headers.get('WWW-Authenticate') || '');
      if (maxAge) err.maxAge = Number(maxAge[1]);
    }
    return err;
  }

  function json(body, extra = {}) {
    return { headers: { 'Content-Type': 'application/json', ...extra }, body: JSON.stringify(body) };
  }

  // --- refresh: single-flight in the tab and across tabs ---------------------------------

  /// Rotates the refresh cookie for a new access token, unless another tab just did it.
  /// Resolves to the access token, or `null` when there is no session (anymore). `proactive`:
  /// the current token still works, so a passing failure is thrown at once (the caller goes on
  /// with that token) instead of being waited out.
  function refresh({ proactive = false } = {}) {
    if (!inflight) inflight = refreshOnce(proactive).finally(() => (inflight = null));
    return inflight;
  }

  async function refreshOnce(proactive) {
    const seenGeneration = generation;
    const csrfBefore = readCsrf();
    let failures = 0;
    let waited = 0;
    for (;;) {
      // Some tab was told to wait (429/503 `Retry-After`, or backing off): nobody refreshes
      // before then. Waited outside the lock, so a logout can still take it meanwhile.
      const wait = sharedNotBefore() - Date.now();
      if (wait > 0) {
        if (proactive || waited + wait > retry.maxTotalWait * 1000) throw deferred(wait);
        await sleep(wait);
        waited += wait;
      }
      const started = Date.now();
      if (!(await waitOutBackoffLock(proactive))) throw deferred(1000);
      waited += Date.now() - started;
      const outcome = await withCrossTabLock(async () => {
        // While this tab waited, did another tab refresh (and broadcast its token)?
        if (generation !== seenGeneration && current && !needsRefresh()) return { token: current.accessToken };
        // Another tab got a 429 while this one queued for the lock: wait with everyone.
        if (sharedNotBefore() > Date.now() || (await backoffLockHeld())) return { wait: true };
        const csrfNow = readCsrf();
        if (csrfBefore && csrfNow && csrfNow !== csrfBefore) {
          // The cookie rotated under us: another tab refreshed. Take its result rather than spend
          // the new cookie too (which is safe, but rotates for nothing).
          const adopted = await waitForBroadcast(csrfNow, ADOPT_WAIT_MS);
          if (adopted && adopted.type === 'token' && current) return { token: current.accessToken };
          if (adopted && adopted.type === 'logout') return { token: null };
        }
        try {
          return { token: await exchange() };
        } catch (err) {
          if (!isTransient(err)) throw err;
          failures += 1;
          // Decided and shared before the lock is released, so the next tab in line sees it.
          const delay = retryDelayMs(failures, err.retryAfter);
          // A longer Retry-After than we wait for still holds every tab back, up to that cap (a
          // broken proxy saying "a day" must not stop refreshes for a day).
          const until = Date.now() + (delay ?? retry.maxRetryAfter * 1000);
          shareNotBefore(until);
          await holdBackoffLock(until);
          const giveUp = delay === null || proactive || failures >= retry.attempts || waited + delay > retry.maxTotalWait * 1000;
          if (giveUp) throw err;
          return { wait: true };
        }
      });
      if (!outcome.wait) return outcome.token;
    }
  }

  /// The error of a refresh that must not be sent for another `ms`.
  function deferred(ms) {
    const err = new KeycardError(0, 'refresh_deferred', `backing off; the next refresh in ${Math.ceil(ms / 1000)} s`);
    err.retryAfter = ms / 1000;
    return err;
  }

  function hasLocks() {
    return Boolean(globalThis.navigator && navigator.locks && typeof navigator.locks.request === 'function');
  }

  /// Takes the backoff lock until `until` (in the background); resolves once it is held, so the
  /// refresh lock is released only after every other tab can see the wait.
  function holdBackoffLock(until) {
    if (!hasLocks()) return Promise.resolve();
    return new Promise((held) => {
      navigator.locks
        .request(BACKOFF_LOCK, { mode: 'exclusive' }, () => {
          held();
          return sleep(Math.max(0, until - Date.now()));
        })
        .catch(held);
    });
  }

  /// Whether some tab is waiting out a 429/503 for every tab (holds the backoff lock).
  async function backoffLockHeld() {
    if (!hasLocks() || typeof navigator.locks.query !== 'function') return false;
    const { held = [] } = await navigator.locks.query();
    return held.some((lock) => lock.name === BACKOFF_LOCK && lock.mode === 'exclusive');
  }

  /// Waits until no tab holds the backoff lock. `proactive`: does not wait, and resolves to
  /// false when one does.
  async function waitOutBackoffLock(proactive) {
    if (!hasLocks()) return true;
    const options = proactive ? { mode: 'shared', ifAvailable: true } : { mode: 'shared' };
    return navigator.locks.request(BACKOFF_LOCK, options, (lock) => lock !== null);
  }

  /// How long to wait after failed attempt number `failures`: `Retry-After` (seconds) plus up to
  /// a quarter more, or `null` when that exceeds `maxRetryAfter`; without it, exponential backoff
  /// from `baseDelay` capped at `maxDelay`, with equal jitter (half fixed, half random).
  function retryDelayMs(failures, retryAfter) {
    if (retryAfter !== null && retryAfter !== undefined) {
      if (retryAfter > retry.maxRetryAfter) return null;
      return retryAfter * 1000 * (1 + Math.random() / 4);
    }
    const full = Math.min(retry.maxDelay, retry.baseDelay * 2 ** Math.min(failures - 1, 20)) * 1000;
    return full / 2 + (Math.random() * full) / 2;
  }

  function sharedNotBefore() {
    let stored = 0;
    try {
      stored = Number(globalThis.localStorage?.getItem(BACKOFF_KEY)) || 0;
    } catch {
      // storage disabled: the channel's copy is all there is
    }
    return Math.max(stored, notBeforeHere);
  }

  function shareNotBefore(until) {
    notBeforeHere = Math.max(notBeforeHere, until);
    try {
      globalThis.localStorage?.setItem(BACKOFF_KEY, String(Math.round(until)));
    } catch {
      // storage disabled or full
    }
    if (channel) channel.postMessage({ type: 'backoff', from: tabId, until });
  }

  function clearNotBefore() {
    notBeforeHere = 0;
    try {
      if (globalThis.localStorage?.getItem(BACKOFF_KEY) !== null) localStorage.removeItem(BACKOFF_KEY);
    } catch {
      // storage disabled
    }
  }

  /// The actual POST /auth/refresh; call only while holding the cross-tab lock.
  async function exchange() {
    const csrf = readCsrf();
    if (!csrf) {
      // No CSRF cookie, so no refresh cookie either (they are set and cleared together).
      clearSession({ broadcast: false, reason: 'no session cookie' });
      return null;
    }
    const res = await call('/auth/refresh', { method: 'POST', headers: { 'X-CSRF-Token': csrf } }, { proof: true });
    if (res.ok) {
      const token = await res.json();
      emit({ type: 'refreshed' });
      return setSession(token, { broadcast: true });
    }
    const err = await failure(res);
    err.retryAfter = retryAfterOf(res);
    if (res.status === 401 || res.status === 403) {
      // invalid_grant (expired / revoked / logged out), refresh_token_reused (the server revoked
      // the session) or csrf_failed: this session is over, in every tab.
      clearSession({ broadcast: true, reason: err.code });
      return null;
    }
    if (channel) channel.postMessage({ type: 'refresh-failed', from: tabId });
    throw err; // 429, 5xx: transient (retried by refreshOnce); the session may still be fine
  }

  function waitForBroadcast(csrf, ms) {
    return new Promise((resolve) => {
      const done = (msg) => {
        clearTimeout(t);
        adoptWaiters.delete(waiter);
        resolve(msg);
      };
      // `csrf` null: any outcome will do; else the token that goes with this CSRF cookie.
      const waiter = (msg) => {
        if (csrf === null || msg.type !== 'token' || !msg.csrf || msg.csrf === csrf) done(msg);
      };
      const t = setTimeout(() => done(null), ms);
      adoptWaiters.add(waiter);
    });
  }

  function withCrossTabLock(fn) {
    if (hasLocks()) {
      return navigator.locks.request(LOCK_NAME, { mode: 'exclusive' }, fn);
    }
    if (channel) return withElection(fn);
    return fn(); // a lone tab: the in-tab promise is all the single-flight there is
  }

  /// Without Web Locks: claim the refresh on the channel, wait a moment for competing claims, and
  /// let the oldest claim win. The others wait for its broadcast, then run `fn`, which sees the
  /// new token (or the rotated cookie) and takes that result. Best effort: Web Locks are exact.
  async function withElection(fn) {
    if (election.busyUntil > Date.now()) {
      await waitForBroadcast(null, election.busyUntil - Date.now());
    } else {
      const at = Date.now();
      election.claims.clear();
      channel.postMessage({ type: 'claim', from: tabId, at });
      await new Promise((r) => setTimeout(r, ELECTION_WINDOW_MS));
      const beaten = [...election.claims].some(([id, t]) => t < at || (t === at && id < tabId));
      if (beaten) await waitForBroadcast(null, ELECTION_TIMEOUT_MS);
    }
    try {
      return await fn();
    } finally {
      election.busyUntil = 0;
    }
  }

  // --- the public API --------------------------------------------------------------------

  function snapshot() {
    if (!current) return null;
    return {
      sessionId: current.sessionId,
      expiresAt: current.expiresAt,
      tokenType: current.bound ? 'DPoP' : 'Bearer',
      claims: decodeClaims(current.accessToken),
    };
  }

  /// The access token, refreshed first when it is missing or close to expiry.
  async function accessToken() {
    if (current && !needsRefresh()) return current.accessToken;
    if (!current && !readCsrf()) return null;
    const usable = current && Date.now() < current.expiresAt;
    try {
      return await refresh({ proactive: usable });
    } catch (err) {
      // A proactive refresh that failed for a passing reason: the token still works until it expires.
      if (isTransient(err) && current && Date.now() < current.expiresAt) return current.accessToken;
      throw err;
    }
  }

  function resolveUrl(input) {
    const url = new URL(input instanceof Request ? input.url : String(input), baseUrl + '/');
    if (!apiOrigins.has(url.origin)) {
      throw new KeycardError(0, 'origin_not_allowed', `not sending the access token to ${url.origin}; add it to apiOrigins`);
    }
    return url;
  }

  async function authorizedFetch(input, init = {}) {
    const url = resolveUrl(input);
    const base = new Request(input instanceof Request ? input : url, init);
    const target = url.origin + url.pathname;
    // A DPoP-bound token goes with a fresh proof of this request (and `ath`), once more with
    // the server's nonce when it asks for one; any other as Bearer.
    const send = async (token) => {
      const bound = Boolean(token) && isBound(token);
      for (let attempt = 1; ; attempt += 1) {
        const req = base.clone();
        let dpop = null;
        if (bound) {
          req.headers.set('Authorization', `DPoP ${token}`);
          dpop = await dpopProof(req.method, target, token);
          if (dpop) req.headers.set('DPoP', dpop.proof);
        } else if (token) {
          req.headers.set('Authorization', `Bearer ${token}`);
        }
        const res = await fetch(req);
        noteResponse(target, res);
        emit({ type: 'request', method: req.method, path: url.pathname, status: res.status });
        if (dpop && attempt === 1 && (await proofRetry(target, res, dpop))) continue;
        return res;
      }
    };
    const token = await accessToken();
    let res = await send(token);
    if (res.status === 401 && token && (await isInvalidToken(res))) {
      const fresh = current && current.accessToken !== token ? current.accessToken : await refresh();
      if (fresh) res = await send(fresh);
    }
    return res;
  }

  /// A Bearer call to keycard (through `fetch`, so refreshed as needed) with an optional JSON
  /// body: the answer's JSON (`null` for 204), or a thrown `KeycardError`.
  async function bearerJson(method, path, body) {
    if (!current && !readCsrf()) throw new KeycardError(0, 'not_signed_in', 'log in first');
    const init = body === undefined ? { method } : { method, ...json(body) };
    const res = await authorizedFetch(path, init);
    if (!res.ok) throw await failure(res);
    if (res.status === 204) return null;
    return res.json().catch(() => null);
  }

  /// `{code}`, `{recoveryCode}` (and for step-up `{password}`) as keycard's wire names.
  function answerBody(answer, { password = false } = {}) {
    const body = {};
    if (answer && answer.code !== undefined && answer.code !== null) body.code = String(answer.code).trim();
    if (answer && answer.recoveryCode !== undefined && answer.recoveryCode !== null) body.recovery_code = String(answer.recoveryCode).trim();
    if (password && answer && typeof answer.password === 'string') body.password = answer.password;
    if (Object.keys(body).length === 0) {
      throw new KeycardError(0, 'invalid_request', password ? 'give a code, a recoveryCode or a password' : 'give a code or a recoveryCode');
    }
    return body;
  }

  /// What the app may see of a pending second step (never the mfa_token).
  function mfaStep() {
    if (!pendingMfa) return null;
    return { mfaRequired: true, methods: [...pendingMfa.methods], expiresAt: pendingMfa.expiresAt };
  }

  function livePendingMfa() {
    if (pendingMfa && (Date.now() >= pendingMfa.expiresAt || pendingMfa.answersLeft <= 0)) pendingMfa = null;
    return pendingMfa;
  }

  /// A cookie-less JSON POST: the body's answer (`null` for 204), or a thrown `KeycardError`.
  async function postJson(path, body) {
    const res = await call(path, { method: 'POST', credentials: 'omit', ...json(body) });
    if (!res.ok) throw await failure(res);
    if (res.status === 204) return null;
    return res.json().catch(() => null);
  }

  // --- passkeys (WebAuthn) ---------------------------------------------------------------

  /// A ceremony's options from keycard: `{token, publicKey, expiresIn}`. `bearer`: the signed-in
  /// calls (registration, step-up); else a cookie-less POST (passwordless sign-in).
  async function passkeyOptions(path, { bearer }) {
    const body = bearer ? await bearerJson('POST', path, {}) : await postJson(path, {});
    if (!body || typeof body.passkey_token !== 'string' || !body.options || typeof body.options.publicKey !== 'object') {
      throw new KeycardError(0, 'invalid_response', `${path} answered without passkey_token and options.publicKey`);
    }
    return { token: body.passkey_token, publicKey: body.options.publicKey, expiresIn: Number(body.expires_in) || 300 };
  }

  /// Runs `fn` as a ceremony with a browser prompt: the autofill request (if any) is aborted
  /// first, since the browser takes one WebAuthn request at a time.
  async function withCeremony(kind, fn) {
    requireWebAuthn(kind);
    ceremonies += 1;
    try {
      await stopAutofill();
      return await fn();
    } finally {
      ceremonies -= 1;
    }
  }

  /// Aborts the pending autofill request; resolves once the browser has let go of it.
  function stopAutofill() {
    const pending = autofill;
    autofill = null;
    if (!pending) return Promise.resolve();
    pending.controller.abort();
    return pending.settled;
  }

  /// A passwordless sign-in in the browser's autofill (conditional mediation). The options' token
  /// lives five minutes while the request may wait for the user much longer: shortly before it
  /// dies, the request is renewed with fresh options, so what the user picks is always answerable.
  async function autofillLogin(signal) {
    requireWebAuthn('get');
    const PKC = globalThis.PublicKeyCredential;
    const available = typeof PKC.isConditionalMediationAvailable === 'function' && (await PKC.isConditionalMediationAvailable());
    if (!available) throw new KeycardError(0, 'passkeys_unsupported', 'this browser does not offer passkeys in autofill (conditional mediation)');
    if (ceremonies > 0) throw new KeycardError(0, 'passkey_busy', 'another passkey request is in progress');
    await stopAutofill();
    for (;;) {
      if (signal && signal.aborted) throw aborted();
      const { token, publicKey, expiresIn } = await passkeyOptions('/auth/passkeys/login/options', { bearer: false });
      if (signal && signal.aborted) throw aborted();
      if (ceremonies > 0) throw new KeycardError(0, 'passkey_busy', 'another passkey request is in progress');
      const controller = new AbortController();
      const mine = { controller, settled: null, renewing: false };
      const onAbort = () => controller.abort();
      if (signal) signal.addEventListener('abort', onAbort, { once: true });
      const renew = setTimeout(() => {
        mine.renewing = true;
        controller.abort();
      }, Math.max(10, expiresIn - 20) * 1000);
      const untimed = { ...publicKey };
      delete untimed.timeout; // the autofill waits as long as the page does (renewed above)
      const request = runCeremony('get', untimed, { mediation: 'conditional', signal: controller.signal });
      mine.settled = request.then(
        () => {},
        () => {},
      );
      autofill = mine;
      let credential;
      try {
        credential = await request;
      } catch (err) {
        if (mine.renewing && err.code === 'passkey_aborted') continue;
        throw err;
      } finally {
        clearTimeout(renew);
        if (signal) signal.removeEventListener('abort', onAbort);
        if (autofill === mine) autofill = null;
      }
      return finishPasskeyLogin(token, credential);
    }
  }

  /// Spends the sign-in's token with the assertion: the session, exactly as after `login`.
  async function finishPasskeyLogin(token, credential) {
    const res = await call('/auth/passkeys/login', { method: 'POST', ...json({ passkey_token: token, credential }) }, { proof: true });
    if (!res.ok) throw await failure(res);
    pendingMfa = null;
    setSession(await res.json(), { broadcast: true });
    return snapshot();
  }

  return {
    /** Creates an account (it does not log in). Resolves to `{id, email, created_at}`. */
    async signup(email, password) {
      const res = await call('/auth/signup', { method: 'POST', ...json({ email, password }) });
      if (!res.ok) throw await failure(res);
      return res.json();
    },

    /**
     * Logs in: the refresh token arrives as the HttpOnly cookie, the access token stays here.
     * Resolves to the session (`{sessionId, expiresAt, claims}`), or, when the account has a
     * second factor, to `{mfaRequired: true, methods, expiresAt}` (`methods`: `'totp'`,
     * `'webauthn'` (a passkey), `'recovery_code'`; `expiresAt`: ms, local clock) and no session
     * yet: finish with `verifyMfa(…)`. The second step's token stays inside this client.
     */
    async login(email, password) {
      pendingMfa = null;
      // A password sign-in ends a waiting autofill request (it would sign in a second time).
      stopAutofill();
      const res = await call('/auth/login', { method: 'POST', ...json({ email, password }) }, { proof: true });
      if (!res.ok) throw await failure(res);
      const body = await res.json();
      if (body.mfa_required) {
        pendingMfa = {
          token: body.mfa_token,
          methods: Array.isArray(body.methods) ? body.methods : [],
          expiresAt: Date.now() + (Number(body.expires_in) || 300) * 1000,
          answersLeft: MFA_ANSWERS,
          // The request options listing the account's passkeys, when it has any.
          webauthn: body.webauthn && typeof body.webauthn.publicKey === 'object' ? body.webauthn.publicKey : null,
        };
        const step = mfaStep();
        emit({ type: 'mfa', methods: step.methods, expiresAt: step.expiresAt });
        return step;
      }
      setSession(body, { broadcast: true });
      return snapshot();
    },

    /**
     * The second step of a login that resolved `{mfaRequired: true}`: `{code}` (the
     * authenticator app's six digits), `{webauthn: true}` (one of the account's passkeys, when
     * `methods` has `'webauthn'`: the browser asks for it) or `{recoveryCode}`. Resolves to the
     * session, exactly as `login` does (cookies set, other tabs told). Throws `invalid_mfa` for a
     * wrong code: ask again while `mfaPending()` is not `null` (keycard takes five answers within
     * five minutes); `mfa_not_pending` (status 0) when no login waits for a second factor (log in
     * again); for a passkey also the ceremony's errors (`passkey_cancelled`, …, status 0: nothing
     * was sent, the login still waits).
     */
    async verifyMfa(answer) {
      const pending = livePendingMfa();
      if (!pending) throw new KeycardError(0, 'mfa_not_pending', 'no login is waiting for a second factor: log in again');
      let body;
      if (answer && answer.webauthn) {
        if (!pending.webauthn) throw new KeycardError(0, 'invalid_request', 'this login offers no passkey');
        const options = pending.webauthn;
        const webauthn = await withCeremony('get', () => runCeremony('get', options));
        // The user may have taken a while: is the login still waiting?
        if (livePendingMfa() !== pending) throw new KeycardError(0, 'mfa_not_pending', 'the login expired meanwhile: log in again');
        body = { mfa_token: pending.token, webauthn };
      } else {
        body = { mfa_token: pending.token, ...answerBody(answer) };
      }
      pending.answersLeft -= 1;
      const res = await call('/auth/mfa/verify', { method: 'POST', ...json(body) }, { proof: true });
      if (!res.ok) {
        const err = await failure(res);
        // Refused for good (not a wrong code nor a passing failure): the token is spent.
        if (err.code !== 'invalid_mfa' && !isTransient(err) && err.status !== 429) pendingMfa = null;
        livePendingMfa();
        throw err;
      }
      if (pendingMfa === pending) pendingMfa = null;
      setSession(await res.json(), { broadcast: true });
      return snapshot();
    },

    /** The login waiting for its second factor: `{mfaRequired: true, methods, expiresAt}`, or `null`. */
    mfaPending() {
      livePendingMfa();
      return mfaStep();
    },

    /** Forgets a login waiting for its second factor (a "back" button). */
    cancelMfa() {
      pendingMfa = null;
    },

    /**
     * Proves the signed-in user again on this session, for changes that need a recent sign-in
     * (401 `insufficient_user_authentication`, `err.stepUpRequired`): `{code}`,
     * `{passkey: true}` (one of the account's passkeys: the browser asks for it) or
     * `{recoveryCode}` on an account with a second factor, `{password}` on one without. The new
     * access token (fresh `auth_time`) replaces the held one, in every tab; the refresh cookie
     * stays. Resolves to the session. Throws `invalid_mfa`, `invalid_credentials`, and for a
     * passkey the ceremony's errors (`passkey_cancelled`, …).
     */
    async stepUp(answer) {
      let token;
      if (answer && answer.passkey) {
        token = await withCeremony('get', async () => {
          const options = await passkeyOptions('/auth/step-up/options', { bearer: true });
          const webauthn = await runCeremony('get', options.publicKey);
          return bearerJson('POST', '/auth/step-up', { passkey_token: options.token, webauthn });
        });
      } else {
        token = await bearerJson('POST', '/auth/step-up', answerBody(answer, { password: true }));
      }
      if (!current) throw new KeycardError(0, 'not_signed_in', 'the session ended');
      setSession({ ...token, session_id: current.sessionId }, { broadcast: true });
      return snapshot();
    },

    /**
     * Second factors of the signed-in account (Bearer, like `fetch`). Enrolling, removing and
     * new recovery codes need a recent sign-in: they throw `insufficient_user_authentication`
     * (`err.stepUpRequired`) otherwise; `stepUp(…)` and try again.
     */
    mfa: {
      /**
       * `{factors: [{id, kind, name, created_at, last_used_at}], recovery_codes_left}`; `kind`:
       * `'totp'` or `'passkey'` (passkeys also say `backed_up`: synced to a cloud account).
       */
      list() {
        return bearerJson('GET', '/auth/mfa');
      },
      /**
       * Starts an authenticator app: `{factor_id, secret, otpauth_uri, qr_code}` (`qr_code`: a
       * `data:image/svg+xml` URL to show as an image). Pending until `confirmTotp`.
       */
      enrolTotp() {
        return bearerJson('POST', '/auth/mfa/totp');
      },
      /**
       * Activates it with a first code: `{factor_id, recovery_codes?}`; the account's first
       * factor comes with ten recovery codes, shown this once. Throws `invalid_mfa`.
       */
      confirmTotp(factorId, code) {
        return bearerJson('POST', '/auth/mfa/totp/confirm', { factor_id: factorId, code: String(code).trim() });
      },
      /** Removes a factor (the last one takes the recovery codes with it). Resolves to `null`. */
      remove(factorId) {
        return bearerJson('DELETE', `/auth/mfa/factors/${encodeURIComponent(factorId)}`);
      },
      /** Renames a factor (an authenticator app or a passkey). Resolves to `null`. */
      rename(factorId, name) {
        return bearerJson('PATCH', `/auth/mfa/factors/${encodeURIComponent(factorId)}`, { name: String(name).trim() });
      },
      /** Ten new recovery codes replace every earlier one: `{recovery_codes}`. */
      regenerateRecoveryCodes() {
        return bearerJson('POST', '/auth/mfa/recovery-codes');
      },
    },

    /**
     * Passkeys of the signed-in account (Bearer, like `fetch`). They are listed with the other
     * factors by `mfa.list()` (`kind: 'passkey'`, with `backed_up`), and removed with
     * `mfa.remove(id)`. Registering needs a recent sign-in (`err.stepUpRequired` otherwise).
     */
    passkeys: {
      /**
       * Whether this browser can use passkeys with keycard.js (WebAuthn, a secure page, the JSON
       * helpers). Without, every passkey call throws `passkeys_unsupported` before sending anything.
       */
      supported() {
        return missingWebAuthn('create') === null && missingWebAuthn('get') === null;
      },
      /** Resolves to whether the browser offers passkeys in autofill (`loginWithPasskey({conditional: true})`). */
      async autofillAvailable() {
        const PKC = globalThis.PublicKeyCredential;
        if (missingWebAuthn('get') || typeof PKC.isConditionalMediationAvailable !== 'function') return false;
        return PKC.isConditionalMediationAvailable().catch(() => false);
      },
      /**
       * Creates a passkey on this device for the signed-in account (the browser asks the user)
       * and adds it: `{factor_id, name, recovery_codes?}`; the account's first factor comes with
       * ten recovery codes, shown this once. `name`: optional, for the list. Throws
       * `insufficient_user_authentication`, and the ceremony's errors: `passkey_cancelled`,
       * `passkey_exists` (this authenticator already has one for the account),
       * `passkeys_unsupported`, `passkey_wrong_site` (all status 0: nothing was added).
       */
      register({ name } = {}) {
        return withCeremony('create', async () => {
          const options = await passkeyOptions('/auth/passkeys/register/options', { bearer: true });
          const credential = await runCeremony('create', options.publicKey);
          const body = { passkey_token: options.token, credential };
          if (typeof name === 'string' && name.trim()) body.name = name.trim();
          return bearerJson('POST', '/auth/passkeys/register', body);
        });
      },
      /** Renames a passkey (like `mfa.rename`). Resolves to `null`. */
      rename(factorId, name) {
        return bearerJson('PATCH', `/auth/mfa/factors/${encodeURIComponent(factorId)}`, { name: String(name).trim() });
      },
      /** Removes a passkey (like `mfa.remove`; keycard forgets it, the device keeps it until the user deletes it there). */
      remove(factorId) {
        return bearerJson('DELETE', `/auth/mfa/factors/${encodeURIComponent(factorId)}`);
      },
    },

    /**
     * Signs in with a passkey, no password: the browser lists the passkeys it holds for this
     * site and the user picks one. Resolves to the session, exactly as `login` does (cookies set,
     * other tabs told; a passkey is a whole sign-in, never `mfaRequired`).
     *
     * Options: `conditional: true` puts the passkeys in the autofill of the page's
     * `<input autocomplete="username webauthn">` instead of a dialog; call it at page load,
     * and it resolves whenever the user picks one (it renews its options before they expire).
     * It is aborted by `signal`, and by any other passkey call of this client (the browser takes
     * one WebAuthn request at a time): abort it yourself when the user signs in with the
     * password. `signal`: an `AbortSignal`. `delivery`: only `'cookie'` (the default): this
     * client keeps sessions in the cookie.
     *
     * Throws `invalid_credentials` (keycard refused the passkey: unknown or removed), and the
     * ceremony's errors, status 0: `passkey_cancelled` (the user dismissed it, or the device has
     * no passkey here), `passkey_aborted`, `passkeys_unsupported`, `passkey_wrong_site`,
     * `passkey_busy` (autofill while another passkey request is open).
     */
    async loginWithPasskey({ conditional = false, signal, delivery = 'cookie' } = {}) {
      if (delivery !== 'cookie') {
        throw new KeycardError(0, 'invalid_request', "keycard.js keeps sessions in the cookie: delivery 'cookie' only");
      }
      if (conditional) return autofillLogin(signal);
      return withCeremony('get', async () => {
        const options = await passkeyOptions('/auth/passkeys/login/options', { bearer: false });
        if (signal && signal.aborted) throw aborted();
        const credential = await runCeremony('get', options.publicKey, { signal });
        return finishPasskeyLogin(options.token, credential);
      });
    },

    /**
     * Ends the session: `'local'` (this browser), `'global'` (every session of the user) or
     * `'others'` (all but this one). Uses the refresh cookie, so it works with an expired
     * access token; holds the refresh lock so it never races another tab's rotation.
     */
    async logout(scope = 'local') {
      if (scope !== 'others') pendingMfa = null;
      const body = json({ scope });
      let res = null;
      try {
        res = await withCrossTabLock(async () => {
          const csrf = readCsrf();
          if (csrf) {
            const headers = { ...body.headers, 'X-CSRF-Token': csrf };
            return call('/auth/logout', { method: 'POST', ...body, headers }, { proof: true });
          }
          if (current) return call('/auth/logout', { method: 'POST', ...body }, { accessToken: current.accessToken });
          return null;
        });
      } finally {
        // Even when keycard cannot be reached, this browser forgets the access token.
        if (scope !== 'others') clearSession({ broadcast: true, reason: 'logged out' });
      }
      // 401: the session was already over, which is what was asked.
      if (res && !res.ok && res.status !== 401) throw await failure(res);
    },

    /** After a page load: restores the session from the refresh cookie, if there is one. */
    async restore() {
      if (current) return snapshot();
      await refresh();
      return snapshot();
    },

    /** Refreshes now (normally automatic). Resolves to the session, or `null`. */
    async refresh() {
      await refresh();
      return snapshot();
    },

    /**
     * `fetch` with `Authorization: Bearer`, for keycard and your own APIs (`apiOrigins`).
     * Refreshes first when the token is about to expire, and once more if the server still
     * answers 401 `invalid_token`, then retries the call once. Bodies must be re-sendable
     * (strings, FormData, Blobs; not streams).
     */
    fetch: authorizedFetch,

    // --- mailed links: password reset, email verification, email change ----------------------
    // The link-token calls send no cookie (`credentials: 'omit'`): the token alone is the proof.

    /**
     * Asks for a password-reset link by mail. Resolves to `{status, message}`: the same answer
     * whether or not the address has an account.
     */
    forgotPassword(email) {
      return postJson('/auth/password/forgot', { email });
    },

    /**
     * Sets a new password with the token of a reset link (see `takeLinkToken`). Every session of
     * the account is revoked: log in again. Throws `invalid_reset_token` (used, expired,
     * superseded) or `weak_password`.
     */
    async resetPassword(token, newPassword) {
      await postJson('/auth/password/reset', { token, new_password: newPassword });
    },

    /** Mails a new verification link. Resolves to `{status, message}`, the same for every address. */
    resendVerification(email) {
      return postJson('/auth/email/verify/resend', { email });
    },

    /**
     * Verifies the address with the token of a verification link. Resolves to
     * `{status: 'verified'}`; throws `invalid_verification_token`. Access tokens issued from now
     * on carry `email_verified: true` (`refresh()` gets one at once).
     */
    verifyEmail(token) {
      return postJson('/auth/email/verify', { token });
    },

    /**
     * Asks to change the signed-in account's address (Bearer, like `fetch`). keycard mails a
     * confirmation link to `newEmail` and a cancel link to the current address; nothing changes
     * until the new address is confirmed. Resolves to `{status, message}` (the same when the new
     * address is taken); throws `invalid_credentials` for a wrong password, `not_signed_in`
     * without a session.
     */
    changeEmail(newEmail, password) {
      return bearerJson('POST', '/auth/email', { new_email: newEmail, password });
    },

    /** Confirms an address change with the token of the link mailed to the new address. Resolves to `{status: 'changed'}`. */
    confirmEmailChange(token) {
      return postJson('/auth/email/confirm', { token });
    },

    /**
     * Cancels an address change with the token of the link mailed to the old address; a change
     * already confirmed is undone (the old address comes back, every session ends). Resolves to
     * `{status: 'cancelled'}`; throws `invalid_email_change_token`.
     */
    cancelEmailChange(token) {
      return postJson('/auth/email/cancel', { token });
    },

    /**
     * The current session: `{sessionId, expiresAt, tokenType, claims}` (`tokenType`: `'DPoP'`
     * when the session is bound to this browser's key, else `'Bearer'`), or `null`.
     */
    session: snapshot,

    /** DPoP (the `dpop` option): this browser's key. */
    dpop: {
      /** Whether DPoP is on and this browser can keep a key (WebCrypto and IndexedDB on a secure page). */
      enabled() {
        return dpopWanted && dpopSupported();
      },
      /**
       * Resolves to the RFC 7638 thumbprint of this browser's key (what a bound token's
       * `cnf.jkt` holds; the same in every tab and after reloads), or `null` without one. Makes
       * the key when there is none yet.
       */
      async thumbprint() {
        const key = await dpopKey();
        return key ? key.jkt : null;
      },
    },

    /** The access token's claims, decoded for display only (the signature is not checked here). */
    claims() {
      return current ? decodeClaims(current.accessToken) : null;
    },

    /** Calls `listener(event)` on `session` changes, `request`s, `refreshed`, `adopted`, `mfa` (a login waits for its second factor: `{methods, expiresAt}`) and `error`s. Returns an unsubscribe function. */
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

/// Whether a failed refresh may succeed later: no answer (network error, timeout), 408, 429, 5xx,
/// or a refresh this client deferred itself while backing off.
function isTransient(err) {
  const status = err && err.status;
  return status === 0 || status === 408 || status === 429 || status >= 500;
}

/// The `Retry-After` of a 429 or 503 answer, in seconds (delta-seconds or an HTTP-date), else `null`.
/// Cross-origin, keycard must expose the header (it does, in its CORS answers).
function retryAfterOf(res) {
  if (res.status !== 429 && res.status !== 503) return null;
  const value = (res.headers.get('Retry-After') || '').trim();
  if (/^\d+$/.test(value)) return Number(value);
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, (at - Date.now()) / 1000);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/// What this page lacks for a passkey ceremony (`'create'` or `'get'`), or `null`: WebAuthn
/// itself, a secure context (https, or http on localhost), a host name (an IP address is never a
/// relying party id), and the JSON helpers (`PublicKeyCredential.parseCreationOptionsFromJSON` /
/// `parseRequestOptionsFromJSON` and `toJSON()` on the credential).
function missingWebAuthn(kind) {
  const PKC = globalThis.PublicKeyCredential;
  if (typeof PKC !== 'function' || !globalThis.navigator || !navigator.credentials) {
    return 'this browser has no passkeys (WebAuthn)';
  }
  if (globalThis.isSecureContext === false) return 'passkeys need a secure page (https, or http on localhost)';
  const host = globalThis.location ? location.hostname : '';
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.startsWith('[')) {
    return `passkeys need a host name, and this page is at an IP address (${host}): open it at localhost or its domain`;
  }
  const parse = kind === 'create' ? PKC.parseCreationOptionsFromJSON : PKC.parseRequestOptionsFromJSON;
  if (typeof parse !== 'function' || typeof PKC.prototype.toJSON !== 'function') {
    return "this browser's WebAuthn lacks the JSON helpers keycard.js uses (PublicKeyCredential.parse…OptionsFromJSON, toJSON): update the browser";
  }
  return null;
}

function requireWebAuthn(kind) {
  const missing = missingWebAuthn(kind);
  if (missing) throw new KeycardError(0, 'passkeys_unsupported', missing);
}

/// The error of a ceremony stopped by its `signal`.
function aborted() {
  return new KeycardError(0, 'passkey_aborted', 'the passkey request was aborted');
}

/// Whether this page may use passkeys of relying party `rpId`: its host is the id or a subdomain
/// of it (WebAuthn's rule; an IP address is never a relying party id). Checked before the browser
/// is asked, for a clearer error than its SecurityError.
function checkRpId(rpId) {
  const host = globalThis.location ? location.hostname : '';
  if (!rpId || !host) return;
  if (host === rpId || host.endsWith(`.${rpId}`)) return;
  throw new KeycardError(
    0,
    'passkey_wrong_site',
    `keycard's passkeys belong to ${rpId}; this page (${host}) cannot use them: open it at ${rpId} (or set keycard's webauthn settings)`,
  );
}

/// A browser WebAuthn failure as a `KeycardError` (status 0), the original as `cause`.
function ceremonyError(err) {
  if (err instanceof KeycardError) return err;
  const known = {
    NotAllowedError: ['passkey_cancelled', 'no passkey was used (cancelled, timed out, or none for this site)'],
    AbortError: ['passkey_aborted', 'the passkey request was aborted'],
    InvalidStateError: ['passkey_exists', 'this authenticator already holds a passkey for this account'],
    SecurityError: ['passkey_wrong_site', "this page's address cannot use keycard's passkeys (relying party id)"],
    NotSupportedError: ['passkeys_unsupported', 'no authenticator here supports what keycard asks for'],
  }[err && err.name] || ['passkey_failed', 'the passkey request failed'];
  const detail = err && err.message ? `: ${err.message}` : '';
  const out = new KeycardError(0, known[0], known[1] + detail);
  out.cause = err;
  return out;
}

/// Parses keycard's JSON options, asks the browser, and resolves to the credential's `toJSON()`.
async function runCeremony(kind, publicKeyJson, { mediation, signal } = {}) {
  requireWebAuthn(kind);
  if (signal && signal.aborted) throw aborted();
  let publicKey;
  try {
    publicKey =
      kind === 'create'
        ? PublicKeyCredential.parseCreationOptionsFromJSON(publicKeyJson)
        : PublicKeyCredential.parseRequestOptionsFromJSON(publicKeyJson);
  } catch (err) {
    throw new KeycardError(0, 'invalid_response', `keycard's passkey options do not parse: ${err && err.message}`);
  }
  checkRpId(kind === 'create' ? publicKey.rp && publicKey.rp.id : publicKey.rpId);
  const request = { publicKey };
  if (mediation) request.mediation = mediation;
  if (signal) request.signal = signal;
  let credential;
  try {
    credential = kind === 'create' ? await navigator.credentials.create(request) : await navigator.credentials.get(request);
  } catch (err) {
    // An abort with a reason rejects with that reason, whatever it is.
    if (signal && signal.aborted) throw aborted();
    throw ceremonyError(err);
  }
  if (!credential) throw new KeycardError(0, 'passkey_cancelled', 'no passkey was used');
  return credential.toJSON();
}

/// 401 with `error="invalid_token"`: in `WWW-Authenticate` (same origin), else in the JSON body
/// (a cross-origin response exposes no such header).
async function isInvalidToken(res) {
  const challenge = res.headers.get('WWW-Authenticate');
  if (challenge) return challenge.includes('invalid_token');
  try {
    const body = await res.clone().json();
    return body.error === 'invalid_token';
  } catch {
    return false;
  }
}

/**
 * The token of a mailed link (`…#token=kc…`), taken from the page's address: the fragment is
 * removed from the address bar and from this history entry (so neither a reload, the history nor
 * a later script finds it), and the token returned; `null` when the address has none. Browsers
 * never send the fragment to a server, so opening the link spends nothing: only a call such as
 * `resetPassword(token, …)` does.
 */
export function takeLinkToken() {
  const loc = globalThis.location;
  if (!loc || !loc.hash) return null;
  const token = new URLSearchParams(loc.hash.slice(1)).get('token');
  if (globalThis.history && typeof history.replaceState === 'function') {
    history.replaceState(history.state, '', loc.pathname + loc.search);
  }
  return token || null;
}

// --- DPoP helpers (RFC 9449) ---------------------------------------------------------------

/// Whether this page can keep a DPoP key: WebCrypto (secure pages only) and IndexedDB.
function dpopSupported() {
  return Boolean(globalThis.crypto && crypto.subtle && typeof crypto.subtle.generateKey === 'function' && globalThis.indexedDB);
}

/// The signature algorithms a proof's `alg` names, as WebCrypto wants them.
const DPOP_SIGN = {
  EdDSA: { name: 'Ed25519' },
  ES256: { name: 'ECDSA', hash: 'SHA-256' },
};

/// A new non-extractable key pair: Ed25519 where WebCrypto has it, else ECDSA P-256. The public
/// key stays extractable (WebCrypto makes it so): the proofs carry it.
async function generateDpopKey(algs = ['EdDSA', 'ES256']) {
  if (algs.includes('EdDSA')) {
    try {
      const pair = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
      return { alg: 'EdDSA', privateKey: pair.privateKey, publicKey: pair.publicKey };
    } catch {
      // no Ed25519 in this browser's WebCrypto: P-256
    }
  }
  const pair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
  return { alg: 'ES256', privateKey: pair.privateKey, publicKey: pair.publicKey };
}

function openDpopDb() {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open(DPOP_DB, 1);
    open.onupgradeneeded = () => {
      if (!open.result.objectStoreNames.contains(DPOP_STORE)) open.result.createObjectStore(DPOP_STORE, { keyPath: 'id' });
    };
    open.onsuccess = () => {
      const db = open.result;
      db.onversionchange = () => db.close();
      resolve(db);
    };
    open.onerror = () => reject(open.error);
    open.onblocked = () => reject(new Error('the DPoP key store is blocked by another tab'));
  });
}

/// Whether a stored record holds a usable key pair (a `CryptoKey` private key of a known alg).
function usableRecord(record) {
  return Boolean(
    record && DPOP_SIGN[record.alg] && record.privateKey instanceof CryptoKey && record.publicKey instanceof CryptoKey,
  );
}

/// The stored key pair of `id`; when there is none (or none usable), `fresh` is stored and
/// returned. One read-write transaction: transactions on the store run one at a time across the
/// tabs of the origin, so when two tabs make a key at once, both end up with the first one stored.
function storeDpopKeyIfAbsent(db, id, fresh) {
  return new Promise((resolve, reject) => {
    const tx = db.transaction(DPOP_STORE, 'readwrite');
    const store = tx.objectStore(DPOP_STORE);
    let result = null;
    const get = store.get(id);
    get.onsuccess = () => {
      if (usableRecord(get.result)) {
        result = get.result;
        return;
      }
      result = { id, ...fresh, createdAt: Date.now() };
      try {
        store.put(result); // CryptoKeys are structured-cloneable: stored non-extractable as they are
      } catch (err) {
        tx.abort();
        reject(err); // DataCloneError: this browser cannot store this kind of key
      }
    };
    tx.oncomplete = () => resolve(result);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error('the DPoP key was not stored'));
  });
}

function readDpopKey(db, id) {
  return new Promise((resolve, reject) => {
    const get = db.transaction(DPOP_STORE, 'readonly').objectStore(DPOP_STORE).get(id);
    get.onsuccess = () => resolve(usableRecord(get.result) ? get.result : null);
    get.onerror = () => reject(get.error);
  });
}

/// This origin's key pair for the keycard at `id` (its origin): the stored one, or a new one
/// stored first. Resolves to `{alg, privateKey, jwk, jkt}`.
async function loadDpopKey(id) {
  const db = await openDpopDb();
  try {
    let record = await readDpopKey(db, id);
    if (!record) {
      try {
        record = await storeDpopKeyIfAbsent(db, id, await generateDpopKey());
      } catch (err) {
        // A browser that makes Ed25519 keys but cannot store them: P-256, which every one can.
        if (!err || err.name !== 'DataCloneError') throw err;
        record = await storeDpopKeyIfAbsent(db, id, await generateDpopKey(['ES256']));
      }
    }
    const full = await crypto.subtle.exportKey('jwk', record.publicKey);
    // The public members only, in the thumbprint's order (RFC 7638 §3.2).
    const jwk = full.kty === 'OKP' ? { crv: full.crv, kty: full.kty, x: full.x } : { crv: full.crv, kty: full.kty, x: full.x, y: full.y };
    return { alg: record.alg, privateKey: record.privateKey, jwk, jkt: await sha256Base64url(JSON.stringify(jwk)) };
  } finally {
    db.close();
  }
}

/// The compact JWS of a proof with `claims`, signed with `key`.
async function signProof(key, claims) {
  const header = { typ: 'dpop+jwt', alg: key.alg, jwk: key.jwk };
  const input = `${base64urlJson(header)}.${base64urlJson(claims)}`;
  const signature = await crypto.subtle.sign(DPOP_SIGN[key.alg], key.privateKey, new TextEncoder().encode(input));
  return `${input}.${base64url(new Uint8Array(signature))}`;
}

function base64url(bytes) {
  let text = '';
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function base64urlJson(value) {
  return base64url(new TextEncoder().encode(JSON.stringify(value)));
}

async function sha256Base64url(text) {
  return base64url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text))));
}

/// 128 random bits, base64url: a proof's `jti`.
function randomId() {
  return base64url(crypto.getRandomValues(new Uint8Array(16)));
}

/// Whether an access token names a key it is bound to (`cnf.jkt`).
function isBoundJwt(token) {
  const claims = typeof token === 'string' ? decodeClaims(token) : null;
  return Boolean(claims && claims.cnf && claims.cnf.jkt);
}

/** Decodes a JWT's payload for display. Trust nothing in it: only the server verifies tokens. */
export function decodeClaims(jwt) {
  try {
    const part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(part + '='.repeat((4 - (part.length % 4)) % 4)), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}
