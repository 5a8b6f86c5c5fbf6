#!/usr/bin/env bash
# Console page speed (issue 16, "Quality bars: Speed"): each page should answer in under
# 200 ms at p95 with 30 days of 2 million events a day in the store, and a device's last
# 7 days in under 500 ms. A benchmark, not a test.
#
#   benches/console.sh                      # 30 days x 2,000,000 events, 50 requests a page
#   DAYS=7 PER_DAY=500000 N=30 benches/console.sh
#   KEEP=1 benches/console.sh               # keep the filled store for another run
#   REUSE=1 benches/console.sh              # use the store KEEP left (skips the fill)
#
# 1. Fills a store through the store's own API (`crates/store/examples/fill.rs`: 1,200
#    devices in seven groups, requests over the school day, ~6% blocked across 16
#    categories, a few breaches a day), so its counters are kept as in service.
# 2. Starts the release binary on it with the console on 127.0.0.1:$PORT, makes accounts
#    (an approver, a DSL, a governor), signs in to the console with curl: the DSL enrols an
#    authenticator at the first sign-in, as a person does, with codes computed by python3.
# 3. Requests each main page N times, one at a time (after 3 unmeasured, which also show the
#    first request after a start), and prints p50 and p95 of curl's total time; then the
#    JSON API's report routes with a bearer token.
#
# The appliance, curl and the fill share the machine; on 2 shared cores the numbers are
# what a busy box gives. Needs curl and python3; about 300 bytes of disk an event as sled
# keeps them (18 GB at 60 M, device runs included).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=${BENCH_WORK:-$ROOT/target/bench-work}/console
DAYS=${DAYS:-30}
PER_DAY=${PER_DAY:-2000000}
N=${N:-50}
PORT=${PORT:-18443}
PASSWORD="console bench password 2026"

if [ "${REUSE:-0}" != 1 ]; then
  rm -rf "$W"
fi
mkdir -p "$W/state"

cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin hedgerow
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p hedgerow-store --example fill
BIN="$ROOT/target/release/hedgerow"
FILL="$ROOT/target/release/examples/fill"

if [ "${REUSE:-0}" != 1 ] || [ ! -d "$W/state/store" ]; then
  echo "filling $DAYS days x $PER_DAY events into $W/state/store ..."
  /usr/bin/time -f "fill: %e s, %M KiB peak" "$FILL" "$W/state/store" "$DAYS" "$PER_DAY" 2>&1 | tail -3
fi
du -sh "$W/state/store" | sed 's/^/store on disk: /'

cat > "$W/iwf.txt" <<'EOF'
http://iwf-bench.invalid/a.html
EOF
cat > "$W/gambling.txt" <<'EOF'
bet.example
EOF
cat > "$W/hedgerow.toml" <<EOF
[server]
state_dir = "$W/state"
timezone = "Europe/London"

[dns]
listen = ["127.0.0.1:0"]
upstreams = [{ address = "127.0.0.1:15399" }]

[lists.iwf]
path = "$W/iwf.txt"
format = "urls"
kind = "illegal"
category = "child-abuse"

[lists.gambling]
path = "$W/gambling.txt"
format = "domains"
category = "gambling"

[groups.pupils]
networks = ["10.0.0.0/8"]
block_categories = ["gambling"]
safesearch = "on"
youtube = "strict"
dns_block = "nxdomain"

[console]
listen = "127.0.0.1:$PORT"
weekly_report = "off"
EOF

APP_PID=
cleanup() {
  if [ -n "$APP_PID" ]; then
    kill "$APP_PID" 2>/dev/null || true
    wait "$APP_PID" 2>/dev/null || true
  fi
  if [ "${KEEP:-0}" != 1 ]; then rm -rf "$W"; fi
}
trap cleanup EXIT INT TERM

"$BIN" run --config "$W/hedgerow.toml" > "$W/appliance.log" 2>&1 &
APP_PID=$!
for _ in $(seq 600); do
  grep -q " ready" "$W/appliance.log" && break
  kill -0 "$APP_PID" 2>/dev/null || { cat "$W/appliance.log"; exit 1; }
  sleep 0.1
done
grep -q " ready" "$W/appliance.log" || { echo "the appliance did not start"; tail "$W/appliance.log"; exit 1; }
echo "appliance ready ($(grep -c . "$W/appliance.log") log lines)"
# A store filled by another program has no device runs yet: the appliance writes them in the
# background at start (what an upgrade finds too). Timelines are measured once it is done.
t0=$(date +%s)
until grep -q "device runs: .* written at start" "$W/appliance.log"; do
  kill -0 "$APP_PID" 2>/dev/null || { tail "$W/appliance.log"; exit 1; }
  sleep 1
done
echo "device runs at start: $(sed -n 's/.*device runs: \([0-9]*\) closed.*/\1/p' "$W/appliance.log" | head -1) parts in $(($(date +%s) - t0)) s"

cli() { "$BIN" "$@" --config "$W/hedgerow.toml"; }
token_of() { sed -n 's/.*"token": *"\([^"]*\)".*/\1/p'; }
if ! [ -f "$W/state/bench-token" ]; then
  printf '%s\n' "$PASSWORD" | cli user add bench-admin --roles approver --json > /dev/null
fi
ADMIN=$(printf '%s\n' "$PASSWORD" | cli user token bench-admin --user bench-admin --json | token_of)
for who in "bench-dsl dsl" "bench-governor governor"; do
  set -- $who
  printf '%s\n' "$PASSWORD" | HEDGEROW_TOKEN=$ADMIN cli user add "$1" --roles "$2" --json > /dev/null 2>&1 || true
done
DSL=$(HEDGEROW_TOKEN=$ADMIN cli user token bench-dsl --json | token_of)
touch "$W/state/bench-token"

# The authenticator code for a base32 key (RFC 6238: SHA-1, 6 digits, 30 s), as a phone
# app shows it.
totp() {
  python3 - "$1" <<'PY'
import base64, hashlib, hmac, struct, sys, time
key = sys.argv[1].replace(" ", "").upper()
key = base64.b32decode(key + "=" * (-len(key) % 8))
mac = hmac.new(key, struct.pack(">Q", int(time.time()) // 30), hashlib.sha1).digest()
o = mac[-1] & 15
print("%06d" % ((struct.unpack(">I", mac[o:o + 4])[0] & 0x7FFFFFFF) % 1000000))
PY
}

# Signs in to the console as $1 with a cookie jar $2, as a person does: the password, then
# the authenticator code (a DSL, technician or approver enrols one at the first sign-in: the
# key is read from the enrolment page, kept in the state directory for a REUSE run, and the
# code computed from it). 0 if the home page then answers 200.
sign_in() {
  local who=$1 jar=$2 page csrf code='' secret to status
  rm -f "$jar"
  page=$(curl -sk -c "$jar" -b "$jar" "https://127.0.0.1:$PORT/signin")
  csrf=$(printf '%s' "$page" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' | head -1)
  if [ -f "$W/state/$who.totp" ]; then
    # A code is taken once: wait for the next one if this one was used by the last run.
    sleep "$((31 - $(date +%s) % 30))"
    code=$(totp "$(cat "$W/state/$who.totp")")
  fi
  to=$(curl -sk -c "$jar" -b "$jar" -o /dev/null -w '%{redirect_url}' \
    --data-urlencode "csrf=$csrf" --data-urlencode "name=$who" \
    --data-urlencode "password=$PASSWORD" --data-urlencode "code=$code" \
    --data-urlencode "next=/" "https://127.0.0.1:$PORT/signin")
  case "$to" in
    */signin/authenticator)
      page=$(curl -sk -c "$jar" -b "$jar" "https://127.0.0.1:$PORT/signin/authenticator")
      secret=$(printf '%s' "$page" | sed -n 's/.*<code id="secret">\([^<]*\)<.*/\1/p')
      csrf=$(printf '%s' "$page" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' | head -1)
      curl -sk -c "$jar" -b "$jar" -o /dev/null --data-urlencode "csrf=$csrf" \
        --data-urlencode "code=$(totp "$secret")" "https://127.0.0.1:$PORT/signin/authenticator"
      printf '%s' "$secret" > "$W/state/$who.totp"
      ;;
  esac
  status=$(curl -sk -b "$jar" -o /dev/null -w '%{http_code}' "https://127.0.0.1:$PORT/")
  [ "$status" = 200 ]
}

# p50 and p95 (ms) of N requests of "$@" (after 3 unmeasured; the first one's time shown).
measure() {
  local name=$1; shift
  local first code
  first=$(curl -sk -o /dev/null -w '%{time_total} %{http_code}' "$@")
  code=${first#* }
  curl -sk -o /dev/null "$@"; curl -sk -o /dev/null "$@"
  for _ in $(seq "$N"); do curl -sk -o /dev/null -w '%{time_total}\n' "$@"; done |
    sort -n | awk -v name="$name" -v first="${first% *}" -v code="$code" '
      { a[NR] = $1 }
      END {
        p50 = a[int(NR * 0.50 + 0.5)]; p95 = a[int(NR * 0.95 + 0.5)]
        printf "%-44s %4s  first %7.1f  p50 %7.1f  p95 %7.1f ms\n", name, code, first * 1000, p50 * 1000, p95 * 1000
      }'
}

DEVICE=ks3-0042
echo
echo "console pages ($N requests each, ms):"
for who in bench-dsl bench-governor; do
  jar="$W/jar-$who"
  if ! sign_in "$who" "$jar"; then
    echo "  $who: could not sign in"; exit 1
  fi
  echo "  as $who:"
  for path in / /reports /reports/weekly /reports/trends "/reports/trends?weeks=4&group=ks3" \
    "/reports/trends?weeks=12&category=gambling" /breaches /breaches/1 \
    /reviews /site-reports /logs \
    "/logs?device=$DEVICE" "/logs?category=gambling" "/logs?verdict=block&group=ks2" \
    "/logs?site=site123.example.co.uk" "/logs/device?name=$DEVICE&days=7" \
    "/logs/device?name=$DEVICE&days=31" /changes /checks /audit /system; do
    # Pupil-level pages are the DSL's: a governor's answer is a refusal, not a page.
    case "$who:$path" in
      bench-governor:/logs* | bench-governor:/breaches* | bench-governor:/reviews* | \
        bench-governor:/site-reports* | bench-governor:/system) continue ;;
    esac
    measure "    $path" -b "$jar" "https://127.0.0.1:$PORT$path"
  done
done

echo
echo "API (bearer token, Unix socket; the DSL's pages' data):"
for path in /api/v1/reports/dashboard /api/v1/reports/weekly/last /api/v1/reports/weekly/this \
  /api/v1/reports/trends "/api/v1/reports/trends?weeks=52"; do
  measure "  GET $path" --unix-socket "$W/state/api.sock" -H "Authorization: Bearer $DSL" "http://localhost$path"
done
# A device's last 7 days (what the device timeline reads), and the newest 100 events.
WEEK_AGO=$(date -u -d '7 days ago' +%Y-%m-%dT%H:%M:%SZ)
measure "  POST /api/v1/logs (device, 7 days)" --unix-socket "$W/state/api.sock" \
  -H "Authorization: Bearer $DSL" -H "Content-Type: application/json" \
  --data "{\"device\":\"$DEVICE\",\"from\":\"$WEEK_AGO\"}" "http://localhost/api/v1/logs"
measure "  POST /api/v1/logs (newest 100)" --unix-socket "$W/state/api.sock" \
  -H "Authorization: Bearer $DSL" -H "Content-Type: application/json" \
  --data '{"limit":100}' "http://localhost/api/v1/logs"
