//! Fills a log store with a school's traffic for benchmarks (`benches/console.sh`): DAYS days
//! ending today of PER_DAY access events each, through the store's own API
//! (`Store::append_events`, as the recorder's writer does), so the counters are kept as they
//! are in service. Then a few breaches a day.
//!
//! ```text
//! cargo run --release -p hedgerow-store --example fill -- STORE_DIR [DAYS] [PER_DAY]
//! ```
//!
//! The spread: 1,200 devices in seven groups (most pupils' devices in the key stages, staff,
//! sixth form, guests), requests over the school day (7:00–18:00 heavy, a trickle at night),
//! 20,000 sites, of which about 6% are blocked across 16 categories (social networking, gambling,
//! games and adult most often), SafeSearch rewrites, a few refusals and errors. Each
//! device keeps its address and group, as DHCP leases would.

use std::sync::Arc;
use std::time::Instant;

use hedgerow_model::{AccessEvent, Action, Category, Front, Outcome, Severity, Tier};
use hedgerow_store::{Store, StoreOptions};

/// A small, fast, seeded generator (xorshift64*), so every run writes the same store.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const GROUPS: [(&str, u32); 7] = [
    ("ks2", 300),
    ("ks3", 380),
    ("ks4", 260),
    ("sixth-form", 120),
    ("staff", 110),
    ("send", 20),
    ("guests", 10),
];

/// Blocked categories with their weights.
const BLOCKED: [(&str, u64); 16] = [
    ("gambling", 18),
    ("adult", 14),
    ("social", 22),
    ("games", 16),
    ("malware", 6),
    ("hacking", 4),
    ("dating", 3),
    ("circumvention", 5),
    ("drugs", 2),
    ("piracy", 3),
    ("violence", 2),
    ("extremism", 1),
    ("self-harm", 1),
    ("hate", 1),
    ("chat", 4),
    ("genai", 3),
];

/// Categories allowed pages are named with (a default-allow verdict still names them).
const ALLOWED: [&str; 4] = ["social", "chat", "genai", "games"];

struct Device {
    name: Arc<str>,
    group: Arc<str>,
    ip: std::net::IpAddr,
}

fn devices() -> Vec<Device> {
    let mut out = Vec::new();
    let mut n = 0u32;
    for (g, count) in GROUPS {
        let group: Arc<str> = Arc::from(g);
        for i in 0..count {
            n += 1;
            out.push(Device {
                name: Arc::from(format!("{g}-{i:04}")),
                group: group.clone(),
                ip: std::net::IpAddr::from([10, 20 + (n / 250) as u8, 0, (n % 250) as u8 + 1]),
            });
        }
    }
    out
}

/// Seconds into the day for a request: three in four in the school day.
fn second_of_day(r: &mut Rng) -> i64 {
    if r.below(4) < 3 {
        7 * 3600 + r.below(11 * 3600) as i64
    } else {
        r.below(86_400) as i64
    }
}

/// One access event of the day starting at `midnight`, `s` seconds in.
fn make_event(
    r: &mut Rng,
    devices: &[Device],
    blocked: &[(Option<Category>, u64)],
    blocked_total: u64,
    allowed: &[Option<Category>],
    midnight: jiff::Timestamp,
    s: i64,
) -> AccessEvent {
    let qtypes = ["A", "AAAA", "HTTPS"];
    let dev = &devices[r.below(devices.len() as u64) as usize];
    let site = r.below(20_000);
    let t = midnight
        + jiff::SignedDuration::from_secs(s)
        + jiff::SignedDuration::from_micros(r.below(1_000_000) as i64);
    let dns = r.below(10) < 8;
    let target = if dns {
        format!("www.site{site}.example.co.uk")
    } else {
        format!("https://site{site}.example.co.uk/page/{}", r.below(50))
    };
    let mut e = AccessEvent::new(
        t,
        if dns { Front::Dns } else { Front::Proxy },
        dev.ip,
        target,
    );
    e.device = Some(dev.name.clone());
    e.group = Some(dev.group.clone());
    if dns {
        e.qtype = Some(qtypes[r.below(3) as usize].into());
    } else {
        e.method = Some("GET".into());
        e.bytes = r.below(200_000);
    }
    let roll = r.below(1000);
    if roll < 60 {
        // Blocked: a category by weight.
        let mut pick = r.below(blocked_total);
        let mut cat = None;
        for (c, w) in blocked {
            if pick < *w {
                cat = c.clone();
                break;
            }
            pick -= w;
        }
        e.outcome = Outcome::Blocked;
        e.action = Action::Block;
        e.tier = Tier::Category;
        e.list = cat.as_ref().map(|c| Arc::from(c.as_str()));
        e.category = cat;
    } else if roll < 70 {
        e.outcome = Outcome::SafeSearch;
    } else if roll < 73 {
        e.outcome = Outcome::Failed;
    } else if roll < 74 {
        e.outcome = Outcome::Refused;
    } else if roll < 400 {
        e.category = allowed[r.below(allowed.len() as u64) as usize].clone();
    }
    e
}

fn category(id: &str) -> Option<Category> {
    Category::new(id).ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or("usage: fill STORE_DIR [DAYS] [PER_DAY]")?;
    let days: i64 = args.next().map_or(Ok(30), |a| a.parse())?;
    let per_day: u64 = args.next().map_or(Ok(2_000_000), |a| a.parse())?;
    let store = Store::open(dir.as_ref(), &StoreOptions::default())?;
    let devices = devices();
    let blocked_total: u64 = BLOCKED.iter().map(|b| b.1).sum();
    let blocked: Vec<(Option<Category>, u64)> =
        BLOCKED.iter().map(|(c, w)| (category(c), *w)).collect();
    let allowed: Vec<Option<Category>> = ALLOWED.iter().map(|c| category(c)).collect();
    let today = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::UTC)
        .date();
    // Events are made on one thread and written on another (the store's writer is the
    // slower half), as the fronts and the recorder's writer do.
    enum Work {
        Events(Vec<AccessEvent>),
        Breaches(Vec<(AccessEvent, Severity)>),
        Day(jiff::civil::Date),
    }
    let (tx, rx) = std::sync::mpsc::sync_channel::<Work>(4);
    let maker = std::thread::spawn(move || -> Result<(), String> {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        const CHUNK: u64 = 20_000;
        for d in (0..days).rev() {
            let date = today
                .checked_sub(jiff::Span::new().days(d))
                .map_err(|e| e.to_string())?;
            let midnight = date
                .to_zoned(jiff::tz::TimeZone::UTC)
                .map_err(|e| e.to_string())?
                .timestamp();
            let mut left = per_day;
            while left > 0 {
                let n = left.min(CHUNK);
                left -= n;
                // Each chunk in time order, as the recorder writes them.
                let mut secs: Vec<i64> = (0..n).map(|_| second_of_day(&mut r)).collect();
                secs.sort_unstable();
                let mut events = Vec::with_capacity(n as usize);
                for s in secs {
                    events.push(make_event(
                        &mut r,
                        &devices,
                        &blocked,
                        blocked_total,
                        &allowed,
                        midnight,
                        s,
                    ));
                }
                if tx.send(Work::Events(events)).is_err() {
                    return Ok(());
                }
            }
            // A few breaches a day.
            let mut breaches = Vec::new();
            for b in 0..(5 + r.below(20)) {
                let dev = &devices[r.below(devices.len() as u64) as usize];
                let t = midnight + jiff::SignedDuration::from_secs(8 * 3600 + (b as i64) * 600);
                let mut e = AccessEvent::new(t, Front::Dns, dev.ip, format!("bad{b}.example"));
                e.device = Some(dev.name.clone());
                e.group = Some(dev.group.clone());
                e.outcome = Outcome::Blocked;
                e.action = Action::Block;
                e.tier = Tier::Category;
                e.category = category("gambling");
                let severity = [
                    Severity::Low,
                    Severity::Medium,
                    Severity::High,
                    Severity::Critical,
                ][r.below(4) as usize];
                breaches.push((e, severity));
            }
            let _ = tx.send(Work::Breaches(breaches));
            let _ = tx.send(Work::Day(date));
        }
        Ok(())
    });
    let started = Instant::now();
    let mut written = 0u64;
    for work in rx {
        match work {
            Work::Events(events) => {
                store.append_events(&events)?;
                written += events.len() as u64;
            }
            Work::Breaches(breaches) => {
                for (e, severity) in breaches {
                    store.record_breach(
                        &e,
                        severity,
                        "bench",
                        std::time::Duration::from_secs(3600),
                    )?;
                }
            }
            Work::Day(date) => eprintln!(
                "{date}: {written} events written, {:.0} events/s",
                written as f64 / started.elapsed().as_secs_f64()
            ),
        }
    }
    maker.join().map_err(|_| "the event maker panicked")??;
    store.flush()?;
    eprintln!(
        "done: {written} events over {days} days in {:.0} s; {:.1} GB on disk",
        started.elapsed().as_secs_f64(),
        store.disk_bytes()? as f64 / 1e9
    );
    Ok(())
}
