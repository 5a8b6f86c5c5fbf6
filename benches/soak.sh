#!/usr/bin/env bash
# Soak: runs the release appliance for SOAK_SECS (default an hour) under mixed DNS and proxy
# load, with the log store, breaches and alerts on, and samples its memory every 10 s. It
# must level off: no growth over the last half of the run beyond what the configured caches
# account for. Everything runs on loopback and stops by itself.
#
#   benches/soak.sh                      # an hour
#   SOAK_SECS=600 benches/soak.sh        # ten minutes
#
# Needs (Debian): dnsperf, dnsmasq-base (the upstream: answers every name with 127.0.0.1),
# apache2-utils (ab, the proxy load) and python3 (the origin and the webhook sink). Writes
# target/soak/rss.tsv (seconds, RSS KiB) and prints a summary.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${SOAK_SECS:-3600}
W="$ROOT/target/soak"
rm -rf "$W"
mkdir -p "$W"
for c in dnsperf ab python3; do
  command -v "$c" >/dev/null || { echo "soak: $c is missing (apt-get install dnsperf apache2-utils python3)"; exit 1; }
done
DNSMASQ=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
[ -x "$DNSMASQ" ] || { echo "soak: dnsmasq is missing (apt-get install dnsmasq-base)"; exit 1; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# Upstream: every name is 127.0.0.1.
"$DNSMASQ" --keep-in-foreground --no-resolv --no-hosts --port=15399 --listen-address=127.0.0.1 \
  --bind-interfaces --address=/#/127.0.0.1 --cache-size=0 --pid-file= &
pids+=($!)

# Origin and webhook sink.
cat > "$W/servers.py" <<'PY'
import http.server, socketserver, sys, threading
class Origin(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<html><body>soak page</body></html>"
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(204); self.end_headers()
    def log_message(self, *a): pass
class T(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
a = T(("127.0.0.1", 18080), Origin); b = T(("127.0.0.1", 18081), Hook)
threading.Thread(target=b.serve_forever, daemon=True).start()
a.serve_forever()
PY
python3 "$W/servers.py" &
pids+=($!)

# Lists: 100k blocked names in a breach category, the illegal sample.
python3 - "$W" <<'PY'
import sys
w = sys.argv[1]
with open(f"{w}/blocked.txt", "w") as f:
    for i in range(100_000):
        f.write(f"blocked{i}.soak.test\n")
# Queries: 200k distinct allowed names (more than the cache holds), 5% blocked ones.
with open(f"{w}/queries.txt", "w") as f:
    for i in range(200_000):
        if i % 20 == 0:
            f.write(f"blocked{i % 100_000}.soak.test A\n")
        else:
            f.write(f"site{i}.allowed.test A\n")
PY

cat > "$W/hedgerow.toml" <<CFG
[server]
state_dir = "$W/state"

[dns]
listen = ["127.0.0.1:15398"]
upstreams = [{ address = "127.0.0.1:15399" }]
rate_limit_qps = 0

[dns.cache]
size = 50000

[proxy]
listen = ["127.0.0.1:13199"]
allow_destinations = ["127.0.0.0/8"]
max_connections_per_client = 1024

[lists.iwf]
path = "$ROOT/blocklists/iwf-sample.txt"
format = "urls"
kind = "illegal"
category = "child-abuse"

[lists.soak]
path = "$W/blocked.txt"
format = "domains"
category = "adult"

[groups.all]
networks = ["127.0.0.0/8"]
block_categories = ["adult"]
safesearch = "off"
youtube = "off"
dns_block = "nxdomain"

[[breaches.rules]]
name = "soak"
categories = ["adult"]
severity = "high"

[alerts]
immediate = "high"

[alerts.webhook]
url = "http://127.0.0.1:18081/hook"
CFG

BIN="$ROOT/target/release/hedgerow"
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release --quiet)
HEDGEROW_LOG=warn,hedgerow=info "$BIN" run --config "$W/hedgerow.toml" > "$W/hedgerow.log" 2>&1 &
HPID=$!
pids+=($HPID)
for _ in $(seq 1 300); do
  grep -q ready "$W/hedgerow.log" 2>/dev/null && break
  sleep 0.2
done
grep -q ready "$W/hedgerow.log" || { echo "soak: the appliance did not start"; cat "$W/hedgerow.log"; exit 1; }

# DNS load: 2,000 queries a second through the whole run.
dnsperf -s 127.0.0.1 -p 15398 -d "$W/queries.txt" -l "$SECS" -Q 2000 -c 4 > "$W/dnsperf.txt" 2>&1 &
pids+=($!)
# Proxy load: bursts of allowed pages through the proxy, then a pause, until the end.
end=$(( $(date +%s) + SECS ))
( while [ "$(date +%s)" -lt "$end" ]; do
    ab -q -n 2000 -c 2 -X 127.0.0.1:13199 "http://page$RANDOM.allowed.test:18080/" >/dev/null 2>&1 || true
    sleep 1
  done ) &
pids+=($!)

echo -e "seconds\trss_kib" > "$W/rss.tsv"
start=$(date +%s)
while [ "$(date +%s)" -lt "$end" ]; do
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$HPID/status" 2>/dev/null || echo 0)
  echo -e "$(( $(date +%s) - start ))\t$rss" >> "$W/rss.tsv"
  sleep 10
done

kill -TERM "$HPID" 2>/dev/null || true
wait "$HPID" 2>/dev/null || true
python3 - "$W/rss.tsv" "$SECS" <<'PY'
import sys, statistics
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n")[1:] if l.strip()]
t = [int(a) for a, _ in rows]; r = [int(b) / 1024 for _, b in rows]
half = int(sys.argv[2]) / 2
second = [x for s, x in zip(t, r) if s >= half]
first_q = [x for s, x in zip(t, r) if half <= s < half * 1.5]
last_q = [x for s, x in zip(t, r) if s >= half * 1.5]
print(f"samples {len(r)}; RSS MiB: start {r[0]:.1f}, max {max(r):.1f}, end {r[-1]:.1f}")
if first_q and last_q:
    a, b = statistics.median(first_q), statistics.median(last_q)
    print(f"second half: median of its first quarter {a:.1f} MiB, of its last quarter {b:.1f} MiB, change {b - a:+.1f} MiB")
PY
grep -E "Queries (sent|completed|lost)|Queries per second" "$W/dnsperf.txt" || true
grep -E "dns metrics" "$W/hedgerow.log" | tail -1 || true
