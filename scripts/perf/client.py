# Drives N requests of one scenario over one keep-alive connection: me (GET /auth/me) or refresh,
# with Bearer tokens; me-dpop and refresh-dpop do the same with a DPoP-bound session (RFC 9449),
# a fresh Ed25519 proof on every request (needs the `cryptography` package).
import base64, hashlib, http.client, json, sys, time, uuid
port, scenario, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
origin = f"http://127.0.0.1:{port}"
c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
dpop = scenario.endswith("-dpop")

def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

if dpop:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    key = Ed25519PrivateKey.generate()
    x = b64(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    header = b64(json.dumps({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": {"kty": "OKP", "crv": "Ed25519", "x": x}}).encode())

def proof(method, path, access=None):
    claims = {"jti": uuid.uuid4().hex, "htm": method, "htu": origin + path, "iat": int(time.time())}
    if access:
        claims["ath"] = b64(hashlib.sha256(access.encode()).digest())
    signing_input = f"{header}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(key.sign(signing_input.encode()))}"

def post(path, body):
    headers = {"content-type": "application/json"}
    if dpop:
        headers["dpop"] = proof("POST", path)
    c.request("POST", path, json.dumps(body), headers)
    r = c.getresponse(); data = r.read(); return r.status, json.loads(data or b"{}")

email = f"{uuid.uuid4().hex}@example.com"
pw = "correct horse battery staple"
assert post("/auth/signup", {"email": email, "password": pw})[0] == 201
s, tok = post("/auth/login", {"email": email, "password": pw, "delivery": "body"})
assert s == 200, tok
assert tok["token_type"] == ("DPoP" if dpop else "Bearer"), tok["token_type"]
access, refresh = tok["access_token"], tok["refresh_token"]
for _ in range(n):
    if scenario.startswith("me"):
        if dpop:
            headers = {"authorization": f"DPoP {access}", "dpop": proof("GET", "/auth/me", access)}
        else:
            headers = {"authorization": f"Bearer {access}"}
        c.request("GET", "/auth/me", headers=headers)
        r = c.getresponse(); body = r.read(); assert r.status == 200, body
    else:
        s, body = post("/auth/refresh", {"refresh_token": refresh}); assert s == 200, body
        refresh = body["refresh_token"]
