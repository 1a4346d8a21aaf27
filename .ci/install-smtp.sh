#!/usr/bin/env bash
# Makes sure the SMTP test server (aiosmtpd) is importable by python3: the mail tests
# (crates/keycard-server/tests/api/mail.rs) start their own `python3 -m aiosmtpd` on a free
# port writing a Maildir, and fail loudly in CI when it is missing. Debian's python3-aiosmtpd
# first, else aiosmtpd from PyPI (user site, or system-wide as root).
set -euo pipefail
if python3 -c 'import aiosmtpd' 2>/dev/null; then
  exit 0
fi
echo "install-smtp: installing aiosmtpd" >&2
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq python3-aiosmtpd >/dev/null) || true
fi
if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
  python3 -m pip install --quiet aiosmtpd 2>/dev/null ||
    python3 -m pip install --quiet --break-system-packages aiosmtpd
fi
python3 -c 'import aiosmtpd' || { echo "install-smtp: aiosmtpd is not importable" >&2; exit 1; }
