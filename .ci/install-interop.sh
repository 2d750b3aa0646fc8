#!/usr/bin/env bash
# Installs what the interop tests (tests/interop/) need on a fresh machine:
#   - Debian's Chromium at /usr/bin/chromium (for the browser test page)
#   - a Python venv with tests/interop/python/requirements.txt
#   - node_modules for tests/interop/node (ws, playwright-core) via `npm ci`
# Idempotent: safe to run repeatedly; skips work already done.
# Env: WAVECORE_INTEROP_VENV (default /tmp/wavecore-interop-venv).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${WAVECORE_INTEROP_VENV:-/tmp/wavecore-interop-venv}"
req="$repo_root/tests/interop/python/requirements.txt"
node_dir="$repo_root/tests/interop/node"

log() { echo "install-interop: $*"; }

# 1. Chromium (Debian package; playwright-core never downloads a browser).
if [[ ! -x /usr/bin/chromium ]]; then
    log "installing chromium (apt)"
    sudo_cmd=()
    if [[ "$(id -u)" -ne 0 ]]; then sudo_cmd=(sudo); fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -qq >/dev/null
    "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
/usr/bin/chromium --version >/dev/null 2>&1 || { log "chromium is installed but does not run"; exit 1; }

# 2. Python venv. Reinstall only when requirements.txt changed since the last install.
if [[ ! -x "$venv/bin/python" ]]; then
    log "creating venv at $venv"
    python3 -m venv "$venv"
fi
stamp="$venv/.wavecore-requirements"
if ! cmp -s "$req" "$stamp"; then
    log "installing python requirements"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
    cp "$req" "$stamp"
fi
"$venv/bin/python" -c 'import websockets' || { log "websockets not importable in $venv"; exit 1; }

# 3. Node dependencies, exactly as locked. `npm ci` wipes node_modules, so the
#    stamp (a copy of the lockfile it was installed from) is written after it.
node_stamp="$node_dir/node_modules/.wavecore-package-lock.json"
if ! cmp -s "$node_dir/package-lock.json" "$node_stamp"; then
    log "npm ci in tests/interop/node"
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    cp "$node_dir/package-lock.json" "$node_stamp"
fi
(cd "$node_dir" && node -e 'await import("ws"); await import("playwright-core")' --input-type=module) \
    || { log "node modules not importable in $node_dir"; exit 1; }

log "done (venv: $venv, chromium: $(/usr/bin/chromium --version 2>/dev/null | head -n1))"
