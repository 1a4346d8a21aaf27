"""keycard's OAuth 2.0 endpoints driven by Authlib's requests client (OAuth2Session): a client
library keycard did not write, against a real keycard server.

Run by .ci/interop-test.sh, which starts the server and registers the confidential client (scopes
"read write"); by hand:

    KEYCARD_URL=http://127.0.0.1:PORT KEYCARD_CLIENT_ID=... KEYCARD_CLIENT_SECRET=... \
        python3 interop/python/test_oauth.py

Plain unittest (no pytest); the last line is "python: N passed, N failed".
"""

import base64
import json
import os
import sys
import time
import unittest
import uuid

import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError


def _env(name):
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"{name} is not set (see interop/README.md)")
    return value


KEYCARD_URL = _env("KEYCARD_URL").rstrip("/")
CLIENT_ID = _env("KEYCARD_CLIENT_ID")
CLIENT_SECRET = _env("KEYCARD_CLIENT_SECRET")
TIMEOUT = 30


def claims(jwt):
    """The payload of a JWS compact serialization, unverified."""
    parts = jwt.split(".")
    if len(parts) != 3:
        raise AssertionError(f"not a JWT: {jwt!r}")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))


def scopes(value):
    return set((value or "").split())


class KeycardOAuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        res = requests.get(f"{KEYCARD_URL}/.well-known/oauth-authorization-server", timeout=TIMEOUT)
        res.raise_for_status()
        cls.metadata = res.json()
        cls.token_url = cls.metadata["token_endpoint"]
        cls.revoke_url = cls.metadata["revocation_endpoint"]
        cls.introspect_url = cls.metadata["introspection_endpoint"]
        # One user for the class (signups are rate-limited per IP); each test logs in afresh.
        cls.email = f"interop-python-{uuid.uuid4()}@example.com"
        cls.password = f"Interop-{uuid.uuid4()}"
        res = requests.post(
            f"{KEYCARD_URL}/auth/signup",
            json={"email": cls.email, "password": cls.password},
            timeout=TIMEOUT,
        )
        if res.status_code != 201:
            raise AssertionError(f"signup: {res.status_code} {res.text}")
        # 201 with the new user ({id, email, created_at}); tokens come from a login.
        cls.user_id = res.json()["id"]

    # -- helpers ---------------------------------------------------------------------------------

    @classmethod
    def me(cls, access_token):
        return requests.get(
            f"{KEYCARD_URL}/auth/me",
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=TIMEOUT,
        )

    def login(self):
        """keycard's own JSON login, the refresh token in the body."""
        res = requests.post(
            f"{KEYCARD_URL}/auth/login",
            json={"email": self.email, "password": self.password, "delivery": "body"},
            timeout=TIMEOUT,
        )
        self.assertEqual(res.status_code, 200, res.text)
        body = res.json()
        self.assertTrue(body.get("refresh_token", "").startswith("kcrt_"), res.text)
        self.assertEqual(claims(body["access_token"])["sub"], self.user_id)
        return body

    def public(self):
        """The built-in public client `keycard`: no secret, client_id in the body."""
        return OAuth2Session(
            "keycard",
            token_endpoint_auth_method="none",
            revocation_endpoint_auth_method="none",
            default_timeout=TIMEOUT,
        )

    def confidential(self, method="client_secret_basic", secret=CLIENT_SECRET):
        return OAuth2Session(
            CLIENT_ID,
            secret,
            token_endpoint_auth_method=method,
            revocation_endpoint_auth_method=method,
            default_timeout=TIMEOUT,
        )

    def assertOAuthError(self, error, call, *args, **kwargs):
        with self.assertRaises(OAuthError) as cm:
            call(*args, **kwargs)
        self.assertEqual(cm.exception.error, error, str(cm.exception))

    # -- refresh_token grant, public client ------------------------------------------------------

    def test_refresh_grant_rotates_and_replay_revokes_the_family(self):
        first = self.login()
        session = self.public()
        token = session.refresh_token(self.token_url, refresh_token=first["refresh_token"])
        self.assertEqual(token["token_type"].lower(), "bearer")
        self.assertTrue(token["refresh_token"].startswith("kcrt_"))
        self.assertNotEqual(token["refresh_token"], first["refresh_token"])
        self.assertEqual(token["session_id"], first["session_id"])
        self.assertEqual(claims(token["access_token"])["sub"], self.user_id)
        # The session now carries the new token: Authlib's own Bearer auth on /auth/me.
        res = session.get(f"{KEYCARD_URL}/auth/me")
        self.assertEqual(res.status_code, 200, res.text)
        self.assertEqual(res.json()["email"], self.email)

        self.assertOAuthError(
            "invalid_grant", self.public().refresh_token, self.token_url, refresh_token=first["refresh_token"]
        )
        self.assertOAuthError(
            "invalid_grant", self.public().refresh_token, self.token_url, refresh_token=token["refresh_token"]
        )
        self.assertEqual(self.me(token["access_token"]).status_code, 401)

    # -- client_credentials grant ----------------------------------------------------------------

    def check_client_token(self, token, expected_scopes):
        self.assertEqual(token["token_type"].lower(), "bearer")
        self.assertGreater(token["expires_in"], 0)
        self.assertNotIn("refresh_token", token)
        self.assertEqual(scopes(token.get("scope")), expected_scopes)
        c = claims(token["access_token"])
        self.assertEqual(c["sub"], CLIENT_ID)
        self.assertEqual(c["client_id"], CLIENT_ID)
        self.assertEqual(scopes(c["scope"]), expected_scopes)
        self.assertIsInstance(c["sid"], str)
        self.assertEqual(c["iss"], KEYCARD_URL)
        self.assertGreater(c["exp"], time.time())

    def test_client_credentials_basic(self):
        token = self.confidential("client_secret_basic").fetch_token(self.token_url, grant_type="client_credentials")
        self.check_client_token(token, {"read", "write"})

    def test_client_credentials_post(self):
        token = self.confidential("client_secret_post").fetch_token(self.token_url, grant_type="client_credentials")
        self.check_client_token(token, {"read", "write"})

    def test_client_credentials_scope_narrowing_and_invalid_scope(self):
        session = self.confidential()
        token = session.fetch_token(self.token_url, grant_type="client_credentials", scope="write")
        self.check_client_token(token, {"write"})
        self.assertOAuthError(
            "invalid_scope", self.confidential().fetch_token, self.token_url, grant_type="client_credentials", scope="admin"
        )

    def test_client_credentials_wrong_secret(self):
        for method in ("client_secret_basic", "client_secret_post"):
            with self.subTest(method=method):
                self.assertOAuthError(
                    "invalid_client",
                    self.confidential(method, CLIENT_SECRET + "x").fetch_token,
                    self.token_url,
                    grant_type="client_credentials",
                )

    # -- revocation (RFC 7009) -------------------------------------------------------------------

    def test_revoke_refresh_token(self):
        login = self.login()
        res = self.public().revoke_token(self.revoke_url, token=login["refresh_token"], token_type_hint="refresh_token")
        self.assertEqual(res.status_code, 200, res.text)
        self.assertOAuthError(
            "invalid_grant", self.public().refresh_token, self.token_url, refresh_token=login["refresh_token"]
        )
        self.assertEqual(self.me(login["access_token"]).status_code, 401)

    def test_revoke_access_token(self):
        login = self.login()
        self.assertEqual(self.me(login["access_token"]).status_code, 200)
        res = self.public().revoke_token(self.revoke_url, token=login["access_token"], token_type_hint="access_token")
        self.assertEqual(res.status_code, 200, res.text)
        self.assertEqual(self.me(login["access_token"]).status_code, 401)

    def test_revoke_unknown_token_is_200(self):
        res = self.public().revoke_token(self.revoke_url, token="not-a-token")
        self.assertEqual(res.status_code, 200, res.text)

    # -- introspection (RFC 7662) ----------------------------------------------------------------

    def introspect(self, token, session=None):
        res = (session or self.confidential()).introspect_token(self.introspect_url, token=token)
        self.assertEqual(res.status_code, 200, res.text)
        return res.json()

    def test_introspect_user_access_token(self):
        login = self.login()
        body = self.introspect(login["access_token"])
        self.assertIs(body["active"], True, body)
        self.assertEqual(body["sub"], self.user_id)
        self.assertEqual(body["client_id"], "keycard")
        self.assertEqual(body["sid"], login["session_id"])
        self.assertEqual(body["iss"], KEYCARD_URL)
        self.public().revoke_token(self.revoke_url, token=login["refresh_token"])
        self.assertEqual(self.introspect(login["access_token"]), {"active": False})

    def test_introspect_client_token_with_client_secret_post(self):
        session = self.confidential("client_secret_post")
        token = session.fetch_token(self.token_url, grant_type="client_credentials")
        body = self.introspect(token["access_token"], session)
        self.assertIs(body["active"], True, body)
        self.assertEqual(body["sub"], CLIENT_ID)
        self.assertEqual(body["client_id"], CLIENT_ID)
        self.assertEqual(scopes(body.get("scope")), {"read", "write"})
        res = session.revoke_token(self.revoke_url, token=token["access_token"])
        self.assertEqual(res.status_code, 200, res.text)
        self.assertEqual(self.introspect(token["access_token"], session), {"active": False})

    def test_introspect_garbage(self):
        for token in ("garbage", "a.b.c", f"kcrt_{uuid.uuid4()}"):
            with self.subTest(token=token):
                self.assertEqual(self.introspect(token), {"active": False})

    def test_introspect_refused_to_the_public_client(self):
        login = self.login()
        res = self.public().introspect_token(self.introspect_url, token=login["access_token"])
        self.assertEqual(res.status_code, 401, res.text)
        self.assertEqual(res.json()["error"], "invalid_client")


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    # Tests, not subtests: a test with two failing subtests counts once.
    failed = len({getattr(t, "test_case", t).id() for t, _ in result.failures + result.errors})
    failed += len(result.unexpectedSuccesses)
    passed = max(result.testsRun - failed - len(result.skipped), 0)
    print(f"python: {passed} passed, {failed} failed" + (f", {len(result.skipped)} skipped" if result.skipped else ""))
    sys.exit(1 if failed or result.testsRun == 0 else 0)
