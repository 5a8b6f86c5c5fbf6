-- Hedgerow's tables in ClickHouse (docs/trust.md). Works on ClickHouse 18.16 (Debian
-- bookworm) and later. One row per access event, and one per request that opened, joined or
-- raised a breach, from every appliance of the trust; `appliance` says which school.
-- Illegal-tier rows never hold the entry: `target` and `rule` are `[protected entry] #ref`
-- and `search` is empty. tests/ship.rs creates these tables from this file.

CREATE DATABASE IF NOT EXISTS hedgerow;

CREATE TABLE IF NOT EXISTS hedgerow.access_events
(
    time       DateTime('UTC'),   -- when the query or request was answered
    time_ms    UInt16,            -- milliseconds within that second
    appliance  String,            -- [ship] appliance: the school
    front      String,            -- dns | proxy
    client     String,            -- the client's address
    device     String,            -- the device's registered or leased name, if known
    user       String,            -- the proxy user or the device's user, if known
    group      String,            -- the policy group
    target     String,            -- the name (DNS) or URL / host (proxy)
    qtype      String,            -- DNS query type
    verdict    String,            -- allow | block | rewrite | refused | rate-limited | error
    outcome    String,            -- forwarded | blocked | safe-search | circumvention | refused | rate-limited | failed | invalid
    action     String,            -- the policy's action: allow | block | rewrite
    tier       String,            -- illegal | circumvention | local-allow | local-block | allow-list | schedule | category | not-approved | default
    category   String,
    list       String,
    rule       String,
    method     String,            -- HTTP method (proxy)
    search     String,            -- search terms (proxy)
    concern    String,            -- low | medium | high | critical: a concerning phrase
    bytes      UInt64,            -- response bytes (proxy)
    reference  String             -- block page reference (16 hex digits)
)
ENGINE = MergeTree()
PARTITION BY toYYYYMM(time)
ORDER BY (appliance, time);

CREATE TABLE IF NOT EXISTS hedgerow.breaches
(
    time        DateTime('UTC'),
    time_ms     UInt16,
    appliance   String,
    front       String,
    client      String,
    device      String,
    user        String,
    group       String,
    target      String,
    qtype       String,
    verdict     String,
    outcome     String,
    action      String,
    tier        String,
    category    String,
    list        String,
    rule        String,
    method      String,
    search      String,
    concern     String,
    bytes       UInt64,
    reference   String,
    breach_id   UInt64,           -- the breach's id on that appliance (hedgerow breaches show ID)
    severity    String,           -- the breach's severity after this request: low | medium | high | critical
    breach_rule String,           -- the breach rule that matched (illegal for the illegal tier)
    change      String            -- open (a new breach) | raise (more severe) | add (joined an open one)
)
ENGINE = MergeTree()
PARTITION BY toYYYYMM(time)
ORDER BY (appliance, time);
