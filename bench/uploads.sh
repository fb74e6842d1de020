#!/usr/bin/env bash
# Upload benchmark: N concurrent uploads of M MB each (PDF-like bytes, so the default kinds take
# them) over HTTP POST /uploads against a fresh server; reports wall time, throughput, each
# upload's time (p50/p99), the server's CPU seconds and its peak RSS above idle (VmRSS sampled
# every 20 ms): streaming keeps the growth near N chunks, buffering would cost N x M MB.
# Usage: bench/uploads.sh [path/to/wsmschat] [N=20] [M=10]   (release binary recommended)
set -euo pipefail
bin="${1:-target/release/wsmschat}"
n="${2:-20}"
mb="${3:-10}"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/wsmschat-uploads.XXXXXX")"
pid=""
cleanup() { [[ -n "$pid" ]] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

"$bin" serve --listen 127.0.0.1:0 --data-dir "$tmp/data" --demo-listen off \
    --uploads-per-hour 100000 --new-visitors-per-minute 100000 >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 100); do grep -q "listening on" "$tmp/out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$tmp/out" | head -1 | sed 's/localhost/127.0.0.1/')
# A visitor of the demo site (its limit: 10 MB files).
token=$(python3 - "$url" <<'EOF'
import sys, json, urllib.request
# StartVisitorSession over gRPC-web: field 1 (site_key) = "demo".
body = b"\x0a\x04demo"
frame = b"\x00" + len(body).to_bytes(4, "big") + body
req = urllib.request.Request(sys.argv[1] + "/wsmschat.v1.SessionService/StartVisitorSession", data=frame,
    headers={"content-type": "application/grpc-web+proto", "x-grpc-web": "1"})
data = urllib.request.urlopen(req).read()
msg = data[5:5 + int.from_bytes(data[1:5], "big")]
# Field 1 of the response: the visitor token (length-delimited).
assert msg[0] == 0x0a
ln, i = 0, 1
shift = 0
while True:
    b = msg[i]; ln |= (b & 0x7f) << shift; i += 1; shift += 7
    if b < 0x80: break
print(msg[i:i + ln].decode())
EOF
)
python3 -c "import sys; sys.stdout.buffer.write(b'%PDF-1.4\n' + bytes(range(256)) * ($mb * 4096))" >"$tmp/file.pdf"
truncate -s "${mb}M" "$tmp/file.pdf"
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
sleep 0.5
idle=$(rss); cpu0=$(cpu); peak=$idle
( while kill -0 "$pid" 2>/dev/null; do r=$(rss); [[ "$r" -gt "$peak" ]] && peak=$r && echo "$peak" >"$tmp/peak"; sleep 0.02; done ) &
sampler=$!
start=$(date +%s.%N)
uploads=()
for i in $(seq "$n"); do
    curl -s -o "$tmp/r$i" -w '%{http_code} %{time_total}\n' -H "authorization: Bearer $token" \
        --data-binary @"$tmp/file.pdf" "$url/uploads?name=f$i.pdf" >"$tmp/t$i" &
    uploads+=($!)
done
wait "${uploads[@]}"
end=$(date +%s.%N)
kill "$sampler" 2>/dev/null || true
cpu1=$(cpu)
peak=$(cat "$tmp/peak" 2>/dev/null || echo "$idle")
ok=$(cat "$tmp"/t* | awk '$1 == 201' | wc -l)
hz=$(getconf CLK_TCK)
python3 - "$n" "$mb" "$ok" "$start" "$end" "$idle" "$peak" "$cpu0" "$cpu1" "$hz" "$tmp" <<'EOF'
import sys, glob
n, mb, ok = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
start, end = float(sys.argv[4]), float(sys.argv[5])
idle, peak = int(sys.argv[6]), int(sys.argv[7])
cpu = (int(sys.argv[9]) - int(sys.argv[8])) / int(sys.argv[10])
times = sorted(float(open(f).read().split()[1]) for f in glob.glob(sys.argv[11] + "/t*"))
pct = lambda p: times[min(len(times) - 1, int(round(p / 100 * (len(times) - 1))))]
wall = end - start
print(f"{ok}/{n} uploads of {mb} MB stored in {wall:.2f} s: {n * mb / wall:.0f} MB/s")
print(f"per upload: p50 {pct(50) * 1000:.0f} ms, p99 {pct(99) * 1000:.0f} ms")
print(f"server CPU {cpu:.2f} s ({cpu * 1e3 / (n * mb):.1f} ms per MB)")
print(f"server RSS idle {idle / 1024:.1f} MB, peak {peak / 1024:.1f} MB: +{(peak - idle) / 1024:.1f} MB "
      f"(the files: {n * mb} MB)")
EOF
