#!/usr/bin/env python3
"""Print bench/run.sh results (JSON lines) as a Markdown table."""
import json
import sys


def f(v, fmt="{:.1f}"):
    return "-" if v is None else fmt.format(v)


rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
print("| run | records | records/s | MB/s | p50 ms | p99 ms | p99.9 ms | max ms | broker CPU % | client CPU % | machine CPU % | ok |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for r in rows:
    if r.get("kind") == "idle":
        print(f"| {r['name']} ({r['seconds']:.0f} s) | | | | | | | | {r['broker_cpu_pct']:.2f} "
              f"({r['broker_cpu_ticks']} ticks) | {r['client_cpu_pct']:.2f} | {r.get('machine_cpu_pct', '-')} | |")
        continue
    ok = "yes" if r.get("rc") == 0 else f"NO (rc={r.get('rc')})"
    print(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            r["name"],
            r.get("records", "-"),
            f(r.get("records_per_sec"), "{:,.0f}"),
            f(r.get("mb_per_sec")),
            f(r.get("p50_ms"), "{:.2f}"),
            f(r.get("p99_ms"), "{:.2f}"),
            f(r.get("p999_ms"), "{:.2f}"),
            f(r.get("max_latency_ms"), "{:.1f}"),
            r.get("broker_cpu_pct", "-"),
            r.get("client_cpu_pct", "-"),
            r.get("machine_cpu_pct", "-"),
            ok,
        )
    )
