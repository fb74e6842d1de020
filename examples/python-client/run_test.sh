#!/usr/bin/env bash
# End-to-end test of the Python example client against a throwaway wsmschat server.
# Usage: examples/python-client/run_test.sh [path/to/wsmschat]   (default: target/debug/wsmschat)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

# A binary given on the command line is taken relative to the caller's directory if it exists
# there, else relative to the repo root (like the default).
bin="${1:-target/debug/wsmschat}"
if [[ "$bin" != /* && -e "$bin" ]]; then
    bin="$(pwd)/$bin"
fi
cd "$root"
if [[ ! -x "$bin" ]]; then
    echo "run_test.sh: no executable wsmschat at $bin" >&2
    exit 2
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/wsmschat-pytest.XXXXXX")"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Settings from the environment must not change the test (demo site, listen address, data dir).
unset WSMSCHAT_NO_DEMO WSMSCHAT_LISTEN WSMSCHAT_DATA_DIR WSMSCHAT_API_KEY
export NO_COLOR=1

strip_ansi() { sed -e 's/\x1b\[[0-9;]*[A-Za-z]//g'; }

# 1. An API key for the "backend service" (before the server starts: both are fine with WAL).
if ! key_out="$("$bin" api-key create --data-dir "$tmp" --name py-bot --scope chat 2>&1)"; then
    echo "run_test.sh: 'wsmschat api-key create' failed:" >&2
    printf '%s\n' "$key_out" | strip_ansi >&2
    exit 1
fi
key_out="$(printf '%s\n' "$key_out" | strip_ansi)"
secret="$(printf '%s\n' "$key_out" | sed -n 's/^.*secret (shown once): *\([^[:space:]]*\).*$/\1/p' | head -n1)"
if [[ -z "$secret" ]]; then
    echo "run_test.sh: could not read the API key secret from:" >&2
    printf '%s\n' "$key_out" >&2
    exit 1
fi

# 2. The server on a port chosen by the OS; the port is read from its log.
log="$tmp/server.log"
"$bin" serve --data-dir "$tmp" --listen 127.0.0.1:0 >"$log" 2>&1 &
server_pid=$!

addr=""
for _ in $(seq 200); do  # up to 20 s
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "run_test.sh: the server exited early; its log:" >&2
        strip_ansi <"$log" >&2
        exit 1
    fi
    port="$(strip_ansi <"$log" | sed -n 's|^wsmschat listening on http://localhost:\([0-9]*\)$|\1|p' | head -n1 || true)"
    [[ -n "$port" ]] && addr="127.0.0.1:$port"
    [[ -n "$addr" ]] && break
    sleep 0.1
done
if [[ -z "$addr" ]]; then
    echo "run_test.sh: no 'listening' line in the server log within 20 s:" >&2
    strip_ansi <"$log" >&2
    exit 1
fi

# 3. Wait until /healthz answers.
if ! python3 - "$addr" <<'EOF'
import sys, time, urllib.request
url = f"http://{sys.argv[1]}/healthz"
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.1)
sys.exit(1)
EOF
then
    echo "run_test.sh: $addr/healthz did not answer within 20 s" >&2
    strip_ansi <"$log" >&2
    exit 1
fi

# 4. Python with grpcio and grpcio-tools: the current one if it has them, else a venv.
python=python3
if ! python3 -c 'import grpc, grpc_tools' 2>/dev/null; then
    echo "run_test.sh: installing $here/requirements.txt into a venv under $tmp"
    python3 -m venv "$tmp/venv"
    "$tmp/venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    python="$tmp/venv/bin/python"
fi

# 5. The client; its exit code is the script's.
rc=0
timeout 300 "$python" "$here/client.py" --server "$addr" --api-key "$secret" --site-key demo || rc=$?
if [[ $rc -ne 0 ]]; then
    echo "run_test.sh: client failed (exit $rc); server log:" >&2
    strip_ansi <"$log" | tail -n 50 >&2
fi
exit "$rc"
