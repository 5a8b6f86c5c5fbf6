#!/usr/bin/env bash
# Runs every fuzz target for a bounded time, from its committed seeds (fuzz/seeds/TARGET) and
# whatever it found before (fuzz/corpus/TARGET, not committed). Used by .ci/run; see
# docs/fuzzing.md.
#
#   bash fuzz/run.sh                 every target, FUZZ_SECONDS (default 30) each
#   FUZZ_SECONDS=300 bash fuzz/run.sh dns_fast url
#
# Builds once (release, debug assertions and overflow checks on, AddressSanitizer) with the
# nightly toolchain that cargo-fuzz needs, installing cargo-fuzz from crates.io if it is
# missing. Exits non-zero if any target fails: a crash, a failed assertion, a leak, a timeout
# (10 s for one input) or running out of memory (2 GiB). The input that failed is saved in
# fuzz/artifacts/TARGET/ and its base64 printed, so it can become a regression test.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${FUZZ_SECONDS:-30}
export CARGO_TERM_COLOR=never

# The toolchain: the machine's nightly. Without one the step fails, naming the problem: a
# fuzz gate that quietly skipped would look like a pass.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=+nightly
else
  echo "fuzz: no nightly Rust toolchain on this machine (rustup toolchain list); cargo-fuzz needs one." >&2
  echo "fuzz: install it with 'rustup toolchain install nightly --profile minimal', or see docs/fuzzing.md." >&2
  exit 1
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo $toolchain fuzz list)
fi

echo "fuzz: building ${#targets[@]} targets"
start=$SECONDS
cargo $toolchain fuzz build --debug-assertions
echo "fuzz: built in $((SECONDS - start)) s"

mkdir -p logs
passed=0
failed=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  log="logs/$t.log"
  # -max_len keeps inputs datagram-sized; the seeds are smaller. -timeout and -rss_limit_mb
  # turn a hang or a runaway allocation into a failure with the input saved.
  if cargo $toolchain fuzz run --debug-assertions "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 >"$log" 2>&1; then
    passed=$((passed + 1))
    # The last status line (executions, coverage, corpus) and the totals.
    status=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    runs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' || true)
    echo "fuzz: $t ok, ${runs:-?} runs in ${seconds} s; last: ${status:-none}"
  else
    failed+=("$t")
    echo "fuzz: $t FAILED; the end of its log ($log):"
    tail -40 "$log"
  fi
done

echo "fuzz: ${passed} targets passed, ${#failed[@]} failed${failed:+: ${failed[*]}}"
[ ${#failed[@]} -eq 0 ]
