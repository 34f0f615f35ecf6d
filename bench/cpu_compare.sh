#!/usr/bin/env bash
# Broker CPU per GB of a produce run, then of a consume run reading it all back, for two broker
# binaries side by side (a hot-path change: the binary before and after). The clients are
# `gregor perf produce|consume` of the first binary, the broker's data on tmpfs so the disk does
# not decide; each binary runs ROUNDS times, alternating.
#
#   bench/cpu_compare.sh BEFORE_BIN AFTER_BIN [RECORDS] [RECORD_SIZE] [COMPRESSION]
#   e.g. bench/cpu_compare.sh /tmp/gregor-before target/release/gregor 2000000 1024 none
#   TOPIC_CONFIG=compression.type=zstd bench/cpu_compare.sh ...   # a topic config (recompression)
#
# Prints two lines per run (produce, consume): binary, MB/s (the tool's), broker CPU seconds
# (utime+stime from /proc/<pid>/stat over the phase), broker CPU seconds per GB, and the whole
# machine's CPU seconds per GB (/proc/stat: client, broker, kernel threads such as writeback).
# SHM=/var/tmp puts the data on disk instead (what preallocation changes); with SYNC=1 the
# produce phase also waits for `sync`, so the kernel's writeback of the data is counted.
set -euo pipefail

BEFORE=${1:?before binary}
AFTER=${2:?after binary}
RECORDS=${3:-2000000}
SIZE=${4:-1024}
COMPRESSION=${5:-none}
ROUNDS=${ROUNDS:-2}
CLK_TCK=$(getconf CLK_TCK)
SHM=${SHM:-/dev/shm}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Busy jiffies of the whole machine (user, nice, system, irq, softirq).
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }

run() {
    local bin=$1 dir log pid port
    dir=$(mktemp -d "$SHM/gregor-cpu.XXXXXX")
    log=$dir/broker.log
    RUST_LOG=warn,gregor=info "$bin" server --override "log.dirs=$dir/data" \
        --override listeners=PLAINTEXT://127.0.0.1:0 2>"$log" &
    pid=$!
    for _ in $(seq 1 100); do
        port=$(grep -o 'listening on PLAINTEXT://127.0.0.1:[0-9]*' "$log" | head -1 | sed 's/.*://' || true)
        [[ -n "$port" ]] && break
        sleep 0.1
    done
    [[ -n "$port" ]] || { echo "broker did not start" >&2; cat "$log" >&2; kill "$pid"; exit 1; }
    "$BEFORE" topics --bootstrap-server "127.0.0.1:$port" --create --topic bench --partitions 1 \
        ${TOPIC_CONFIG:+--config "$TOPIC_CONFIG"} >/dev/null
    local start machine result
    start=$(cpu_ticks "$pid")
    machine=$(machine_ticks)
    result=$("$BEFORE" perf produce --bootstrap-server "127.0.0.1:$port" --topic bench \
        --num-records "$RECORDS" --record-size "$SIZE" --output json \
        --producer-props acks=1 linger.ms=5 batch.size=1000000 "compression.type=$COMPRESSION" 2>/dev/null | tail -1)
    # SYNC=1: the produce phase ends when the data is on disk (writeback counted).
    [[ "${SYNC:-0}" == 1 ]] && sync
    report "$bin" produce "$pid" "$start" "$machine" "$result"
    start=$(cpu_ticks "$pid")
    machine=$(machine_ticks)
    result=$("$BEFORE" perf consume --bootstrap-server "127.0.0.1:$port" --topic bench \
        --messages "$RECORDS" --output json 2>/dev/null | tail -1)
    report "$bin" consume "$pid" "$start" "$machine" "$result"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
}

# One line: the tool's MB/s and the broker's CPU since `start` ticks.
report() {
    local bin=$1 phase=$2 pid=$3 start=$4 machine_start=$5 result=$6 end machine mbps cpu gb
    end=$(cpu_ticks "$pid")
    machine=$(awk -v a="$machine_start" -v b="$(machine_ticks)" -v t="$CLK_TCK" 'BEGIN {printf "%.2f", (b - a) / t}')
    mbps=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(round(d.get("mb_per_sec", d.get("MBps", 0)), 1))' "$result" 2>/dev/null || echo "?")
    cpu=$(awk -v a="$start" -v b="$end" -v t="$CLK_TCK" 'BEGIN {printf "%.2f", (b - a) / t}')
    gb=$(awk -v n="$RECORDS" -v s="$SIZE" 'BEGIN {print n * s / 1e9}')
    printf '%-28s %-8s %8s MB/s  broker %6s CPU s  %6.2f CPU s/GB  machine %6.2f CPU s/GB\n' \
        "$(basename "$(dirname "$bin")")/$(basename "$bin")" "$phase" "${mbps:-?}" "$cpu" \
        "$(awk -v c="$cpu" -v g="$gb" 'BEGIN {print c / g}')" "$(awk -v c="$machine" -v g="$gb" 'BEGIN {print c / g}')"
}

echo "$RECORDS x $SIZE B, compression $COMPRESSION, ${TOPIC_CONFIG:-default topic}, $ROUNDS rounds"
for _ in $(seq 1 "$ROUNDS"); do
    run "$BEFORE"
    run "$AFTER"
done
