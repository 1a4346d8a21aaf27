// The demo page's logic: every call goes through keycard.js. The DOM is built with
// textContent only (the page's CSP requires Trusted Types, so no HTML strings).

import { createKeycard } from '/keycard.js';

// `/?dpop`: sessions bound to a key this browser keeps (DPoP, RFC 9449): see keycard.js.
const keycard = createKeycard({ dpop: new URLSearchParams(location.search).has('dpop') });
window.keycard = keycard; // for the console: await keycard.fetch('/auth/me')

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  const { dataset, ...rest } = props;
  Object.assign(node, rest);
  Object.assign(node.dataset, dataset || {});
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

// --- the log ---------------------------------------------------------------------------------

function log(text, kind = 'info') {
  const time = new Date().toLocaleTimeString([], { hour12: false });
  $('log').prepend(el('li', { className: kind }, el('time', { textContent: time }), text));
  while ($('log').children.length > 40) $('log').lastChild.remove();
}

const explain = {
  'POST /auth/login': 'password right: the tokens (access token in the body, refresh token in an HttpOnly cookie), or the code step',
  'POST /auth/refresh': 'cookie rotated: the old refresh token is now spent',
  'POST /auth/logout': 'session revoked, cookies cleared',
  'POST /auth/signup': 'account created',
  'POST /auth/password/forgot': 'a reset link is mailed if the address has an account',
  'POST /auth/email/verify/resend': 'a verification link is mailed if the address needs one',
  'POST /auth/email': 'a confirmation link goes to the new address, a cancel link to the old one',
  'POST /auth/mfa/verify': 'second factor accepted: the same cookies as a login',
  'POST /auth/mfa/totp': 'a new authenticator app, pending until its first code',
  'POST /auth/mfa/totp/confirm': 'authenticator app active',
  'POST /auth/mfa/recovery-codes': 'ten new recovery codes; the earlier ones stop working',
  'POST /auth/step-up': 'a new access token with a fresh auth_time (same session, same cookie)',
  'POST /auth/step-up/options': 'a challenge for the passkey to answer',
  'POST /auth/passkeys/register/options': 'a challenge for the new passkey (the browser creates it next)',
  'POST /auth/passkeys/register': 'passkey added',
  'POST /auth/passkeys/login/options': 'a challenge for a passkey sign-in',
  'POST /auth/passkeys/login': 'passkey accepted: the same cookies as a login',
};

keycard.subscribe((event) => {
  if (event.type === 'request') {
    const what = `${event.method} ${event.path}`;
    const ok = event.status < 400;
    const note = ok && explain[what] ? ` · ${explain[what]}` : '';
    log(`${what} → ${event.status}${note}`, ok ? 'ok' : 'bad');
  } else if (event.type === 'mfa') {
    log('password right; this account has a second factor: no tokens until the code', 'info');
  } else if (event.type === 'adopted') {
    log('took the token another tab just refreshed (no second refresh)', 'info');
  } else if (event.type === 'session') {
    if (!event.session && event.reason) {
      log(`signed out: ${event.reason}`, 'bad');
      autofillHeld = false; // back at the login form: passkeys in its autofill again
    }
    render();
  } else if (event.type === 'error') {
    showError(event.error);
  }
});

// --- rendering -------------------------------------------------------------------------------

let email = null;

function showError(err, where = 'error') {
  $(where).hidden = !err;
  $(where).textContent = err ? (err.description || err.message || String(err)) : '';
}

function render() {
  const session = keycard.session();
  const signedIn = session !== null;
  if (!signedIn) email = null;
  $('status').dataset.state = signedIn ? 'in' : 'out';
  $('status').className = `pill ${signedIn ? 'pill-in' : 'pill-out'}`;
  $('status').textContent = signedIn ? `Signed in${email ? ` · ${email}` : ''}` : 'Signed out';
  const mfaStep = !signedIn && keycard.mfaPending() !== null;
  $('auth-form').hidden = signedIn || mfaStep;
  $('mfa-form').hidden = !mfaStep;
  $('signed-in').hidden = !signedIn;
  $('mfa-signed-out').hidden = signedIn;
  $('mfa-signed-in').hidden = !signedIn;
  $('passkeys-signed-out').hidden = signedIn || !passkeysHere;
  $('passkeys-signed-in').hidden = !signedIn || !passkeysHere;
  $('passkeys-unsupported').hidden = passkeysHere;
  $('passkey-login').hidden = !passkeysHere;
  $('who').textContent = email || session?.claims?.sub || '…';
  $('no-token').hidden = signedIn;
  $('token').hidden = !signedIn;
  $('reload-sessions').disabled = !signedIn;
  $('forgot-form').hidden = signedIn;
  $('email-signed-in').hidden = !signedIn;
  $('token-type').textContent = signedIn && session.tokenType === 'DPoP'
    ? "DPoP: bound to this browser's key; every request carries a proof signed with it"
    : keycard.dpop.enabled() ? 'Bearer' : 'Bearer (open /?dpop to bind the session to this browser\'s key)';
  if (signedIn) {
    renderClaims(session.claims || {});
    renderEmail(session.claims || {});
  } else {
    $('me-output').hidden = true;
    $('sessions').hidden = true;
    $('no-sessions').hidden = false;
    resetFactors();
  }
  syncAutofill();
  tick();
}

// `email_verified` is in the access token unless keycard runs with email_verification = off.
function renderEmail(claims) {
  $('current-email').textContent = email || '…';
  const known = typeof claims.email_verified === 'boolean';
  $('verified').hidden = !known;
  $('verified').textContent = claims.email_verified ? 'verified' : 'not verified';
  $('verified').className = claims.email_verified ? 'badge' : 'badge unverified';
  $('resend-mine').hidden = !known || claims.email_verified;
}

function showNotice(text) {
  $('email-status').hidden = !text;
  $('email-status').textContent = text || '';
}

const claimNotes = {
  iss: 'issuer',
  aud: 'audience',
  sub: 'user id',
  sid: 'session id',
  jti: 'token id',
  iat: 'issued at',
  nbf: 'not before',
  exp: 'expires',
  scope: 'scope',
  role: 'role',
  email_verified: 'address verified',
  cnf: "bound to this browser's DPoP key (its thumbprint)",
};

function renderClaims(claims) {
  const rows = Object.entries(claims).map(([name, value]) => {
    const shown = ['iat', 'nbf', 'exp'].includes(name)
      ? `${value} · ${new Date(value * 1000).toLocaleTimeString([], { hour12: false })}`
      : typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value);
    return el('tr', {}, el('th', { textContent: name, title: claimNotes[name] || '' }),
      el('td', { textContent: shown }), el('td', { className: 'muted', textContent: claimNotes[name] || '' }));
  });
  $('claims').tBodies[0].replaceChildren(...rows);
}

// The countdown to `exp` (on this machine's clock, from `expires_in`).
function tick() {
  const session = keycard.session();
  if (!session) return;
  const claims = session.claims || {};
  const left = Math.max(0, session.expiresAt - Date.now());
  const total = claims.exp && claims.iat ? (claims.exp - claims.iat) * 1000 : left;
  const secs = Math.ceil(left / 1000);
  $('countdown').textContent = `${Math.floor(secs / 60)}:${String(secs % 60).padStart(2, '0')}`;
  $('bar-fill').style.width = `${total ? Math.min(100, (100 * left) / total) : 0}%`;
  $('bar-fill').className = left < total * 0.2 ? 'low' : '';
}
setInterval(tick, 250);

function shortAgent(ua) {
  if (!ua) return 'unknown client';
  const browser = ua.match(/(HeadlessChrome|Edg|Firefox|Chrome|Safari)\/(\d+)/);
  const os = ua.match(/(Windows|Mac OS X|Android|iPhone|Linux)/);
  return browser ? `${browser[1]} ${browser[2]}${os ? ` on ${os[1]}` : ''}` : ua.slice(0, 40);
}

function when(iso) {
  const d = new Date(iso);
  return d.toLocaleString([], { hour12: false, month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

async function loadSessions() {
  const res = await keycard.fetch('/auth/sessions');
  if (!res.ok) return;
  const sessions = await res.json();
  const rows = sessions.map((s) => {
    const action = s.current
      ? el('span', { className: 'badge', textContent: 'this browser' })
      : el('button', { type: 'button', className: 'small danger', textContent: 'Revoke', onclick: () => revoke(s.id) });
    return el('tr', { dataset: { id: s.id, current: String(s.current) } },
      el('td', { title: s.user_agent || '' }, shortAgent(s.user_agent), el('div', { className: 'muted mono', textContent: s.id.slice(0, 8) })),
      el('td', { className: 'mono', textContent: s.ip || '–' }),
      el('td', { textContent: when(s.created_at) }),
      el('td', { textContent: when(s.last_used_at) }),
      el('td', {}, action));
  });
  $('sessions').tBodies[0].replaceChildren(...rows);
  $('sessions').hidden = rows.length === 0;
  $('no-sessions').hidden = rows.length > 0;
}

async function revoke(id) {
  const res = await keycard.fetch(`/auth/sessions/${encodeURIComponent(id)}`, { method: 'DELETE' });
  if (res.ok) log(`session ${id.slice(0, 8)} revoked`, 'ok');
  await loadSessions();
}

async function loadMe() {
  const res = await keycard.fetch('/auth/me');
  const body = await res.json();
  $('me-output').hidden = false;
  $('me-output').textContent = `${res.status} ${JSON.stringify(body, null, 2)}`;
  if (res.ok) {
    email = body.email;
    render();
  }
  return res.ok;
}

// --- actions ---------------------------------------------------------------------------------

async function action(fn, errorsIn = 'error') {
  showError(null, errorsIn);
  document.body.classList.add('busy');
  try {
    await fn();
  } catch (err) {
    showError(err, errorsIn);
  } finally {
    document.body.classList.remove('busy');
  }
}

async function signIn(withSignup) {
  const address = $('email').value.trim();
  const password = $('password').value;
  if (withSignup) await keycard.signup(address, password);
  const step = await keycard.login(address, password);
  $('password').value = '';
  if (step && step.mfaRequired) {
    showMfaStep(!step.methods.includes('totp'));
    return;
  }
  await signedInNow();
}

// --- passkeys at the login form: the button, and the email field's autofill -------------------

const passkeysHere = keycard.passkeys.supported();
let pageReady = false; // the cookie was checked: signed out means the login form shows
let passwordBusy = false; // a password login is on its way
let passkeyBusy = false; // the passkey button's request is open
let autofill = null; // the AbortController of the autofill request
let autofillHeld = false; // it failed: not again until the login form comes back

function autofillWanted() {
  return pageReady && passkeysHere && !passwordBusy && !passkeyBusy && !autofillHeld
    && keycard.session() === null && keycard.mfaPending() === null;
}

function syncAutofill() {
  if (!autofillWanted()) stopAutofill();
  else if (!autofill) startAutofill();
}

function stopAutofill() {
  if (!autofill) return;
  autofill.abort();
  autofill = null;
}

// The passkeys this browser holds for keycard appear in the email field's autofill (the field
// says `autocomplete="username webauthn"`); picking one signs in, no password.
async function startAutofill() {
  const controller = new AbortController();
  autofill = controller;
  if (!(await keycard.passkeys.autofillAvailable()) || autofill !== controller) {
    if (autofill === controller) autofill = null;
    return;
  }
  keycard.loginWithPasskey({ conditional: true, signal: controller.signal }).then(
    () => {
      if (autofill === controller) autofill = null;
      log('signed in with a passkey from the autofill', 'ok');
      action(signedInNow);
    },
    (err) => {
      if (autofill === controller) autofill = null;
      // Ended by the page, or by another passkey request: it comes back with the login form.
      if (err.code === 'passkey_aborted' || err.code === 'passkey_busy') return;
      autofillHeld = true;
      if (err.code === 'invalid_credentials') showError(err); // keycard refused the passkey picked
      log(`passkey autofill stopped: ${err.description || err.message}`, err.status ? 'bad' : 'info');
    },
  );
}

$('passkey-login').addEventListener('click', () => {
  passkeyBusy = true;
  stopAutofill();
  action(async () => {
    await keycard.loginWithPasskey();
    log('signed in with a passkey', 'ok');
    await signedInNow();
  }).finally(() => {
    passkeyBusy = false;
    syncAutofill();
  });
});

async function signedInNow() {
  await loadMe();
  await loadSessions();
  await loadFactors();
}

// --- the login's second step ------------------------------------------------------------------

let recoveryMode = false;

function showMfaStep(useRecovery) {
  const methods = keycard.mfaPending()?.methods || [];
  const hasApp = methods.includes('totp');
  if (!hasApp) useRecovery = true; // a passkey, or a recovery code
  recoveryMode = useRecovery;
  $('mfa-passkey').hidden = !methods.includes('webauthn');
  $('mfa-use-recovery').hidden = !hasApp;
  $('mfa-code').value = '';
  $('mfa-label').textContent = useRecovery ? 'Recovery code' : 'Code from your authenticator app';
  $('mfa-prompt').textContent = useRecovery
    ? `${hasApp ? '' : 'Use your passkey, or '}enter one of your recovery codes (each works once).`
    : `Enter the code your authenticator app shows${methods.includes('webauthn') ? ', or use your passkey' : ''}.`;
  $('mfa-code').placeholder = useRecovery ? 'xxxxx-xxxxx-xxxxx-xxxxx' : '123456';
  $('mfa-code').inputMode = useRecovery ? 'text' : 'numeric';
  $('mfa-use-recovery').textContent = useRecovery ? 'Use the authenticator app' : 'Use a recovery code';
  render();
  $('mfa-code').focus();
}

$('mfa-form').addEventListener('submit', (e) => {
  e.preventDefault();
  action(async () => {
    const value = $('mfa-code').value.trim();
    try {
      await keycard.verifyMfa(recoveryMode ? { recoveryCode: value } : { code: value });
    } catch (err) {
      $('mfa-code').value = '';
      // No more answers for this login (expired, five tries): back to the password.
      if (!keycard.mfaPending()) render();
      throw err;
    }
    $('mfa-code').value = '';
    await signedInNow();
  });
});
$('mfa-use-recovery').addEventListener('click', () => showMfaStep(!recoveryMode));
$('mfa-use-passkey').addEventListener('click', () => action(async () => {
  try {
    await keycard.verifyMfa({ webauthn: true });
  } catch (err) {
    if (!keycard.mfaPending()) render();
    throw err;
  }
  await signedInNow();
}));
$('mfa-cancel').addEventListener('click', () => {
  keycard.cancelMfa();
  showError(null);
  autofillHeld = false;
  render();
});

// --- the authenticator app ------------------------------------------------------------------

let factors = [];
let enrolling = null; // the pending factor's id

function showMfaNotice(text) {
  $('mfa-status').hidden = !text;
  $('mfa-status').textContent = text || '';
}

function resetFactors() {
  factors = [];
  enrolling = null;
  $('mfa-enrolment').hidden = true;
  $('mfa-secret').textContent = '';
  $('mfa-qr').removeAttribute('src');
  showRecoveryCodes(null);
  $('step-up-form').hidden = true;
  if (stepUpWaiter) stepUpWaiter.reject(new Error('signed out'));
  showMfaNotice(null);
  showError(null, 'mfa-error');
  $('passkeys').tBodies[0].replaceChildren();
  showPasskeyRecovery(null);
  hideRename();
  showPasskeyNotice(null);
  showError(null, 'passkey-error');
}

async function loadFactors() {
  const list = await keycard.mfa.list();
  factors = list.factors || [];
  const passkeys = factors.filter((f) => f.kind === 'passkey');
  renderPasskeys(passkeys);
  $('mfa-none').textContent = passkeys.length
    ? 'No authenticator app: your passkeys are the second factor.'
    : 'No second factor yet: a password alone signs in.';
  const rows = factors.filter((f) => f.kind !== 'passkey').map((f) => el('tr', { dataset: { id: f.id } },
    el('td', {}, f.kind === 'totp' ? 'Authenticator app' : f.kind, el('div', { className: 'muted mono', textContent: f.name || f.id.slice(0, 8) })),
    el('td', { textContent: when(f.created_at) }),
    el('td', { textContent: f.last_used_at ? when(f.last_used_at) : 'never' }),
    el('td', {}, el('button', {
      type: 'button', className: 'small danger remove-factor', textContent: 'Remove',
      onclick: () => action(() => removeFactor(f.id), 'mfa-error'),
    }))));
  $('mfa-factors').tBodies[0].replaceChildren(...rows);
  $('mfa-factors').hidden = rows.length === 0;
  $('mfa-none').hidden = rows.length > 0;
  $('mfa-regenerate').hidden = factors.length === 0;
  $('mfa-codes-left').hidden = factors.length === 0;
  $('mfa-codes-left').textContent = `${list.recovery_codes_left} recovery code${list.recovery_codes_left === 1 ? '' : 's'} left`;
  $('mfa-codes-left').dataset.left = String(list.recovery_codes_left);
}

function showRecoveryCodes(codes) {
  $('mfa-recovery').hidden = !codes;
  $('mfa-recovery-codes').replaceChildren(...(codes || []).map((c) => el('li', { textContent: c })));
}

// A change keycard wants a recent sign-in for (401 insufficient_user_authentication): ask for a
// code (or the password), step up, then send the change again, once.
async function withStepUp(fn) {
  try {
    return await fn();
  } catch (err) {
    if (!err.stepUpRequired) throw err;
    await askStepUp(err);
    return fn();
  }
}

let stepUpWaiter = null;

function askStepUp(err) {
  if (stepUpWaiter) stepUpWaiter.reject(new Error('asked again'));
  $('step-up-reason').textContent = err.description || 'This change needs a recent sign-in.';
  const hasApp = factors.some((f) => f.kind === 'totp');
  $('step-up-method').value = hasApp ? 'code' : factors.length > 0 ? 'recoveryCode' : 'password';
  $('step-up-answer').type = $('step-up-method').value === 'password' ? 'password' : 'text';
  $('step-up-passkey').hidden = !passkeysHere || !factors.some((f) => f.kind === 'passkey');
  $('step-up-answer').value = '';
  $('step-up-form').hidden = false;
  $('step-up-form').scrollIntoView({ block: 'nearest' });
  $('step-up-answer').focus();
  document.body.classList.remove('busy');
  log('this change needs a recent sign-in: step up', 'info');
  return new Promise((resolve, reject) => {
    stepUpWaiter = { resolve, reject };
  }).finally(() => {
    stepUpWaiter = null;
    $('step-up-form').hidden = true;
    $('step-up-answer').value = '';
  });
}

$('step-up-method').addEventListener('change', () => {
  $('step-up-answer').type = $('step-up-method').value === 'password' ? 'password' : 'text';
});
$('step-up-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  showError(null, 'mfa-error');
  const method = $('step-up-method').value;
  const value = $('step-up-answer').value;
  try {
    await keycard.stepUp({ [method]: method === 'password' ? value : value.trim() });
    stepUpWaiter?.resolve();
  } catch (err) {
    $('step-up-answer').value = '';
    showError(err, 'mfa-error');
  }
});
$('step-up-passkey').addEventListener('click', async () => {
  showError(null, 'mfa-error');
  try {
    await keycard.stepUp({ passkey: true });
    stepUpWaiter?.resolve();
  } catch (err) {
    showError(err, 'mfa-error');
  }
});
$('step-up-cancel').addEventListener('click', () => {
  const err = new Error('cancelled: nothing changed');
  stepUpWaiter?.reject(err);
});

$('mfa-enrol').addEventListener('click', () => action(async () => {
  showMfaNotice(null);
  showRecoveryCodes(null);
  const enrolment = await withStepUp(() => keycard.mfa.enrolTotp());
  enrolling = enrolment.factor_id;
  $('mfa-qr').src = enrolment.qr_code;
  $('mfa-secret').textContent = enrolment.secret;
  $('mfa-confirm-code').value = '';
  $('mfa-enrolment').hidden = false;
  $('mfa-confirm-code').focus();
}, 'mfa-error'));

$('mfa-confirm-form').addEventListener('submit', (e) => {
  e.preventDefault();
  action(async () => {
    const answer = await keycard.mfa.confirmTotp(enrolling, $('mfa-confirm-code').value);
    enrolling = null;
    $('mfa-enrolment').hidden = true;
    $('mfa-secret').textContent = '';
    $('mfa-qr').removeAttribute('src');
    showRecoveryCodes(answer.recovery_codes || null);
    showMfaNotice('Authenticator app active: the next login asks for its code.');
    await loadFactors();
  }, 'mfa-error');
});

$('mfa-enrol-cancel').addEventListener('click', () => action(async () => {
  // A pending factor proves nothing: removing it needs no step-up.
  if (enrolling) await keycard.mfa.remove(enrolling);
  enrolling = null;
  $('mfa-enrolment').hidden = true;
  $('mfa-secret').textContent = '';
  $('mfa-qr').removeAttribute('src');
}, 'mfa-error'));

$('mfa-recovery-done').addEventListener('click', () => showRecoveryCodes(null));

$('mfa-regenerate').addEventListener('click', () => action(async () => {
  showMfaNotice(null);
  const answer = await withStepUp(() => keycard.mfa.regenerateRecoveryCodes());
  showRecoveryCodes(answer.recovery_codes);
  showMfaNotice('New recovery codes: the earlier ones no longer work.');
  await loadFactors();
}, 'mfa-error'));

async function removeFactor(id) {
  showMfaNotice(null);
  await withStepUp(() => keycard.mfa.remove(id));
  showRecoveryCodes(null);
  showMfaNotice('Authenticator app removed.');
  await loadFactors();
}

// --- the passkeys card -------------------------------------------------------------------------

let renaming = null; // the id of the passkey being renamed

function showPasskeyNotice(text) {
  $('passkey-status').hidden = !text;
  $('passkey-status').textContent = text || '';
}

function showPasskeyRecovery(codes) {
  $('passkey-recovery').hidden = !codes;
  $('passkey-recovery-codes').replaceChildren(...(codes || []).map((c) => el('li', { textContent: c })));
}

function hideRename() {
  renaming = null;
  $('passkey-rename-form').hidden = true;
  $('passkey-new-name').value = '';
}

function renderPasskeys(passkeys) {
  const rows = passkeys.map((p) => el('tr', { dataset: { id: p.id, backedUp: String(Boolean(p.backed_up)) } },
    el('td', { className: 'passkey-name', textContent: p.name || 'Passkey' }),
    el('td', { textContent: when(p.created_at) }),
    el('td', { className: 'passkey-used', textContent: p.last_used_at ? when(p.last_used_at) : 'never' }),
    el('td', {}, p.backed_up
      ? el('span', { className: 'badge', textContent: 'synced', title: 'backed up: a cloud account keeps it' })
      : el('span', { className: 'muted', textContent: 'this device only' })),
    el('td', {},
      el('button', {
        type: 'button', className: 'small rename-passkey', textContent: 'Rename',
        onclick: () => {
          renaming = p.id;
          $('passkey-new-name').value = p.name || '';
          $('passkey-rename-form').hidden = false;
          $('passkey-new-name').focus();
        },
      }),
      ' ',
      el('button', {
        type: 'button', className: 'small danger remove-passkey', textContent: 'Remove',
        onclick: () => action(() => removePasskey(p), 'passkey-error'),
      }))));
  $('passkeys').tBodies[0].replaceChildren(...rows);
  $('passkeys').hidden = rows.length === 0;
  $('passkeys-none').hidden = rows.length > 0;
}

$('passkey-add-form').addEventListener('submit', (e) => {
  e.preventDefault();
  action(async () => {
    showPasskeyNotice(null);
    showPasskeyRecovery(null);
    const name = $('passkey-name').value;
    const added = await withStepUp(() => keycard.passkeys.register({ name }));
    $('passkey-name').value = '';
    showPasskeyRecovery(added.recovery_codes || null);
    showPasskeyNotice(`Passkey “${added.name || name || 'Passkey'}” added: it signs in without a password, and is asked for after one.`);
    await loadFactors();
  }, 'passkey-error');
});

$('passkey-rename-form').addEventListener('submit', (e) => {
  e.preventDefault();
  action(async () => {
    const id = renaming;
    const name = $('passkey-new-name').value.trim();
    await withStepUp(() => keycard.passkeys.rename(id, name));
    hideRename();
    showPasskeyNotice(`Renamed to “${name}”.`);
    await loadFactors();
  }, 'passkey-error');
});
$('passkey-rename-cancel').addEventListener('click', hideRename);
$('passkey-recovery-done').addEventListener('click', () => showPasskeyRecovery(null));

async function removePasskey(p) {
  showPasskeyNotice(null);
  await withStepUp(() => keycard.passkeys.remove(p.id));
  if (renaming === p.id) hideRename();
  showPasskeyNotice(`Passkey “${p.name || 'Passkey'}” removed: keycard no longer accepts it (the device may still list it).`);
  await loadFactors();
}

$('auth-form').addEventListener('submit', (e) => {
  e.preventDefault();
  passwordSignIn(false);
});
$('signup').addEventListener('click', () => {
  if ($('auth-form').reportValidity()) passwordSignIn(true);
});

// The password form ends the autofill request first (one WebAuthn request at a time, and it
// must not sign in a second time); it comes back if the password is refused.
function passwordSignIn(withSignup) {
  passwordBusy = true;
  stopAutofill();
  action(() => signIn(withSignup)).finally(() => {
    passwordBusy = false;
    syncAutofill();
  });
}
$('me').addEventListener('click', () => action(loadMe));
$('refresh').addEventListener('click', () => action(() => keycard.refresh()));
$('logout').addEventListener('click', () => action(() => keycard.logout('local')));
$('logout-global').addEventListener('click', () => action(() => keycard.logout('global')));
$('reload-sessions').addEventListener('click', () => action(loadSessions));

// --- mailed links ----------------------------------------------------------------------------

$('show-forgot').addEventListener('click', () => {
  $('forgot-email').value = $('email').value.trim();
  $('forgot-email').focus();
});
$('forgot-form').addEventListener('submit', (e) => {
  e.preventDefault();
  action(async () => {
    showNotice(null);
    const answer = await keycard.forgotPassword($('forgot-email').value.trim());
    showNotice(answer?.message || 'If the address has an account, a reset link is on its way.');
  }, 'email-error');
});
$('resend').addEventListener('click', () => {
  if (!$('forgot-form').reportValidity()) return;
  action(async () => {
    showNotice(null);
    const answer = await keycard.resendVerification($('forgot-email').value.trim());
    showNotice(answer?.message || 'If the address needs verifying, a link is on its way.');
  }, 'email-error');
});
$('resend-mine').addEventListener('click', () => action(async () => {
  showNotice(null);
  const answer = await keycard.resendVerification(email);
  showNotice(answer?.message || 'A verification link is on its way.');
}, 'email-error'));
$('change-email-form').addEventListener('submit', (e) => {
  e.preventDefault();
  action(async () => {
    showNotice(null);
    const newEmail = $('new-email').value.trim();
    const password = $('change-password').value;
    const answer = await withStepUp(() => keycard.changeEmail(newEmail, password));
    $('change-password').value = '';
    showNotice(answer?.message || `Open the link mailed to ${newEmail} to confirm the change.`);
  }, 'email-error');
});

// After a reload: the access token is gone; the HttpOnly cookie (if any) brings it back.
action(async () => {
  const session = await keycard.restore().finally(() => {
    pageReady = true;
  });
  if (session) {
    log('session restored from the cookie by a silent refresh', 'ok');
    await signedInNow();
  } else {
    render();
  }
});
