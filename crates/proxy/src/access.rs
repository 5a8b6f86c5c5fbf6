//! The access event of one request or tunnel, recorded exactly once.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use hedgerow_model::{AccessEvent, EventSink, Outcome, Verdict};

/// The access event of one request or tunnel. It is recorded exactly once, when the guard is
/// dropped or [ended](Logged::end), whichever path ends the request: an early return, an
/// error, a client that went away while the origin was asked. Until something sets another,
/// its outcome is [`Outcome::Failed`] (the request ended before it was answered).
///
/// The guard travels with the request: into the response body that counts bytes (recorded
/// when the body ends) or into the tunnel task (recorded when the tunnel closes).
pub(crate) struct Logged {
    event: AccessEvent,
    sink: Arc<dyn EventSink>,
    /// Cleared only by [`Logged::dismiss`].
    live: bool,
}

impl Logged {
    pub(crate) fn new(sink: Arc<dyn EventSink>, mut event: AccessEvent) -> Self {
        event.outcome = Outcome::Failed;
        Self {
            event,
            sink,
            live: true,
        }
    }

    /// Records the event now, with `outcome`.
    pub(crate) fn end(mut self, outcome: Outcome) {
        self.event.outcome = outcome;
    }

    /// Copies the policy's verdict into the event.
    pub(crate) fn apply(&mut self, verdict: &Verdict) {
        self.event = take(&mut self.event).with_verdict(verdict);
    }

    /// Records nothing: for the requests that are not accesses, the PAC and WPAD files the
    /// proxy serves about itself (every browser fetches them every few minutes).
    pub(crate) fn dismiss(mut self) {
        self.live = false;
    }
}

impl Deref for Logged {
    type Target = AccessEvent;

    fn deref(&self) -> &AccessEvent {
        &self.event
    }
}

impl DerefMut for Logged {
    fn deref_mut(&mut self) -> &mut AccessEvent {
        &mut self.event
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        if self.live {
            metrics::counter!(
                "hedgerow_proxy_requests_total",
                "outcome" => outcome_label(self.event.outcome)
            )
            .increment(1);
            self.sink.record(take(&mut self.event));
        }
    }
}

/// The outcome as the metrics label it (as the logs spell it).
fn outcome_label(o: Outcome) -> &'static str {
    match o {
        Outcome::Forwarded => "forwarded",
        Outcome::Blocked => "blocked",
        Outcome::SafeSearch => "safe-search",
        Outcome::Circumvention => "circumvention",
        Outcome::Refused => "refused",
        Outcome::RateLimited => "rate-limited",
        Outcome::Failed => "failed",
        Outcome::Invalid => "invalid",
    }
}

/// The event, leaving an empty one (no allocation) in its place.
fn take(e: &mut AccessEvent) -> AccessEvent {
    let empty = AccessEvent::new(e.time, e.front, e.client, String::new());
    std::mem::replace(e, empty)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use hedgerow_model::{Action, Front, Tier};

    use super::*;

    #[derive(Default)]
    struct Sink(Mutex<Vec<AccessEvent>>);

    impl EventSink for Sink {
        fn record(&self, event: AccessEvent) {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(event);
        }
    }

    impl Sink {
        fn outcomes(&self) -> Vec<Outcome> {
            let events = self.0.lock().unwrap_or_else(|e| e.into_inner());
            events.iter().map(|e| e.outcome).collect()
        }
    }

    fn logged(sink: &Arc<Sink>) -> Logged {
        let event = AccessEvent::new(
            jiff::Timestamp::UNIX_EPOCH,
            Front::Proxy,
            [10, 0, 0, 1].into(),
            "http://a.example/".into(),
        );
        Logged::new(sink.clone(), event)
    }

    #[test]
    fn every_way_out_records_exactly_once() {
        let sink = Arc::new(Sink::default());
        // Dropped on an early return: recorded as failed.
        drop(logged(&sink));
        assert_eq!(sink.outcomes(), [Outcome::Failed]);
        // Ended: recorded at once with its outcome, once.
        logged(&sink).end(Outcome::Refused);
        assert_eq!(sink.outcomes(), [Outcome::Failed, Outcome::Refused]);
        // Changed on the way and moved elsewhere: recorded where it ends, with what was set.
        let mut l = logged(&sink);
        let mut v = Verdict::default_allow();
        v.action = Action::Block;
        v.tier = Tier::Category;
        l.apply(&v);
        l.outcome = Outcome::Blocked;
        l.bytes = 7;
        let moved = std::thread::spawn(move || drop(l));
        assert!(moved.join().is_ok());
        let events = sink.0.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(events.len(), 3);
        assert_eq!(
            (events[2].outcome, events[2].action, events[2].bytes),
            (Outcome::Blocked, Action::Block, 7)
        );
        assert_eq!(events[2].target, "http://a.example/");
    }

    #[test]
    fn a_dismissed_request_records_nothing() {
        let sink = Arc::new(Sink::default());
        logged(&sink).dismiss();
        assert!(sink.outcomes().is_empty());
    }
}
