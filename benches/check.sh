#!/usr/bin/env bash
# Effectiveness-check benchmark (issue 17): the real appliance on the bundled policy with
# 1,000 names from the shared category lists (../shared/data/categories) added to its lists,
# and `hedgerow check run` for four groups, each on its own loopback address: about 2,000
# probes a group (each name by DNS and through the proxy), DNS paced at 150 queries a second
# per address (the appliance limits each client to 200). Target: under 60 s.
#
#   benches/check.sh              # release build
#   PROFILE=dev benches/check.sh  # the debug build (slower appliance; no release build needed)
#
# Prints "BENCH check: N probes, … s"; record it in docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-release}
args=()
[ "$PROFILE" = release ] && args+=(--release)
cargo test "${args[@]}" --test check bench_four_groups_2000_probes_each -- --ignored --nocapture 2>&1 \
  | grep -E "BENCH|group |failure:|test result|panicked|SKIPPED"
