#!/usr/bin/env bash
# DNS benchmark: Hedgerow beside unbound and dnsdist on the shared peer harness
# (../shared/bench/run-peers.sh): the same 1M blocked names, the same nsd upstream, dnsperf
# on CPU 0 and each server pinned to CPU 1, in one run.
#
#   benches/dns-peers.sh                 # hedgerow (access log on), unbound, dnsdist; DUR=20 s
#   DUR=10 benches/dns-peers.sh          # shorter runs
#   benches/dns-peers.sh hedgerow        # only hedgerow (the harness's selection words)
#
# Results: a table on stdout and a TSV in target/bench-work/results/. Needs root for apt-get
# (dnsperf, unbound, dnsdist, nsd); SKIP_INSTALL=1 skips that.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${HEDGEROW_SHARED:-$ROOT/../shared}
export BENCH_WORK=${BENCH_WORK:-$ROOT/target/bench-work}
mkdir -p "$BENCH_WORK/hedgerow" "$BENCH_WORK/hedgerow-nolog"

cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"

# $1 = folder, $2 = port, $3 = access_log setting
write_config() {
  cat > "$1/hedgerow.toml" <<CFG
[server]
state_dir = "$1/state"
access_log = $3

[dns]
listen = ["127.0.0.1:$2"]
upstreams = [{ address = "127.0.0.1:15353" }]
timeout = "2s"
rate_limit_qps = 0

[dns.cache]
size = 400000

[lists.iwf]
path = "$ROOT/blocklists/iwf-sample.txt"
format = "urls"
kind = "illegal"
category = "child-abuse"

[lists.bench]
path = "$BENCH_WORK/data/blocklist.txt"
format = "domains"
category = "adult"

[groups.bench]
networks = ["127.0.0.0/8"]
block_categories = ["adult"]
safesearch = "off"
youtube = "off"
dns_block = "nxdomain"
CFG
  rm -rf "$1/state"
}
write_config "$BENCH_WORK/hedgerow" 15320 true
write_config "$BENCH_WORK/hedgerow-nolog" 15321 false

BIN="$ROOT/target/release/hedgerow"
export EXTRA_DNS="hedgerow|15320|env HEDGEROW_LOG=warn,hedgerow=info $BIN run --config $BENCH_WORK/hedgerow/hedgerow.toml;hedgerow-nolog|15321|env HEDGEROW_LOG=warn $BIN run --config $BENCH_WORK/hedgerow-nolog/hedgerow.toml"
if [ $# -eq 0 ]; then
  set -- unbound dnsdist hedgerow hedgerow-nolog
fi
# The harness's own exit status reflects its last step, not the measurements; judge by the
# table it wrote instead.
DUR=${DUR:-20} bash "$SHARED/bench/run-peers.sh" dns "$@" || true
latest=$(ls -t "$BENCH_WORK"/results/dns-*.tsv | head -1)
column -t -s $'\t' "$latest"
grep -q "^hedgerow" "$latest" || { echo "no hedgerow rows in $latest" >&2; exit 1; }
# What the access log kept: the metrics line Hedgerow writes when it stops. A run that
# dropped events measured less logging than it claims.
log="$BENCH_WORK/run/dns-hedgerow/server.log"
if [ -f "$log" ]; then
  grep "dns metrics" "$log" | tail -1 | grep -o "queries=[0-9]*\|events_[a-z]*=[0-9]*" | tr '\n' ' ' || true
  echo "(hedgerow, access log on)"
fi
