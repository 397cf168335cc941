//! Two or more endpoints joined by in-memory links with latency, on virtual time.
#![allow(dead_code)]

use isocore_log::{Feed, FeedKey, MemoryStore};
use isocore_proto::{ConnectionHandle, Endpoint, EndpointConfig, EndpointEvent, Identity, Role};
use std::collections::BTreeMap;
use std::time::Duration;

pub fn identity(seed: u8) -> Identity {
    Identity::from_seed([seed; 32])
}

pub struct Node {
    pub endpoint: Endpoint<MemoryStore>,
    pub events: Vec<EndpointEvent>,
}

/// A link: (node, its connection handle) at both ends.
#[derive(Clone, Copy, Debug)]
pub struct Wire {
    pub a: (usize, ConnectionHandle),
    pub b: (usize, ConnectionHandle),
}

pub struct Net {
    pub nodes: Vec<Node>,
    pub wires: Vec<Wire>,
    pub now: Duration,
    pub latency: Duration,
    queue: BTreeMap<(Duration, u64), (usize, ConnectionHandle, Vec<u8>)>,
    seq: u64,
    pub bytes: u64,
}

impl Net {
    pub fn new() -> Self {
        Net {
            nodes: Vec::new(),
            wires: Vec::new(),
            now: Duration::ZERO,
            latency: Duration::from_millis(1),
            queue: BTreeMap::new(),
            seq: 0,
            bytes: 0,
        }
    }

    pub fn add(&mut self, seed: u8) -> usize {
        self.add_with(seed, EndpointConfig::default())
    }

    pub fn add_with(&mut self, seed: u8, config: EndpointConfig) -> usize {
        self.nodes
            .push(Node { endpoint: Endpoint::new(identity(seed), config, [seed ^ 0xa5; 32]), events: Vec::new() });
        self.nodes.len() - 1
    }

    pub fn add_feed(&mut self, node: usize, key: FeedKey, config: Option<isocore_log::Config>) {
        let feed = Feed::open(key, MemoryStore::new()).unwrap();
        let now = self.now;
        self.nodes[node].endpoint.add_feed(feed, config, now);
    }

    /// Connect `a` (initiator) to `b` (responder).
    pub fn connect(&mut self, a: usize, b: usize) -> Wire {
        let now = self.now;
        let seed_a = [self.wires.len() as u8 * 2 + 1; 32];
        let seed_b = [self.wires.len() as u8 * 2 + 2; 32];
        let ha = self.nodes[a].endpoint.connect(Role::Initiator, seed_a, now);
        let hb = self.nodes[b].endpoint.connect(Role::Responder, seed_b, now);
        let wire = Wire { a: (a, ha), b: (b, hb) };
        self.wires.push(wire);
        self.flush();
        wire
    }

    fn other_end(&self, node: usize, handle: ConnectionHandle) -> Option<(usize, ConnectionHandle)> {
        self.wires.iter().find_map(|w| {
            if w.a == (node, handle) {
                Some(w.b)
            } else if w.b == (node, handle) {
                Some(w.a)
            } else {
                None
            }
        })
    }

    pub fn flush(&mut self) {
        let wires = self.wires.clone();
        for w in wires {
            for (from, to) in [(w.a, w.b), (w.b, w.a)] {
                let mut buf = Vec::new();
                while self.nodes[from.0].endpoint.poll_transmit(from.1, self.now, &mut buf).is_some() {}
                if !buf.is_empty() {
                    self.bytes += buf.len() as u64;
                    self.seq += 1;
                    self.queue.insert((self.now + self.latency, self.seq), (to.0, to.1, buf));
                }
            }
        }
        for node in self.nodes.iter_mut() {
            while let Some(e) = node.endpoint.poll_event() {
                node.events.push(e);
            }
        }
    }

    pub fn step(&mut self) -> bool {
        let next_timeout = self.nodes.iter().filter_map(|n| n.endpoint.poll_timeout()).min();
        let next = self.queue.keys().next().map(|(t, _)| *t);
        match (next, next_timeout) {
            (Some(t), timeout) if timeout.is_none_or(|x| t <= x) => {
                let (&key, _) = self.queue.iter().next().unwrap();
                let (node, handle, bytes) = self.queue.remove(&key).unwrap();
                self.now = self.now.max(t);
                self.nodes[node].endpoint.handle_input(handle, self.now, &bytes);
            }
            (_, Some(t)) => {
                self.now = self.now.max(t);
                let now = self.now;
                for n in self.nodes.iter_mut() {
                    n.endpoint.handle_timeout(now);
                }
            }
            (None, None) => return false,
            _ => unreachable!(),
        }
        self.flush();
        true
    }

    /// Run until no message is in flight and no message waits for its stamp (other timers alone do
    /// not keep it running).
    pub fn run(&mut self) {
        let mut steps = 0;
        while !self.queue.is_empty() || self.nodes.iter().any(|n| n.endpoint.is_stamping()) {
            self.step();
            steps += 1;
            assert!(steps < 1_000_000, "network did not settle");
        }
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        while self.now < until {
            let next = self.queue.keys().next().map(|(t, _)| *t);
            let timeout = self.nodes.iter().filter_map(|n| n.endpoint.poll_timeout()).min();
            let t = next.into_iter().chain(timeout).min();
            if t.is_none_or(|t| t > until) {
                self.now = until;
                break;
            }
            self.step();
        }
    }

    pub fn take_events(&mut self, node: usize) -> Vec<EndpointEvent> {
        std::mem::take(&mut self.nodes[node].events)
    }
}
