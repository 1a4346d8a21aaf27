"""A webhook receiver for keycard's tests: verifies each POST with the Standard Webhooks
reference library for Python (`standardwebhooks`, installed by .ci/install-webhooks.sh), a
library keycard did not write, and appends one JSON line per request to the log file:
{"verified": true, "id", "type", "duplicate"} or {"verified": false, "id", "error"}.

Verified deliveries are answered 204 (a duplicate id too: receivers dedupe, and say they have
it); bad signatures 401. With --hang, every request is read and never answered.

Usage: python webhook_receiver.py --port N --secret whsec_... --log FILE [--hang]
Prints "listening PORT" once bound.
"""

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook

args = argparse.ArgumentParser()
args.add_argument("--port", type=int, default=0)
args.add_argument("--secret", required=True)
args.add_argument("--log", required=True)
args.add_argument("--hang", action="store_true")
opts = args.parse_args()

webhook = Webhook(opts.secret)
lock = threading.Lock()
seen = set()


def record(entry):
    with lock:
        with open(opts.log, "a") as log:
            log.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if opts.hang:
            record({"hung": True, "id": self.headers.get("webhook-id")})
            time.sleep(3600)
            return
        headers = {k: v for k, v in self.headers.items()}
        try:
            payload = webhook.verify(body, headers)
        except Exception as e:  # WebhookVerificationError and malformed headers alike
            record({"verified": False, "id": self.headers.get("webhook-id"), "error": str(e)})
            self.send_response(401)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        msg_id = self.headers["webhook-id"]
        with lock:
            duplicate = msg_id in seen
            seen.add(msg_id)
        record({"verified": True, "id": msg_id, "type": payload.get("type"), "duplicate": duplicate,
                "data": payload.get("data")})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_):
        pass


server = ThreadingHTTPServer(("127.0.0.1", opts.port), Handler)
server.daemon_threads = True
print(f"listening {server.server_address[1]}", flush=True)
sys.stdout.close()
server.serve_forever()
