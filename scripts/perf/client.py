# Drives N requests of one scenario over one keep-alive connection: me (GET /auth/me) or refresh.
import http.client, json, sys, uuid
port, scenario, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
def post(path, body):
    c.request("POST", path, json.dumps(body), {"content-type": "application/json"})
    r = c.getresponse(); data = r.read(); return r.status, json.loads(data or b"{}")
email = f"{uuid.uuid4().hex}@example.com"
pw = "correct horse battery staple"
assert post("/auth/signup", {"email": email, "password": pw})[0] == 201
s, tok = post("/auth/login", {"email": email, "password": pw, "delivery": "body"})
assert s == 200, tok
access, refresh = tok["access_token"], tok["refresh_token"]
for _ in range(n):
    if scenario == "me":
        c.request("GET", "/auth/me", headers={"authorization": f"Bearer {access}"})
        r = c.getresponse(); r.read(); assert r.status == 200
    else:
        s, body = post("/auth/refresh", {"refresh_token": refresh}); assert s == 200, body
        refresh = body["refresh_token"]
