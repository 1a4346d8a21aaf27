// keycard's OAuth 2.0 endpoints driven by openid-client v6 (panva): a client library keycard did
// not write, against a real keycard server. Run by .ci/interop-test.sh, which starts the server
// and registers the confidential client; by hand:
//   KEYCARD_URL=http://127.0.0.1:PORT KEYCARD_CLIENT_ID=... KEYCARD_CLIENT_SECRET=... \
//     node --test oauth.test.js
// The confidential client must be registered with the scopes "read write".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import * as client from 'openid-client';

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (see interop/README.md)`);
  return value;
}

const KEYCARD_URL = env('KEYCARD_URL').replace(/\/+$/, '');
const CLIENT_ID = env('KEYCARD_CLIENT_ID');
const CLIENT_SECRET = env('KEYCARD_CLIENT_SECRET');
const issuer = new URL(KEYCARD_URL);
// The test server speaks plain HTTP on loopback; openid-client refuses that unless told.
const insecure = { execute: [client.allowInsecureRequests] };

// ---------------------------------------------------------------------------------------------
// Helpers: keycard's own JSON API with fetch, JWT payloads, and the errors openid-client throws.

async function api(path, { method = 'GET', body, token } = {}) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(KEYCARD_URL + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: response.status, json, text };
}

// One user for the whole file (signups are rate-limited per IP); every test logs in afresh, so
// each gets its own session (token family).
let userPromise;
function user() {
  userPromise ??= (async () => {
    const email = `interop-node-${randomUUID()}@example.com`;
    const password = `Interop-${randomUUID()}`;
    const signup = await api('/auth/signup', { method: 'POST', body: { email, password } });
    // 201 with the new user ({id, email, created_at}); tokens come from a login.
    assert.equal(signup.status, 201, `signup: ${signup.status} ${signup.text}`);
    assert.equal(typeof signup.json?.id, 'string', `signup gave no user id: ${signup.text}`);
    return { email, password, id: signup.json.id };
  })();
  return userPromise;
}

/** Logs in with keycard's JSON API, the refresh token in the body. */
async function login() {
  const { email, password } = await user();
  const res = await api('/auth/login', { method: 'POST', body: { email, password, delivery: 'body' } });
  assert.equal(res.status, 200, `login: ${res.status} ${res.text}`);
  assert.match(res.json.refresh_token ?? '', /^kcrt_/, `login gave no body refresh token: ${res.text}`);
  assert.equal(typeof res.json.session_id, 'string');
  return res.json;
}

async function meStatus(accessToken) {
  return (await api('/auth/me', { token: accessToken })).status;
}

function decodeJwt(jwt) {
  const parts = jwt.split('.');
  assert.equal(parts.length, 3, `not a JWS compact serialization: ${jwt}`);
  const [header, payload] = parts.slice(0, 2).map((p) => JSON.parse(Buffer.from(p, 'base64url').toString('utf8')));
  return { header, payload };
}

const scopeSet = (scope) => new Set(String(scope ?? '').split(' ').filter(Boolean));

/**
 * Awaits a promise that must reject with an OAuth error response, and returns
 * `{ error, status, description }`. openid-client throws ResponseBodyError for an error body, and
 * WWWAuthenticateChallengeError when the response carries a WWW-Authenticate header (keycard's
 * 401 invalid_client does): its body is then still unread.
 */
async function oauthError(promise, what = 'the request') {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected an OAuth error response, ${what} succeeded`);
  if (err instanceof client.ResponseBodyError) {
    return { error: err.error, status: err.status, description: err.error_description };
  }
  if (err instanceof client.WWWAuthenticateChallengeError) {
    const body = await err.response.json().catch(() => ({}));
    return {
      error: body.error,
      status: err.status,
      description: body.error_description,
      challenges: err.cause,
    };
  }
  throw err;
}

// Configurations, from discovery as an application would make them.
const publicClient = () => client.discovery(issuer, 'keycard', undefined, client.None(), insecure);
const basicClient = (secret = CLIENT_SECRET) =>
  client.discovery(issuer, CLIENT_ID, undefined, client.ClientSecretBasic(secret), insecure);
const postClient = (secret = CLIENT_SECRET) =>
  client.discovery(issuer, CLIENT_ID, undefined, client.ClientSecretPost(secret), insecure);

// ---------------------------------------------------------------------------------------------
// Discovery and metadata.

test('discovery: openid-client reads both metadata documents and they agree', async () => {
  const oidc = await publicClient(); // /.well-known/openid-configuration
  const oauth2 = await client.discovery(issuer, 'keycard', undefined, client.None(), {
    ...insecure,
    algorithm: 'oauth2', // /.well-known/oauth-authorization-server (RFC 8414)
  });
  for (const config of [oidc, oauth2]) {
    const md = config.serverMetadata();
    assert.equal(md.issuer, KEYCARD_URL);
    assert.equal(md.token_endpoint, `${KEYCARD_URL}/oauth/token`);
    assert.equal(md.revocation_endpoint, `${KEYCARD_URL}/oauth/revoke`);
    assert.equal(md.introspection_endpoint, `${KEYCARD_URL}/oauth/introspect`);
    assert.equal(typeof md.jwks_uri, 'string');
    for (const grant of ['refresh_token', 'client_credentials']) {
      assert.ok(md.grant_types_supported?.includes(grant), `grant_types_supported lacks ${grant}`);
    }
    for (const method of ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt']) {
      assert.ok(
        md.token_endpoint_auth_methods_supported?.includes(method),
        `token_endpoint_auth_methods_supported lacks ${method}`,
      );
    }
  }
  const a = oidc.serverMetadata();
  const b = oauth2.serverMetadata();
  for (const field of ['issuer', 'token_endpoint', 'jwks_uri', 'revocation_endpoint', 'introspection_endpoint']) {
    assert.equal(a[field], b[field], `the two documents disagree on ${field}`);
  }
});

test('metadata: every URL in both documents is served (not 404)', async () => {
  for (const doc of ['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration']) {
    const res = await api(doc);
    assert.equal(res.status, 200, `${doc}: ${res.status}`);
    const urls = [];
    for (const [key, value] of Object.entries(res.json)) {
      // The issuer is an identifier, not a resource: nothing needs to answer at it.
      if (key === 'issuer') continue;
      for (const v of Array.isArray(value) ? value : [value]) {
        if (typeof v === 'string' && /^https?:\/\//.test(v)) urls.push([key, v]);
      }
    }
    assert.ok(urls.length >= 4, `${doc} has only ${urls.length} URLs`);
    for (const [key, url] of urls) {
      // Only the server's own URLs: nothing else is reachable from a test machine.
      if (new URL(url).origin !== issuer.origin) continue;
      let response = await fetch(url, { redirect: 'manual' });
      if (response.status === 405) {
        response = await fetch(url, {
          method: 'POST',
          redirect: 'manual',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: '',
        });
      }
      await response.arrayBuffer();
      assert.notEqual(response.status, 404, `${doc} ${key} = ${url}: 404`);
      assert.ok(response.status < 500, `${doc} ${key} = ${url}: ${response.status}`);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// The refresh-token grant, public client `keycard`.

test('refresh_token grant: rotation, then replay of the old token revokes the family', async () => {
  const config = await publicClient();
  const { id } = await user();
  const first = await login();

  const rotated = await client.refreshTokenGrant(config, first.refresh_token);
  assert.equal(rotated.token_type, 'bearer'); // openid-client lower-cases it
  assert.ok(rotated.expires_in > 0);
  assert.match(rotated.refresh_token ?? '', /^kcrt_/);
  assert.notEqual(rotated.refresh_token, first.refresh_token, 'the refresh token was not rotated');
  assert.notEqual(rotated.access_token, first.access_token);
  assert.equal(rotated.session_id, first.session_id, 'rotation must stay in the same session');
  const { header, payload } = decodeJwt(rotated.access_token);
  assert.equal(header.typ?.toLowerCase(), 'at+jwt');
  assert.equal(payload.sub, id);
  assert.equal(payload.sid, first.session_id);
  assert.equal(payload.iss, KEYCARD_URL);
  assert.equal(await meStatus(rotated.access_token), 200, 'the new access token must work on /auth/me');

  // Replaying the token that was just used: invalid_grant, and the whole family is revoked.
  const replay = await oauthError(client.refreshTokenGrant(config, first.refresh_token), 'the replay');
  assert.equal(replay.error, 'invalid_grant');
  assert.equal(replay.status, 400);
  const newest = await oauthError(
    client.refreshTokenGrant(config, rotated.refresh_token),
    'the newest refresh token after the replay',
  );
  assert.equal(newest.error, 'invalid_grant', 'the newest refresh token must die with its family');
  assert.equal(await meStatus(rotated.access_token), 401, 'the family\'s access token must stop working');
});

test('refresh_token grant: an unknown refresh token is invalid_grant', async () => {
  const config = await publicClient();
  const err = await oauthError(client.refreshTokenGrant(config, `kcrt_${randomUUID()}`));
  assert.equal(err.error, 'invalid_grant');
  assert.equal(err.status, 400);
});

// ---------------------------------------------------------------------------------------------
// The client-credentials grant, confidential client (scopes "read write").

for (const [method, make] of [
  ['client_secret_basic', basicClient],
  ['client_secret_post', postClient],
]) {
  test(`client_credentials (${method}): a token for the client itself`, async () => {
    const config = await make();
    const before = Math.floor(Date.now() / 1000);
    const res = await client.clientCredentialsGrant(config);
    assert.equal(res.token_type, 'bearer');
    assert.ok(res.expires_in > 0);
    assert.equal(res.refresh_token, undefined, 'client_credentials must not issue a refresh token');
    assert.deepEqual(scopeSet(res.scope), new Set(['read', 'write']), `scope: ${res.scope}`);
    const { header, payload } = decodeJwt(res.access_token);
    assert.equal(header.typ?.toLowerCase(), 'at+jwt');
    assert.equal(header.alg, 'EdDSA');
    assert.equal(payload.sub, CLIENT_ID);
    assert.equal(payload.client_id, CLIENT_ID);
    assert.deepEqual(scopeSet(payload.scope), new Set(['read', 'write']), `scope claim: ${payload.scope}`);
    assert.equal(typeof payload.sid, 'string');
    assert.equal(payload.iss, KEYCARD_URL);
    assert.ok(payload.exp > before, 'exp must be in the future');
  });
}

test('client_credentials: scope narrowing and invalid_scope', async () => {
  const config = await basicClient();
  const narrowed = await client.clientCredentialsGrant(config, { scope: 'read' });
  assert.equal(narrowed.scope, 'read');
  assert.equal(decodeJwt(narrowed.access_token).payload.scope, 'read');

  for (const scope of ['admin', 'read admin']) {
    const err = await oauthError(client.clientCredentialsGrant(config, { scope }));
    assert.equal(err.error, 'invalid_scope', `scope=${scope}`);
    assert.equal(err.status, 400);
  }
});

test('client_credentials: a wrong secret is 401 invalid_client with a Basic challenge', async () => {
  for (const make of [basicClient, postClient]) {
    const config = await make(`${CLIENT_SECRET}x`);
    const err = await oauthError(client.clientCredentialsGrant(config));
    assert.equal(err.status, 401);
    assert.equal(err.error, 'invalid_client');
  }
});

test('client_credentials: the public client keycard is unauthorized_client', async () => {
  const config = await publicClient();
  const err = await oauthError(client.clientCredentialsGrant(config));
  assert.equal(err.error, 'unauthorized_client');
  assert.equal(err.status, 400);
});

// ---------------------------------------------------------------------------------------------
// Revocation (RFC 7009).

test('revocation: a refresh token, then it cannot be used', async () => {
  const config = await publicClient();
  const session = await login();
  await client.tokenRevocation(config, session.refresh_token, { token_type_hint: 'refresh_token' });
  const err = await oauthError(client.refreshTokenGrant(config, session.refresh_token), 'the revoked refresh token');
  assert.equal(err.error, 'invalid_grant');
  assert.equal(await meStatus(session.access_token), 401, 'revoking the refresh token ends its session');
});

test('revocation: an access token, then /auth/me answers 401', async () => {
  const config = await publicClient();
  const session = await login();
  assert.equal(await meStatus(session.access_token), 200);
  await client.tokenRevocation(config, session.access_token, { token_type_hint: 'access_token' });
  assert.equal(await meStatus(session.access_token), 401);
  const err = await oauthError(
    client.refreshTokenGrant(config, session.refresh_token),
    'the refresh token of a session whose access token was revoked',
  );
  assert.equal(err.error, 'invalid_grant', 'the session\'s refresh token dies with it');
});

test('revocation: an unknown token is still 200', async () => {
  const config = await publicClient();
  await client.tokenRevocation(config, 'not-a-token');
  await client.tokenRevocation(config, `kcrt_${randomUUID()}`, { token_type_hint: 'refresh_token' });
});

// ---------------------------------------------------------------------------------------------
// Introspection (RFC 7662), by the confidential client.

test('introspection: a live user access token, then revoked', async () => {
  const config = await basicClient();
  const { id } = await user();
  const session = await login();
  const live = await client.tokenIntrospection(config, session.access_token);
  assert.equal(live.active, true);
  assert.equal(live.sub, id);
  assert.equal(live.client_id, 'keycard');
  assert.equal(live.sid, session.session_id);
  assert.equal(live.iss, KEYCARD_URL);
  assert.equal(typeof live.exp, 'number');
  assert.equal(live.token_type, 'Bearer');

  const refresh = await client.tokenIntrospection(config, session.refresh_token, { token_type_hint: 'refresh_token' });
  assert.equal(refresh.active, true);
  assert.equal(refresh.token_type, 'refresh_token');
  assert.equal(refresh.sid, session.session_id);

  await client.tokenRevocation(await publicClient(), session.access_token);
  assert.deepEqual({ ...(await client.tokenIntrospection(config, session.access_token)) }, { active: false });
  assert.equal((await client.tokenIntrospection(config, session.refresh_token)).active, false);
});

test('introspection: a client_credentials token, then revoked by its client', async () => {
  const config = await postClient();
  const issued = await client.clientCredentialsGrant(config, { scope: 'write' });
  const live = await client.tokenIntrospection(config, issued.access_token);
  assert.equal(live.active, true);
  assert.equal(live.sub, CLIENT_ID);
  assert.equal(live.client_id, CLIENT_ID);
  assert.equal(live.scope, 'write');
  assert.equal(typeof live.sid, 'string');
  await client.tokenRevocation(config, issued.access_token);
  assert.equal((await client.tokenIntrospection(config, issued.access_token)).active, false);
});

test('introspection: garbage is inactive', async () => {
  const config = await basicClient();
  for (const token of ['garbage', 'a.b.c', `kcrt_${randomUUID()}`]) {
    assert.deepEqual({ ...(await client.tokenIntrospection(config, token)) }, { active: false }, token);
  }
});

test('introspection: the public client and a wrong secret are refused (invalid_client)', async () => {
  const session = await login();
  const pub = await oauthError(client.tokenIntrospection(await publicClient(), session.access_token));
  assert.equal(pub.status, 401);
  assert.equal(pub.error, 'invalid_client');
  const wrong = await oauthError(client.tokenIntrospection(await basicClient('wrong'), session.access_token));
  assert.equal(wrong.status, 401);
  assert.equal(wrong.error, 'invalid_client');
});
