#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets/) for SECONDS each (default 60) and
# prints executions and crashes per target. Exits non-zero when any target crashed,
# panicked, leaked past the memory limit or hung; the input is then in
# fuzz/artifacts/TARGET/ and `cargo +nightly fuzz run -O -a TARGET FILE` replays it.
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
# Seeds come from fuzz/corpus/TARGET (committed, read only); what the fuzzer learns
# goes to fuzz/work/TARGET (ignored), so later runs start where earlier ones stopped.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
  echo "fuzz.sh: SECONDS must be a positive whole number, got '$seconds'" >&2
  exit 2
fi

# Debug assertions on (-a): arithmetic overflow panics, so it counts as a crash.
flags=(-O -a)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/fuzz/target}"

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

echo "fuzz: building ${#targets[@]} targets (nightly, release, debug assertions)"
build_start=$(date +%s)
cargo +nightly fuzz build "${flags[@]}"
echo "fuzz: build took $(( $(date +%s) - build_start )) s"

failed=0
summary=()
for target in "${targets[@]}"; do
  work="fuzz/work/$target"
  artifacts="fuzz/artifacts/$target"
  mkdir -p "$work" "$artifacts" "fuzz/corpus/$target"
  log="fuzz/work/$target.log"
  before=$(find "$artifacts" -type f | wc -l)
  status=0
  # LEADROUTE_FUZZ_RUNS=N (CI): a fixed number of executions from a fixed seed, so the
  # run is the same on every machine and a red CI always means a real, replayable crash;
  # otherwise fuzz for SECONDS from a fresh seed.
  if [ -n "${LEADROUTE_FUZZ_RUNS:-}" ]; then
    budget=(-runs="$LEADROUTE_FUZZ_RUNS" -seed=1)
  else
    budget=(-max_total_time="$seconds")
  fi
  started=$(date +%s)
  cargo +nightly fuzz run "${flags[@]}" "$target" "$work" "fuzz/corpus/$target" -- \
    "${budget[@]}" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 >"$log" 2>&1 || status=$?
  # Measured, not the nominal budget: in `-runs` mode (CI) the time is whatever the
  # executions took (the build is timed separately above).
  elapsed=$(( $(date +%s) - started ))
  [ "$elapsed" -ge 1 ] || elapsed=1
  after=$(find "$artifacts" -type f | wc -l)
  crashes=$(( after - before ))
  if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
    crashes=1
  fi
  execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | tail -n1 | grep -Eo '[0-9]+$' || true)
  if [ -z "$execs" ]; then
    execs=$(grep -Eo '^#[0-9]+' "$log" | tail -n1 | tr -d '#' || true)
  fi
  execs="${execs:-0}"
  corpus=$(find "$work" -type f | wc -l)
  line=$(printf '%-20s %12s executions %6s s %8s exec/s %3s crashes %6s corpus' \
    "$target" "$execs" "$elapsed" "$(( execs / elapsed ))" "$crashes" "$corpus")
  echo "fuzz: $line"
  summary+=("$line")
  if [ "$crashes" -ne 0 ]; then
    failed=1
    echo "fuzz: $target failed (exit $status); the end of $log:" >&2
    tail -n 40 "$log" >&2
  fi
done

if [ -n "${LEADROUTE_FUZZ_RUNS:-}" ]; then
  echo "fuzz: summary ($LEADROUTE_FUZZ_RUNS executions per target from seed 1)"
else
  echo "fuzz: summary ($seconds s per target)"
fi
printf '  %s\n' "${summary[@]}"
exit "$failed"
