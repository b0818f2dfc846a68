#!/usr/bin/env bash
# The fuzz campaign (lines of two parallel jobs, -jobs=2, are logged as their sum; lines ending no-trace-compares come from that build): each named target (all by default) runs RUNS inputs (default 10 million)
# with a 2-second budget per input (hangs), a 2 GiB RSS limit, the capped allocator (one
# allocation over 256 MiB aborts) and debug assertions (integer overflow panics). New coverage
# goes to $WORK/<target>; crashes to artifacts/<target>/. Each finished run appends "target runs seconds exit" to campaign.log.
# TIME (seconds, default 0: none) stops a target earlier; its count is logged all the same.
# NO_TRACE_COMPARES=1 builds without comparison tracing: about twice the executions per second on
# targets whose time goes to comparisons (regex compilation), with coarser guidance for mutations.
# Use it with its own CARGO_TARGET_DIR, so that the two builds do not replace each other.
# Needs nightly and cargo-fuzz: cargo install cargo-fuzz.
# Afterwards, `cargo +nightly fuzz cmin <target>` minimises the kept corpus in corpus/<target>.
set -uo pipefail
cd "$(dirname "$0")"
RUNS="${RUNS:-10000000}"
TIME="${TIME:-0}"
WORK="${WORK:-/tmp/keyshift-fuzz}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(ls fuzz_targets | sed 's/\.rs$//')
extra=()
[ "${NO_TRACE_COMPARES:-0}" = 1 ] && extra+=(--no-trace-compares)
cargo +nightly fuzz build --sanitizer none --debug-assertions "${extra[@]}" || exit 1
bin="${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release"
for t in "${targets[@]}"; do
  mkdir -p "$WORK/$t" "artifacts/$t" "corpus/$t"
  start=$(date +%s)
  "$bin/$t" -runs="$RUNS" -max_total_time="$TIME" -timeout=2 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" "$WORK/$t" "corpus/$t" > "$WORK/$t.log" 2>&1
  code=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$WORK/$t.log" | grep -o '[0-9]*$')
  echo "$t ${runs:-0} $(( $(date +%s) - start )) $code${extra[*]:+ ${extra[*]#--}}" | tee -a campaign.log
done
