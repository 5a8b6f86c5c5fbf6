//! A stopgap event sink until the sled store lands (issue 5): access events as JSON lines in
//! `state/access.jsonl`, written by one thread from a bounded queue. A front never waits: when
//! the queue is full the event is counted and dropped.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use hedgerow_model::{AccessEvent, EventSink};

const QUEUE: usize = 65_536;

pub(crate) struct JsonLinesSink {
    tx: SyncSender<AccessEvent>,
    dropped: AtomicU64,
}

impl JsonLinesSink {
    pub(crate) fn start(path: &Path) -> std::io::Result<Arc<Self>> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("event-writer".into())
            .spawn(move || write_loop(rx, std::io::BufWriter::with_capacity(1 << 16, file)))?;
        Ok(Arc::new(Self {
            tx,
            dropped: AtomicU64::new(0),
        }))
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl EventSink for JsonLinesSink {
    fn record(&self, event: AccessEvent) {
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Writes events as they come and flushes whenever the queue runs dry, so a quiet appliance
/// has everything on disk within one event's time.
fn write_loop(rx: Receiver<AccessEvent>, mut out: std::io::BufWriter<std::fs::File>) {
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(ev) = next {
            if let Ok(line) = serde_json::to_string(&ev) {
                let _ = writeln!(out, "{line}");
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = out.flush() {
            tracing::error!("writing access events: {e}");
        }
    }
}
