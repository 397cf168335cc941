//! The receiver's façade: stamps, credit, queue and controller behind one poll-style machine.

use crate::controller::{Controller, ControllerConfig};
use crate::credit::{Credit, Solicit};
use crate::queue::{Entry, PriorityQueue};
use crate::stamp::{DecodeError, Digest, InsufficientWork, PeerKey, Stamp, StampKey, VER_ALG_V1, epoch_seed};
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use core::time::Duration;

/// Receiver constants. [`Default`] gives the v1 values of `spec/pow.md`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// Epoch length; the seed changes at every multiple of it (measured from the driver's origin).
    pub epoch: Duration,
    /// A queued unsolicited message older than this is dropped with a `Busy` answer.
    pub deadline: Duration,
    /// Waiting time that doubling the effort is worth in the queue.
    pub age_per_octave: Duration,
    /// While dormant, a message without a stamp is queued only if the estimated queue wait is
    /// below this; otherwise it is answered `Busy { price: p_start }` at once. A flood of
    /// unstamped messages thus costs honest senders one cheap stamp, not a full queue wait,
    /// and still never raises the price.
    pub free_wait: Duration,
    /// Most replay tags kept per epoch; beyond it stamps for that epoch are refused as overload.
    pub max_replay_tags: usize,
    /// The price controller.
    pub controller: ControllerConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            epoch: Duration::from_secs(300),
            deadline: Duration::from_secs(1),
            age_per_octave: Duration::from_millis(500),
            free_wait: Duration::from_millis(250),
            max_replay_tags: 1 << 20,
            controller: ControllerConfig::default(),
        }
    }
}

/// What the receiver advertises: in the handshake, and pushed on every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Stamp version/algorithm accepted ([`VER_ALG_V1`]).
    pub ver_alg: u8,
    /// Current epoch index.
    pub epoch: u32,
    /// The seed of that epoch.
    pub seed: [u8; 32],
    /// Time left in the epoch.
    pub epoch_ends_in: Duration,
    /// Current price in effort units; 0 = dormant.
    pub price: u32,
    /// The price a sender uses after a `Busy` while the advertised price is 0.
    pub p_start: u32,
}

/// The answer to a refused or dropped unsolicited message: re-stamp at no less than `price`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    /// Price in effort units to pay next time.
    pub price: u32,
    /// How long the sender should wait before resending.
    pub retry_after: Duration,
}

/// Why a message was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The stamp bytes are not a v1 stamp (sender's fault).
    Malformed(DecodeError),
    /// The stamp's work does not meet its claimed effort for this sender, receiver and message
    /// (sender's fault).
    InsufficientWork,
    /// This exact stamp was already admitted in its epoch.
    Duplicate,
    /// The stamp names an epoch other than the current or the previous one.
    StaleEpoch(u32),
    /// Unsolicited and without a stamp, while the price is above 0 or the queue is long.
    MissingStamp,
    /// The stamp's effort is below the current floor (a quarter of the price).
    Underpaid(u32),
    /// The queue is full of messages that paid more, or the replay set is full.
    Overloaded,
}

impl Reason {
    /// `true` when the sender broke the protocol rather than merely paying too little; a
    /// driver counts these per peer and closes connections that persist.
    pub fn is_peer_fault(&self) -> bool {
        matches!(self, Reason::Malformed(_) | Reason::InsufficientWork | Reason::Duplicate)
    }
}

/// A message was not admitted; answer with `busy` when present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Why.
    pub reason: Reason,
    /// The answer to send back, for reasons a sender can fix by paying or waiting.
    pub busy: Option<Busy>,
}

/// The scheduling class of an admitted message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// Rode on a grant: no stamp, its own FIFO.
    Solicited,
    /// Unsolicited, in the aged priority queue (with or without a stamp).
    Paid,
}

/// The handle of an admitted message; hand it back to [`Admission::on_served`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket {
    id: u64,
    class: Class,
}

impl Ticket {
    /// Unique per admission, increasing in arrival order.
    pub fn id(&self) -> u64 {
        self.id
    }
    /// The class it was admitted in.
    pub fn class(&self) -> Class {
        self.class
    }
}

/// The next message to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Next {
    /// Its ticket.
    pub ticket: Ticket,
    /// Its sender.
    pub peer: PeerKey,
    /// How long it waited.
    pub sojourn: Duration,
}

/// Output of [`Admission::poll_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Push these parameters to every connected peer (epoch rotated, or the price moved by at
    /// least a quarter octave, or crossed between dormant and active).
    Advertise(Params),
    /// An admitted message was evicted or passed its deadline: discard it and send `busy` to `peer`.
    Dropped {
        /// The message.
        ticket: Ticket,
        /// Its sender.
        peer: PeerKey,
        /// The answer.
        busy: Busy,
    },
}

/// An unsolicited or solicited message as the session hands it over.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// Digest of the message the stamp pays for.
    pub digest: Digest,
    /// The grant the message claims, if any.
    pub solicit: Option<Solicit>,
    /// The raw stamp bytes, if any.
    pub stamp: Option<&'a [u8]>,
}

/// Checks a stamp's work. [`Blake3Check`] is the real check; a driver may substitute its own,
/// for instance to verify on another core, and a simulator to skip the hashing.
pub trait WorkCheck {
    /// Returns the stamp's replay tag if its work is sufficient.
    fn check(&mut self, key: &StampKey, digest: &Digest, stamp: &Stamp) -> Result<u128, InsufficientWork>;
}

/// The v1 BLAKE3 check, [`Stamp::verify`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Blake3Check;

impl WorkCheck for Blake3Check {
    fn check(&mut self, k: &StampKey, d: &Digest, s: &Stamp) -> Result<u128, InsufficientWork> {
        s.verify(k, d)
    }
}

/// Work-based admission for one receiving node.
///
/// # Drain contract
///
/// Every method that takes `now` may run overdue ticks and epoch rotations first, which can
/// queue events and change [`Admission::poll_timeout`]. After each such call the driver MUST:
///
/// 1. send the outcome of `on_message` (a `Busy` on refusal when one is given);
/// 2. drain [`Admission::poll_event`] until `None`, sending each `Advertise` to every
///    connected peer and each `Dropped`'s `Busy` to its peer;
/// 3. call [`Admission::poll_next`] while it has capacity to serve, and report each finished
///    message with [`Admission::on_served`];
/// 4. arm its timer at [`Admission::poll_timeout`] and call [`Admission::handle_timeout`] when it fires.
///
/// `now` must never go backwards. Nothing here reads a clock or draws randomness.
#[derive(Debug)]
pub struct Admission {
    cfg: Config,
    me: PeerKey,
    secret: [u8; 32],
    epoch: u32,
    seeds: [[u8; 32]; 2],
    keys: BTreeMap<(u32, PeerKey), StampKey>,
    seen: [BTreeSet<u128>; 2],
    credit: Credit,
    paid: PriorityQueue,
    solicited: VecDeque<(Ticket, PeerKey, Duration)>,
    ctl: Controller,
    advertised: u32,
    events: VecDeque<Event>,
    next_id: u64,
    next_tick: Duration,
    solicited_turn: bool,
}

impl Admission {
    /// A dormant receiver with identity `me`. `secret` MUST be fresh random bytes whenever the
    /// driver's time origin is new (a restart), or seeds would repeat.
    pub fn new(cfg: Config, me: PeerKey, secret: [u8; 32], now: Duration) -> Self {
        let epoch = epoch_index(now, cfg.epoch);
        let mut a = Admission {
            me,
            secret,
            epoch,
            seeds: [[0; 32]; 2],
            keys: BTreeMap::new(),
            seen: [BTreeSet::new(), BTreeSet::new()],
            credit: Credit::new(),
            paid: PriorityQueue::new(cfg.age_per_octave),
            solicited: VecDeque::new(),
            ctl: Controller::new(cfg.controller),
            advertised: 0,
            events: VecDeque::new(),
            next_id: 0,
            next_tick: tick_after(now, cfg.controller.tick),
            solicited_turn: false,
            cfg,
        };
        a.seeds = [epoch_seed(&secret, epoch), epoch_seed(&secret, epoch.wrapping_sub(1))];
        a
    }

    /// The parameters to put in a handshake.
    pub fn params(&self, now: Duration) -> Params {
        let len = self.cfg.epoch.as_nanos().max(1);
        let into = now.as_nanos() % len;
        Params {
            ver_alg: VER_ALG_V1,
            epoch: self.epoch,
            seed: self.seeds[0],
            epoch_ends_in: nanos(len - into),
            price: self.ctl.price(),
            p_start: self.cfg.controller.p_start,
        }
    }

    /// The grants this receiver holds for its peers; the session records subscriptions and
    /// outstanding requests here.
    pub fn credit(&mut self) -> &mut Credit {
        &mut self.credit
    }

    /// The controller, for inspection.
    pub fn controller(&self) -> &Controller {
        &self.ctl
    }

    /// Messages waiting, both classes.
    pub fn queued(&self) -> usize {
        self.paid.len() + self.solicited.len()
    }

    /// Admits or refuses one message from `from` (an authenticated peer), checking its stamp with BLAKE3.
    pub fn on_message(&mut self, now: Duration, from: &PeerKey, msg: Inbound<'_>) -> Result<Ticket, Refused> {
        self.on_message_with(now, from, msg, &mut Blake3Check)
    }

    /// [`Admission::on_message`] with the work check supplied by the caller.
    pub fn on_message_with(
        &mut self,
        now: Duration,
        from: &PeerKey,
        msg: Inbound<'_>,
        check: &mut impl WorkCheck,
    ) -> Result<Ticket, Refused> {
        self.advance(now);
        if let Some(what) = msg.solicit
            && self.credit.take(from, what)
        {
            let ticket = self.ticket(Class::Solicited);
            self.solicited.push_back((ticket, *from, now));
            return Ok(ticket);
        }
        let price = self.ctl.price();
        let effort = match msg.stamp {
            None if price > 0 || self.wait() >= self.cfg.free_wait.as_secs_f64() => {
                return Err(self.refuse(Reason::MissingStamp));
            }
            None => 0,
            Some(bytes) => {
                let stamp = Stamp::decode(bytes).map_err(|e| Refused { reason: Reason::Malformed(e), busy: None })?;
                let slot = if stamp.epoch == self.epoch {
                    0
                } else if stamp.epoch == self.epoch.wrapping_sub(1) && self.epoch > 0 {
                    1
                } else {
                    return Err(self.refuse(Reason::StaleEpoch(stamp.epoch)));
                };
                if stamp.effort < self.floor() {
                    return Err(self.refuse(Reason::Underpaid(stamp.effort)));
                }
                let seed = &self.seeds[slot];
                let me = &self.me;
                let key = self.keys.entry((stamp.epoch, *from)).or_insert_with(|| StampKey::derive(seed, from, me));
                let tag = check
                    .check(key, &msg.digest, &stamp)
                    .map_err(|_| Refused { reason: Reason::InsufficientWork, busy: None })?;
                let seen = &mut self.seen[(stamp.epoch % 2) as usize];
                if seen.contains(&tag) {
                    return Err(Refused { reason: Reason::Duplicate, busy: None });
                }
                if seen.len() >= self.cfg.max_replay_tags {
                    return Err(self.refuse(Reason::Overloaded));
                }
                seen.insert(tag);
                self.ctl.on_paid(stamp.effort);
                stamp.effort
            }
        };
        let ticket = self.ticket(Class::Paid);
        let entry = Entry { id: ticket.id, peer: *from, effort, arrival: now };
        let bound = self.queue_bound();
        match self.paid.push(entry, bound) {
            Some(out) if out.id == ticket.id => Err(self.refuse(Reason::Overloaded)),
            Some(out) => {
                self.drop_entry(out);
                Ok(ticket)
            }
            None => Ok(ticket),
        }
    }

    /// The next message to serve, if any: solicited and paid classes alternate when both wait.
    /// Paid messages past their deadline are dropped on the way (see [`Admission::poll_event`]).
    #[must_use]
    pub fn poll_next(&mut self, now: Duration) -> Option<Next> {
        self.advance(now);
        loop {
            let take_solicited = !self.solicited.is_empty() && (self.paid.is_empty() || self.solicited_turn);
            if !self.solicited.is_empty() && !self.paid.is_empty() {
                self.solicited_turn = !self.solicited_turn;
            }
            if take_solicited {
                let (ticket, peer, at) = self.solicited.pop_front()?;
                return Some(Next { ticket, peer, sojourn: now.saturating_sub(at) });
            }
            let e = self.paid.pop()?;
            let sojourn = now.saturating_sub(e.arrival);
            if sojourn > self.cfg.deadline {
                self.drop_entry(e);
                continue;
            }
            self.ctl.on_dequeue(e.effort, sojourn);
            return Some(Next { ticket: Ticket { id: e.id, class: Class::Paid }, peer: e.peer, sojourn });
        }
    }

    /// The application finished `ticket`, which took `service_time` of its capacity. This is
    /// how the controller measures capacity.
    pub fn on_served(&mut self, now: Duration, ticket: Ticket, service_time: Duration) {
        self.advance(now);
        self.ctl.on_served(service_time, ticket.class == Class::Solicited);
    }

    /// Runs overdue ticks and epoch rotations.
    pub fn handle_timeout(&mut self, now: Duration) {
        self.advance(now);
    }

    /// The next event to act on; drain until `None` after every call that takes `now`.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Admission::handle_timeout`] must next be called: the next tick while anything is
    /// queued or the controller is not idle, else the next epoch start. Changed by every call
    /// that takes `now`.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Duration> {
        let len = self.cfg.epoch.as_nanos().max(1);
        let next_epoch = nanos((u128::from(self.epoch) + 1) * len);
        if self.is_idle() { Some(next_epoch) } else { Some(self.next_tick.min(next_epoch)) }
    }

    fn is_idle(&self) -> bool {
        self.paid.is_empty() && self.solicited.is_empty() && self.ctl.is_idle()
    }

    fn ticket(&mut self, class: Class) -> Ticket {
        self.next_id += 1;
        Ticket { id: self.next_id, class }
    }

    fn queue_bound(&self) -> usize {
        let n = self.ctl.capacity() * self.cfg.deadline.as_secs_f64();
        (n as usize).max(64)
    }

    /// Least effort admitted: 0 while dormant, else a quarter of the price (at least the
    /// controller's floor).
    fn floor(&self) -> u32 {
        match self.ctl.price() {
            0 => 0,
            p => self.ctl.floor().max(p.div_ceil(4)),
        }
    }

    /// Estimated wait at the back of the paid queue, seconds.
    fn wait(&self) -> f64 {
        self.paid.len() as f64 / self.ctl.capacity().max(1.0)
    }

    fn busy(&self) -> Busy {
        let wait = self.wait();
        Busy {
            price: self.ctl.price().max(self.cfg.controller.p_start),
            retry_after: Duration::from_secs_f64(wait.min(self.cfg.deadline.as_secs_f64())),
        }
    }

    fn refuse(&self, reason: Reason) -> Refused {
        Refused { reason, busy: Some(self.busy()) }
    }

    fn drop_entry(&mut self, e: Entry) {
        let busy = self.busy();
        self.events.push_back(Event::Dropped { ticket: Ticket { id: e.id, class: Class::Paid }, peer: e.peer, busy });
    }

    fn advance(&mut self, now: Duration) {
        let tick = self.cfg.controller.tick;
        while self.next_tick <= now {
            let at = self.next_tick;
            if self.is_idle() {
                self.next_tick = tick_after(now, tick);
                break;
            }
            self.next_tick += tick;
            let mut dropped = alloc::vec::Vec::new();
            if let Some(cutoff) = at.checked_sub(self.cfg.deadline) {
                self.paid.sweep(cutoff, |e| dropped.push(e));
            }
            for e in dropped {
                self.drop_entry(e);
            }
            let head = self.paid.peek().map(|e| (e.effort, at.saturating_sub(e.arrival)));
            let before = self.ctl.price();
            let price = self.ctl.tick(head);
            if price > before {
                // What is queued below the new floor would be refused now and served after
                // everything else anyway: answer it at once so its sender re-stamps sooner.
                let mut dropped = alloc::vec::Vec::new();
                self.paid.remove_below(self.floor(), |e| dropped.push(e));
                for e in dropped {
                    self.drop_entry(e);
                }
            }
            if crosses_quarter_octave(self.advertised, price) {
                self.advertised = price;
                self.events.push_back(Event::Advertise(self.params(at)));
            }
        }
        let epoch = epoch_index(now, self.cfg.epoch);
        if epoch != self.epoch {
            let prev = if epoch == self.epoch.wrapping_add(1) {
                self.seeds[0]
            } else {
                self.seen[((epoch ^ 1) % 2) as usize].clear();
                epoch_seed(&self.secret, epoch.wrapping_sub(1))
            };
            self.epoch = epoch;
            self.seeds = [epoch_seed(&self.secret, epoch), prev];
            self.seen[(epoch % 2) as usize].clear();
            self.keys.retain(|(e, _), _| *e == epoch || *e == epoch.wrapping_sub(1));
            self.events.push_back(Event::Advertise(self.params(now)));
        }
    }
}

fn nanos(n: u128) -> Duration {
    let n = n.min(u128::from(u64::MAX) * 1_000_000_000);
    Duration::new((n / 1_000_000_000) as u64, (n % 1_000_000_000) as u32)
}

fn epoch_index(now: Duration, len: Duration) -> u32 {
    (now.as_nanos() / len.as_nanos().max(1)).min(u128::from(u32::MAX)) as u32
}

fn tick_after(now: Duration, tick: Duration) -> Duration {
    let t = tick.as_nanos().max(1);
    nanos((now.as_nanos() / t + 1) * t)
}

/// Whether moving from `from` to `to` must be advertised: a crossing between 0 and non-zero,
/// or a ratio of at least 2^(1/4) either way (checked exactly as `a^4 >= 2 b^4`).
pub fn crosses_quarter_octave(from: u32, to: u32) -> bool {
    if (from == 0) != (to == 0) {
        return true;
    }
    let p4 = |x: u32| {
        let x = u128::from(x);
        x * x * x * x
    };
    let (a, b) = (p4(from.max(to)), p4(from.min(to)));
    from != to && a >= 2 * b
}
