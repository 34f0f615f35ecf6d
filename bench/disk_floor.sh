#!/usr/bin/env bash
# What writing a log costs the machine itself, without a broker: GIB GiB in 1 MiB writes with
# `dd`, each way a segment file can be written, then `sync`. Whole-machine CPU (all processes
# and the kernel's writeback threads) from /proc/stat, so the figure is the floor a broker's
# produce path can approach on this disk.
#
#   bench/disk_floor.sh [GIB] [DIR]        e.g. bench/disk_floor.sh 4 /var/tmp
#
# Ways: append (a growing file, O_APPEND), extend (a growing file, plain sequential writes),
# fallocate (allocated to its full size first, written
# in place), keep-size (allocated with FALLOC_FL_KEEP_SIZE: blocks reserved, the size grows with
# the writes), direct (O_DIRECT, no page cache).
set -euo pipefail

GIB=${1:-4}
DIR=${2:-${TMPDIR:-/var/tmp}}
COUNT=$((GIB * 1024))
CLK_TCK=$(getconf CLK_TCK)

# busy and total jiffies of the whole machine
machine() { awk '/^cpu / {print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }

measure() {
    local how=$1 file=$DIR/disk-floor.$$ start end b0 t0 b1 t1
    rm -f "$file"
    sync
    case $how in
        fallocate) fallocate -l "${GIB}GiB" "$file" ;;
        keep-size) : >"$file"; fallocate -n -l "${GIB}GiB" "$file" ;;
    esac
    read -r b0 t0 < <(machine)
    start=$(date +%s.%N)
    case $how in
        append) dd if=/dev/zero of="$file" bs=1M count="$COUNT" oflag=append conv=notrunc status=none ;;
        extend) dd if=/dev/zero of="$file" bs=1M count="$COUNT" status=none ;;
        fallocate | keep-size) dd if=/dev/zero of="$file" bs=1M count="$COUNT" conv=notrunc status=none ;;
        direct) dd if=/dev/zero of="$file" bs=1M count="$COUNT" oflag=direct status=none ;;
    esac
    sync
    end=$(date +%s.%N)
    read -r b1 t1 < <(machine)
    rm -f "$file"
    awk -v how="$how" -v g="$GIB" -v s="$start" -v e="$end" -v b="$((b1 - b0))" -v hz="$CLK_TCK" \
        'BEGIN { gb = g * 1.073741824; printf "%-10s %6.2f GB/s  %5.2f core-s per GB\n", how, gb / (e - s), b / hz / gb }'
}

echo "$GIB GiB in 1 MiB writes to $DIR ($(df -T "$DIR" | awk 'NR==2 {print $2}')), then sync"
for how in ${WAYS:-append extend fallocate keep-size direct}; do
    measure "$how"
done
