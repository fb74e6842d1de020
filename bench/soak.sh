#!/usr/bin/env bash
# Soak: one release server held for SOAK_MINUTES (30) under SOAK_RATE msg/s (2500: about half
# the gRPC-web knee on this 2-core machine, docs/performance.md), loaded one minute at a time by
# a fresh wsmschat-bench run, so every minute's clients connect anew (reconnecting clients).
# After each minute: server RSS, open files, and the minute's p99, lost and errors. The curve
# must stay flat: RSS and files back to the same level, p99 steady, nothing lost.
#
#   bench/soak.sh                      # 30 minutes at 2500 msg/s over gRPC-web
#   SOAK_MINUTES=5 SOAK_RATE=1000 SOAK_TRANSPORT=chat bench/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${SOAK_MINUTES:-30}
RATE=${SOAK_RATE:-2500}
TRANSPORT=${SOAK_TRANSPORT:-web}
CONVS=${SOAK_CONVERSATIONS:-500}
OUT=${SOAK_OUT:-test-output/soak-$(date +%Y%m%d-%H%M%S).tsv}
mkdir -p "$(dirname "$OUT")"

cargo build --release -p wsmschat-server -p wsmschat-bench >/dev/null
BIN=target/release/wsmschat
BENCH=target/release/wsmschat-bench
DATA=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$DATA"' EXIT

KEY=$("$BIN" api-key create --data-dir "$DATA" --name soak --scope chat | sed -n 's/^secret (shown once): //p')
# Benchmark limits (every simulated client shares 127.0.0.1), as bench/src/server.rs sets them.
env WSMSCHAT_EVENTS_PER_SECOND=1000000 WSMSCHAT_EVENTS_BURST=1000000 \
    WSMSCHAT_IP_EVENTS_PER_SECOND=100000000 WSMSCHAT_STREAMS_PER_TOKEN=1000000 \
    WSMSCHAT_STREAMS_PER_IP=0 WSMSCHAT_MAX_CONNECTIONS_PER_IP=0 WSMSCHAT_DEMO_LISTEN=off \
    WSMSCHAT_NEW_VISITORS_PER_MINUTE=100000000 WSMSCHAT_NEW_CONVERSATIONS_PER_MINUTE=100000000 \
    WSMSCHAT_NEW_CONVERSATIONS_PER_IP_HOUR=0 \
    WSMSCHAT_OPEN_CONVERSATIONS_PER_VISITOR=0 RUST_LOG=warn \
    "$BIN" serve --listen 127.0.0.1:0 --data-dir "$DATA" --demo-password soak-password-1 \
    >"$DATA/out.log" 2>"$DATA/err.log" &
PID=$!
for _ in $(seq 100); do
    URL=$(sed -n 's/^wsmschat listening on //p' "$DATA/out.log" | head -1)
    [ -n "$URL" ] && break
    sleep 0.1
done
URL=${URL/localhost/127.0.0.1}
echo "soak: $MINUTES min at $RATE msg/s over $TRANSPORT, server pid $PID at $URL; results in $OUT"
printf 'minute\trss_mb\tfds\tthroughput\tp50_ms\tp99_ms\tlost\terrors\n' | tee "$OUT"
for m in $(seq "$MINUTES"); do
    J=$("$BENCH" conversations --url "$URL" --server-pid "$PID" --api-key "$KEY" \
        --conversations "$CONVS" --rate "$(python3 -c "print($RATE/$CONVS)")" --reply \
        --transport "$TRANSPORT" --duration-secs 55 --drain-ms 3000 --json --label "minute $m" || true)
    RSS=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$PID/status")
    FDS=$(ls "/proc/$PID/fd" | wc -l)
    python3 - "$m" "$RSS" "$FDS" "$J" <<'PY' | tee -a "$OUT"
import json, sys
m, rss, fds, j = sys.argv[1:5]
try:
    r = json.loads(j)
    l = r["latencyMs"]
    print(f"{m}\t{rss}\t{fds}\t{r['throughput']}\t{l['p50']}\t{l['p99']}\t{r['lost']}\t{r['errorsTotal']}")
except Exception as e:
    print(f"{m}\t{rss}\t{fds}\t-\t-\t-\t-\tbench failed: {e}")
PY
done
python3 - "$OUT" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1]), delimiter="\t") if r["p99_ms"] not in ("-", "")]
if len(rows) >= 2:
    a, b = rows[0], rows[-1]
    print(f"first minute: RSS {a['rss_mb']} MB, {a['fds']} files, p99 {a['p99_ms']} ms")
    print(f"last minute:  RSS {b['rss_mb']} MB, {b['fds']} files, p99 {b['p99_ms']} ms")
    print("lost in all:", sum(int(r["lost"]) for r in rows), " errors in all:", sum(int(r["errors"]) for r in rows))
PY
