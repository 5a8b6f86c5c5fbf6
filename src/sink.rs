//! A stopgap event sink until the sled store lands (issue 5): access events as JSON lines in
//! `state/access.jsonl`.
//!
//! Fronts append to a bounded buffer under a mutex held for one push, and never wake anyone:
//! a writer thread swaps the buffer out every 5 ms and writes the batch. Waking the writer
//! per event cost more than a quarter of a core at 50k queries a second (measured with
//! `perf`), because every wake-up is a context switch. When the buffer is full, events are
//! counted and dropped rather than delay an answer.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hedgerow_model::{AccessEvent, EventSink};

/// Most events held between two writes.
const CAPACITY: usize = 262_144;
/// Short enough that one batch (about 700 events at 140k queries a second) is serialized in
/// well under a millisecond, so it never holds up answers on a shared core for long.
const INTERVAL: Duration = Duration::from_millis(5);

pub(crate) struct JsonLinesSink {
    buffer: Mutex<Vec<AccessEvent>>,
    dropped: AtomicU64,
    stopping: AtomicBool,
    interval: Duration,
}

impl JsonLinesSink {
    pub(crate) fn start(path: &Path) -> std::io::Result<Arc<Self>> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let sink = Arc::new(Self {
            buffer: Mutex::new(Vec::with_capacity(4096)),
            dropped: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            interval: std::env::var("HEDGEROW_SINK_INTERVAL_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .map_or(INTERVAL, Duration::from_millis),
        });
        let writer = sink.clone();
        std::thread::Builder::new()
            .name("event-writer".into())
            .spawn(move || writer.write_loop(std::io::BufWriter::with_capacity(1 << 16, file)))?;
        Ok(sink)
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Asks the writer to write what it holds and stop.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    fn take(&self) -> Vec<AccessEvent> {
        // A poisoned lock means a panic mid-push; the Vec is still valid, so keep going.
        let mut buf = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *buf, Vec::with_capacity(4096))
    }

    fn write_loop(&self, mut out: std::io::BufWriter<std::fs::File>) {
        let mut line = Vec::with_capacity(512);
        loop {
            let last = self.stopping.load(Ordering::SeqCst);
            let batch = self.take();
            // No yielding inside a batch: tried, and on a shared core each yield cost the writer
            // a whole time slice, so it fell behind and events piled up towards the drop limit.
            for ev in &batch {
                line.clear();
                if serde_json::to_writer(&mut line, ev).is_ok() {
                    line.push(b'\n');
                    let _ = out.write_all(&line);
                }
            }
            if let Err(e) = out.flush() {
                tracing::error!("writing access events: {e}");
            }
            if last {
                return;
            }
            std::thread::sleep(self.interval);
        }
    }
}

impl EventSink for JsonLinesSink {
    fn record(&self, event: AccessEvent) {
        let mut buf = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        if buf.len() < CAPACITY {
            buf.push(event);
        } else {
            drop(buf);
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Records nothing (`access_log = false`, for benchmarks).
pub(crate) struct Discard;

impl EventSink for Discard {
    fn record(&self, _event: AccessEvent) {}
}
