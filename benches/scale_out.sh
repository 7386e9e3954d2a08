#!/usr/bin/env bash
# The scale-out benchmark (issue 13): W2 (running word count) over Kafka,
#   direct  - one process, the direct stream and update_state_by_key (no group),
#   group1  - one process of one thread through the group (repartition + changelog),
#   group2  - two processes of one thread each, same group.
# Each run reads the same pre-filled input topic from the start and stops itself once
# input stopped arriving (--stop-when-idle); it prints records/s from its first to its
# last batch with input. In group2 the first process reads alone until the second has
# joined (a few seconds): use enough lines that this is small against the run. Reported: group2 (all both read, over
# the span from the first batch of either to the last of either) / group1, and group1 / direct
# (the cost of the repartition topic and the changelog).
#
#   bash benches/scale_out.sh [LINES] [PARTITIONS]      # defaults: 2000000 lines, 4
#
# Needs a broker at KAFKA_BOOTSTRAP_SERVERS (default 127.0.0.1:9092). Run it on a quiet
# machine with at least 4 cores: two processes and the broker share them.
set -euo pipefail
cd "$(dirname "$0")/.."
LINES=${1:-2000000}
PARTITIONS=${2:-4}
BOOTSTRAP=${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092}
RUN_ID=$(date +%s)-$$
INPUT=scale-out-bench-in-$RUN_ID
# BIN=path skips the release build (for a quick check with a debug build).
if [ -z "${BIN:-}" ]; then
    cargo build --release --features kafka --example distributed_word_count
    BIN=target/release/examples/distributed_word_count
fi
# CAP: the most records a batch reads from one partition, in every run alike (a test
# broker is slow to serve a whole backlog in one read).
common=(--bootstrap "$BOOTSTRAP" --input "$INPUT" --partitions "$PARTITIONS" --threads 1
    --batch-secs "${BATCH_SECS:-1}" --stop-when-idle "${IDLE_SECS:-15}"
    --max-records-per-partition "${CAP:-50000}")

"$BIN" --app-id fill --output "$INPUT-unused" --bootstrap "$BOOTSTRAP" --input "$INPUT" \
    --partitions "$PARTITIONS" --fill "$LINES"

rate() { local r; r=$(sed -n 's/.*: \([0-9]*\) records\/s.*/\1/p' "$1"); echo "${r:-0}"; }
out=$(mktemp -d)

"$BIN" "${common[@]}" --app-id "direct-$RUN_ID" --output "out-direct-$RUN_ID" --direct >"$out/direct"
"$BIN" "${common[@]}" --app-id "group1-$RUN_ID" --output "out-group1-$RUN_ID" >"$out/group1"
"$BIN" "${common[@]}" --app-id "group2-$RUN_ID" --output "out-group2-$RUN_ID" >"$out/group2a" &
first=$!
"$BIN" "${common[@]}" --app-id "group2-$RUN_ID" --output "out-group2-$RUN_ID" >"$out/group2b"
wait "$first"

direct=$(rate "$out/direct"); group1=$(rate "$out/group1")
# Two processes: all they read, over the time from the first batch with input of either
# to the end of the last of either.
group2=$(sed -n 's/.*read \([0-9]*\) records.*from \([0-9]*\) to \([0-9]*\) ms.*/\1 \2 \3/p' \
    "$out/group2a" "$out/group2b" | awk '
        $1 > 0 { n += $1; if (!from || $2 < from) from = $2; if ($3 > to) to = $3 }
        END { if (to > from) printf "%.0f", n * 1000 / (to - from); else print 0 }')
cat "$out"/*
echo "direct (1 process, no group):   $direct records/s"
echo "group, 1 process of 1 thread:   $group1 records/s"
echo "group, 2 processes of 1 thread: $group2 records/s (both, from the first batch to the last)"
awk -v a="$group2" -v b="$group1" -v d="$direct" 'BEGIN {
    printf "scaling (2 processes / 1): %.2fx (target 1.8x)\n", a / b
    printf "cost of the repartition topic and changelog: group1 runs at %.0f%% of direct\n", 100 * b / d
}'
rm -rf "$out"
