//! The recorder: where the fronts hand events, without ever waiting.
//!
//! `record` encodes the event into the open batch under a mutex held for that one event, and
//! wakes nobody: a writer thread takes the batches every `interval` and writes them. Waking a
//! writer per event costs a context switch per DNS answer; encoding on the recording thread
//! reads the event while it is still in that thread's cache (the writer, reading thousands of
//! events 20 ms later, spent half its time on those cache misses), and frees it there.
//! Breaches also go on a queue of their own that is never bounded or dropped; the writer puts
//! each on disk (flushed) before it counts as recorded, and retries on a write error rather
//! than lose it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use hedgerow_model::{AccessEvent, BreachRule, EventSink, Severity};

use crate::store::Prepared;
use crate::wire::{BatchBuilder, Sealed, ValueScratch};
use crate::{Change, Recorded, Store, breach_for};

/// Where the recorder hands a copy of what it records, for shipping to another engine
/// (`hedgerow-ship`). Both calls come after the illegal tier's entry has been withheld: the
/// event is the form the store keeps. They are made on the recording front's thread
/// (`access`) and on the log writer's (`breach`): an implementation must never block or
/// wait, only queue or drop (and count what it drops).
pub trait Tap: Send + Sync {
    /// An access event, whether or not the store keeps access events (`access_log`).
    fn access(&self, event: AccessEvent);
    /// A breach request once it is in the store: the event that opened it, joined it or
    /// raised it, with the breach's id, severity after it, and the rule that matched.
    fn breach(&self, event: &AccessEvent, recorded: &Recorded, rule: &str);
}

/// How the recorder batches and which events are breaches.
#[derive(Debug, Clone)]
pub struct RecorderOptions {
    /// Most access events held between two writes; more are counted and dropped.
    pub capacity: usize,
    /// How often the writer takes the buffer.
    pub interval: Duration,
    pub rules: Vec<BreachRule>,
    /// The same device, site and rule within this long is one breach.
    pub window: Duration,
    /// Store access events (`[server] access_log`). Breaches are recorded either way.
    pub access_log: bool,
}

impl Default for RecorderOptions {
    fn default() -> Self {
        Self {
            capacity: 262_144,
            interval: Duration::from_millis(50),
            rules: Vec::new(),
            window: Duration::from_secs(3600),
            access_log: true,
        }
    }
}

/// Counters, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecorderStats {
    /// Access events written to the store.
    pub written: u64,
    /// Access events dropped because the buffer was full.
    pub dropped: u64,
    /// Access events lost to a failed write.
    pub failed: u64,
    /// Breaches on disk (new or added to an open one).
    pub breaches: u64,
    /// Breaches waiting for the writer.
    pub breaches_queued: u64,
}

struct Shared {
    store: Arc<Store>,
    /// Swapped whole by [`Recorder::reconfigure`]; read once per event and once per round.
    options: ArcSwap<RecorderOptions>,
    /// Read once per event; `None` unless shipping is configured.
    tap: ArcSwapOption<Arc<dyn Tap>>,
    pending: Mutex<Pending>,
    breaches: Mutex<Vec<(AccessEvent, Severity, Arc<str>)>>,
    written: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    breaches_done: AtomicU64,
    /// Blocks by group and category, counted as block events arrive (few: a short list).
    blocks: Mutex<Vec<BlockCount>>,
    stopping: AtomicBool,
    /// Rounds the writer has finished, for [`Recorder::sync`].
    rounds: Mutex<u64>,
    round_done: Condvar,
}

/// Blocks of one group and category, for the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockCount {
    /// `-` when the event had none (a client outside every network is refused, not blocked).
    pub group: Arc<str>,
    /// `-` for a block without one (a local block entry, not approved, a canary).
    pub category: Arc<str>,
    pub count: u64,
}

/// Access events waiting for the writer, already encoded.
#[derive(Default)]
struct Pending {
    batch: BatchBuilder,
    sealed: Vec<Sealed>,
    /// Events in `batch` and `sealed`.
    events: usize,
}

/// The event sink the fronts use. Stop it with [`Recorder::stop`] to write what it holds.
pub struct Recorder {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The thread writing closed parts' device runs (`runs.rs`).
    runs: Mutex<Option<JoinHandle<()>>>,
}

impl Recorder {
    /// Starts the writer thread.
    pub fn start(store: Arc<Store>, options: RecorderOptions) -> std::io::Result<Arc<Self>> {
        let shared = Arc::new(Shared {
            store,
            pending: Mutex::new(Pending::default()),
            breaches: Mutex::new(Vec::new()),
            options: ArcSwap::from_pointee(options),
            tap: ArcSwapOption::empty(),
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            breaches_done: AtomicU64::new(0),
            blocks: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            rounds: Mutex::new(0),
            round_done: Condvar::new(),
        });
        let s = shared.clone();
        let writer = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || {
                lower_priority(WRITER_NICE);
                s.write_loop()
            })?;
        // The parts the last run left open (and, in a store from before counters, every
        // part) are added into the day counters now, at the writer's priority, rather than
        // by the first report that reads them.
        let store = shared.store.clone();
        std::thread::Builder::new()
            .name("log-counts".into())
            .spawn(move || {
                lower_priority(WRITER_NICE);
                match store.settle_all() {
                    Ok(0) => {}
                    Ok(n) => tracing::info!("{n} parts of days added to the report counters"),
                    Err(e) => tracing::warn!("adding parts of days to the report counters: {e}"),
                }
            })?;
        let s = shared.clone();
        let runs = std::thread::Builder::new()
            .name("log-runs".into())
            .spawn(move || s.runs_loop())?;
        Ok(Arc::new(Self {
            shared,
            writer: Mutex::new(Some(writer)),
            runs: Mutex::new(Some(runs)),
        }))
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.shared.store
    }

    /// Puts new options in force at once (a reload): the next event is checked against the
    /// new breach rules and queue size, the next breach uses the new window, and the writer's
    /// next round waits the new interval.
    pub fn reconfigure(&self, options: RecorderOptions) {
        self.shared.options.store(Arc::new(options));
    }

    /// Hands a copy of every event and breach recorded from now on to `tap` (`None`: to
    /// nobody).
    pub fn set_tap(&self, tap: Option<Arc<dyn Tap>>) {
        self.shared.tap.store(tap.map(Arc::new));
    }

    /// The options in force.
    pub fn options(&self) -> Arc<RecorderOptions> {
        self.shared.options.load_full()
    }

    pub fn stats(&self) -> RecorderStats {
        let s = &self.shared;
        RecorderStats {
            written: s.written.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            breaches: s.breaches_done.load(Ordering::SeqCst),
            breaches_queued: lock(&s.breaches).len() as u64,
        }
    }

    /// Blocks so far by group and category (every block event, whether or not access events
    /// are stored).
    pub fn block_counts(&self) -> Vec<BlockCount> {
        lock(&self.shared.blocks).clone()
    }

    /// Blocks until everything recorded before the call has been through the writer.
    /// For tests and shutdown; never call it on a request path.
    pub fn sync(&self) {
        let s = &self.shared;
        let mut rounds = lock(&s.rounds);
        // The round under way may have taken its buffer before our last record: wait for two.
        let target = *rounds + 2;
        while *rounds < target && !s.stopping.load(Ordering::SeqCst) {
            rounds = s
                .round_done
                .wait_timeout(rounds, Duration::from_millis(50))
                .map_or_else(|p| p.into_inner().0, |r| r.0);
        }
    }

    /// Writes what is held and stops the writer.
    pub fn stop(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        if let Some(h) = lock(&self.writer).take() {
            let _ = h.join();
        }
        if let Some(h) = lock(&self.runs).take() {
            let _ = h.join();
        }
    }
}

/// Batches written in one store transaction, at most: about 0.4 ms of the writer's time.
/// A transaction also costs sled's I/O threads two disk writes whatever its size, so one a
/// batch cost more than the writing itself.
const BATCHES_PER_WRITE: usize = 4;

/// The writer's CPU time between two pauses, and the pause (see `write_loop`). Measured on
/// the warm mix with dnsperf, the writer sharing the answering thread's core, at the same
/// throughput: warm p99 2.45–2.51 ms written in one go; 1.78–1.91 ms with a pause of 300 µs
/// after each 300 µs between writes; 1.47–1.75 ms with these values, pausing between batches
/// too (two runs each).
const BURST: Duration = Duration::from_micros(150);
const PAUSE: Duration = Duration::from_micros(200);

/// A round with more batches than this is written without pauses, to catch up (a round at
/// 150k events a second holds about 15).
const PACED_BATCHES: usize = 256;

/// CPU time used by the calling thread (zero where the clock cannot be read).
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// How much lower than the fronts the writer runs. It shares cores with the threads that
/// answer; at its normal priority its batch writes landed between answers and the warm-mix
/// p99 with logging on was 3.2–3.7 ms, against 2.6–2.7 ms at nice +10 (measured alternately,
/// no event dropped). At +10 it still gets about a tenth of a contended core, about twice
/// what it needs at 130k events a second; at +15 it fell behind and dropped events. Threads
/// sled starts from the writer (its I/O pool) inherit the value.
const WRITER_NICE: i32 = 10;

/// Lowers the calling thread's priority by `by` (to nice 19 at most). Where that is
/// refused, the thread just keeps its priority.
fn lower_priority(by: i32) {
    let tid = rustix::thread::gettid();
    let now = rustix::process::getpriority_process(Some(tid)).unwrap_or(0);
    if let Err(e) = rustix::process::setpriority_process(Some(tid), (now + by).min(19)) {
        tracing::debug!("could not lower a log thread's priority: {e}");
    }
}

/// Gives sled's own threads (its I/O pool and its flushers) the writer's priority. The ones
/// started while the store opened, before the writer existed, did not inherit it; they
/// write the writer's batches to disk, so they are as deferrable as it is. Reads thread
/// names from `/proc/self/task`; anything unreadable is skipped.
fn lower_sled_threads() {
    let writer = rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap_or(0);
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    for task in tasks.flatten() {
        let Ok(comm) = std::fs::read_to_string(task.path().join("comm")) else {
            continue;
        };
        if !(comm.starts_with("sled-io") || comm.starts_with("log flusher")) {
            continue;
        }
        let tid = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<i32>().ok())
            .and_then(rustix::process::Pid::from_raw);
        if let Some(tid) = tid
            && rustix::process::getpriority_process(Some(tid)).is_ok_and(|n| n < writer)
        {
            let _ = rustix::process::setpriority_process(Some(tid), writer);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock means a panic mid-push; the data is still valid, so keep going.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How often the runs thread looks for closed parts without device runs.
const RUNS_EVERY: Duration = Duration::from_secs(5);
/// The runs thread's CPU time between two pauses, and the pause: it reads and rewrites a
/// whole part (150,000 events, about 60 ms of CPU) and must not hold a core the fronts need
/// for that long, whatever its priority.
const RUNS_BURST: Duration = Duration::from_millis(2);
const RUNS_PAUSE: Duration = Duration::from_millis(2);

impl Shared {
    /// Writes closed parts' device runs (`runs.rs`) at the lowest priority, paced, until
    /// the recorder stops.
    fn runs_loop(&self) {
        lower_priority(19);
        let mut first = true;
        loop {
            let mut burst_start = thread_cpu();
            let go_on = || {
                if self.stopping.load(Ordering::SeqCst) {
                    return false;
                }
                if thread_cpu().saturating_sub(burst_start) >= RUNS_BURST {
                    std::thread::sleep(RUNS_PAUSE);
                    burst_start = thread_cpu();
                }
                true
            };
            match self.store.write_device_runs(go_on) {
                // The backlog a start finds (after a stop, or an upgrade): said once, so
                // that a person (or a benchmark) knows when timelines read at full speed.
                Ok(n) if first && !self.stopping.load(Ordering::SeqCst) => {
                    tracing::info!("device runs: {n} closed parts of days written at start")
                }
                Ok(0) => {}
                Ok(n) => tracing::debug!("device runs written for {n} parts of days"),
                Err(e) => tracing::warn!("writing device runs: {e}"),
            }
            first = false;
            let until = std::time::Instant::now() + RUNS_EVERY;
            while std::time::Instant::now() < until {
                if self.stopping.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    fn write_loop(&self) {
        // Two sets of batches trade places, so a round allocates little: the fronts fill one
        // while the writer empties the other.
        let mut taken = Pending::default();
        let mut scratch = ValueScratch::default();
        let mut round = 0u64;
        // Events lost (dropped or failed) already added to the store's daily count.
        let mut lost_counted = 0u64;
        loop {
            // sled starts I/O threads as it needs them: look again every few seconds.
            if round.is_multiple_of(100) {
                lower_sled_threads();
            }
            round += 1;
            let last = self.stopping.load(Ordering::SeqCst);
            std::mem::swap(&mut taken, &mut *lock(&self.pending));
            let breaches = std::mem::take(&mut *lock(&self.breaches));
            if let Some(open) = taken.batch.seal() {
                taken.sealed.push(open);
            }
            // The writer shares cores with the threads that answer, and the kernel lets a
            // busy thread run until its next tick (4 ms at 250 Hz): a round written in one go
            // (about 3 ms at 150k DNS queries a second) stalled every answer waiting behind it.
            // So it prepares batches one at a time and writes them a few at a time, and sleeps
            // before each write and after each burst of CPU time. (A yield instead gave the
            // core away for about 12 ms at this priority, and the writer fell behind.) A round
            // that has fallen far behind is written flat out.
            let pace = taken.sealed.len() <= PACED_BATCHES;
            let mut burst_start = thread_cpu();
            let mut pause = |due: bool| {
                if pace && (due || thread_cpu().saturating_sub(burst_start) >= BURST) {
                    std::thread::sleep(PAUSE);
                    burst_start = thread_cpu();
                }
            };
            let mut ready = Vec::with_capacity(BATCHES_PER_WRITE);
            for batch in taken.sealed.drain(..) {
                pause(false);
                match self.store.prepare(&batch, &mut scratch) {
                    Ok(p) => ready.push(p),
                    Err(e) => {
                        self.failed
                            .fetch_add(batch.events as u64, Ordering::Relaxed);
                        tracing::error!("preparing {} access events: {e}", batch.events);
                    }
                }
                taken.batch.give_back(batch.into_body());
                if ready.len() == BATCHES_PER_WRITE {
                    pause(true);
                    self.write(&mut ready);
                }
            }
            if !ready.is_empty() {
                pause(true);
                self.write(&mut ready);
            }
            taken.events = 0;
            if !breaches.is_empty() {
                self.write_breaches(breaches);
            }
            // Lost events go on the day's count, for the weekly report.
            let lost = self.dropped.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed);
            if lost > lost_counted {
                match self
                    .store
                    .add_dropped(jiff::Timestamp::now(), lost - lost_counted)
                {
                    Ok(()) => lost_counted = lost,
                    Err(e) => tracing::warn!("counting lost access events: {e}"),
                }
            }
            {
                let mut rounds = lock(&self.rounds);
                *rounds += 1;
                self.round_done.notify_all();
            }
            if last {
                return;
            }
            std::thread::sleep(self.options.load().interval);
        }
    }

    /// Writes `ready` in one store transaction, counts its events as written or failed, and
    /// empties it.
    fn write(&self, ready: &mut Vec<Prepared>) {
        let n: u64 = ready.iter().map(|p| p.events as u64).sum();
        match self.store.write_prepared(ready) {
            Ok(()) => {
                self.written.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                self.failed.fetch_add(n, Ordering::Relaxed);
                tracing::error!("writing {n} access events: {e}");
            }
        }
        ready.clear();
    }

    fn write_breaches(&self, breaches: Vec<(AccessEvent, Severity, Arc<str>)>) {
        let window = self.options.load().window;
        let mut done = 0;
        let mut retry = Vec::new();
        for (ev, severity, rule) in breaches {
            match self.store.record_breach(&ev, severity, &rule, window) {
                Ok(r) => {
                    done += 1;
                    if let Some(tap) = self.tap.load().as_deref() {
                        tap.breach(&ev, &r, &rule);
                    }
                    let device = ev.device.as_deref().unwrap_or("-");
                    if r.change != Change::Add {
                        metrics::counter!(
                            "hedgerow_breaches_total",
                            "severity" => format!("{:?}", r.severity).to_ascii_lowercase()
                        )
                        .increment(1);
                    }
                    match r.change {
                        Change::Open => tracing::warn!(
                            id = r.id,
                            severity = ?r.severity,
                            rule = %rule,
                            device,
                            client = %ev.client,
                            "breach recorded"
                        ),
                        Change::Raise => tracing::warn!(
                            id = r.id,
                            severity = ?r.severity,
                            rule = %rule,
                            device,
                            client = %ev.client,
                            "breach raised by a more severe request"
                        ),
                        Change::Add => {}
                    }
                }
                Err(e) => {
                    tracing::error!("recording a breach (will retry): {e}");
                    retry.push((ev, severity, rule));
                }
            }
        }
        match self.store.flush() {
            Ok(()) => {
                self.breaches_done.fetch_add(done, Ordering::SeqCst);
            }
            Err(e) => {
                // Not known to be on disk: count nothing. The records are in the tree, and
                // sled's own flush will try again.
                tracing::error!("flushing breaches: {e}");
            }
        }
        if !retry.is_empty() {
            lock(&self.breaches).extend(retry);
        }
    }
}

impl EventSink for Recorder {
    fn record(&self, mut event: AccessEvent) {
        let s = &self.shared;
        if event.tier == hedgerow_model::Tier::Illegal
            && !event.target.starts_with(hedgerow_model::PROTECTED_RULE)
        {
            // The fronts withhold the target of an illegal-tier match (`with_verdict`); an
            // event made another way is withheld here, so no record can show an entry.
            event.protect();
        }
        if event.outcome.disposition() == hedgerow_model::Disposition::Block {
            count_block(&s.blocks, &event);
        }
        let options = s.options.load();
        if let Some((severity, rule)) = breach_for(&options.rules, &event) {
            lock(&s.breaches).push((event.clone(), severity, rule));
        }
        if options.access_log {
            let capacity = options.capacity;
            drop(options);
            let mut pending = lock(&s.pending);
            if pending.events < capacity {
                pending.events += 1;
                if let Some(full) = pending.batch.push(&event) {
                    pending.sealed.push(full);
                }
            } else {
                drop(pending);
                s.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        // The event itself goes to the tap (no copy): it was encoded above.
        if let Some(tap) = s.tap.load().as_deref() {
            tap.access(event);
        }
    }
}

/// Adds one to the count of `event`'s group and category: a linear search of a short list
/// (groups times blocked categories), under a lock taken for block events only.
fn count_block(blocks: &Mutex<Vec<BlockCount>>, event: &AccessEvent) {
    let group = event.group.as_deref().unwrap_or("-");
    let category = event.category.as_ref().map_or("-", |c| c.as_str());
    let mut b = lock(blocks);
    match b
        .iter_mut()
        .find(|c| &*c.group == group && &*c.category == category)
    {
        Some(c) => c.count += 1,
        None => b.push(BlockCount {
            group: group.into(),
            category: category.into(),
            count: 1,
        }),
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop();
    }
}
