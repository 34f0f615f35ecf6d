#!/usr/bin/env bash
# gregor benchmark: produce/consume throughput, produce latency, idle CPU.
#
#   bench/run.sh                 # whole matrix, about 5-10 minutes
#   SCALE=0.2 bench/run.sh       # shorter runs (scales the record counts)
#
# Starts a release broker on an ephemeral port with its data in a temporary directory, once per
# partition count (topics are auto-created with num.partitions=N), and drives it with
# `gregor perf produce|consume` (librdkafka). Results: a table on stdout, raw JSON lines in
# $OUT (default bench/out/<timestamp>/).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SCALE=${SCALE:-1}
OUT=${OUT:-$ROOT/bench/out/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
PRODUCER_PROPS=(linger.ms=5 batch.size=1000000)
CLK_TCK=$(getconf CLK_TCK)

echo "== building (cargo build --release -p gregor)" >&2
cargo build --release -p gregor >&2
BIN=$ROOT/target/release/gregor

BROKER_PID=
DATA_DIR=
stop_broker() {
    if [[ -n "$BROKER_PID" ]]; then
        kill "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
        BROKER_PID=
    fi
    if [[ -n "$DATA_DIR" ]]; then
        rm -rf "$DATA_DIR"
        DATA_DIR=
    fi
}
trap stop_broker EXIT INT TERM

# start_broker PARTITIONS: sets BROKER_PID and BOOTSTRAP
start_broker() {
    local partitions=$1
    DATA_DIR=$(mktemp -d /tmp/gregor-bench.XXXXXX)
    local log=$OUT/broker-p$partitions.log
    RUST_LOG=${BROKER_LOG:-warn,gregor=info} "$BIN" server \
        --override "log.dirs=$DATA_DIR/data" \
        --override listeners=PLAINTEXT://127.0.0.1:0 \
        --override "num.partitions=$partitions" \
        2>"$log" &
    BROKER_PID=$!
    local port=
    for _ in $(seq 1 100); do
        port=$(grep -o 'listening on PLAINTEXT://127.0.0.1:[0-9]*' "$log" | head -1 | sed 's/.*://' || true)
        [[ -n "$port" ]] && break
        kill -0 "$BROKER_PID" 2>/dev/null || { echo "broker died:" >&2; cat "$log" >&2; exit 1; }
        sleep 0.1
    done
    [[ -n "$port" ]] || { echo "broker did not report its port" >&2; cat "$log" >&2; exit 1; }
    BOOTSTRAP=127.0.0.1:$port
    echo "== broker pid $BROKER_PID on $BOOTSTRAP, num.partitions=$partitions" >&2
}

cpu_ticks() { # utime+stime of a pid, in clock ticks
    awk '{print $14 + $15}' "/proc/$1/stat"
}
now_s() { date +%s.%N; }
sys_busy_ticks() { # CPU ticks spent by the whole machine (all cores), excluding idle and iowait
    awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat
}

# measure NAME KIND SIZE PARTITIONS ACKS COMMAND...: runs the command under /usr/bin/time,
# records broker and client CPU%, appends one JSON line to $RESULTS.
measure() {
    local name=$1 kind=$2 size=$3 partitions=$4 acks=$5
    shift 5
    echo "== $name: $*" >&2
    local t0 c0 t1 c1 json rc=0
    t0=$(now_s); c0=$(cpu_ticks "$BROKER_PID"); s0=$(sys_busy_ticks)
    /usr/bin/time -f '%U %S %e' -o "$OUT/$name.time" "$@" --output json >"$OUT/$name.json" 2>"$OUT/$name.err" || rc=$?
    t1=$(now_s); c1=$(cpu_ticks "$BROKER_PID"); s1=$(sys_busy_ticks)
    cat "$OUT/$name.err" | grep -v '^Command exited' >&2 || true
    json=$(tail -1 "$OUT/$name.json")
    [[ -n "$json" ]] || json='{}'
    local broker_cpu client_cpu machine_cpu
    machine_cpu=$(awk -v a="$s0" -v b="$s1" -v s="$t0" -v e="$t1" -v hz="$CLK_TCK" 'BEGIN{printf "%.0f", (b-a)/hz/(e-s)*100}')
    broker_cpu=$(awk -v a="$c0" -v b="$c1" -v s="$t0" -v e="$t1" -v hz="$CLK_TCK" 'BEGIN{printf "%.0f", (b-a)/hz/(e-s)*100}')
    client_cpu=$(awk '{printf "%.0f", ($1+$2)/($3>0?$3:1)*100}' "$OUT/$name.time" 2>/dev/null | tail -1 || echo null)
    echo "$json" | jq -c --arg name "$name" --arg kind "$kind" --argjson size "$size" \
        --argjson partitions "$partitions" --arg acks "$acks" --argjson rc "$rc" \
        --argjson broker_cpu "$broker_cpu" --argjson client_cpu "${client_cpu:-null}" --argjson machine_cpu "$machine_cpu" \
        '. + {machine_cpu_pct:$machine_cpu, name:$name, kind:$kind, size:$size, partitions:$partitions, acks:$acks, rc:$rc, broker_cpu_pct:$broker_cpu, client_cpu_pct:$client_cpu}' \
        >>"$RESULTS"
    tail -1 "$RESULTS" >&2
}

count() { awk -v n="$1" -v s="$SCALE" 'BEGIN{printf "%d", n*s}'; }

produce_run() { # partitions size acks records
    local p=$1 size=$2 acks=$3 n
    n=$(count "$4")
    measure "produce-${size}B-p$p-acks$acks" produce "$size" "$p" "$acks" \
        "$BIN" perf produce --bootstrap-server "$BOOTSTRAP" --topic "t-${size}-p$p-acks$acks" \
        --num-records "$n" --record-size "$size" --throughput -1 \
        --producer-props acks="$acks" "${PRODUCER_PROPS[@]}"
}

# ---- one partition -----------------------------------------------------------------------------
start_broker 1
produce_run 1 100 1 15000000
produce_run 1 100 all 15000000
produce_run 1 1024 1 5000000
produce_run 1 1024 all 5000000

# consume the 1 KiB / 1 partition / acks=1 topic
N1K=$(jq -r 'select(.name=="produce-1024B-p1-acks1") | .records' "$RESULTS")
measure "consume-1024B-p1" consume 1024 1 - \
    "$BIN" perf consume --bootstrap-server "$BOOTSTRAP" --topic t-1024-p1-acks1 --messages "$N1K" --timeout 10000
# and with larger fetches (librdkafka's default max.partition.fetch.bytes is 1 MiB)
measure "consume-1024B-p1-bigfetch" consume 1024 1 - \
    "$BIN" perf consume --bootstrap-server "$BOOTSTRAP" --topic t-1024-p1-acks1 --messages "$N1K" --timeout 10000 \
    --consumer-props max.partition.fetch.bytes=16777216 fetch.max.bytes=67108864

# transactions: 1 KiB records in 100 ms transactions (acks=all, idempotent underneath), and
# reading them back read_committed
NTX=$(count 5000000)
measure "produce-1024B-p1-txn100ms" produce 1024 1 all \
    "$BIN" perf produce --bootstrap-server "$BOOTSTRAP" --topic t-txn \
    --num-records "$NTX" --record-size 1024 --throughput -1 \
    --transactional-id bench-tx --transaction-duration-ms 100 \
    --producer-props acks=all "${PRODUCER_PROPS[@]}"
measure "consume-1024B-p1-read-committed" consume 1024 1 - \
    "$BIN" perf consume --bootstrap-server "$BOOTSTRAP" --topic t-txn --messages "$NTX" --timeout 10000 \
    --consumer-props isolation.level=read_committed

# latency at half the measured 1 KiB / 1 partition / acks=1 rate, ~10 s
RATE=$(jq -r 'select(.name=="produce-1024B-p1-acks1") | .records_per_sec' "$RESULTS")
HALF=$(awk -v r="$RATE" 'BEGIN{printf "%d", r/2}')
NLAT=$(awk -v r="$HALF" -v s="$SCALE" 'BEGIN{n=int(r*10*s); if (n<1000) n=1000; print n}')
measure "latency-1024B-p1-acks1-${HALF}rps" latency 1024 1 1 \
    "$BIN" perf produce --bootstrap-server "$BOOTSTRAP" --topic t-latency \
    --num-records "$NLAT" --record-size 1024 --throughput "$HALF" \
    --producer-props acks=1 "${PRODUCER_PROPS[@]}"
measure "latency-1024B-p1-acks1-${HALF}rps-linger0" latency 1024 1 1 \
    "$BIN" perf produce --bootstrap-server "$BOOTSTRAP" --topic t-latency0 \
    --num-records "$NLAT" --record-size 1024 --throughput "$HALF" \
    --producer-props acks=1 linger.ms=0 batch.size=1000000
measure "latency-1024B-p1-acks1-${HALF}rps-linger1" latency 1024 1 1 \
    "$BIN" perf produce --bootstrap-server "$BOOTSTRAP" --topic t-latency1 \
    --num-records "$NLAT" --record-size 1024 --throughput "$HALF" \
    --producer-props acks=1 linger.ms=1 batch.size=1000000

# idle: a consumer long-polls an idle topic; broker CPU over 10 s
"$BIN" perf produce --bootstrap-server "$BOOTSTRAP" --topic t-idle --num-records 1 --record-size 10 >/dev/null
"$BIN" perf consume --bootstrap-server "$BOOTSTRAP" --topic t-idle --messages 1000000000 --timeout 60000 \
    >/dev/null 2>"$OUT/idle-consumer.err" &
IDLE_CONSUMER=$!
sleep 3
t0=$(now_s); c0=$(cpu_ticks "$BROKER_PID"); cc0=$(cpu_ticks "$IDLE_CONSUMER"); s0=$(sys_busy_ticks)
sleep 10
t1=$(now_s); c1=$(cpu_ticks "$BROKER_PID"); cc1=$(cpu_ticks "$IDLE_CONSUMER"); s1=$(sys_busy_ticks)
kill "$IDLE_CONSUMER" 2>/dev/null || true
wait "$IDLE_CONSUMER" 2>/dev/null || true
awk -v a="$c0" -v b="$c1" -v ca="$cc0" -v cb="$cc1" -v sa="$s0" -v sb="$s1" -v s="$t0" -v e="$t1" -v hz="$CLK_TCK" \
    'BEGIN{printf "{\"name\":\"idle-longpoll\",\"kind\":\"idle\",\"seconds\":%.1f,\"broker_cpu_ticks\":%d,\"broker_cpu_pct\":%.2f,\"client_cpu_pct\":%.2f,\"machine_cpu_pct\":%.0f}\n", e-s, b-a, (b-a)/hz/(e-s)*100, (cb-ca)/hz/(e-s)*100, (sb-sa)/hz/(e-s)*100}' \
    >>"$RESULTS"
tail -1 "$RESULTS" >&2
stop_broker

# ---- eight partitions --------------------------------------------------------------------------
start_broker 8
produce_run 8 100 1 15000000
produce_run 8 100 all 15000000
produce_run 8 1024 1 5000000
produce_run 8 1024 all 5000000
stop_broker

# ---- summary -----------------------------------------------------------------------------------
echo
echo "results: $RESULTS"
echo "CPU % columns: 100 = one core; machine = all processes on all $(nproc) cores (others' builds and tests included)."
python3 "$ROOT/bench/summary.py" "$RESULTS"
