//! An in-memory network of feed replicas with virtual time, for tests.
#![allow(dead_code)]

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use isocore_log::{Config, Event, Feed, FeedKey, MemoryStore, ReplicationError, Replicator, Seating, Seats};
use std::collections::BTreeMap;
use std::time::Duration;

pub fn writer(seed: u8) -> (SigningKey, FeedKey) {
    let signer = SigningKey::from_bytes(&[seed; 32]);
    let key = FeedKey::standalone(signer.verifying_key());
    (signer, key)
}

/// Entry `i` of a test feed: a deterministic pattern of `len` bytes.
pub fn entry(i: u64, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i as usize * 31 + j * 7) as u8).collect()
}

/// How a link delivers messages.
#[derive(Clone, Copy, Debug)]
pub struct LinkFaults {
    /// Extra random delay (uniform in `0..jitter`) on requests and data, which reorders them.
    pub jitter: Duration,
    /// Chance in 1/1000 of delivering a request or data message twice.
    pub duplicate_per_mille: u32,
}

impl LinkFaults {
    pub const NONE: LinkFaults = LinkFaults { jitter: Duration::ZERO, duplicate_per_mille: 0 };
}

pub struct Peer {
    pub node: usize,
    pub replicator: Replicator,
    pub error: Option<String>,
}

pub struct Node {
    pub feed: Feed<MemoryStore>,
    pub peers: Vec<Peer>,
    pub events: Vec<Event>,
    /// With seats, subscribers past their number are redirected (contacts: node index, LE).
    pub seats: Option<Seats<usize>>,
}

struct Delivery {
    from: usize,
    to: usize,
    bytes: Bytes,
}

/// Nodes, links between them, and a clock that jumps to the next delivery or deadline.
pub struct Net {
    pub nodes: Vec<Node>,
    pub now: Duration,
    pub latency: Duration,
    pub faults: LinkFaults,
    queue: BTreeMap<(Duration, u64), Delivery>,
    seq: u64,
    rng: u64,
    pub delivered: u64,
    pub bytes_sent: u64,
    pub trace: bool,
}

impl Net {
    pub fn new(seed: u64) -> Self {
        Net {
            nodes: Vec::new(),
            now: Duration::ZERO,
            latency: Duration::from_millis(5),
            faults: LinkFaults::NONE,
            queue: BTreeMap::new(),
            seq: 0,
            rng: seed | 1,
            delivered: 0,
            bytes_sent: 0,
            trace: false,
        }
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: deterministic from the seed.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn add(&mut self, key: FeedKey) -> usize {
        let feed = Feed::open(key, MemoryStore::new()).unwrap();
        self.nodes.push(Node { feed, peers: Vec::new(), events: Vec::new(), seats: None });
        self.nodes.len() - 1
    }

    /// Connect `a` and `b`, each side with its own settings, and start both.
    pub fn connect(&mut self, a: usize, config_a: Config, b: usize, config_b: Config) {
        for (x, y, config) in [(a, b, config_a), (b, a, config_b)] {
            let mut replicator = Replicator::new(config);
            replicator.start(&self.nodes[x].feed, self.now);
            self.nodes[x].peers.push(Peer { node: y, replicator, error: None });
        }
        self.flush();
    }

    /// Cut every link of `node`.
    pub fn disconnect(&mut self, node: usize) {
        let others: Vec<usize> = self.nodes[node].peers.iter().map(|p| p.node).collect();
        self.nodes[node].peers.clear();
        for other in others {
            self.nodes[other].peers.retain(|p| p.node != node);
        }
        self.queue.retain(|_, d| d.from != node && d.to != node);
    }

    pub fn append(&mut self, node: usize, signer: &SigningKey, entries: Vec<Vec<u8>>) {
        self.nodes[node].feed.append(signer, entries).unwrap();
        self.updated(node, usize::MAX);
    }

    /// Tell every replicator of `node` except the one for `except` that its feed changed.
    fn updated(&mut self, node: usize, except: usize) {
        let now = self.now;
        let Node { feed, peers, .. } = &mut self.nodes[node];
        for peer in peers.iter_mut().filter(|p| p.node != except) {
            peer.replicator.on_feed_updated(feed, now);
        }
        self.flush();
    }

    fn flush(&mut self) {
        let mut out = Vec::new();
        for (from, node) in self.nodes.iter_mut().enumerate() {
            for peer in node.peers.iter_mut() {
                let mut buf = Vec::new();
                while peer.replicator.poll_transmit(&node.feed, &mut buf).unwrap().is_some() {
                    out.push((from, peer.node, Bytes::from(std::mem::take(&mut buf))));
                }
            }
        }
        for (from, to, bytes) in out {
            self.send(from, to, bytes);
        }
    }

    fn send(&mut self, from: usize, to: usize, bytes: Bytes) {
        self.bytes_sent += bytes.len() as u64;
        // Tags 1-3 are Request, Data and NoData: the messages a real stream may see in any
        // order relative to each other when answers race.
        let loose = matches!(bytes.first(), Some(1..=3));
        let mut copies = 1;
        let mut delay = self.latency;
        if loose {
            if self.faults.jitter > Duration::ZERO {
                delay += Duration::from_nanos(self.random() % self.faults.jitter.as_nanos() as u64);
            }
            if (self.random() % 1000) < self.faults.duplicate_per_mille as u64 {
                copies = 2;
            }
        }
        for _ in 0..copies {
            self.seq += 1;
            self.queue.insert((self.now + delay, self.seq), Delivery { from, to, bytes: bytes.clone() });
        }
    }

    /// Deliver the next message or fire the next timeout. Returns false when nothing is left.
    pub fn step(&mut self) -> bool {
        let next_timeout =
            self.nodes.iter().flat_map(|n| n.peers.iter().filter_map(|p| p.replicator.poll_timeout())).min();
        let next_delivery = self.queue.keys().next().map(|(t, _)| *t);
        match (next_delivery, next_timeout) {
            (None, None) => false,
            (Some(d), t) if t.is_none_or(|t| d <= t) => {
                let (&k, _) = self.queue.iter().next().unwrap();
                let delivery = self.queue.remove(&k).unwrap();
                self.now = self.now.max(k.0);
                self.deliver(delivery);
                true
            }
            (_, Some(t)) => {
                self.now = self.now.max(t);
                let now = self.now;
                for node in self.nodes.iter_mut() {
                    for peer in node.peers.iter_mut() {
                        if peer.replicator.poll_timeout().is_some_and(|d| d <= now) {
                            peer.replicator.handle_timeout(&node.feed, now);
                        }
                    }
                }
                self.flush();
                true
            }
            _ => unreachable!(),
        }
    }

    fn deliver(&mut self, d: Delivery) {
        self.delivered += 1;
        let now = self.now;
        if self.trace {
            eprintln!("{:?} {} -> {}: {:?}", now, d.from, d.to, isocore_log::Message::decode(&d.bytes));
        }
        let node = &mut self.nodes[d.to];
        let Some(peer) = node.peers.iter_mut().find(|p| p.node == d.from) else {
            return;
        };
        if peer.error.is_some() {
            return;
        }
        let result: Result<(), ReplicationError> = peer.replicator.handle_input(&mut node.feed, now, &d.bytes);
        if let Err(e) = result {
            peer.error = Some(e.to_string());
        }
        let mut changed = false;
        while let Some(event) = peer.replicator.poll_event() {
            changed |= matches!(event, Event::HeadAdvanced { .. } | Event::Downloaded { .. } | Event::Forked);
            if let (Event::Subscribed, Some(seats)) = (event, node.seats.as_mut())
                && let Seating::Redirect(to) = seats.admit(d.from)
            {
                let contacts: Vec<[u8; 8]> = to.iter().map(|n| (*n as u64).to_le_bytes()).collect();
                peer.replicator.redirect(&contacts.iter().map(|c| &c[..]).collect::<Vec<_>>());
            }
            node.events.push(event);
        }
        if changed {
            self.updated(d.to, d.from);
        } else {
            self.flush();
        }
    }

    /// Run until nothing is left to do, or `max_steps` steps. Returns the steps taken.
    pub fn run(&mut self, max_steps: usize) -> usize {
        for taken in 0..max_steps {
            if !self.step() {
                return taken;
            }
        }
        panic!("network still busy after {max_steps} steps")
    }

    /// Run until virtual time passes `until` (or everything is quiet).
    pub fn run_until(&mut self, until: Duration) {
        while self.now < until {
            let next = self.queue.keys().next().map(|(t, _)| *t);
            if next.is_none_or(|t| t > until) {
                self.now = until;
                break;
            }
            self.step();
        }
    }

    pub fn errors(&self) -> Vec<(usize, usize, String)> {
        let mut out = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            for p in &n.peers {
                if let Some(e) = &p.error {
                    out.push((i, p.node, e.clone()));
                }
            }
        }
        out
    }

    /// Every entry of `node` equals the writer's (`0`), and its head is the writer's.
    pub fn assert_same_as(&self, node: usize, writer: usize) {
        let w = &self.nodes[writer].feed;
        let n = &self.nodes[node].feed;
        assert_eq!(n.head(), w.head(), "node {node} head differs from node {writer}");
        assert_eq!(n.contiguous_len(), w.len(), "node {node} is missing entries");
        for i in 0..w.len() {
            assert_eq!(n.get(i).unwrap(), w.get(i).unwrap(), "node {node} entry {i} differs");
        }
    }
}
