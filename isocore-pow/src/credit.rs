//! Per-peer credit: what the receiver asked for rides free.
//!
//! Grants are local bookkeeping on an authenticated connection, so they need no cryptography.
//! A message that claims a grant the receiver does not hold (or has used up) is treated as
//! unsolicited and must carry a stamp.

use crate::stamp::PeerKey;
use alloc::collections::BTreeMap;

/// What a solicited message answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Solicit {
    /// A message on a stream the receiver subscribed to (replication), by stream id.
    Stream(u64),
    /// The reply to the receiver's own request, by request id.
    Reply(u64),
}

/// Per-peer message windows granted by the receiver.
#[derive(Debug, Default, Clone)]
pub struct Credit {
    grants: BTreeMap<(PeerKey, Solicit), u32>,
}

impl Credit {
    /// No grants.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets `peer` send `messages` more messages under `what` without a stamp. Windows add up,
    /// saturating, so a subscriber extends a stream's window as its application consumes.
    pub fn grant(&mut self, peer: &PeerKey, what: Solicit, messages: u32) {
        if messages > 0 {
            let w = self.grants.entry((*peer, what)).or_insert(0);
            *w = w.saturating_add(messages);
        }
    }

    /// Withdraws a grant (unsubscribe, request cancelled).
    pub fn revoke(&mut self, peer: &PeerKey, what: Solicit) {
        self.grants.remove(&(*peer, what));
    }

    /// Withdraws every grant to `peer` (connection closed).
    pub fn forget_peer(&mut self, peer: &PeerKey) {
        self.grants.retain(|(p, _), _| p != peer);
    }

    /// Messages `peer` may still send under `what`.
    pub fn remaining(&self, peer: &PeerKey, what: Solicit) -> u32 {
        self.grants.get(&(*peer, what)).copied().unwrap_or(0)
    }

    /// Spends one message of the window; `false` when there is none left.
    pub fn take(&mut self, peer: &PeerKey, what: Solicit) -> bool {
        let key = (*peer, what);
        match self.grants.get_mut(&key) {
            Some(w) if *w > 1 => {
                *w -= 1;
                true
            }
            Some(_) => {
                self.grants.remove(&key);
                true
            }
            None => false,
        }
    }
}
