//! Deterministic admission simulator. One receiving node with fixed service capacity, honest
//! senders with finite compute, attackers of several strategies and solicited replication
//! traffic, in 1 ms steps. The `Iso` receiver is the crate's real `Admission` (only the BLAKE3
//! work check is replaced by its outcome; the check's cost is measured separately by the
//! bench); `Tor327` and `Prop362` are baselines written from their published rules. All
//! randomness comes from one SplitMix64 seed and every observable event is folded into a
//! BLAKE3 log hash, so equal seeds give equal hashes.
#![allow(dead_code)]

use isocore_pow::{
    Admission, Busy, Config, Event, Inbound, InsufficientWork, PeerKey, Request, SenderPolicy, Solicit, Stamp,
    StampKey, WorkCheck,
};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn exp(&mut self, mean: f64) -> f64 {
        -mean * self.unit().ln()
    }
    /// Work to find a stamp of `effort` made of `k` independent sub-solutions.
    fn work(&mut self, effort: f64, k: u32) -> f64 {
        (0..k).map(|_| self.exp(effort / f64::from(k))).sum()
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Receiver {
    Iso,
    Tor327,
    Prop362,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Strategy {
    /// Spend all compute at `f` × the price it is told; flood without stamps while that is 0.
    Follow(f64),
    /// `Follow(f)` for `on` seconds of every `period`.
    Pulse { f: f64, on: u64, period: u64 },
    /// `Follow(f)` until `switch` seconds into the attack, then only a zero-effort flood at
    /// `flood` × capacity.
    Maintain { f: f64, switch: u64, flood: f64 },
    /// `Follow(f)` plus `rate` stamps per second whose work is wrong.
    Invalid { f: f64, rate: f64 },
    /// `Follow(f)` plus `rate` per second of replays of its own admitted stamps.
    Replay { f: f64, rate: f64 },
    /// Follow with half the compute; with the other half bank stamps at `f` × the price all
    /// epoch long and release them at full bandwidth when the next epoch starts, where stamps
    /// of the previous epoch are still valid.
    Precompute { f: f64 },
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub seed: u64,
    /// Service capacity, messages per second.
    pub mu: f64,
    pub duration_s: u64,
    pub attack: (u64, u64),
    pub honest_rate: f64,
    /// Honest compute, effort units per second.
    pub c_h: f64,
    pub machines: f64,
    /// Attacker compute per machine, in multiples of `c_h`.
    pub k: f64,
    /// Messages per second one attacking machine can send.
    pub bandwidth: f64,
    pub strategy: Strategy,
    pub latency_ms: u64,
    pub solicited_rate: f64,
    pub p_start: u32,
    pub give_up_s: u64,
    /// Honest budget per request, in seconds of its own compute.
    pub budget_s: f64,
    /// Epoch length (the sim shortens it to exercise rotations).
    pub epoch_s: u64,
}

impl Scenario {
    /// Prop 327's scenario: 180/s capacity, 20 honest clients/s at 1000 units/s, 500 machines.
    pub fn prop327(strategy: Strategy, name: &str) -> Self {
        Scenario {
            name: name.into(),
            seed: 1,
            mu: 180.0,
            duration_s: 1_500,
            attack: (150, 1_350),
            honest_rate: 20.0,
            c_h: 1_000.0,
            machines: 500.0,
            k: 1.0,
            bandwidth: 100.0,
            strategy,
            latency_ms: 50,
            solicited_rate: 0.0,
            p_start: 8,
            give_up_s: 120,
            budget_s: 60.0,
            epoch_s: 300,
        }
    }

    /// Isocore scale: 2000 msg/s, 100 honest req/s with 4 cores of BLAKE3 (4e7 hashes/s =
    /// 156 250 units/s), 800/s solicited replication, 20 machines of K × that compute.
    pub fn isocore(k: f64, strategy: Strategy, name: &str) -> Self {
        Scenario {
            mu: 2_000.0,
            duration_s: 420,
            attack: (60, 300),
            honest_rate: 100.0,
            c_h: 156_250.0,
            machines: 20.0,
            k,
            bandwidth: 5_000.0,
            solicited_rate: 800.0,
            p_start: 256,
            ..Scenario::prop327(strategy, name)
        }
    }

    fn attacker_compute(&self) -> f64 {
        self.machines * self.k * self.c_h
    }

    /// Portcullis's per-computation fairness bound on the honest price, effort units.
    pub fn fair_price(&self) -> f64 {
        let mu_paid = (self.mu - self.solicited_rate).max(0.25 * self.mu);
        self.attacker_compute() / (0.9 * mu_paid - 1.25 * self.honest_rate)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Honest,
    Attacker,
    Solicited,
}

#[derive(Clone, Copy, Debug)]
struct Msg {
    id: u64,
    req: usize,
    kind: Kind,
    effort: u32,
    epoch: u32,
    tag: u64,
    invalid: bool,
    peer: u32,
    arrival: u64,
}

enum Out {
    Served(Msg),
    /// Refused or dropped; `Some(price)` when the node answered with `Busy`.
    Lost(Msg, Option<u32>),
}

trait Node {
    fn arrive(&mut self, now: u64, m: Msg, out: &mut Vec<Out>);
    fn step(&mut self, now: u64, out: &mut Vec<Out>);
    /// What the node currently advertises.
    fn price(&self) -> u32;
    fn epoch(&self) -> u32 {
        0
    }
    /// The price a `Busy` quotes while the advertised price is 0 (none for nodes without `Busy`).
    fn busy_floor(&self) -> u32 {
        0
    }
}

fn peer_key(kind: Kind, n: u32) -> PeerKey {
    let mut k = [0u8; 32];
    k[0] = kind as u8;
    k[1..5].copy_from_slice(&n.to_le_bytes());
    k
}

/// Stands in for the hash check: the sim knows which stamps were made wrong on purpose.
struct SimCheck(bool);

impl WorkCheck for SimCheck {
    fn check(&mut self, _: &StampKey, _: &[u8; 32], s: &Stamp) -> Result<u128, InsufficientWork> {
        if self.0 { Err(InsufficientWork) } else { Ok(u128::from(s.nonces[0])) }
    }
}

struct Iso {
    adm: Admission,
    pending: BTreeMap<u64, Msg>,
    service: Duration,
    credit: f64,
    mu: f64,
    advertised: u32,
    epoch: u32,
}

fn dur(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

impl Iso {
    fn new(sc: &Scenario) -> Self {
        let mut cfg = Config { epoch: Duration::from_secs(sc.epoch_s), ..Config::default() };
        cfg.controller.p_start = sc.p_start;
        cfg.controller.initial_capacity = sc.mu;
        let mut adm = Admission::new(cfg, [0xee; 32], [sc.seed as u8; 32], Duration::ZERO);
        for p in 0..8 {
            adm.credit().grant(&peer_key(Kind::Solicited, p), Solicit::Stream(0), u32::MAX);
        }
        Iso {
            adm,
            pending: BTreeMap::new(),
            service: Duration::from_secs_f64(1.0 / sc.mu),
            credit: 0.0,
            mu: sc.mu,
            advertised: 0,
            epoch: 0,
        }
    }

    fn drain(&mut self, out: &mut Vec<Out>) {
        while let Some(e) = self.adm.poll_event() {
            match e {
                Event::Advertise(p) => {
                    self.advertised = p.price;
                    self.epoch = p.epoch;
                }
                Event::Dropped { ticket, busy, .. } => {
                    let m = self.pending.remove(&ticket.id()).expect("dropped ticket known");
                    out.push(Out::Lost(m, Some(busy.price)));
                }
            }
        }
    }
}

impl Node for Iso {
    fn arrive(&mut self, now: u64, m: Msg, out: &mut Vec<Out>) {
        let stamp =
            (m.effort > 0).then(|| Stamp { epoch: m.epoch, effort: m.effort, nonces: [m.tag, 0, 0, 0] }.encode());
        let mut digest = [0u8; 32];
        digest[..8].copy_from_slice(&m.id.to_le_bytes());
        let msg = Inbound {
            digest,
            solicit: (m.kind == Kind::Solicited).then_some(Solicit::Stream(0)),
            stamp: stamp.as_ref().map(|s| &s[..]),
        };
        let from = peer_key(m.kind, m.peer);
        match self.adm.on_message_with(dur(now), &from, msg, &mut SimCheck(m.invalid)) {
            Ok(t) => {
                self.pending.insert(t.id(), Msg { arrival: now, ..m });
            }
            Err(r) => out.push(Out::Lost(m, r.busy.map(|b: Busy| b.price))),
        }
        self.drain(out);
    }

    fn step(&mut self, now: u64, out: &mut Vec<Out>) {
        self.adm.handle_timeout(dur(now));
        let busy = self.adm.queued() > 0;
        self.credit = (self.credit + self.mu / 1000.0).min(if busy { 1e9 } else { 1.0 });
        while self.credit >= 1.0 {
            let Some(n) = self.adm.poll_next(dur(now)) else {
                break;
            };
            self.credit -= 1.0;
            self.adm.on_served(dur(now), n.ticket, self.service);
            let m = self.pending.remove(&n.ticket.id()).expect("served ticket known");
            out.push(Out::Served(m));
        }
        self.drain(out);
    }

    fn price(&self) -> u32 {
        self.advertised
    }
    fn epoch(&self) -> u32 {
        self.epoch
    }
    fn busy_floor(&self) -> u32 {
        self.adm.params(Duration::ZERO).p_start
    }
}

/// C tor 0.4.8 (prop 327): highest effort first, 300 s update of the suggested effort,
/// 15 s "too old" discard, trim to half at the high-water mark, 15 % republish dead-zone.
struct Tor327 {
    q: BTreeMap<(u32, Reverse<u64>), Msg>,
    mu: f64,
    credit: f64,
    suggested: u32,
    published: u32,
    total_effort: u64,
    handled: u64,
    had_queue: bool,
    max_trimmed: u32,
    next_update: u64,
    low: usize,
    high: usize,
}

impl Tor327 {
    fn new(mu: f64) -> Self {
        Tor327 {
            q: BTreeMap::new(),
            mu,
            credit: 0.0,
            suggested: 0,
            published: 0,
            total_effort: 0,
            handled: 0,
            had_queue: false,
            max_trimmed: 0,
            next_update: 300_000,
            low: ((mu / 4.0) as usize).max(8),
            high: (10.0 * mu + mu * 60.0) as usize,
        }
    }
}

impl Node for Tor327 {
    fn arrive(&mut self, now: u64, m: Msg, out: &mut Vec<Out>) {
        if m.invalid {
            out.push(Out::Lost(m, None));
            return;
        }
        self.total_effort += u64::from(m.effort);
        self.q.insert((m.effort, Reverse(m.id)), Msg { arrival: now, ..m });
        if self.q.len() >= self.high {
            let keep = self.high / 2;
            while self.q.len() > keep {
                let (_, d) = self.q.pop_first().expect("non-empty");
                self.max_trimmed = self.max_trimmed.max(d.effort);
                out.push(Out::Lost(d, None));
            }
        }
    }

    fn step(&mut self, now: u64, out: &mut Vec<Out>) {
        let cap = if self.q.is_empty() { 1.0 } else { 1e9 };
        self.credit = (self.credit + self.mu / 1000.0).min(cap);
        while self.credit >= 1.0 {
            let Some((_, m)) = self.q.pop_last() else { break };
            if now > m.arrival + 15_000 {
                out.push(Out::Lost(m, None));
                continue;
            }
            self.credit -= 1.0;
            self.handled += 1;
            out.push(Out::Served(m));
            if self.q.len() >= self.low {
                self.had_queue = true;
            }
        }
        if now >= self.next_update {
            let top_pays = self.q.last_key_value().is_some_and(|(_, m)| m.effort >= self.suggested);
            let increase = self.max_trimmed > self.suggested || (self.had_queue && top_pays);
            if increase {
                let avg = self.total_effort / self.handled.max(1);
                self.suggested = (self.suggested + 1).max(avg.min(u64::from(u32::MAX)) as u32);
            } else if !self.had_queue && self.q.len() < self.low {
                self.suggested = self.suggested * 2 / 3;
            }
            let (s, p) = (f64::from(self.suggested), f64::from(self.published));
            if s < 0.85 * p || s > 1.15 * p {
                self.published = self.suggested;
            }
            self.total_effort = 0;
            self.handled = 0;
            self.max_trimmed = 0;
            self.had_queue = false;
            self.next_update = now + 300_000;
        }
    }

    fn price(&self) -> u32 {
        self.published
    }
}

/// Prop 362 as Arti implements it: busy-fraction capacity estimate, count only requests at or
/// above the suggested effort, 300 s period, depth 8192 dropping the lowest, effort clamp 10 000.
struct Prop362 {
    q: BTreeMap<(u32, Reverse<u64>), Msg>,
    mu: f64,
    credit: f64,
    suggested: u32,
    published: u32,
    period_start: u64,
    n_at_price: u64,
    effort_at_price: u64,
    dequeued: u64,
    idle_ms: u64,
    idle_since: Option<u64>,
    next_update: u64,
}

impl Prop362 {
    fn new(mu: f64) -> Self {
        Prop362 {
            q: BTreeMap::new(),
            mu,
            credit: 0.0,
            suggested: 0,
            published: 0,
            period_start: 0,
            n_at_price: 0,
            effort_at_price: 0,
            dequeued: 0,
            idle_ms: 0,
            idle_since: Some(0),
            next_update: 300_000,
        }
    }
}

impl Node for Prop362 {
    fn arrive(&mut self, now: u64, m: Msg, out: &mut Vec<Out>) {
        if m.invalid {
            out.push(Out::Lost(m, None));
            return;
        }
        if let Some(since) = self.idle_since.take() {
            self.idle_ms += now - since;
        }
        if m.effort >= self.suggested {
            self.n_at_price += 1;
            self.effort_at_price += u64::from(m.effort);
        }
        if self.q.len() >= 8192 {
            let (_, d) = self.q.pop_first().expect("non-empty");
            out.push(Out::Lost(d, None));
        }
        self.q.insert((m.effort.min(10_000), Reverse(m.id)), Msg { arrival: now, ..m });
    }

    fn step(&mut self, now: u64, out: &mut Vec<Out>) {
        if now.is_multiple_of(1000) {
            let old: Vec<_> = self.q.iter().filter(|(_, m)| now >= m.arrival + 300_000).map(|(k, _)| *k).collect();
            for k in old {
                out.push(Out::Lost(self.q.remove(&k).expect("present"), None));
            }
        }
        let cap = if self.q.is_empty() { 1.0 } else { 1e9 };
        self.credit = (self.credit + self.mu / 1000.0).min(cap);
        while self.credit >= 1.0 {
            let Some((_, m)) = self.q.pop_last() else { break };
            self.credit -= 1.0;
            self.dequeued += 1;
            out.push(Out::Served(m));
        }
        if self.q.is_empty() && self.idle_since.is_none() {
            self.idle_since = Some(now);
        }
        if now >= self.next_update {
            let period = (now - self.period_start) as f64;
            let mut idle = self.idle_ms as f64;
            if let Some(since) = self.idle_since {
                idle += (now - since) as f64;
            }
            if self.dequeued > 0 {
                let per_req = period / self.dequeued as f64;
                let busy = 1.0 - (idle - per_req * self.q.len() as f64).max(0.0) / period;
                if busy <= 0.0 {
                    self.suggested = 0;
                } else {
                    let capacity = self.dequeued as f64 / busy;
                    if self.n_at_price as f64 >= capacity {
                        let avg = self.effort_at_price / self.dequeued;
                        self.suggested = (self.suggested + 1).max(avg.min(u64::from(u32::MAX)) as u32);
                    } else {
                        self.suggested = (f64::from(self.suggested) * self.n_at_price as f64 / capacity) as u32;
                    }
                }
            } else {
                self.suggested = 0;
            }
            let (s, p) = (f64::from(self.suggested), f64::from(self.published));
            if (p == 0.0 && s > 0.0) || (p > 0.0 && (s - p).abs() / p >= 0.15) {
                self.published = self.suggested;
            }
            self.period_start = now;
            self.n_at_price = 0;
            self.effort_at_price = 0;
            self.dequeued = 0;
            self.idle_ms = 0;
            self.idle_since = self.q.is_empty().then_some(now);
            self.next_update = now + 300_000;
        }
    }

    fn price(&self) -> u32 {
        self.published
    }
}

/// Message ids and counters shared by every kind of sender.
#[derive(Default)]
struct Ids {
    next: u64,
    stamps: u64,
    attacker_sent: u64,
}

impl Ids {
    fn fresh(&mut self) -> u64 {
        self.next += 1;
        self.next
    }
}

/// Sends `n` attacker messages at `effort`; `replay` reuses a (tag, epoch) already admitted.
#[allow(clippy::too_many_arguments)]
fn emit(
    ids: &mut Ids,
    now: u64,
    effort: u32,
    n: u64,
    invalid: bool,
    replay: Option<(u64, u32)>,
    node: &mut dyn Node,
    out: &mut Vec<Out>,
) {
    for _ in 0..n {
        let id = ids.fresh();
        let (tag, epoch) = replay.unwrap_or((id, node.epoch()));
        let m = Msg {
            id,
            req: usize::MAX,
            kind: Kind::Attacker,
            effort,
            epoch,
            tag,
            invalid,
            peer: (id % 500) as u32,
            arrival: 0,
        };
        ids.stamps += u64::from(effort > 0);
        ids.attacker_sent += 1;
        node.arrive(now, m, out);
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Ev {
    /// An honest request finished solving and sends.
    Send(usize),
    /// A message reaches the node.
    Arrive(u64),
    /// A `Busy` reaches an honest sender (request, message, price).
    Nack(usize, u64, u32),
    /// Tor client: no answer within 30 s.
    Timeout(usize, u64),
    /// The advertised (price, epoch) reaches honest senders.
    Advertise(u32, u32),
}

struct Req {
    created: u64,
    effort: u32,
    policy: Option<Request>,
    work: f64,
    solve_ms: f64,
    live: u64,
    done: Option<u64>,
    last_arrival: u64,
    dead: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub honest: usize,
    pub ok10: f64,
    pub ok120: f64,
    pub ttc50_s: f64,
    pub ttc99_s: f64,
    pub added99_s: f64,
    pub queue99_ms: f64,
    pub work_s: f64,
    pub fair_s: f64,
    pub converge_s: Option<u64>,
    pub dormant_s: Option<u64>,
    pub mean_price: f64,
    pub solicited_ok: f64,
    pub solicited99_ms: f64,
    pub solicited_stamps: u64,
    pub stamps_per_s: f64,
    pub attacker_sent: u64,
    pub log_hash: String,
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * q) as usize]
}

pub fn run(sc: &Scenario, rx: Receiver) -> Report {
    let mut rng = Rng::new(sc.seed);
    let mut node: Box<dyn Node> = match rx {
        Receiver::Iso => Box::new(Iso::new(sc)),
        Receiver::Tor327 => Box::new(Tor327::new(sc.mu)),
        Receiver::Prop362 => Box::new(Prop362::new(sc.mu)),
    };
    let policy = SenderPolicy { budget: (sc.budget_s * sc.c_h) as u64, ..SenderPolicy::default() };
    let subs = if rx == Receiver::Iso { 4 } else { 1 };
    let mut log = blake3::Hasher::new();
    let mut queue: BinaryHeap<Reverse<(u64, u64, Ev)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut schedule = |q: &mut BinaryHeap<Reverse<(u64, u64, Ev)>>, at: u64, e: Ev| {
        seq += 1;
        q.push(Reverse((at, seq, e)));
    };
    let mut reqs: Vec<Req> = Vec::new();
    let mut in_flight: BTreeMap<u64, Msg> = BTreeMap::new();
    let mut ids = Ids::default();
    let mut known = (0u32, 0u32); // (price, epoch) as honest senders know them
    let mut told = (0u32, 0u32);
    let mut next_honest = rng.exp(1000.0 / sc.honest_rate);
    let mut next_solicited = if sc.solicited_rate > 0.0 { rng.exp(1000.0 / sc.solicited_rate) } else { f64::INFINITY };
    let (mut sol_sent, mut sol_served, mut sol_lat) = (0u64, 0u64, Vec::new());
    let (mut budget, mut bandwidth, mut side) = (0.0f64, 0.0f64, 0.0f64);
    let mut stockpile = 0.0f64;
    let (mut stock, mut release, mut stock_epoch) = (Vec::new(), Vec::<(u32, u32)>::new(), 0u32);
    let mut replayable: Vec<(u64, u32, u32)> = Vec::new();
    let mut out = Vec::new();
    let mut prices = Vec::new();
    let (a0, a1) = (sc.attack.0 * 1000, sc.attack.1 * 1000);
    let c_a = sc.attacker_compute();
    let margin = |p: u32| policy.with_margin(p);
    let solve = |rng: &mut Rng,
                 r: &mut Req,
                 i: usize,
                 now: u64,
                 q: &mut BinaryHeap<_>,
                 schedule: &mut dyn FnMut(&mut BinaryHeap<_>, u64, Ev)| {
        let w = rng.work(f64::from(r.effort), subs);
        r.work += w;
        let ms = w / sc.c_h * 1000.0;
        r.solve_ms += ms;
        schedule(q, now + ms as u64, Ev::Send(i));
    };

    for now in 0..sc.duration_s * 1000 {
        while next_honest <= now as f64 {
            let i = reqs.len();
            let params = isocore_pow::Params {
                ver_alg: isocore_pow::stamp::VER_ALG_V1,
                epoch: known.1,
                seed: [0; 32],
                epoch_ends_in: Duration::ZERO,
                price: known.0,
                p_start: sc.p_start,
            };
            let (effort, policy) = match rx {
                Receiver::Iso => {
                    let r = Request::new(policy, &params);
                    (r.effort(), Some(r))
                }
                _ => (known.0, None),
            };
            let mut r = Req {
                created: now,
                effort,
                policy,
                work: 0.0,
                solve_ms: 0.0,
                live: u64::MAX,
                done: None,
                last_arrival: 0,
                dead: false,
            };
            solve(&mut rng, &mut r, i, now, &mut queue, &mut schedule);
            reqs.push(r);
            next_honest += rng.exp(1000.0 / sc.honest_rate);
        }
        while let Some(Reverse((t, _, _))) = queue.peek() {
            if *t > now {
                break;
            }
            let Reverse((_, _, ev)) = queue.pop().expect("peeked");
            match ev {
                Ev::Send(i) => {
                    let r = &mut reqs[i];
                    if r.done.is_some() || r.dead {
                        continue;
                    }
                    let id = ids.fresh();
                    let m = Msg {
                        id,
                        req: i,
                        kind: Kind::Honest,
                        effort: r.effort,
                        epoch: known.1,
                        tag: id,
                        invalid: false,
                        peer: (i % 1024) as u32,
                        arrival: 0,
                    };
                    r.live = m.id;
                    in_flight.insert(m.id, m);
                    schedule(&mut queue, now + sc.latency_ms, Ev::Arrive(m.id));
                    if rx != Receiver::Iso {
                        schedule(&mut queue, now + 30_000, Ev::Timeout(i, m.id));
                    }
                }
                Ev::Arrive(id) => {
                    let m = in_flight.remove(&id).expect("in flight");
                    reqs[m.req].last_arrival = now;
                    ids.stamps += u64::from(m.effort > 0);
                    node.arrive(now, m, &mut out);
                }
                Ev::Nack(i, id, _) | Ev::Timeout(i, id) => {
                    let r = &mut reqs[i];
                    if r.done.is_some() || r.dead || r.live != id {
                        continue;
                    }
                    if now - r.created > sc.give_up_s * 1000 {
                        r.dead = true;
                        continue;
                    }
                    r.effort = match (&mut r.policy, ev) {
                        (Some(p), Ev::Nack(_, _, price)) => {
                            let busy = Busy { price, retry_after: Duration::ZERO };
                            match p.on_busy(&busy) {
                                Ok(e) => e.max(margin(known.0)),
                                Err(_) => {
                                    r.dead = true;
                                    continue;
                                }
                            }
                        }
                        _ => {
                            // Tor client: double below 1000, else ×1.5; clamp [8, 10000].
                            let e = if r.effort < 1000 { r.effort * 2 } else { r.effort * 3 / 2 };
                            e.clamp(8, 10_000).max(known.0)
                        }
                    };
                    r.live = u64::MAX;
                    solve(&mut rng, r, i, now, &mut queue, &mut schedule);
                }
                Ev::Advertise(p, e) => known = (p, e),
            }
        }
        // Attackers learn the price at once (pessimistic for the defender), including the
        // floor a `Busy` would quote, so they never waste messages the node refuses for free.
        let price = node.price().max(node.busy_floor());
        let active = now >= a0
            && now < a1
            && match sc.strategy {
                Strategy::Pulse { on, period, .. } => ((now - a0) / 1000) % period < on,
                _ => true,
            };
        if active {
            bandwidth = (bandwidth + sc.machines * sc.bandwidth / 1000.0).min(sc.machines * sc.bandwidth);
            let follow = |f: f64, budget: &mut f64, bandwidth: &mut f64| -> (u32, u64) {
                let effort = (f * f64::from(price)).ceil() as u32;
                let n = if effort == 0 {
                    bandwidth.floor()
                } else {
                    *budget = (*budget + c_a / 1000.0).min(c_a);
                    (*budget / f64::from(effort)).floor().min(bandwidth.floor())
                };
                *budget -= n * f64::from(effort);
                *bandwidth -= n;
                (effort, n as u64)
            };
            match sc.strategy {
                Strategy::Follow(f) | Strategy::Pulse { f, .. } => {
                    let (e, n) = follow(f, &mut budget, &mut bandwidth);
                    emit(&mut ids, now, e, n, false, None, node.as_mut(), &mut out);
                }
                Strategy::Maintain { f, switch, flood } => {
                    if now < a0 + switch * 1000 {
                        let (e, n) = follow(f, &mut budget, &mut bandwidth);
                        emit(&mut ids, now, e, n, false, None, node.as_mut(), &mut out);
                    } else {
                        side += flood * sc.mu / 1000.0;
                        emit(&mut ids, now, 0, side.floor() as u64, false, None, node.as_mut(), &mut out);
                        side -= side.floor();
                    }
                }
                Strategy::Invalid { f, rate } | Strategy::Replay { f, rate } => {
                    let (e, n) = follow(f, &mut budget, &mut bandwidth);
                    let first = ids.next + 1;
                    emit(&mut ids, now, e, n, false, None, node.as_mut(), &mut out);
                    if e > 0 {
                        for id in first..first + n {
                            if replayable.len() < 4096 {
                                replayable.push((id, e, node.epoch()));
                            }
                        }
                    }
                    side += rate / 1000.0;
                    let extra = side.floor() as u64;
                    side -= side.floor();
                    if matches!(sc.strategy, Strategy::Invalid { .. }) {
                        let effort = e.max(margin(price)).max(1);
                        emit(&mut ids, now, effort, extra, true, None, node.as_mut(), &mut out);
                    } else {
                        for j in 0..extra as usize {
                            if let Some(&(tag, effort, epoch)) =
                                replayable.get((now as usize + j) % replayable.len().max(1))
                            {
                                emit(&mut ids, now, effort, 1, false, Some((tag, epoch)), node.as_mut(), &mut out);
                            }
                        }
                    }
                }
                Strategy::Precompute { f } => {
                    // Half the compute follows the price; the other half banks stamps for the
                    // current epoch and releases them, at full bandwidth, when the next one
                    // starts (they are still valid there).
                    let epoch = node.epoch();
                    if epoch != stock_epoch {
                        release = std::mem::take(&mut stock).into_iter().map(|e| (e, stock_epoch)).collect();
                        stock_epoch = epoch;
                    }
                    let mut sent = 0.0;
                    while bandwidth >= 1.0 {
                        let Some((e, ep)) = release.pop() else { break };
                        let tag = ids.next + 1;
                        emit(&mut ids, now, e, 1, false, Some((tag, ep)), node.as_mut(), &mut out);
                        bandwidth -= 1.0;
                        sent += 1.0;
                    }
                    let _ = sent;
                    stockpile += 0.5 * c_a / 1000.0;
                    let effort = ((f * f64::from(price)).ceil() as u32).max(1);
                    while stockpile >= f64::from(effort) {
                        stockpile -= f64::from(effort);
                        stock.push(effort);
                    }
                    budget -= 0.5 * c_a / 1000.0;
                    let (e, n) = follow(f, &mut budget, &mut bandwidth);
                    emit(&mut ids, now, e, n, false, None, node.as_mut(), &mut out);
                }
            }
        }
        while next_solicited <= now as f64 {
            let id = ids.fresh();
            let m = Msg {
                id,
                req: usize::MAX,
                kind: Kind::Solicited,
                effort: 0,
                epoch: 0,
                tag: id,
                invalid: false,
                peer: (id % 8) as u32,
                arrival: 0,
            };
            sol_sent += 1;
            node.arrive(now, m, &mut out);
            next_solicited += rng.exp(1000.0 / sc.solicited_rate);
        }
        node.step(now, &mut out);
        for o in out.drain(..) {
            match o {
                Out::Served(m) => {
                    log.update(&[0]);
                    log.update(&now.to_le_bytes());
                    log.update(&m.id.to_le_bytes());
                    match m.kind {
                        Kind::Honest => {
                            let r = &mut reqs[m.req];
                            if r.live == m.id && r.done.is_none() && !r.dead {
                                r.done = Some(now);
                            }
                        }
                        Kind::Solicited => {
                            sol_served += 1;
                            sol_lat.push((now - m.arrival) as f64);
                        }
                        Kind::Attacker => {}
                    }
                }
                Out::Lost(m, busy) => {
                    log.update(&[1]);
                    log.update(&now.to_le_bytes());
                    log.update(&m.id.to_le_bytes());
                    if let (Kind::Honest, Some(price)) = (m.kind, busy) {
                        schedule(&mut queue, now + sc.latency_ms, Ev::Nack(m.req, m.id, price));
                    }
                }
            }
        }
        let adv = (node.price(), node.epoch());
        if rx == Receiver::Iso {
            if adv != told {
                told = adv;
                log.update(&[2]);
                log.update(&now.to_le_bytes());
                log.update(&adv.0.to_le_bytes());
                schedule(&mut queue, now + sc.latency_ms, Ev::Advertise(adv.0, adv.1));
            }
        } else {
            known = adv; // descriptor refetch taken as instant: flatters the baselines
        }
        if now.is_multiple_of(1000) {
            prices.push(adv.0);
        }
    }

    // Honest requests created during the attack and early enough to finish within 120 s.
    let window_end = a1.min((sc.duration_s * 1000).saturating_sub(125_000));
    let during: Vec<&Req> = reqs.iter().filter(|r| r.created >= a0 && r.created < window_end).collect();
    let n = during.len().max(1) as f64;
    let within =
        |s: u64| during.iter().filter(|r| r.done.is_some_and(|d| d - r.created <= s * 1000)).count() as f64 / n;
    let mut ttc: Vec<f64> = during.iter().map(|r| r.done.map_or(f64::INFINITY, |d| (d - r.created) as f64)).collect();
    let mut added: Vec<f64> =
        during.iter().map(|r| r.done.map_or(f64::INFINITY, |d| (d - r.created) as f64 - r.solve_ms)).collect();
    let served: Vec<&&Req> = during.iter().filter(|r| r.done.is_some()).collect();
    let mut qd: Vec<f64> = served.iter().map(|r| (r.done.unwrap() - r.last_arrival) as f64).collect();
    let work_s = served.iter().map(|r| r.work).sum::<f64>() / served.len().max(1) as f64 / sc.c_h;
    let atk = &prices[(a0 / 1000) as usize..(a1 / 1000) as usize];
    let mut second: Vec<f64> = atk[atk.len() / 2..].iter().map(|&p| f64::from(p)).collect();
    let steady = quantile(&mut second, 0.5);
    let converge_s = atk.iter().position(|&p| steady > 0.0 && f64::from(p) >= 0.5 * steady).map(|s| s as u64);
    let dormant_s = (sc.attack.1 as usize..prices.len())
        .find(|&s| prices[s..].iter().all(|&p| p == 0))
        .map(|s| s as u64 - sc.attack.1);
    Report {
        honest: during.len(),
        ok10: within(10),
        ok120: within(120),
        ttc50_s: quantile(&mut ttc, 0.5) / 1000.0,
        ttc99_s: quantile(&mut ttc, 0.99) / 1000.0,
        added99_s: quantile(&mut added, 0.99) / 1000.0,
        queue99_ms: quantile(&mut qd, 0.99),
        work_s,
        fair_s: sc.fair_price() / sc.c_h,
        converge_s,
        dormant_s,
        mean_price: atk.iter().map(|&p| f64::from(p)).sum::<f64>() / atk.len().max(1) as f64,
        solicited_ok: if sol_sent == 0 { 1.0 } else { sol_served as f64 / sol_sent as f64 },
        solicited99_ms: quantile(&mut sol_lat, 0.99),
        solicited_stamps: 0,
        stamps_per_s: ids.stamps as f64 / sc.duration_s as f64,
        attacker_sent: ids.attacker_sent,
        log_hash: log.finalize().to_hex()[..16].to_string(),
    }
}
