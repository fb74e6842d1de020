#!/usr/bin/env python3
"""Tables and ratios from a bench/run-compare.sh results directory (standard library only).

usage: compare_report.py RESULTS_DIR [--p99-ms 50]
"""
import json
import os
import sys


def load_jsonl(path):
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass
    return out


def load_json(path):
    rows = load_jsonl(path)
    return rows[-1] if rows else None


def fmt(x, nd=1):
    if x is None:
        return "-"
    if isinstance(x, (int, float)):
        return f"{x:,.{nd}f}"
    return str(x)


def ratio(a, b, nd=2):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.{nd}f}x"


def base_pass(r, p99):
    lat = r.get("latencyMs") or {}
    return (r.get("lost", 1) == 0 and r.get("errorsTotal", 1) == 0
            and lat.get("p99") is not None and lat["p99"] < p99)


def base_us_per_msg(r):
    s = r.get("server") or {}
    if not r.get("delivered") or s.get("cpuPct") is None:
        return None
    return s["cpuPct"] / 100 * r["windowS"] * 1e6 / r["delivered"]


# Our visitor transports, in report order (bench --transport).
TRANSPORTS = ("chat", "native", "web")


def main():
    d = sys.argv[1]
    p99 = 50.0
    if "--p99-ms" in sys.argv:
        p99 = float(sys.argv[sys.argv.index("--p99-ms") + 1])
    commit = open(os.path.join(d, "commit.txt")).read().strip() if os.path.exists(os.path.join(d, "commit.txt")) else "?"
    print(f"# wsmschat vs socket.io baseline (results: {d}, commit {commit})\n")

    base = [r for r in load_jsonl(os.path.join(d, "baseline-saturation.jsonl")) if r.get("mode") == "chat"]
    ours = {}
    for t in TRANSPORTS:
        v = load_json(os.path.join(d, f"ours-ramp-{t}.json"))
        if v:
            ours[t] = {s.get("offeredRate"): s for s in v.get("steps", [])}

    rates = sorted({r["offeredRate"] for r in base} | {k for o in ours.values() for k in o if k})
    shown = [t for t in TRANSPORTS if t in ours]
    if rates:
        print(f"## Saturation (pass = p99 <= {p99:g} ms, nothing lost, no errors)\n")
        print("| offered msg/s | baseline delivered/s | baseline p99 ms | baseline us/msg | "
              + "".join(f"ours {t} delivered/s | {t} p99 ms | {t} us/msg | " for t in shown))
        print("|---|---|---|---|" + "---|---|---|" * len(shown))
        for rate in rates:
            b = [r for r in base if r["offeredRate"] == rate]
            bcell = " / ".join(f"{r['latencyMs']['p99']:.1f}{'' if base_pass(r, p99) else '✗'}" for r in b) or "-"
            btp = fmt(b[-1]["throughput"], 0) if b else "-"
            bus = fmt(base_us_per_msg(b[-1]), 1) if b else "-"
            cells = []
            for t in shown:
                s = ours.get(t, {}).get(rate)
                if not s or "latencyMs" not in s:
                    cells += ["-", "-", "-"]
                    continue
                mark = "" if s.get("pass") else "✗"
                cells += [fmt(s.get("throughput"), 0), f"{s['latencyMs']['p99']:.2f}{mark}",
                          fmt(s["server"].get("cpuUsPerDeliveredMsg"), 1)]
            print(f"| {rate:,.0f} | {btp} | {bcell} | {bus} | " + " | ".join(cells) + " |")
        print("\n✗ = the step failed (p99 over the limit, loss or errors).\n")

    def best_base():
        ok = [r["offeredRate"] for r in base if base_pass(r, p99)]
        return max(ok) if ok else None

    def best_ours(t):
        ok = [k for k, s in ours.get(t, {}).items() if s.get("pass")]
        return max(ok) if ok else None

    bb = best_base()
    best = {t: best_ours(t) for t in shown}
    print("## Targets\n")
    print("| target | ours | baseline | ratio | met |")
    print("|---|---|---|---|---|")
    for t in shown:
        b = best[t]
        met = b is not None and bb is not None and b >= 5 * bb
        print(f"| highest passing offered rate, {t} (>= 5x baseline) | {fmt(b, 0)} | {fmt(bb, 0)} | {ratio(b, bb)} | {'yes' if met else 'NO'} |")
    bw = best.get("web")
    bn = max((best[t] for t in ("chat", "native") if best.get(t)), default=None)
    if bn and bw:
        print(f"| gRPC-web within 2x of native (highest passing rate, best native transport) | {fmt(bw, 0)} web | {fmt(bn, 0)} native | {ratio(bn, bw)} | {'yes' if bn <= 2 * bw else 'NO'} |")
    for t in TRANSPORTS:
        v = load_json(os.path.join(d, f"ours-1k-{t}.json"))
        if v and "latencyMs" in v:
            p = v["latencyMs"]["p99"]
            print(f"| p99 <= 5 ms at 1,000 msg/s ({t}) | {p:.2f} ms | - | - | {'yes' if p <= 5 and v.get('lost') == 0 else 'NO'} |")
    bc = load_json(os.path.join(d, "baseline-conns.json"))
    bkb = (bc or {}).get("server", {}).get("rssPerConnKB")
    if bkb is None:
        bkb = 13.4  # the baseline README's figure (10,000 sockets), when its conns run was skipped
        print("| (no baseline conns run here: its README's 13.4 KB per socket is used) | | | | |")
    for name in sorted(os.listdir(d)):
        if name.startswith("ours-idle-"):
            v = load_json(os.path.join(d, name))
            if not v or "server" not in v:
                continue
            kb = v["server"].get("rssPerStreamKB")
            kind = f"{v['params']['transport']}, {v['params']['streamsPerConn']} per connection"
            met = kb is not None and bkb is not None and kb <= bkb / 2
            goal = "<= 1/2 baseline" if v["params"]["transport"] == "web" else "report"
            print(f"| server RSS per idle stream ({kind}; {v['opened']}/{v['params']['streams']} open, "
                  f"{v.get('errorsTotal', 0)} errors) [{goal}] | {fmt(kb, 1)} KB | {fmt(bkb, 1)} KB | {ratio(kb, bkb)} | "
                  f"{('yes' if met else 'NO') if v['params']['transport'] == 'web' else '-'} |")
    print()
    bursts = [(n, load_json(os.path.join(d, n))) for n in sorted(os.listdir(d)) if n.startswith("ours-burst-")]
    bursts = [(n, v) for n, v in bursts if v and "arrivals" in v]
    if bursts:
        print("### Campaign burst (ours only; targets from #14)")
        print()
        print("| store | arrivals/s (failed) | ack p99 | assignments/s | queue empty after | server CPU | positions wrong | consistent after last change | errors |")
        print("|---|---|---|---|---|---|---|---|---|")
        for n, v in bursts:
            a, dr, s, p, c = v["arrivals"], v["drain"], v["server"], v["positions"], v["consistency"]
            cons = "never" if c.get("never") else f"{fmt(c.get('consistentAfterLastChangeMs'), 1)} ms"
            print(f"| {n[len('ours-burst-'):-len('.json')]} | {fmt(a['perSec'])} ({a['failed']}) | {fmt(a['ackMs']['p99'])} ms | "
                  f"{fmt(dr.get('assignmentsPerSec'))} | {fmt(dr.get('queueEmptyAfterS'))} s | {fmt(s.get('totalCpuS'), 2)} s | "
                  f"{fmt(p.get('violationsPct'), 3)}% of {p.get('pairsChecked')} | {cons} | {v.get('errorsTotal', 0)} |")
        print()


if __name__ == "__main__":
    main()
