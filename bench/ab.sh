#!/usr/bin/env bash
# A/B of two server builds under the same load, interleaved (A B A B ...) so machine noise hits
# both alike: delivered msg/s, latency from the scheduled send, server CPU per delivered
# message, and the CPU other processes used meanwhile. For "does this change cost CPU?".
#
#   bench/ab.sh OLD_SERVER_BIN NEW_SERVER_BIN
#
# Env:
#   SHAPES      "100:10 500:10" (conversations:msg/s per visitor: 1,000 and 5,000 msg/s)
#   TRANSPORTS  "chat web"  (bidi Chat on HTTP/2; gRPC-web on HTTP/1.1)
#   REPS        3 runs of each build per shape and transport
#   DURATION_S  10;  PAYLOAD 100 bytes
#   BENCH       the load generator (default: target/release/wsmschat-bench, built if missing)
#   OUT         results directory (default: a new temporary directory; printed)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
A=${1:?usage: bench/ab.sh OLD_SERVER_BIN NEW_SERVER_BIN}
B=${2:?usage: bench/ab.sh OLD_SERVER_BIN NEW_SERVER_BIN}
SHAPES=${SHAPES:-100:10 500:10}
TRANSPORTS=${TRANSPORTS:-chat web}
REPS=${REPS:-3}
DURATION_S=${DURATION_S:-10}
PAYLOAD=${PAYLOAD:-100}
BENCH=${BENCH:-$ROOT/target/release/wsmschat-bench}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/wsmschat-ab.XXXXXX")}
mkdir -p "$OUT"
if [ ! -x "$BENCH" ]; then
  (cd "$ROOT" && cargo build --release -p wsmschat-bench >&2)
fi
echo "[ab] results in $OUT" >&2
for shape in $SHAPES; do
  conv=${shape%%:*}
  rate=${shape##*:}
  for t in $TRANSPORTS; do
    for rep in $(seq 1 "$REPS"); do
      for side in A B; do
        bin=$A
        [ "$side" = B ] && bin=$B
        label="$side-$t-$((conv * rate))-$rep"
        echo "[ab] $label" >&2
        "$BENCH" conversations --server-bin "$bin" --conversations "$conv" --rate "$rate" \
          --transport "$t" --duration-secs "$DURATION_S" --payload "$PAYLOAD" --json \
          --label "$label" >"$OUT/$label.json" || echo "[ab] $label failed" >&2
      done
    done
  done
done
python3 - "$OUT" <<'EOF'
import json, glob, os, statistics, sys
out = sys.argv[1]
rows = {}
for f in sorted(glob.glob(os.path.join(out, '*.json'))):
    try:
        r = json.load(open(f))
    except ValueError:
        continue
    side, t, rate, _ = os.path.basename(f)[:-5].split('-')
    rows.setdefault((t, int(rate)), {}).setdefault(side, []).append(r)
def med(rs, f):
    v = [f(r) for r in rs if f(r) is not None]
    return statistics.median(v) if v else float('nan')
print('| transport | msg/s | build | runs | delivered/s | lost | p50 ms | p99 ms | server us/msg (median, min-max) | other CPU % |')
print('|---|---|---|---|---|---|---|---|---|---|')
for (t, rate), sides in sorted(rows.items()):
    for side in ('A', 'B'):
        rs = sides.get(side, [])
        if not rs:
            continue
        us = [r['server']['cpuUsPerDeliveredMsg'] for r in rs if r['server']['cpuUsPerDeliveredMsg']]
        print(f"| {t} | {rate} | {side} | {len(rs)} | {med(rs, lambda r: r['throughput']):.0f} | "
              f"{sum(r['lost'] for r in rs)} | {med(rs, lambda r: r['latencyMs'].get('p50')):.1f} | "
              f"{med(rs, lambda r: r['latencyMs'].get('p99')):.1f} | "
              f"{statistics.median(us):.0f} ({min(us):.0f}-{max(us):.0f}) | "
              f"{med(rs, lambda r: r['machine']['otherCpuPct']):.0f} |")
EOF
