//! Lists that keep themselves current. This crate downloads each list that has a `url` on its
//! own schedule (conditional requests: ETag and If-Modified-Since), verifies what arrives (size
//! bounds, an optional published SHA-256 or minisign signature, that it parses into at least
//! `min_entries` entries, that an illegal-tier list has not shrunk past `illegal_shrink_limit`)
//! and stages it under the state directory as `STATE/lists/NAME.new`. The next reload promotes
//! every staged list to `NAME.list` (the copy in force) inside the reload's prepare phase, so a
//! new list comes into force with the rest of the policy in one atomic swap, or, when the
//! reload is refused, is put back and the last good copy stays. A failed download or
//! verification changes nothing in force and is recorded, with its reason, in
//! `STATE/lists/NAME.json`, which `hedgerow lists status` reads.
//!
//! It does not decide anything (the policy does), send alerts (it calls the binary's hook), or
//! reload by itself (it calls the binary's reload hook).

mod fetch;
mod state;
mod updater;

pub use fetch::{Attempt, FetchError, fetch_once};
pub use state::{ListStatus, Promotion, in_force_path, promote, staged_path, status, status_path};
pub use updater::{Hooks, ReloadFn, StaleAlert, Updater, prime};
