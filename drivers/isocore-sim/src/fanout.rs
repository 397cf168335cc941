//! Fan-out: one publisher, many subscribers, organised into a tree by the replicas
//! themselves (`Seats` and `Lineage` of `isocore-log`, `spec/log.md` §8 "Fan-out").
//!
//! Every node is a real [`Feed`] over a memory store with real [`Replicator`]s, one per peer;
//! every entry is verified against the writer's signature at every node. What is left out is
//! the session layer (the encryption and framing of `isocore-proto`, which the fault
//! simulation covers): it changes the cost of a link, not the shape of the tree, and its
//! handshakes would dominate a run of 100 000 nodes. Links have a fixed latency each, drawn
//! from the seed; messages on a link arrive in order; a crashed node's peers notice after
//! `detect_ms`.
//!
//! A run: the publisher appends one entry; subscribers join over `join_ms`, each starting at
//! the publisher and following redirects; then `live` entries are appended and timed to every
//! subscriber; then `crashes` relays crash, their subtrees re-attach, and `after` more entries
//! must reach every survivor.

use crate::sim::Rng;
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use isocore_log::{Config, Download, Event, Feed, FeedKey, Lineage, MemoryStore, Replicator, Seating, Seats};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The parameters of a fan-out run.
#[derive(Clone, Debug)]
pub struct FanoutParams {
    /// Everything random comes from this.
    pub seed: u64,
    /// Subscribers (the publisher is one more node).
    pub subscribers: usize,
    /// Most subscribers a node serves.
    pub k: usize,
    /// Link latencies are drawn uniformly from this range, in ms.
    pub latency_ms: (u64, u64),
    /// Subscribers join at times drawn uniformly from `[0, join_ms]`.
    pub join_ms: u64,
    /// Entries appended and timed once everyone has joined.
    pub live: u64,
    /// Time between appends, ms.
    pub interval_ms: u64,
    /// Relays crashed after the live phase.
    pub crashes: usize,
    /// How long a node takes to notice that a peer is gone, ms.
    pub detect_ms: u64,
    /// Entries appended after the crashes, which every survivor must receive.
    pub after: u64,
    /// Bytes per entry.
    pub entry_len: usize,
}

impl FanoutParams {
    /// A run of `subscribers` with fan-out `k`; the rest drawn from `seed` or defaults.
    pub fn new(seed: u64, subscribers: usize, k: usize) -> Self {
        let mut rng = Rng(seed);
        let lo = rng.range(5, 20);
        FanoutParams {
            seed,
            subscribers,
            k,
            latency_ms: (lo, lo + rng.range(0, 20)),
            join_ms: 2_000 + subscribers as u64 / 20,
            live: 5,
            interval_ms: 200,
            crashes: (subscribers / 200).clamp(1, 50),
            detect_ms: 500,
            after: 3,
            entry_len: 64,
        }
    }
}

impl fmt::Display for FanoutParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SEED={} subscribers={} k={} latency_ms={}..{} join_ms={} live={} interval_ms={} crashes={} detect_ms={} after={} entry_len={}",
            self.seed,
            self.subscribers,
            self.k,
            self.latency_ms.0,
            self.latency_ms.1,
            self.join_ms,
            self.live,
            self.interval_ms,
            self.crashes,
            self.detect_ms,
            self.after,
            self.entry_len
        )
    }
}

/// Delivery times at one depth.
#[derive(Clone, Debug, PartialEq)]
pub struct DepthStats {
    /// Depth below the publisher (its children are at 1).
    pub depth: usize,
    /// Subscribers at this depth.
    pub nodes: usize,
    /// Delivery latency of the live entries, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// The bound p99 must stay within: `(depth + 1) × max link latency + 50 ms`.
    pub bound_ms: f64,
}

/// What a fan-out run measured.
#[derive(Clone, Debug)]
pub struct FanoutReport {
    /// The parameters.
    pub params: FanoutParams,
    /// Copies of each live entry the publisher sent (`Data` messages carrying it).
    pub publisher_copies_per_entry: f64,
    /// Bytes the publisher sent per live entry, all messages counted.
    pub publisher_bytes_per_entry: f64,
    /// Bytes the publisher sent while subscribers joined (redirects), per subscriber.
    pub publisher_join_bytes_per_subscriber: f64,
    /// Deepest subscriber.
    pub max_depth: usize,
    /// Most subscribers any node served.
    pub max_served: usize,
    /// Delivery latency of live entries over all subscribers, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Per depth.
    pub depths: Vec<DepthStats>,
    /// Messages delivered in the whole run.
    pub messages: u64,
    /// Redirects followed while joining, per subscriber.
    pub redirects_per_subscriber: f64,
    /// Subscribers left without a parent by the crashes (the crashed relays' children).
    pub orphans: usize,
    /// Subscribers that were below a crashed relay (its whole subtree).
    pub cut_off: usize,
    /// Time from the crashes until the last orphan was seated again, ms.
    pub repaired_ms: f64,
    /// Delivery latency of the entries appended after the crashes, p99, ms.
    pub after_p99_ms: f64,
    /// Hash of every delivery: equal for equal seeds.
    pub trace_hash: u64,
}

impl FanoutReport {
    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        let depths: Vec<String> = self
            .depths
            .iter()
            .map(|d| {
                format!(
                    "{{\"depth\":{},\"nodes\":{},\"p50_ms\":{:.1},\"p99_ms\":{:.1},\"bound_ms\":{:.1}}}",
                    d.depth, d.nodes, d.p50_ms, d.p99_ms, d.bound_ms
                )
            })
            .collect();
        format!(
            "{{\"seed\":{},\"subscribers\":{},\"k\":{},\"publisher_copies_per_entry\":{:.2},\"publisher_bytes_per_entry\":{:.0},\"publisher_join_bytes_per_subscriber\":{:.1},\"max_depth\":{},\"max_served\":{},\"p50_ms\":{:.1},\"p99_ms\":{:.1},\"messages\":{},\"redirects_per_subscriber\":{:.2},\"orphans\":{},\"cut_off\":{},\"repaired_ms\":{:.0},\"after_p99_ms\":{:.1},\"trace_hash\":\"{:016x}\",\"depths\":[{}]}}",
            self.params.seed,
            self.params.subscribers,
            self.params.k,
            self.publisher_copies_per_entry,
            self.publisher_bytes_per_entry,
            self.publisher_join_bytes_per_subscriber,
            self.max_depth,
            self.max_served,
            self.p50_ms,
            self.p99_ms,
            self.messages,
            self.redirects_per_subscriber,
            self.orphans,
            self.cut_off,
            self.repaired_ms,
            self.after_p99_ms,
            self.trace_hash,
            depths.join(",")
        )
    }
}

type Id = u32;

struct Link {
    peer: Id,
    replicator: Replicator,
    /// The deadline a timer event is queued for, so each is queued once.
    timer: Option<Duration>,
}

struct Node {
    feed: Feed<MemoryStore>,
    links: Vec<Link>,
    seats: Seats<Id>,
    lineage: Lineage<Id>,
    alive: bool,
    /// When each entry arrived (index = entry).
    arrived: Vec<Duration>,
    redirects: u32,
}

enum Ev {
    Deliver { from: Id, to: Id, bytes: Bytes },
    Join(Id),
    Append,
    Lost { node: Id, peer: Id },
    Timer { node: Id, peer: Id },
}

/// A fan-out run in progress.
struct Fanout {
    p: FanoutParams,
    rng: Rng,
    signer: SigningKey,
    nodes: Vec<Node>,
    queue: BTreeMap<(Duration, u64), Ev>,
    seq: u64,
    now: Duration,
    appended: Vec<Duration>,
    messages: u64,
    /// Bytes the publisher sent, and `Data` messages, counted from when counting began.
    sent_bytes: u64,
    sent_data: u64,
    trace: u64,
    errors: Vec<String>,
}

fn follower() -> Config {
    Config { download: Download::Full, live: true, ..Config::default() }
}

fn server() -> Config {
    Config { download: Download::None, live: false, ..Config::default() }
}

fn contact(id: Id) -> [u8; 4] {
    id.to_le_bytes()
}

impl Fanout {
    fn new(p: FanoutParams) -> Self {
        let mut rng = Rng(p.seed ^ 0x00fa_4007);
        let mut secret = [0u8; 32];
        for chunk in secret.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next().to_le_bytes());
        }
        let signer = SigningKey::from_bytes(&secret);
        let key = FeedKey::standalone(signer.verifying_key());
        let nodes = (0..=p.subscribers)
            .map(|i| Node {
                feed: Feed::open(key, MemoryStore::new()).expect("memory store"),
                links: Vec::new(),
                seats: Seats::new(p.k),
                // Everyone starts from the publisher; the publisher follows nobody.
                lineage: Lineage::new(if i == 0 { vec![] } else { vec![0] }),
                alive: true,
                arrived: Vec::new(),
                redirects: 0,
            })
            .collect();
        Fanout {
            p,
            rng,
            signer,
            nodes,
            queue: BTreeMap::new(),
            seq: 0,
            now: Duration::ZERO,
            appended: Vec::new(),
            messages: 0,
            sent_bytes: 0,
            sent_data: 0,
            trace: 0xcbf2_9ce4_8422_2325,
            errors: Vec::new(),
        }
    }

    fn at(&mut self, when: Duration, ev: Ev) {
        self.seq += 1;
        self.queue.insert((when, self.seq), ev);
    }

    /// The latency of the link between `a` and `b`, the same both ways, from the seed.
    fn latency(&self, a: Id, b: Id) -> Duration {
        let (lo, hi) = (a.min(b) as u64, a.max(b) as u64);
        let mut r = Rng(self.p.seed ^ (lo << 32 | hi).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        Duration::from_millis(r.range(self.p.latency_ms.0, self.p.latency_ms.1))
    }

    /// Send what `node`'s replicators have queued, and arm their timers.
    fn flush(&mut self, node: Id) {
        let mut out = Vec::new();
        let mut timers = Vec::new();
        let n = &mut self.nodes[node as usize];
        for link in n.links.iter_mut() {
            let mut buf = Vec::new();
            while link.replicator.poll_transmit(&n.feed, &mut buf).expect("memory store").is_some() {
                out.push((link.peer, Bytes::from(std::mem::take(&mut buf))));
            }
            if let Some(t) = link.replicator.poll_timeout()
                && link.timer.is_none_or(|queued| t < queued)
            {
                link.timer = Some(t);
                timers.push((t, link.peer));
            }
        }
        for (t, peer) in timers {
            self.at(t, Ev::Timer { node, peer });
        }
        for (peer, bytes) in out {
            if node == 0 && !self.appended.is_empty() {
                self.sent_bytes += bytes.len() as u64;
                self.sent_data += u64::from(bytes.first() == Some(&2));
            }
            let when = self.now + self.latency(node, peer);
            self.at(when, Ev::Deliver { from: node, to: peer, bytes });
        }
    }

    fn subscribe(&mut self, node: Id) {
        let n = &mut self.nodes[node as usize];
        let Some(to) = n.lineage.next(&n.seats) else { return };
        if !self.nodes[to as usize].alive {
            // A refused connection: known after a round trip.
            let when = self.now + 2 * self.latency(node, to);
            self.at(when, Ev::Lost { node, peer: to });
            return;
        }
        let n = &mut self.nodes[node as usize];
        n.links.retain(|l| l.peer != to);
        let mut replicator = Replicator::new(follower());
        replicator.start(&n.feed, self.now);
        n.links.push(Link { peer: to, replicator, timer: None });
        self.flush(node);
    }

    /// Tell every replicator of `node` but the one for `except` that the feed changed.
    fn updated(&mut self, node: Id, except: Id) {
        let now = self.now;
        let n = &mut self.nodes[node as usize];
        for link in n.links.iter_mut().filter(|l| l.peer != except) {
            link.replicator.on_feed_updated(&n.feed, now);
        }
        self.flush(node);
    }

    fn deliver(&mut self, from: Id, to: Id, bytes: Bytes) {
        if !self.nodes[to as usize].alive || !self.nodes[from as usize].alive {
            return;
        }
        self.messages += 1;
        self.trace = (self.trace ^ (self.now.as_micros() as u64 ^ (u64::from(from) << 32 | u64::from(to))))
            .wrapping_mul(0x1000_0000_01b3)
            ^ bytes.len() as u64;
        let now = self.now;
        let p_k = self.p.k;
        let back = self.latency(from, to);
        let count = self.nodes.len();
        let n = &mut self.nodes[to as usize];
        if !n.links.iter().any(|l| l.peer == from) {
            let mut replicator = Replicator::new(server());
            replicator.start(&n.feed, now);
            n.links.push(Link { peer: from, replicator, timer: None });
        }
        let link = n.links.iter_mut().find(|l| l.peer == from).expect("just added");
        let before = n.feed.contiguous_len();
        if let Err(e) = link.replicator.handle_input(&mut n.feed, now, &bytes) {
            self.errors.push(format!("node {to} refused a message from {from}: {e}"));
            return;
        }
        let (mut changed, mut redirected, mut seated) = (false, false, false);
        while let Some(event) = link.replicator.poll_event() {
            match event {
                Event::Subscribed => {
                    if let Seating::Redirect(others) = n.seats.admit(from) {
                        let contacts: Vec<[u8; 4]> = others.iter().map(|&c| contact(c)).collect();
                        link.replicator.redirect(&contacts.iter().map(|c| &c[..]).collect::<Vec<_>>());
                    }
                    debug_assert!(n.seats.seated().len() <= p_k);
                }
                Event::Unsubscribed => {
                    n.seats.leave(&from);
                }
                Event::Redirected => redirected = true,
                Event::PeerHead { .. } => seated = true,
                Event::HeadAdvanced { .. } | Event::Downloaded { .. } | Event::Forked => {
                    changed = true;
                    seated = true;
                }
            }
        }
        let after = n.feed.contiguous_len();
        for _ in before..after {
            n.arrived.push(now);
        }
        if redirected {
            let to_ids: Vec<Id> = link
                .replicator
                .redirected_to()
                .unwrap_or_default()
                .iter()
                .filter_map(|c| Some(Id::from_le_bytes(c.as_slice().try_into().ok()?)))
                .filter(|&c| (c as usize) < count)
                .collect();
            n.links.retain(|l| l.peer != from);
            n.redirects += 1;
            n.lineage.on_redirect(&from, to_ids);
            // The stream is closed: the redirecting side forgets it when that reaches it.
            self.at(now + back, Ev::Lost { node: from, peer: to });
            self.subscribe(to);
            return;
        }
        if seated {
            n.lineage.on_seated(&from);
        }
        if changed {
            self.updated(to, from);
        } else {
            self.flush(to);
        }
    }

    fn lost(&mut self, node: Id, peer: Id) {
        let n = &mut self.nodes[node as usize];
        if !n.alive {
            return;
        }
        n.links.retain(|l| l.peer != peer);
        n.seats.leave(&peer);
        n.lineage.on_lost(&peer);
        self.subscribe(node);
    }

    fn crash(&mut self, node: Id) {
        let n = &mut self.nodes[node as usize];
        n.alive = false;
        let peers: Vec<Id> = n.links.drain(..).map(|l| l.peer).collect();
        for peer in peers {
            let when = self.now + Duration::from_millis(self.p.detect_ms);
            self.at(when, Ev::Lost { node: peer, peer: node });
        }
    }

    fn step(&mut self) -> bool {
        let Some(((when, _), ev)) = self.queue.pop_first() else { return false };
        self.now = self.now.max(when);
        match ev {
            Ev::Deliver { from, to, bytes } => self.deliver(from, to, bytes),
            Ev::Join(node) => self.subscribe(node),
            Ev::Append => {
                let entry = vec![self.appended.len() as u8; self.p.entry_len];
                self.nodes[0].feed.append(&self.signer, [entry]).expect("memory store");
                self.nodes[0].arrived.push(self.now);
                self.appended.push(self.now);
                self.updated(0, Id::MAX);
            }
            Ev::Lost { node, peer } => self.lost(node, peer),
            Ev::Timer { node, peer } => {
                let now = self.now;
                let n = &mut self.nodes[node as usize];
                if let Some(link) = n.links.iter_mut().find(|l| l.peer == peer) {
                    link.timer = None;
                    if link.replicator.poll_timeout().is_some_and(|t| t <= now) {
                        link.replicator.handle_timeout(&n.feed, now);
                    }
                    self.flush(node);
                }
            }
        }
        true
    }

    fn run_until(&mut self, until: Duration) {
        while self.queue.first_key_value().is_some_and(|((t, _), _)| *t <= until) {
            self.step();
        }
        self.now = self.now.max(until);
    }

    fn parent(&self, node: Id) -> Option<Id> {
        self.nodes[node as usize].lineage.parent().copied()
    }

    /// Depth of every node below the publisher (0 for the publisher, `None` if detached).
    fn depths(&self) -> Vec<Option<usize>> {
        let mut depth = vec![None; self.nodes.len()];
        depth[0] = Some(0);
        for start in 1..self.nodes.len() as Id {
            let mut path = Vec::new();
            let mut at = start;
            let found = loop {
                if let Some(d) = depth[at as usize] {
                    break Some(d);
                }
                if path.len() > self.nodes.len() || !self.nodes[at as usize].alive {
                    break None;
                }
                path.push(at);
                match self.parent(at) {
                    Some(p) => at = p,
                    None => break None,
                }
            };
            if let Some(d) = found {
                for (i, node) in path.iter().rev().enumerate() {
                    depth[*node as usize] = Some(d + i + 1);
                }
            }
        }
        depth
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// Runs the fan-out scenario of `params` and checks its invariants; a failure names the
/// broken one.
pub fn run_fanout(params: FanoutParams) -> Result<FanoutReport, String> {
    let mut f = Fanout::new(params.clone());
    let p = params;
    let ms = Duration::from_millis;
    // The first entry, so that there is a head to follow, then the joins.
    f.at(Duration::ZERO, Ev::Append);
    for node in 1..=p.subscribers as Id {
        let when = ms(f.rng.range(0, p.join_ms));
        f.at(when, Ev::Join(node));
    }
    let settle = ms(p.join_ms + 20 * p.latency_ms.1 + 1_000);
    f.run_until(settle);
    let join_bytes = f.sent_bytes;
    f.sent_bytes = 0;
    f.sent_data = 0;
    // Live phase.
    let first_live = f.appended.len();
    for i in 0..p.live {
        f.at(settle + ms(i * p.interval_ms), Ev::Append);
    }
    let live_end = settle + ms(p.live * p.interval_ms + 40 * p.latency_ms.1);
    f.run_until(live_end);
    let (live_bytes, live_data) = (f.sent_bytes, f.sent_data);
    let depths = f.depths();
    if let Some(n) = (1..f.nodes.len()).find(|&n| depths[n].is_none()) {
        return Err(format!("tree: subscriber {n} is not attached to the publisher after joining"));
    }
    let max_served = f.nodes.iter().map(|n| n.links.iter().filter(|l| l.replicator.is_peer_subscribed()).count()).max();
    let max_served = max_served.unwrap_or(0);
    if max_served > p.k {
        return Err(format!("seats: a node pushes to {max_served} subscribers, more than k = {}", p.k));
    }
    let max_depth = depths.iter().flatten().copied().max().unwrap_or(0);
    let mut all = Vec::new();
    let mut by_depth: BTreeMap<usize, (usize, Vec<f64>)> = BTreeMap::new();
    for (i, n) in f.nodes.iter().enumerate().skip(1) {
        let d = depths[i].expect("checked");
        let slot = by_depth.entry(d).or_default();
        slot.0 += 1;
        for e in first_live..f.appended.len() {
            let Some(got) = n.arrived.get(e) else {
                return Err(format!("delivery: subscriber {i} never received live entry {e}"));
            };
            let latency = (*got - f.appended[e]).as_secs_f64() * 1e3;
            slot.1.push(latency);
            all.push(latency);
        }
    }
    let hop = p.latency_ms.1 as f64;
    let mut depth_stats = Vec::new();
    for (depth, (nodes, lat)) in by_depth {
        let lat = sorted(lat);
        let s = DepthStats {
            depth,
            nodes,
            p50_ms: percentile(&lat, 0.5),
            p99_ms: percentile(&lat, 0.99),
            bound_ms: (depth as f64 + 1.0) * hop + 50.0,
        };
        if s.p99_ms > s.bound_ms {
            return Err(format!(
                "latency: p99 at depth {depth} is {:.1} ms, over the bound {:.1} ms",
                s.p99_ms, s.bound_ms
            ));
        }
        depth_stats.push(s);
    }
    let all = sorted(all);
    let copies = live_data as f64 / p.live.max(1) as f64;
    if copies > (p.k + 1) as f64 {
        return Err(format!("upload: the publisher sent {copies:.2} copies of each entry, more than k + 1"));
    }

    // Crashes: relays (nodes that serve someone), drawn from the seed.
    let relays: Vec<Id> =
        (1..f.nodes.len() as Id).filter(|&n| !f.nodes[n as usize].seats.seated().is_empty()).collect();
    let mut crashed = Vec::new();
    while crashed.len() < p.crashes.min(relays.len()) {
        let r = relays[f.rng.below(relays.len() as u64) as usize];
        if !crashed.contains(&r) {
            crashed.push(r);
        }
    }
    let orphans: Vec<Id> = (1..f.nodes.len() as Id)
        .filter(|&n| f.parent(n).is_some_and(|p| crashed.contains(&p)) && !crashed.contains(&n))
        .collect();
    let cut_off = (1..f.nodes.len() as Id)
        .filter(|&n| {
            let mut at = n;
            while let Some(p) = f.parent(at) {
                if crashed.contains(&p) {
                    return !crashed.contains(&n);
                }
                at = p;
            }
            false
        })
        .count();
    let crash_at = f.now;
    for &r in &crashed {
        f.crash(r);
    }
    // Watch the orphans re-attach.
    let mut repaired = crash_at;
    let deadline = crash_at + ms(p.detect_ms + 100 * p.latency_ms.1);
    while f.now < deadline {
        if orphans.iter().all(|&o| f.parent(o).is_some_and(|p| f.nodes[p as usize].alive)) {
            repaired = f.now;
            break;
        }
        if !f.step() {
            break;
        }
    }
    if let Some(o) = orphans.iter().find(|&&o| f.parent(o).is_none_or(|p| !f.nodes[p as usize].alive)) {
        return Err(format!("repair: orphan {o} has no live parent {:?} after the crashes", f.now - crash_at));
    }
    let first_after = f.appended.len();
    let start = f.now + ms(p.interval_ms);
    for i in 0..p.after {
        f.at(start + ms(i * p.interval_ms), Ev::Append);
    }
    f.run_until(start + ms(p.after * p.interval_ms + 60 * p.latency_ms.1));
    let mut after = Vec::new();
    for (i, n) in f.nodes.iter().enumerate().skip(1).filter(|(_, n)| n.alive) {
        for e in first_after..f.appended.len() {
            let Some(got) = n.arrived.get(e) else {
                return Err(format!("convergence: survivor {i} never received entry {e} appended after the crashes"));
            };
            after.push((*got - f.appended[e]).as_secs_f64() * 1e3);
        }
    }
    if let Some(e) = f.errors.first() {
        return Err(format!("honest: {e}"));
    }
    let redirects: u64 = f.nodes.iter().map(|n| u64::from(n.redirects)).sum();
    Ok(FanoutReport {
        publisher_copies_per_entry: copies,
        publisher_bytes_per_entry: live_bytes as f64 / p.live.max(1) as f64,
        publisher_join_bytes_per_subscriber: join_bytes as f64 / p.subscribers.max(1) as f64,
        max_depth,
        max_served,
        p50_ms: percentile(&all, 0.5),
        p99_ms: percentile(&all, 0.99),
        depths: depth_stats,
        messages: f.messages,
        redirects_per_subscriber: redirects as f64 / p.subscribers.max(1) as f64,
        orphans: orphans.len(),
        cut_off,
        repaired_ms: (repaired - crash_at).as_secs_f64() * 1e3,
        after_p99_ms: percentile(&sorted(after), 0.99),
        trace_hash: f.trace,
        params: p,
    })
}
