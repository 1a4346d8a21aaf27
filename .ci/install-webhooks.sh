#!/usr/bin/env bash
# Makes the Standard Webhooks reference library for Python (`standardwebhooks`, PyPI) available
# to the webhook tests (crates/keycard-server/tests/api/webhooks.rs): their receiver on 127.0.0.1
# verifies keycard's signatures with it, a library keycard did not write. It lives in its own
# venv (default ~/.local/share/keycard/webhooks-venv, or $KEYCARD_WEBHOOKS_VENV), so nothing is
# installed system-wide; the tests look there and fail loudly in CI when it is missing.
set -euo pipefail
venv="${KEYCARD_WEBHOOKS_VENV:-$HOME/.local/share/keycard/webhooks-venv}"
if "$venv/bin/python" -c 'import standardwebhooks' 2>/dev/null; then
  exit 0
fi
echo "install-webhooks: installing standardwebhooks into $venv" >&2
if ! python3 -m venv "$venv" 2>/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null) || true
  fi
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'standardwebhooks==1.*'
"$venv/bin/python" -c 'import standardwebhooks' || { echo "install-webhooks: standardwebhooks is not importable" >&2; exit 1; }
