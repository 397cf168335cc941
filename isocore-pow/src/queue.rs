//! The bounded, aged priority queue of unsolicited messages.
//!
//! Priority key = arrival time − `age_per_octave` × log2(effort + 1): each doubling of effort buys a
//! fixed head start, so older messages and better-paid messages both move forward, and equal
//! efforts are served first in, first out. Smallest key first; overflow evicts the largest.

use crate::stamp::PeerKey;
use alloc::collections::{BTreeMap, VecDeque};
use core::time::Duration;

/// `log2(effort + 1)` in Q16 fixed point, interpolated linearly between powers of two.
/// Monotone, exact at powers of two, 0 for no stamp and one octave for effort 1; integer-only
/// so every platform agrees.
pub fn log2_q16(effort: u32) -> u64 {
    let e = u64::from(effort) + 1;
    let k = u64::from(e.ilog2());
    (k << 16) + (((e << 16) >> k) - (1 << 16))
}

/// One queued message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Caller's handle for the message.
    pub id: u64,
    /// Sender.
    pub peer: PeerKey,
    /// Effort paid (0 = no stamp).
    pub effort: u32,
    /// When it arrived.
    pub arrival: Duration,
}

/// Aged priority queue with a size bound and arrival-ordered deadline sweeps.
#[derive(Debug, Clone)]
pub struct PriorityQueue {
    age_per_octave_us: i64,
    by_key: BTreeMap<(i64, u64), Entry>,
    // Arrival order with lazy deletion; ids only grow, so the front is always the oldest.
    by_age: VecDeque<(Duration, (i64, u64))>,
}

impl PriorityQueue {
    /// An empty queue where doubling the effort is worth `age_per_octave` of waiting.
    pub fn new(age_per_octave: Duration) -> Self {
        PriorityQueue {
            age_per_octave_us: age_per_octave.as_micros().min(i64::MAX as u128 >> 24) as i64,
            by_key: BTreeMap::new(),
            by_age: VecDeque::new(),
        }
    }

    /// The priority key of `e`; smaller is served sooner.
    pub fn key(&self, e: &Entry) -> i64 {
        let arrival = e.arrival.as_micros().min(i64::MAX as u128 >> 2) as i64;
        arrival - ((self.age_per_octave_us * log2_q16(e.effort) as i64) >> 16)
    }

    /// Queued messages.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// `true` when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Inserts `e`; if that makes the queue longer than `bound`, removes and returns the entry
    /// with the lowest priority, which may be `e` itself. Ids must increase with each push.
    pub fn push(&mut self, e: Entry, bound: usize) -> Option<Entry> {
        let k = (self.key(&e), e.id);
        self.by_key.insert(k, e);
        self.by_age.push_back((e.arrival, k));
        if self.by_key.len() > bound.max(1) {
            return self.by_key.pop_last().map(|(_, v)| v);
        }
        None
    }

    /// The highest-priority entry, without removing it.
    pub fn peek(&self) -> Option<&Entry> {
        self.by_key.first_key_value().map(|(_, v)| v)
    }

    /// Removes and returns the highest-priority entry.
    pub fn pop(&mut self) -> Option<Entry> {
        let e = self.by_key.pop_first().map(|(_, v)| v);
        if self.by_key.is_empty() {
            self.by_age.clear();
        }
        e
    }

    /// Removes every entry that paid less than `floor` and hands each to `f`.
    pub fn remove_below(&mut self, floor: u32, mut f: impl FnMut(Entry)) {
        self.by_key.retain(|_, e| {
            let keep = e.effort >= floor;
            if !keep {
                f(*e);
            }
            keep
        });
    }

    /// Removes every entry that arrived before `cutoff` and hands each to `f`, oldest first.
    pub fn sweep(&mut self, cutoff: Duration, mut f: impl FnMut(Entry)) {
        while let Some(&(arrival, k)) = self.by_age.front() {
            if arrival >= cutoff {
                break;
            }
            self.by_age.pop_front();
            if let Some(e) = self.by_key.remove(&k) {
                f(e);
            }
        }
    }
}
