#!/usr/bin/env bash
# Log shipping benchmark (issue 18): events per second shipped to ClickHouse, and what
# shipping costs DNS throughput, shipping on against off in the same run.
#
#   benches/ship.sh                 # 3 rounds of off/on, DUR=15 s each
#   ROUNDS=5 DUR=20 benches/ship.sh
#
# One release build of hedgerow runs twice side by side: "off" (no [ship]) and "on" ([ship]
# to a local Debian clickhouse-server, tables from docs/clickhouse-schema.sql), each with the
# access log on. Runs alternate off, on, off, on… so drift on a shared machine hits both.
# dnsperf (CPU 0) sends a warm mix for DUR seconds: half names on a 10,000-name block list
# (answered locally), half allowed names from a 10,000-name set answered from the cache after
# their first query (a dnsmasq upstream answers every name with 127.0.0.1, TTL 1 h). The
# appliance is pinned to CPU 1; ClickHouse and dnsmasq to CPU 0 with dnsperf, so the
# appliance's CPU carries only its own shipping work.
#
# Prints a table (qps off and on, their ratio, rows ClickHouse received, events shipped per
# second, and the appliance's own drop counts) and the medians. Needs root for apt-get
# (dnsperf, clickhouse-server, dnsmasq-base); SKIP_INSTALL=1 skips that.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=${BENCH_WORK:-$ROOT/target/bench-work}/ship
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-15}
P_UP=15399
P_OFF=15330
P_ON=15331
P_CH=18124
rm -rf "$W" && mkdir -p "$W/ch/data" "$W/ch/tmp" "$W/off" "$W/on"

if [ "${SKIP_INSTALL:-0}" != 1 ]; then
  need=()
  command -v dnsperf >/dev/null || need+=(dnsperf)
  [ -x /usr/sbin/clickhouse-server ] || need+=(clickhouse-server)
  command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
  fi
fi

cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
BIN="$ROOT/target/release/hedgerow"

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

# --- ClickHouse -------------------------------------------------------------------------
cat > "$W/ch/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><console>1</console></logger>
  <http_port>$P_CH</http_port>
  <listen_host>127.0.0.1</listen_host>
  <path>$W/ch/data/</path>
  <tmp_path>$W/ch/tmp/</tmp_path>
  <timezone>UTC</timezone>
  <mark_cache_size>5368709</mark_cache_size>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <profiles><default></default></profiles>
  <quotas><default></default></quotas>
</yandex>
XML
taskset -c 0 /usr/sbin/clickhouse-server --config-file="$W/ch/config.xml" > "$W/ch/server.log" 2>&1 &
PIDS+=($!)
ch() { curl -sS --fail-with-body --data-binary "$1" "http://127.0.0.1:$P_CH/"; }
for _ in $(seq 1 100); do ch "SELECT 1" >/dev/null 2>&1 && break; sleep 0.2; done
sed 's/--.*$//' "$ROOT/docs/clickhouse-schema.sql" | tr '\n' ' ' | tr ';' '\n' | while read -r stmt; do
  [ -n "${stmt// /}" ] && ch "$stmt"
done

# --- upstream and data --------------------------------------------------------------------
DNSMASQ=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
taskset -c 0 "$DNSMASQ" --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
  --port=$P_UP --listen-address=127.0.0.1 --bind-interfaces --address=/#/127.0.0.1 \
  --local-ttl=3600 --cache-size=0 --pid-file= &
PIDS+=($!)
seq 1 10000 | sed 's/^/blocked-/; s/$/.bench/' > "$W/blocklist.txt"
{
  seq 1 10000 | sed 's/^/blocked-/; s/$/.bench A/'
  seq 1 10000 | sed 's/^/site-/; s/$/.example A/'
} | shuf --random-source=<(yes) > "$W/queries.txt"

# $1 = folder, $2 = port, $3 = extra TOML
write_config() {
  cat > "$1/hedgerow.toml" <<CFG
[server]
state_dir = "$1/state"

[dns]
listen = ["127.0.0.1:$2"]
upstreams = [{ address = "127.0.0.1:$P_UP" }]
rate_limit_qps = 0

[dns.cache]
size = 100000
min_ttl = "1h"

[lists.iwf]
path = "$ROOT/blocklists/iwf-sample.txt"
format = "urls"
kind = "illegal"
category = "child-abuse"

[lists.bench]
path = "$W/blocklist.txt"
format = "domains"
category = "bench"

[groups.bench]
networks = ["127.0.0.0/8"]
block_categories = ["bench"]
safesearch = "off"
youtube = "off"
dns_block = "nxdomain"
$3
CFG
}
write_config "$W/off" $P_OFF ""
write_config "$W/on" $P_ON "
[ship]
appliance = \"bench\"

[ship.clickhouse]
url = \"http://127.0.0.1:$P_CH\"
"

# $1 = off|on, $2 = port, $3 = round
run_one() {
  local d=$1 port=$2 r=$3 pid out qps rows_before rows_after
  rm -rf "$W/$d/state"
  taskset -c 1 env HEDGEROW_LOG=warn,hedgerow=info,hedgerow_ship=info "$BIN" run --config "$W/$d/hedgerow.toml" \
    > "$W/$d/server-$r.log" 2>&1 &
  pid=$!
  PIDS+=($pid)
  for _ in $(seq 1 100); do grep -q "ready" "$W/$d/server-$r.log" && break; sleep 0.1; done
  # A first pass fills the cache with every allowed name, so the run is the warm mix.
  taskset -c 0 dnsperf -s 127.0.0.1 -p "$port" -d "$W/queries.txt" -n 1 -c 4 -q 200 -t 2 > /dev/null 2>&1 || true
  sleep 2   # that pass's events reach ClickHouse before counting starts
  rows_before=$(ch "SELECT count() FROM hedgerow.access_events")
  local cpu_before cpu_after
  cpu_before=$(cpu_ticks "$pid")
  out=$(taskset -c 0 dnsperf -s 127.0.0.1 -p "$port" -d "$W/queries.txt" -l "$DUR" -T 1 -c 4 -q 200 -t 2 2>&1)
  qps=$(echo "$out" | awk '/Queries per second/ {print $4}')
  completed=$(echo "$out" | awk '/Queries completed/ {print $3}')
  sleep 3   # the last batches go out (flush_interval 1 s)
  cpu_after=$(cpu_ticks "$pid")
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  PIDS=("${PIDS[@]/$pid}")
  rows_after=$(ch "SELECT count() FROM hedgerow.access_events")
  local shipped=$((rows_after - rows_before))
  local stats
  stats=$(grep -o 'clickhouse=Some([^)]*)' "$W/$d/server-$r.log" | tail -1 || true)
  # The appliance's CPU time (all its threads: answering, log writer, shipper) per query
  # answered, in microseconds: what shipping costs, whatever else the machine is doing.
  local us_per_q
  us_per_q=$(awk -v a="$cpu_before" -v b="$cpu_after" -v n="$completed" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%.2f", (b - a) / hz * 1e6 / n }')
  echo "$d $r $qps $completed $shipped $us_per_q ${stats:-"-"}"
}

# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

echo "side round qps completed rows_shipped cpu_us_per_query stats" > "$W/results.txt"
for r in $(seq 1 "$ROUNDS"); do
  run_one off $P_OFF "$r" | tee -a "$W/results.txt"
  run_one on $P_ON "$r" | tee -a "$W/results.txt"
done

echo
echo "== shipping off vs on ($ROUNDS rounds, $DUR s each, warm mix; appliance on CPU 1)"
python3 - "$W/results.txt" "$DUR" <<'PY'
import statistics, sys
rows = [l.split(None, 6) for l in open(sys.argv[1]).read().splitlines()[1:]]
dur = float(sys.argv[2])
off = {r[1]: (float(r[2]), float(r[5])) for r in rows if r[0] == "off"}
on = {r[1]: (float(r[2]), int(r[3]), int(r[4]), float(r[5]), r[6] if len(r) > 6 else "-") for r in rows if r[0] == "on"}
print(f"{'round':>5} {'qps off':>9} {'qps on':>9} {'on/off':>7} {'cpu/q off':>10} {'cpu/q on':>9} {'on/off':>7} {'answered on':>12} {'rows in CH':>11} {'shipped/s':>10}  appliance's counters (on)")
ratios, cpu_ratios, rates = [], [], []
for k in sorted(off, key=int):
    q_off, c_off = off[k]
    q_on, completed, shipped, c_on, stats = on[k]
    ratios.append(q_on / q_off)
    cpu_ratios.append(c_on / c_off)
    rate = shipped / dur
    rates.append(rate)
    print(f"{k:>5} {q_off:>9.0f} {q_on:>9.0f} {q_on / q_off:>7.3f} {c_off:>8.2f}us {c_on:>7.2f}us {c_on / c_off:>7.3f} {completed:>12} {shipped:>11} {rate:>10.0f}  {stats}")
print(f"median qps off {statistics.median(v[0] for v in off.values()):.0f}, on {statistics.median(v[0] for v in on.values()):.0f}, "
      f"ratio on/off {statistics.median(ratios):.3f}; appliance CPU per query on/off {statistics.median(cpu_ratios):.3f}; "
      f"events shipped per second {statistics.median(rates):.0f}")
PY
