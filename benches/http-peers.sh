#!/usr/bin/env bash
# HTTP proxy benchmark: Hedgerow's proxy beside squid alone, squid with squidGuard and
# e2guardian on the shared peer harness (../shared/bench/run-peers.sh): the same 1M blocked
# names, the same nginx origin and dnsmasq (127.0.0.2:53), ab -k -c 32 on CPU 0 and each proxy
# pinned to CPU 1, in one run.
#
#   benches/http-peers.sh                        # all four; HTTP_DUR=10 s per run
#   HTTP_DUR=5 benches/http-peers.sh hedgerow    # only hedgerow
#
# Results: a table on stdout and a TSV in target/bench-work/results/. Needs root for apt-get
# (squid, squidguard, e2guardian, nginx-light, dnsmasq, apache2-utils); SKIP_INSTALL=1 skips it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${HEDGEROW_SHARED:-$ROOT/../shared}
export BENCH_WORK=${BENCH_WORK:-$ROOT/target/bench-work}
W=$BENCH_WORK/hedgerow-proxy
mkdir -p "$W"

cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"

cat > "$W/hedgerow.toml" <<CFG
[server]
state_dir = "$W/state"

[dns]
listen = ["127.0.0.1:15390"]
upstreams = [{ address = "127.0.0.2:53" }]
rate_limit_qps = 0

[proxy]
listen = ["127.0.0.1:13140"]
# The harness's origin (nginx) is on loopback.
allow_destinations = ["127.0.0.0/8"]
max_connections_per_client = 1024

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
rm -rf "$W/state"

BIN="$ROOT/target/release/hedgerow"
export EXTRA_HTTP="hedgerow|13140|env HEDGEROW_LOG=warn $BIN run --config $W/hedgerow.toml"
if [ $# -eq 0 ]; then
  set -- squid squidguard e2guardian hedgerow
fi
HTTP_DUR=${HTTP_DUR:-10} bash "$SHARED/bench/run-peers.sh" http "$@" || true
