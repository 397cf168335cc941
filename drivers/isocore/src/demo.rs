//! `isocore demo`: a writer, a relay and two readers replicating one feed live, in memory,
//! every byte passing through the real replication machine and every entry verified against
//! the writer's signature at each hop.

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use isocore_log::{Config, Download, Event, Feed, FeedKey, MemoryStore, Replicator, Storage};
use std::collections::VecDeque;
use std::error::Error;
use std::time::{Duration, Instant};

struct Link {
    peer: usize,
    replicator: Replicator,
}

struct Node {
    name: &'static str,
    feed: Feed<MemoryStore>,
    links: Vec<Link>,
    up: bool,
}

/// Nodes joined by in-order links; messages are delivered immediately, in order.
struct Hub {
    nodes: Vec<Node>,
    wire: VecDeque<(usize, usize, Bytes)>,
    started: Instant,
    messages: u64,
    bytes: u64,
}

impl Hub {
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    fn add(&mut self, name: &'static str, key: FeedKey) -> usize {
        let feed = Feed::open(key, MemoryStore::new()).expect("an empty store opens");
        self.nodes.push(Node { name, feed, links: Vec::new(), up: true });
        self.nodes.len() - 1
    }

    fn connect(&mut self, a: usize, config_a: Config, b: usize, config_b: Config) -> Result<(), Box<dyn Error>> {
        let now = self.now();
        for (x, y, config) in [(a, b, config_a), (b, a, config_b)] {
            let mut replicator = Replicator::new(config);
            replicator.start(&self.nodes[x].feed, now);
            self.nodes[x].links.push(Link { peer: y, replicator });
        }
        self.pump()
    }

    /// Stop a node, keeping only what its store committed, and drop its links.
    fn crash(&mut self, node: usize) -> Result<(), Box<dyn Error>> {
        let store = self.nodes[node].feed.store().clone();
        let key = *self.nodes[node].feed.key();
        self.nodes[node].up = false;
        self.nodes[node].links.clear();
        for other in self.nodes.iter_mut() {
            other.links.retain(|l| l.peer != node);
        }
        self.wire.retain(|(from, to, _)| *from != node && *to != node);
        self.nodes[node].feed = Feed::open(key, store)?;
        Ok(())
    }

    fn append(&mut self, node: usize, signer: &SigningKey, entries: Vec<Vec<u8>>) -> Result<(), Box<dyn Error>> {
        self.nodes[node].feed.append(signer, entries)?;
        self.updated(node, usize::MAX);
        self.pump()
    }

    fn updated(&mut self, node: usize, except: usize) {
        let now = self.now();
        let Node { feed, links, .. } = &mut self.nodes[node];
        for link in links.iter_mut().filter(|l| l.peer != except) {
            link.replicator.on_feed_updated(feed, now);
        }
    }

    fn collect(&mut self) -> Result<(), Box<dyn Error>> {
        for (from, node) in self.nodes.iter_mut().enumerate() {
            for link in node.links.iter_mut() {
                let mut buf = Vec::new();
                while link.replicator.poll_transmit(&node.feed, &mut buf)?.is_some() {
                    self.wire.push_back((from, link.peer, Bytes::from(std::mem::take(&mut buf))));
                }
            }
        }
        Ok(())
    }

    /// Deliver until every link is quiet. Returns the events seen, by node.
    fn pump(&mut self) -> Result<(), Box<dyn Error>> {
        self.collect()?;
        while let Some((from, to, bytes)) = self.wire.pop_front() {
            self.messages += 1;
            self.bytes += bytes.len() as u64;
            let now = self.now();
            let node = &mut self.nodes[to];
            let Some(link) = node.links.iter_mut().find(|l| l.peer == from) else {
                continue;
            };
            link.replicator.handle_input(&mut node.feed, now, &bytes)?;
            let mut changed = false;
            while let Some(event) = link.replicator.poll_event() {
                changed |= matches!(event, Event::HeadAdvanced { .. } | Event::Downloaded { .. } | Event::Forked);
            }
            if changed {
                self.updated(to, from);
            }
            self.collect()?;
        }
        Ok(())
    }
}

fn say(quiet: bool, line: impl AsRef<str>) {
    if !quiet {
        println!("{}", line.as_ref());
    }
}

pub fn run(quiet: bool) -> Result<(), Box<dyn Error>> {
    let signer = SigningKey::from_bytes(&blake3::derive_key("isocore/demo/v1/writer", b"demo"));
    let key = FeedKey::standalone(signer.verifying_key());
    let mut hub = Hub { nodes: Vec::new(), wire: VecDeque::new(), started: Instant::now(), messages: 0, bytes: 0 };
    let writer = hub.add("writer", key);
    let relay = hub.add("relay", key);
    let readers = [hub.add("reader-1", key), hub.add("reader-2", key)];
    say(quiet, format!("feed {}", isocore_log::Hash(key.writer().to_bytes())));

    // 1. The writer builds a history: 20 batches of 1000 entries, one signature each.
    let t = Instant::now();
    for batch in 0..20u64 {
        let entries: Vec<_> =
            (0..1000).map(|i| format!("message {} from the writer", batch * 1000 + i).into_bytes()).collect();
        hub.nodes[writer].feed.append(&signer, entries)?;
    }
    say(quiet, format!("writer appended 20000 entries in 20 signed batches in {:.1?}", t.elapsed()));

    // 2. The relay downloads everything, verifying each entry against the writer's signature.
    let serve = Config { download: Download::None, live: false, ..Config::default() };
    let t = Instant::now();
    hub.connect(writer, serve.clone(), relay, Config::default())?;
    let relay_len = hub.nodes[relay].feed.contiguous_len();
    say(quiet, format!("relay verified and stored {relay_len} entries in {:.1?}", t.elapsed()));

    // 3. Two readers follow the relay only; they never talk to the writer.
    for &reader in &readers {
        hub.connect(relay, Config::default(), reader, Config::default())?;
    }
    for &reader in &readers {
        say(
            quiet,
            format!(
                "{} caught up through the relay: {} entries",
                hub.nodes[reader].name,
                hub.nodes[reader].feed.contiguous_len()
            ),
        );
    }

    // 4. Live: each append is pushed writer -> relay -> readers.
    let mut latencies = Vec::new();
    for i in 0..200u64 {
        let t = Instant::now();
        hub.append(writer, &signer, vec![format!("live update {i}").into_bytes()])?;
        latencies.push(t.elapsed());
        if i == 99 {
            // 5. The relay crashes mid-stream and comes back from its store.
            hub.crash(relay)?;
            hub.append(writer, &signer, vec![b"written while the relay was down".to_vec()])?;
            say(quiet, format!("relay crashed at length {}; restarting from its store", hub.nodes[relay].feed.len()));
            hub.nodes[relay].up = true;
            hub.connect(writer, serve.clone(), relay, Config::default())?;
            for &reader in &readers {
                hub.connect(relay, Config::default(), reader, Config::default())?;
            }
        }
    }
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    say(
        quiet,
        format!(
            "201 live appends reached both readers through the relay: p50 {:.1?}, p99 {:.1?} (append, two verified hops, in process)",
            p(0.5),
            p(0.99)
        ),
    );

    let want = hub.nodes[writer].feed.head().copied();
    for node in &hub.nodes {
        let feed = &node.feed;
        if feed.head().copied() != want || feed.contiguous_len() != feed.len() {
            return Err(format!("{} did not converge: length {}", node.name, feed.len()).into());
        }
        for i in [0, feed.len() / 2, feed.len() - 1] {
            if feed.get(i)? != hub.nodes[writer].feed.get(i)? {
                return Err(format!("{} entry {i} differs from the writer's", node.name).into());
            }
        }
        let stored = feed.store().entry_bytes();
        say(
            quiet,
            format!("  {:<9} length {:>6}  {:>7} bytes of entries  up {}", node.name, feed.len(), stored, node.up),
        );
        let _ = feed.store().head()?;
    }
    say(quiet, format!("{} messages, {} bytes exchanged; every entry verified at every hop", hub.messages, hub.bytes));
    println!("demo ok: 4 nodes at length {}", hub.nodes[writer].feed.len());
    Ok(())
}
