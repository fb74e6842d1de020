#!/usr/bin/env bash
# Side by side: this project's server (release build) and the socket.io baseline
# (../shared/bench/seed-socketio, copied to a temporary directory) under the same load shape,
# then the ratios.
#
#   bench/run-compare.sh                 # everything below
#   PARTS="chat" bench/run-compare.sh    # only the saturation ramps
#
# Env:
#   PARTS         "chat idle" - what to run; "burst" adds the campaign shape (ours only: the baseline
#                 has no queue), on SQLite and, with BURST_PG_URL (a server URL such as
#                 postgres://postgres@127.0.0.1:5432; a fresh database is created per run), PostgreSQL
#   STEPS         "200:10 500:10 1000:10 1000:15 1000:20 1000:30 1000:40" (conversations:msg/s per
#                 visitor), the baseline's saturation steps; both sides run these
#   OUR_STEPS     "200:10 500:10 700:10 850:10 1000:10 1000:12 1000:15 1000:20 1000:30 1000:40" - our
#                 ramp: the baseline's steps plus finer ones where our knee is
#   EXTRA_STEPS   "1000:50 1000:60 1000:80 2000:50 2000:60" - our server only, past the baseline's top
#   DURATION_S    10 per step;  PAYLOAD 100 bytes;  P99_MS 50
#   TRANSPORTS    "chat native web" - our visitor transports (chat = one bidi Chat stream,
#                 native = Subscribe + Publish on HTTP/2, web = gRPC-web over HTTP/1.1)
#   CONNECTIONS   10000 idle sockets/streams (the baseline's conns run and ours);
#   OUR_MAX_STREAMS 19000 idle streams on our server (this machine allows 20,000 files per process)
#   SEED_DIR      the baseline's folder (default: ../shared/bench/seed-socketio beside the repo)
#   OUT           results directory (default: a new temporary directory; printed)
#   QUIET_WAIT_S / RETRIES / OTHER_MAX are passed to the baseline's run.sh (defaults 30 / 1 / 25)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

PARTS=${PARTS:-chat idle}
STEPS=${STEPS:-200:10 500:10 1000:10 1000:15 1000:20 1000:30 1000:40}
OUR_STEPS=${OUR_STEPS:-200:10 500:10 700:10 850:10 1000:10 1000:12 1000:15 1000:20 1000:30 1000:40}
EXTRA_STEPS=${EXTRA_STEPS:-1000:50 1000:60 1000:80 2000:50 2000:60}
DURATION_S=${DURATION_S:-10}
PAYLOAD=${PAYLOAD:-100}
P99_MS=${P99_MS:-50}
TRANSPORTS=${TRANSPORTS:-chat native web}
CONNECTIONS=${CONNECTIONS:-10000}
OUR_MAX_STREAMS=${OUR_MAX_STREAMS:-19000}
SEED_DIR=${SEED_DIR:-$ROOT/../shared/bench/seed-socketio}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/wsmschat-compare.XXXXXX")}
mkdir -p "$OUT"
log() { echo "[compare] $*" >&2; }

log "results in $OUT"
log "building the release server and load generator"
cargo build --release -p wsmschat-server -p wsmschat-bench >&2
BENCH="$ROOT/target/release/wsmschat-bench"
SERVER="$ROOT/target/release/wsmschat"
git -C "$ROOT" rev-parse --short HEAD > "$OUT/commit.txt" 2>/dev/null || true
{ nproc; grep -m1 'model name' /proc/cpuinfo || true; node -v 2>/dev/null || true; } > "$OUT/machine.txt"

BASE=""
if [ -d "$SEED_DIR" ]; then
  BASE="$OUT/seed-socketio"
  rm -rf "$BASE"; cp -r "$SEED_DIR" "$BASE"; chmod -R u+w "$BASE"
else
  log "WARNING: no baseline at $SEED_DIR; running our server only"
fi
base_run() { # mode, extra env...
  local mode=$1; shift
  (cd "$BASE" && env QUIET_WAIT_S="${QUIET_WAIT_S:-30}" RETRIES="${RETRIES:-1}" OTHER_MAX="${OTHER_MAX:-25}" \
     PAYLOAD="$PAYLOAD" P99_MS="$P99_MS" "$@" ./run.sh "$mode" >&2)
}

for part in $PARTS; do
  case "$part" in
  chat)
    if [ -n "$BASE" ]; then
      log "baseline: saturation, steps $STEPS"
      base_run saturation STEPS="$STEPS" DURATION_S="$DURATION_S" LOAD_PROCS_LIST=1 || log "baseline saturation failed"
      cp "$BASE/results/saturation.jsonl" "$OUT/baseline-saturation.jsonl" 2>/dev/null || true
    fi
    for t in $TRANSPORTS; do
      log "ours ($t): ramp, steps $OUR_STEPS $EXTRA_STEPS"
      "$BENCH" ramp --server-bin "$SERVER" --transport "$t" --steps "$OUR_STEPS $EXTRA_STEPS" \
        --duration-secs "$DURATION_S" --payload "$PAYLOAD" --p99-ms "$P99_MS" --stop-after-fails 2 \
        --json --label "ramp-$t" > "$OUT/ours-ramp-$t.json" || log "our $t ramp failed"
    done
    # The latency target: 1,000 msg/s.
    for t in $TRANSPORTS; do
      "$BENCH" conversations --server-bin "$SERVER" --conversations 100 --rate 10 --transport "$t" \
        --duration-secs "$DURATION_S" --payload "$PAYLOAD" --json --label "1k-$t" > "$OUT/ours-1k-$t.json" || true
    done
    ;;
  idle)
    if [ -n "$BASE" ]; then
      log "baseline: $CONNECTIONS idle sockets"
      base_run conns CONNECTIONS="$CONNECTIONS" || log "baseline conns failed"
      tail -n 1 "$BASE/results/conns.jsonl" > "$OUT/baseline-conns.json" 2>/dev/null || true
    fi
    log "ours: idle streams"
    "$BENCH" idle --server-bin "$SERVER" --streams "$CONNECTIONS" --transport web --workers 2 --json \
      --label "idle-web-$CONNECTIONS" > "$OUT/ours-idle-web-$CONNECTIONS.json" || true
    "$BENCH" idle --server-bin "$SERVER" --streams "$OUR_MAX_STREAMS" --transport web --workers 2 --json \
      --label "idle-web-$OUR_MAX_STREAMS" > "$OUT/ours-idle-web-$OUR_MAX_STREAMS.json" || true
    "$BENCH" idle --server-bin "$SERVER" --streams "$CONNECTIONS" --transport native --workers 2 --json \
      --label "idle-native-1" > "$OUT/ours-idle-native-1.json" || true
    "$BENCH" idle --server-bin "$SERVER" --streams "$CONNECTIONS" --transport native --streams-per-conn 500 \
      --workers 2 --json --label "idle-native-500" > "$OUT/ours-idle-native-500.json" || true
    ;;
  burst)
    log "ours: campaign burst (5,000 visitors in 10 s, 20 agents x 5), SQLite"
    "$BENCH" burst --server-bin "$SERVER" --json --label "burst-sqlite" > "$OUT/ours-burst-sqlite.json" || true
    if [ -n "${BURST_PG_URL:-}" ]; then
      db="wsmschat_burst_$$"
      psql "$BURST_PG_URL/postgres" -qc "CREATE DATABASE $db" >&2
      log "ours: campaign burst, PostgreSQL ($db)"
      "$BENCH" burst --server-bin "$SERVER" --server-env "WSMSCHAT_DATABASE_URL=$BURST_PG_URL/$db" \
        --json --label "burst-postgres" > "$OUT/ours-burst-postgres.json" || true
      psql "$BURST_PG_URL/postgres" -qc "DROP DATABASE $db" >&2 || true
    fi
    ;;
  *) log "unknown part $part"; exit 2 ;;
  esac
done

python3 "$ROOT/bench/compare_report.py" "$OUT" --p99-ms "$P99_MS"
