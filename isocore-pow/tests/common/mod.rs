//! Shared helpers for the admission tests.
#![allow(dead_code)]

use core::time::Duration;
use isocore_pow::{Admission, Config, Event, Inbound, InsufficientWork, Stamp, StampKey, WorkCheck};

pub const ME: [u8; 32] = [0xa1; 32];
pub const SECRET: [u8; 32] = [0x5e; 32];

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Stands in for the hash check so traces with large efforts stay fast: valid unless
/// `nonces[1]` is 1; the replay tag is `nonces[0]`.
pub struct FakeCheck;

impl WorkCheck for FakeCheck {
    fn check(&mut self, _: &StampKey, _: &[u8; 32], s: &Stamp) -> Result<u128, InsufficientWork> {
        if s.nonces[1] == 1 { Err(InsufficientWork) } else { Ok(u128::from(s.nonces[0])) }
    }
}

/// A fake stamp at `effort` for the node's current epoch, unique by `id`.
pub fn fake(node: &Admission, now: Duration, effort: u32, id: u64) -> [u8; 41] {
    Stamp { epoch: node.params(now).epoch, effort, nonces: [id, 0, 0, 0] }.encode()
}

pub fn paid<'a>(stamp: &'a [u8], id: u64) -> Inbound<'a> {
    let mut digest = [0u8; 32];
    digest[..8].copy_from_slice(&id.to_le_bytes());
    Inbound { digest, solicit: None, stamp: Some(stamp) }
}

/// A node served by one worker whose service time is `1 / capacity`, stepped in fixed increments.
pub struct Bench {
    pub node: Admission,
    pub now: Duration,
    pub service: Duration,
    pub busy_until: Duration,
    pub serving: bool,
    pub served: Vec<(u64, Duration)>,
    pub dropped: Vec<(u64, Duration)>,
    pub prices: Vec<(Duration, u32)>,
}

impl Bench {
    pub fn new(cfg: Config, capacity: u64) -> Self {
        Bench {
            node: Admission::new(cfg, ME, SECRET, Duration::ZERO),
            now: Duration::ZERO,
            service: Duration::from_micros(1_000_000 / capacity),
            busy_until: Duration::ZERO,
            serving: true,
            served: Vec::new(),
            dropped: Vec::new(),
            prices: Vec::new(),
        }
    }

    /// Moves time to `to`, serving whenever the worker is free, and records what happened.
    pub fn run_to(&mut self, to: Duration) {
        while self.now < to {
            let next = self.now + ms(1);
            self.node.handle_timeout(next);
            self.now = next;
            while self.serving && self.busy_until <= self.now {
                let Some(n) = self.node.poll_next(self.now) else { break };
                self.served.push((n.ticket.id(), self.now));
                self.busy_until = self.now.max(self.busy_until) + self.service;
                self.node.on_served(self.now, n.ticket, self.service);
            }
            self.drain();
            self.prices.push((self.now, self.node.controller().price()));
        }
    }

    pub fn drain(&mut self) {
        while let Some(e) = self.node.poll_event() {
            if let Event::Dropped { ticket, .. } = e {
                self.dropped.push((ticket.id(), self.now));
            }
        }
    }
}
