//! Connections open per client address, for the proxy and the block page server: one
//! client (a pupil's script, a broken app retrying) cannot take every connection slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// The open connections of each client address.
#[derive(Debug, Default)]
pub(crate) struct ClientConns {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; dropping it frees its slot.
#[derive(Debug)]
pub(crate) struct ConnSlot {
    conns: Arc<ClientConns>,
    ip: IpAddr,
}

impl ClientConns {
    /// A slot for a new connection from `ip`, or `None` when it already has `max` open.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<ConnSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ConnSlot {
            conns: self.clone(),
            ip,
        })
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut open = self
            .conns
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_at_most_max_slots_and_gets_them_back() {
        let conns = Arc::new(ClientConns::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = conns.admit(a, 2).unwrap();
        let _second = conns.admit(a, 2).unwrap();
        assert!(conns.admit(a, 2).is_none());
        // Another client is not affected.
        assert!(conns.admit(b, 2).is_some());
        drop(first);
        assert!(conns.admit(a, 2).is_some());
    }
}
