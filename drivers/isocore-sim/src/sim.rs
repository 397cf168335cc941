//! The simulator: nodes, links, faults, workload and invariants.

use bytes::Bytes;
use core::fmt;
use ed25519_dalek::SigningKey;
use isocore_log::{
    Config, Download, Feed, FeedKey, ForkProof, Hash, MemoryStore, SignedHead, Storage, StoreError, WriteBatch,
};
use isocore_proto::{ConnectionHandle, Endpoint, EndpointConfig, EndpointEvent, Identity, Role as Side};
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;

/// splitmix64: small, fast and the same everywhere.
#[derive(Clone)]
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// What a node is in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Writes the feed.
    Writer,
    /// Follows the feed and relays it.
    Follower,
    /// Serves entries it has altered (its stored data is correct; what it sends is not).
    Tamperer,
    /// Sends random bytes instead of the protocol.
    Garbage,
    /// Holds the writer's key and signs a second history.
    Forker,
    /// Keeps as many unsolicited calls outstanding at its peers as they allow, and never pays
    /// for admission.
    Flooder,
    /// Follows the feed and announces what it holds, but serves none of it.
    Withholder,
}

/// Every parameter of a run, drawn from its seed.
#[derive(Clone, Debug)]
pub struct Params {
    /// The seed everything comes from.
    pub seed: u64,
    /// Honest followers.
    pub followers: usize,
    /// Extra links beyond the spanning tree that connects everyone.
    pub extra_links: usize,
    /// Link latency range, ms.
    pub latency_ms: (u64, u64),
    /// Per-delivery jitter bound, ms (deliveries on a link stay in order).
    pub jitter_ms: u64,
    /// Chance per fault tick (per mille) of cutting a random link for a while.
    pub partition_per_mille: u64,
    /// Chance per fault tick (per mille) of crashing a random follower for a while.
    pub crash_per_mille: u64,
    /// Chance per fault tick (per mille) of clogging a random link (adding delay) for a while.
    pub clog_per_mille: u64,
    /// Largest clock offset of a node, ms.
    pub skew_ms: u64,
    /// Largest clock rate error of a node, parts per million.
    pub drift_ppm: u64,
    /// Appends the writer makes during the safety phase.
    pub appends: u64,
    /// A node that serves tampered entries.
    pub tamperer: bool,
    /// A node that sends garbage.
    pub garbage: bool,
    /// A second writer with the same key signing another history.
    pub forker: bool,
    /// A node flooding its peers with calls it does not pay for.
    pub flooder: bool,
    /// A relay that announces entries and never serves them.
    pub withholder: bool,
    /// Chance per delivery (per mille) that it is lost, duplicated or overtaken by the next:
    /// damage under the session, which its authentication turns into a closed connection.
    pub damage_per_mille: u64,
    /// Chance per fault tick (per mille) of cutting one direction of a random link.
    pub one_way_per_mille: u64,
    /// The links, by node index (0 the writer, then the followers, then the misbehaving nodes
    /// in the order of [`Role`]); `None` draws a connected topology from the seed.
    pub links: Option<Vec<(usize, usize)>>,
    /// Length of the safety phase, ms of virtual time.
    pub safety_ms: u64,
    /// Bound on convergence after healing, ms of virtual time.
    pub liveness_bound_ms: u64,
}

impl Params {
    /// Draw every parameter from `seed`.
    pub fn from_seed(seed: u64) -> Params {
        let mut rng = Rng(seed);
        let followers = rng.range(3, 9) as usize;
        Params {
            seed,
            followers,
            extra_links: rng.range(0, followers as u64) as usize,
            latency_ms: {
                let lo = rng.range(1, 20);
                (lo, lo + rng.range(0, 80))
            },
            jitter_ms: rng.range(0, 20),
            partition_per_mille: rng.range(0, 300),
            crash_per_mille: rng.range(0, 150),
            clog_per_mille: rng.range(0, 200),
            skew_ms: rng.range(0, 2000),
            drift_ppm: rng.range(0, 500),
            appends: rng.range(20, 120),
            tamperer: rng.chance(400),
            garbage: rng.chance(400),
            forker: rng.chance(250),
            safety_ms: rng.range(5_000, 20_000),
            liveness_bound_ms: 30_000,
            flooder: rng.chance(400),
            withholder: rng.chance(300),
            damage_per_mille: if rng.chance(300) { rng.range(1, 5) } else { 0 },
            one_way_per_mille: rng.range(0, 100),
            links: None,
        }
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SEED={} followers={} extra_links={} latency_ms={}..{} jitter_ms={} partition={}‰ crash={}‰ clog={}‰ \
             skew_ms={} drift_ppm={} appends={} tamperer={} garbage={} forker={} flooder={} withholder={} \
             damage={}‰ one_way={}‰ safety_ms={} liveness_bound_ms={}",
            self.seed,
            self.followers,
            self.extra_links,
            self.latency_ms.0,
            self.latency_ms.1,
            self.jitter_ms,
            self.partition_per_mille,
            self.crash_per_mille,
            self.clog_per_mille,
            self.skew_ms,
            self.drift_ppm,
            self.appends,
            self.tamperer,
            self.garbage,
            self.forker,
            self.flooder,
            self.withholder,
            self.damage_per_mille,
            self.one_way_per_mille,
            self.safety_ms,
            self.liveness_bound_ms
        )
    }
}

/// A broken invariant, named, with what broke it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant.
    pub invariant: &'static str,
    /// What was seen.
    pub detail: String,
    /// Reproduce with this seed.
    pub seed: u64,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invariant `{}` broken: {}; reproduce with SEED={}", self.invariant, self.detail, self.seed)
    }
}

impl std::error::Error for Violation {}

/// What a successful run measured.
#[derive(Clone, Debug)]
pub struct Report {
    /// The parameters.
    pub params: Params,
    /// BLAKE3 over every delivery and append, in order: equal for equal seeds.
    pub trace_hash: [u8; 32],
    /// Messages delivered.
    pub deliveries: u64,
    /// The writer's final length.
    pub length: u64,
    /// Virtual ms from healing to convergence.
    pub converged_at_ms: u64,
    /// The liveness bound, ms.
    pub liveness_bound_ms: u64,
    /// Whether a fork was detected (and reached every honest follower).
    pub fork_detected: bool,
    /// Honest calls made after healing, and how many were answered.
    pub probes: (u64, u64),
    /// Calls the flooder made, and how many of them were served.
    pub flood: (u64, u64),
    /// Deliveries lost, duplicated or reordered under the session.
    pub damaged: u64,
}

/// A node's committed data: it survives the node's crashes.
type Shared = Rc<RefCell<MemoryStore>>;

/// A store that may alter or withhold what it serves, never what it holds.
struct SimStore {
    inner: Shared,
    tamper: bool,
    withhold: bool,
}

impl Storage for SimStore {
    fn head(&self) -> Result<Option<SignedHead>, StoreError> {
        self.inner.borrow().head()
    }
    fn fork_proof(&self) -> Result<Option<ForkProof>, StoreError> {
        self.inner.borrow().fork_proof()
    }
    fn entry(&self, index: u64) -> Result<Option<Bytes>, StoreError> {
        if self.withhold {
            return Ok(None);
        }
        let entry = self.inner.borrow().entry(index)?;
        Ok(match entry {
            Some(e) if self.tamper => {
                let mut v = e.to_vec();
                v.push(0xee);
                Some(Bytes::from(v))
            }
            other => other,
        })
    }
    fn node(&self, index: u64) -> Result<Option<Hash>, StoreError> {
        self.inner.borrow().node(index)
    }
    fn contiguous(&self) -> Result<u64, StoreError> {
        self.inner.borrow().contiguous()
    }
    fn apply(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        self.inner.borrow_mut().apply(batch)
    }
}

struct Node {
    role: Role,
    identity: Identity,
    /// The committed store, kept across crashes.
    store: Shared,
    endpoint: Option<Endpoint<SimStore>>,
    skew_ns: u64,
    drift_ppm: u64,
    crashed_until: u64,
    /// Calls handed to this node, answered one per [`SERVICE`] in order.
    calls: VecDeque<(ConnectionHandle, u64)>,
    serving: bool,
}

struct Link {
    a: usize,
    b: usize,
    latency: u64,
    handles: Option<(ConnectionHandle, ConnectionHandle)>,
    down_until: u64,
    clogged_until: u64,
    /// One direction cut until then (index 0: a to b).
    one_way_until: [u64; 2],
    /// Last scheduled delivery per direction, to keep each direction in order.
    last: [u64; 2],
}

enum Ev {
    Deliver { link: usize, to_b: bool, bytes: Vec<u8>, generation: u64 },
    Append,
    Fault,
    Serve(usize),
}

const MS: u64 = 1_000_000;

/// A check of the whole network, run after every step: `Err` says what is wrong.
pub type Invariant = Box<dyn Fn(&View<'_>) -> Result<(), String>>;

/// What an invariant sees: every node's committed store, read-only.
pub struct View<'a> {
    sim: &'a Sim,
}

impl View<'_> {
    /// Nodes in the run.
    pub fn nodes(&self) -> usize {
        self.sim.nodes.len()
    }
    /// What node `i` is.
    pub fn role(&self, i: usize) -> Role {
        self.sim.nodes[i].role
    }
    /// Entries node `i` holds from the start.
    pub fn held(&self, i: usize) -> u64 {
        self.sim.nodes[i].store.borrow().contiguous().unwrap_or(0)
    }
    /// The length of node `i`'s verified head.
    pub fn length(&self, i: usize) -> Option<u64> {
        self.sim.nodes[i].store.borrow().head().ok().flatten().map(|h| h.length)
    }
    /// Entry `index` as node `i` holds it.
    pub fn entry(&self, i: usize, index: u64) -> Option<Bytes> {
        self.sim.nodes[i].store.borrow().entry(index).ok().flatten()
    }
    /// Whether node `i` holds a fork proof.
    pub fn forked(&self, i: usize) -> bool {
        self.sim.nodes[i].store.borrow().fork_proof().ok().flatten().is_some()
    }
    /// Whether node `i` is up (not crashed).
    pub fn up(&self, i: usize) -> bool {
        self.sim.nodes[i].endpoint.is_some()
    }
    /// Virtual time, ms.
    pub fn now_ms(&self) -> u64 {
        self.sim.now / MS
    }
}
/// How long a node takes to answer one call: 200 a second, fewer than one flooder asks for.
const SERVICE: u64 = 5 * MS;
/// The interfaces of the flood and of honest probes.
const FLOOD: [u8; 32] = [0xf1; 32];
const PROBE: [u8; 32] = [0xc0; 32];
/// Calls the flooder keeps outstanding per connection (the default limit is 64).
const FLOOD_DEPTH: usize = 48;

/// One simulated network.
pub struct Sim {
    params: Params,
    rng: Rng,
    now: u64,
    nodes: Vec<Node>,
    links: Vec<Link>,
    generations: Vec<u64>,
    queue: BTreeMap<(u64, u64), Ev>,
    seq: u64,
    key: FeedKey,
    signer: SigningKey,
    trace: blake3::Hasher,
    deliveries: u64,
    appended: u64,
    healed: bool,
    steps: u64,
    /// Honest calls made after healing, by (node, connection, id), with when they were made.
    probes: BTreeMap<(usize, ConnectionHandle, u64), u64>,
    probes_sent: u64,
    probes_answered: u64,
    probing: bool,
    invariants: Vec<(&'static str, Invariant)>,
    flood_sent: u64,
    flood_served: u64,
    damaged: u64,
}

impl Sim {
    /// Build the network of `params`: a writer, followers, the misbehaving nodes it drew, and a
    /// random connected topology.
    pub fn new(params: Params) -> Sim {
        let mut rng = Rng(params.seed ^ 0x5151_5151);
        let signer = SigningKey::from_bytes(&[0x11; 32]);
        let key = FeedKey::standalone(signer.verifying_key());
        let mut roles = vec![Role::Writer];
        roles.extend(std::iter::repeat_n(Role::Follower, params.followers));
        if params.tamperer {
            roles.push(Role::Tamperer);
        }
        if params.garbage {
            roles.push(Role::Garbage);
        }
        if params.forker {
            roles.push(Role::Forker);
        }
        if params.flooder {
            roles.push(Role::Flooder);
        }
        if params.withholder {
            roles.push(Role::Withholder);
        }
        let nodes: Vec<Node> = roles
            .iter()
            .enumerate()
            .map(|(i, &role)| Node {
                role,
                identity: Identity::from_seed([i as u8 + 1; 32]),
                store: Rc::new(RefCell::new(MemoryStore::new())),
                endpoint: None,
                skew_ns: rng.below(params.skew_ms * MS + 1),
                drift_ppm: rng.below(params.drift_ppm + 1),
                crashed_until: 0,
                calls: VecDeque::new(),
                serving: false,
            })
            .collect();
        let mut sim = Sim {
            rng,
            now: 0,
            nodes,
            links: Vec::new(),
            generations: Vec::new(),
            queue: BTreeMap::new(),
            seq: 0,
            key,
            signer,
            trace: blake3::Hasher::new(),
            deliveries: 0,
            appended: 0,
            healed: false,
            steps: 0,
            probes: BTreeMap::new(),
            probes_sent: 0,
            probes_answered: 0,
            probing: true,
            invariants: Vec::new(),
            flood_sent: 0,
            flood_served: 0,
            damaged: 0,
            params,
        };
        // A spanning tree over the writer and the honest followers (so every honest node has
        // an honest path to the writer: liveness cannot be asked of a partitioned network);
        // each misbehaving node links to one or two honest nodes; then random extra links.
        let n = sim.nodes.len();
        let honest = 1 + sim.params.followers;
        if let Some(links) = sim.params.links.clone() {
            for (a, b) in links.into_iter().filter(|&(a, b)| a != b && a.max(b) < n) {
                sim.add_link(a.min(b), a.max(b));
            }
            for i in 0..n {
                sim.start_node(i);
            }
            for l in 0..sim.links.len() {
                sim.connect(l);
            }
            return sim;
        }
        for i in 1..honest {
            let j = sim.rng.below(i as u64) as usize;
            sim.add_link(j, i);
        }
        for i in honest..n {
            for _ in 0..sim.rng.range(1, 2) {
                let j = sim.rng.below(honest as u64) as usize;
                sim.add_link(j, i);
            }
        }
        for _ in 0..sim.params.extra_links {
            let a = sim.rng.below(n as u64) as usize;
            let b = sim.rng.below(n as u64) as usize;
            if a != b {
                sim.add_link(a.min(b), a.max(b));
            }
        }
        for i in 0..n {
            sim.start_node(i);
        }
        for l in 0..sim.links.len() {
            sim.connect(l);
        }
        sim
    }

    fn add_link(&mut self, a: usize, b: usize) {
        let (lo, hi) = self.params.latency_ms;
        let latency = self.rng.range(lo, hi) * MS;
        self.links.push(Link {
            a,
            b,
            latency,
            handles: None,
            down_until: 0,
            clogged_until: 0,
            one_way_until: [0; 2],
            last: [0; 2],
        });
        self.generations.push(0);
    }

    fn local_now(&self, node: usize) -> Duration {
        let n = &self.nodes[node];
        Duration::from_nanos(self.now + n.skew_ns + self.now / 1_000_000 * n.drift_ppm)
    }

    fn start_node(&mut self, i: usize) {
        let role = self.nodes[i].role;
        // The simulated clock never restarts, so one admission secret per node suffices; it is
        // derived, not drawn, to leave the run's random sequence as it was.
        let secret = blake3::derive_key("isocore-sim/admission-secret", &self.nodes[i].identity.peer_id().0);
        // Calls beyond the few being served wait in admission, where their wait prices them.
        let mut config = EndpointConfig { max_serving: 4, ..EndpointConfig::default() };
        if role == Role::Flooder {
            // Never pays: a refused call is given up at once.
            config.connection.stamp_policy.budget = 0;
        }
        let mut endpoint = Endpoint::new(self.nodes[i].identity.clone(), config, secret);
        if !matches!(role, Role::Garbage | Role::Flooder) {
            let store = SimStore {
                inner: self.nodes[i].store.clone(),
                tamper: role == Role::Tamperer,
                withhold: role == Role::Withholder,
            };
            let feed = Feed::open(self.key, store).expect("a committed store opens");
            let config = match role {
                Role::Writer | Role::Forker => Config { download: Download::None, live: false, ..Config::default() },
                _ => Config { request_timeout: Duration::from_secs(2), ..Config::default() },
            };
            endpoint.add_feed(feed, Some(config), self.local_now(i));
        }
        self.nodes[i].endpoint = Some(endpoint);
    }

    fn connect(&mut self, l: usize) {
        let (a, b) = (self.links[l].a, self.links[l].b);
        if self.nodes[a].endpoint.is_none() || self.nodes[b].endpoint.is_none() {
            return;
        }
        let seed_a = self.rng.next().to_le_bytes().repeat(4).try_into().expect("32 bytes");
        let seed_b = self.rng.next().to_le_bytes().repeat(4).try_into().expect("32 bytes");
        let (na, nb) = (self.local_now(a), self.local_now(b));
        let ha = self.nodes[a].endpoint.as_mut().expect("up").connect(Side::Initiator, seed_a, na);
        let hb = self.nodes[b].endpoint.as_mut().expect("up").connect(Side::Responder, seed_b, nb);
        self.links[l].handles = Some((ha, hb));
        self.links[l].last = [self.now; 2];
        self.generations[l] += 1;
    }

    fn disconnect(&mut self, l: usize) {
        if let Some((ha, hb)) = self.links[l].handles.take() {
            let (a, b) = (self.links[l].a, self.links[l].b);
            for (n, h) in [(a, ha), (b, hb)] {
                if let Some(e) = self.nodes[n].endpoint.as_mut() {
                    e.close(h, "link cut");
                    e.remove_closed();
                }
            }
        }
        self.generations[l] += 1;
    }

    fn schedule(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    /// Collect everything every node wants to send, and its events.
    fn flush(&mut self) {
        for l in 0..self.links.len() {
            let Some((ha, hb)) = self.links[l].handles else { continue };
            for (to_b, from, handle) in [(true, self.links[l].a, ha), (false, self.links[l].b, hb)] {
                let now = self.local_now(from);
                let garbage = self.nodes[from].role == Role::Garbage;
                let Some(endpoint) = self.nodes[from].endpoint.as_mut() else { continue };
                let mut buf = Vec::new();
                while endpoint.poll_transmit(handle, now, &mut buf).is_some() {}
                if garbage && !buf.is_empty() {
                    // Keep the handshake (so the session opens), then send noise.
                    let noise: Vec<u8> = (0..200).map(|_| self.rng.next() as u8).collect();
                    if self.rng.chance(300) {
                        buf.extend_from_slice(&noise);
                    }
                }
                if buf.is_empty() {
                    continue;
                }
                let link = &self.links[l];
                let jitter = self.rng.below(self.params.jitter_ms * MS + 1);
                let clog = if link.clogged_until > self.now { 200 * MS } else { 0 };
                let dir = usize::from(!to_b);
                if link.one_way_until[dir] > self.now {
                    continue;
                }
                let mut at = (self.now + link.latency + jitter + clog).max(link.last[dir] + 1);
                let generation = self.generations[l];
                let damage = if self.healed { 0 } else { self.params.damage_per_mille };
                if self.rng.chance(damage) {
                    self.damaged += 1;
                    match self.rng.below(3) {
                        0 => continue,
                        1 => self.schedule(at, Ev::Deliver { link: l, to_b, bytes: buf.clone(), generation }),
                        // Overtaken: it arrives before what was sent ahead of it.
                        _ => at = self.now + link.latency.min(at - self.now) / 2 + 1,
                    }
                }
                self.links[l].last[dir] = self.links[l].last[dir].max(at);
                self.schedule(at, Ev::Deliver { link: l, to_b, bytes: buf, generation });
            }
        }
        for i in 0..self.nodes.len() {
            let mut events = Vec::new();
            if let Some(e) = self.nodes[i].endpoint.as_mut() {
                while let Some(ev) = e.poll_event() {
                    if std::env::var_os("ISOCORE_SIM_DEBUG").is_some()
                        && !matches!(ev, EndpointEvent::FeedUpdated { .. })
                    {
                        eprintln!("{} node {i}: {ev:?}", self.now / MS);
                    }
                    events.push(ev);
                }
            }
            for ev in events {
                self.on_event(i, ev);
            }
        }
    }

    /// Calls: honest nodes answer every call in turn; the flooder tops its calls up whenever
    /// one ends; probes are counted.
    fn on_event(&mut self, i: usize, ev: EndpointEvent) {
        let flooder = self.nodes[i].role == Role::Flooder;
        match ev {
            EndpointEvent::Call { connection, id, interface, .. } => {
                if interface == FLOOD {
                    self.flood_served += 1;
                }
                self.nodes[i].calls.push_back((connection, id));
                if !self.nodes[i].serving {
                    self.nodes[i].serving = true;
                    self.schedule(self.now + SERVICE, Ev::Serve(i));
                }
            }
            EndpointEvent::Connected { connection, .. } if flooder => {
                for _ in 0..FLOOD_DEPTH {
                    self.flood(i, connection);
                }
            }
            EndpointEvent::Reply { connection, id, .. } => {
                if flooder {
                    self.flood(i, connection);
                } else if self.probes.remove(&(i, connection, id)).is_some() {
                    self.probes_answered += 1;
                }
            }
            EndpointEvent::CallFailed { connection, id, .. } => {
                if flooder {
                    self.flood(i, connection);
                } else {
                    self.probes.remove(&(i, connection, id));
                }
            }
            EndpointEvent::NotAdmitted { connection, of: isocore_proto::Unsolicited::Call(id), .. } => {
                if flooder {
                    self.flood(i, connection);
                } else {
                    self.probes.remove(&(i, connection, id));
                }
            }
            _ => {}
        }
    }

    fn flood(&mut self, i: usize, connection: ConnectionHandle) {
        if let Some(e) = self.nodes[i].endpoint.as_mut()
            && e.call(connection, FLOOD, "flood", &[0; 64]).is_some()
        {
            self.flood_sent += 1;
        }
    }

    /// Each honest follower calls one of its honest peers.
    fn probe(&mut self) {
        let honest: Vec<isocore_proto::PeerId> = (0..self.nodes.len())
            .filter(|&i| matches!(self.nodes[i].role, Role::Writer | Role::Follower))
            .map(|i| self.nodes[i].identity.peer_id())
            .collect();
        for i in self.honest().collect::<Vec<_>>() {
            let Some(e) = self.nodes[i].endpoint.as_mut() else { continue };
            let open: Vec<ConnectionHandle> = e
                .connections()
                .filter(|(h, p)| p.is_some_and(|p| honest.contains(&p)) && e.is_open(*h))
                .map(|(h, _)| h)
                .collect();
            if open.is_empty() {
                continue;
            }
            let h = open[self.rng.below(open.len() as u64) as usize];
            if let Some(id) = e.call(h, PROBE, "probe", b"are you there") {
                self.probes.insert((i, h, id), self.now);
                self.probes_sent += 1;
            }
        }
    }

    fn step(&mut self, until: u64) -> bool {
        self.steps += 1;
        if std::env::var_os("ISOCORE_SIM_DEBUG").is_some() && self.steps.is_multiple_of(100_000) {
            let timers: Vec<(usize, Option<Duration>, Duration)> = (0..self.nodes.len())
                .map(|i| (i, self.nodes[i].endpoint.as_ref().and_then(|e| e.poll_timeout()), self.local_now(i)))
                .collect();
            eprintln!("step {} now {} queue {} timers {:?}", self.steps, self.now, self.queue.len(), timers);
        }
        let next_event = self.queue.keys().next().map(|(t, _)| *t);
        // Node timers, mapped back to global time (conservatively: never late).
        let next_timer = (0..self.nodes.len())
            .filter_map(|i| {
                let local = self.nodes[i].endpoint.as_ref()?.poll_timeout()?;
                let now_local = self.local_now(i);
                Some(self.now + local.saturating_sub(now_local).as_nanos() as u64)
            })
            .min();
        let t = match (next_event, next_timer) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => return false,
        };
        if t > until {
            self.now = until;
            return false;
        }
        self.now = self.now.max(t);
        if next_event == Some(t) {
            let (&k, _) = self.queue.iter().next().expect("present");
            let ev = self.queue.remove(&k).expect("present");
            self.handle(ev);
        } else {
            for i in 0..self.nodes.len() {
                let now = self.local_now(i);
                if let Some(e) = self.nodes[i].endpoint.as_mut()
                    && e.poll_timeout().is_some_and(|d| d <= now)
                {
                    e.handle_timeout(now);
                    e.remove_closed();
                }
            }
        }
        self.flush();
        true
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Deliver { link, to_b, bytes, generation } => {
                if generation != self.generations[link] {
                    return;
                }
                let Some((ha, hb)) = self.links[link].handles else { return };
                let (to, handle) = if to_b { (self.links[link].b, hb) } else { (self.links[link].a, ha) };
                self.deliveries += 1;
                self.trace.update(&self.now.to_le_bytes());
                self.trace.update(&(link as u64).to_le_bytes());
                self.trace.update(&bytes);
                let now = self.local_now(to);
                if let Some(e) = self.nodes[to].endpoint.as_mut() {
                    e.handle_input(handle, now, &bytes);
                }
            }
            Ev::Append => {
                self.appended += 1;
                let i = self.appended;
                let entry = format!("entry {i}").into_bytes();
                self.trace.update(&entry);
                let now = self.local_now(0);
                let (key, signer) = (self.key, self.signer.clone());
                if let Some(e) = self.nodes[0].endpoint.as_mut() {
                    // A writer that learned it forked refuses to append; the run goes on.
                    let _ = e.append(&key, &signer, [entry], now);
                }
                if let Some(f) = self.nodes.iter().position(|n| n.role == Role::Forker)
                    && i.is_multiple_of(3)
                {
                    let now = self.local_now(f);
                    if let Some(e) = self.nodes[f].endpoint.as_mut() {
                        let _ = e.append(&key, &signer, [format!("forged {i}").into_bytes()], now);
                    }
                }
            }
            Ev::Fault => self.fault(),
            Ev::Serve(i) => {
                let node = &mut self.nodes[i];
                if let (Some((h, id)), Some(e)) = (node.calls.pop_front(), node.endpoint.as_mut()) {
                    e.reply(h, id, b"ok");
                }
                if node.calls.is_empty() {
                    node.serving = false;
                } else {
                    self.schedule(self.now + SERVICE, Ev::Serve(i));
                }
            }
        }
    }

    fn fault(&mut self) {
        let p = self.params.clone();
        // A connection that either end closed (a protocol error, an idle timeout) is dialled
        // again, as a node's driver does.
        for l in 0..self.links.len() {
            let Some((ha, hb)) = self.links[l].handles else { continue };
            let (a, b) = (self.links[l].a, self.links[l].b);
            let open = |n: &Node, h| n.endpoint.as_ref().is_some_and(|e| e.is_open(h));
            if !open(&self.nodes[a], ha) || !open(&self.nodes[b], hb) {
                self.disconnect(l);
                self.links[l].down_until = self.now + 200 * MS;
            }
        }
        // Heal what is due.
        for l in 0..self.links.len() {
            if self.links[l].handles.is_none() && self.links[l].down_until <= self.now {
                let (a, b) = (self.links[l].a, self.links[l].b);
                if self.nodes[a].crashed_until <= self.now && self.nodes[b].crashed_until <= self.now {
                    self.connect(l);
                }
            }
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].endpoint.is_none() && self.nodes[i].crashed_until <= self.now {
                self.start_node(i);
                for l in 0..self.links.len() {
                    if (self.links[l].a == i || self.links[l].b == i) && self.links[l].handles.is_none() {
                        self.connect(l);
                    }
                }
            }
        }
        if self.healed {
            if self.probing {
                self.probe();
            }
            let next = self.now + 100 * MS;
            self.schedule(next, Ev::Fault);
            return;
        }
        if self.rng.chance(p.partition_per_mille) && !self.links.is_empty() {
            let l = self.rng.below(self.links.len() as u64) as usize;
            self.disconnect(l);
            self.links[l].down_until = self.now + self.rng.range(100, 3000) * MS;
        }
        if self.rng.chance(p.one_way_per_mille) && !self.links.is_empty() {
            let l = self.rng.below(self.links.len() as u64) as usize;
            let dir = self.rng.below(2) as usize;
            self.links[l].one_way_until[dir] = self.now + self.rng.range(100, 3000) * MS;
        }
        if self.rng.chance(p.clog_per_mille) && !self.links.is_empty() {
            let l = self.rng.below(self.links.len() as u64) as usize;
            self.links[l].clogged_until = self.now + self.rng.range(100, 2000) * MS;
        }
        if self.rng.chance(p.crash_per_mille) {
            let i = 1 + self.rng.below(self.nodes.len() as u64 - 1) as usize;
            if self.nodes[i].endpoint.is_some() {
                for l in 0..self.links.len() {
                    if self.links[l].a == i || self.links[l].b == i {
                        self.disconnect(l);
                    }
                }
                self.nodes[i].endpoint = None;
                self.nodes[i].crashed_until = self.now + self.rng.range(200, 3000) * MS;
            }
        }
        let next = self.now + self.rng.range(50, 500) * MS;
        self.schedule(next, Ev::Fault);
    }

    /// Bring every node and link back, with no more faults.
    fn heal(&mut self) {
        self.healed = true;
        for i in 0..self.nodes.len() {
            self.nodes[i].crashed_until = 0;
            if self.nodes[i].endpoint.is_none() {
                self.start_node(i);
            }
        }
        for l in 0..self.links.len() {
            self.links[l].clogged_until = 0;
            self.links[l].down_until = 0;
            self.links[l].one_way_until = [0; 2];
            if self.links[l].handles.is_none() {
                self.connect(l);
            }
        }
    }

    fn honest(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].role == Role::Follower)
    }

    fn violation(&self, invariant: &'static str, detail: String) -> Violation {
        Violation { invariant, detail, seed: self.params.seed }
    }

    /// Safety, checked after the safety phase and again at the end.
    /// Overwrite an entry in a follower's store, bypassing verification: for tests that the
    /// invariants catch what they claim to.
    #[doc(hidden)]
    pub fn corrupt_for_testing(&mut self, node: usize, index: u64) {
        let mut store = self.nodes[node].store.borrow_mut();
        let mut fresh = MemoryStore::new();
        for i in 0..store.contiguous().unwrap_or(0) {
            let entry = if i == index {
                Bytes::from_static(b"corrupted")
            } else {
                store.entry(i).ok().flatten().unwrap_or_default()
            };
            fresh.apply(WriteBatch { entries: vec![(i, entry)], ..WriteBatch::default() }).expect("memory");
        }
        *store = fresh;
    }

    /// Run the safety phase only, then check safety (for tests of the checker).
    #[doc(hidden)]
    pub fn run_safety(&mut self) {
        let p = self.params.clone();
        let spacing = p.safety_ms * MS / (p.appends + 1);
        for i in 1..=p.appends {
            self.schedule(i * spacing, Ev::Append);
        }
        while self.step(p.safety_ms * MS) {}
    }

    /// Check the safety invariants now.
    pub fn check_safety(&self) -> Result<(), Violation> {
        let writer = self.nodes[0].store.borrow();
        let forks = self.params.forker;
        for i in self.honest() {
            let store = self.nodes[i].store.borrow();
            let held = store.contiguous().unwrap_or(0);
            for index in 0..held {
                let got = store.entry(index).ok().flatten();
                let theirs = writer.entry(index).ok().flatten();
                // Each stored entry is the writer's (or, when the writer forked, from one of
                // its two signed histories: the forker's entries say "forged").
                let from_writer = got == theirs;
                let from_fork =
                    forks && got.as_ref().is_some_and(|e| e.starts_with(b"forged") || e.starts_with(b"entry"));
                if !from_writer && !from_fork {
                    return Err(self.violation(
                        "stored entries verify against the writer's signed heads",
                        format!("node {i} entry {index} is {got:?}, the writer has {theirs:?}"),
                    ));
                }
            }
        }
        if !forks {
            // Verified prefixes never diverge between honest nodes.
            let honest: Vec<usize> = self.honest().collect();
            for w in honest.windows(2) {
                let (x, y) = (self.nodes[w[0]].store.borrow(), self.nodes[w[1]].store.borrow());
                let n = x.contiguous().unwrap_or(0).min(y.contiguous().unwrap_or(0));
                for index in 0..n {
                    if x.entry(index).ok() != y.entry(index).ok() {
                        return Err(self.violation(
                            "verified prefixes never diverge",
                            format!("nodes {} and {} differ at entry {index}", w[0], w[1]),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Adds an invariant of one's own, checked after every step of both phases; a failure
    /// is reported as a [`Violation`] under `name`.
    pub fn check(&mut self, name: &'static str, invariant: impl Fn(&View<'_>) -> Result<(), String> + 'static) {
        self.invariants.push((name, Box::new(invariant)));
    }

    fn check_own(&self) -> Result<(), Violation> {
        let view = View { sim: self };
        for (name, invariant) in &self.invariants {
            invariant(&view).map_err(|detail| self.violation(name, detail))?;
        }
        Ok(())
    }

    /// Run both phases.
    pub fn run(mut self) -> Result<Report, Violation> {
        let p = self.params.clone();
        let spacing = p.safety_ms * MS / (p.appends + 1);
        for i in 1..=p.appends {
            self.schedule(i * spacing, Ev::Append);
        }
        self.schedule(100 * MS, Ev::Fault);
        let end_of_safety = p.safety_ms * MS;
        while self.step(end_of_safety) {
            self.check_own()?;
        }
        self.check_safety()?;

        // Liveness: heal, then everyone honest converges on the writer's head.
        self.heal();
        self.flush();
        let healed_at = self.now;
        let bound = healed_at + p.liveness_bound_ms * MS;
        let writer_head = self.nodes[0].store.borrow().head().ok().flatten();
        let mut converged_at = None;
        while self.now < bound {
            if !self.step(bound) {
                break;
            }
            self.check_own()?;
            if self.converged(writer_head.as_ref()) {
                converged_at = Some(self.now);
                break;
            }
        }
        if std::env::var_os("ISOCORE_SIM_DEBUG").is_some() {
            for (i, n) in self.nodes.iter().enumerate() {
                let st = n.store.borrow();
                eprintln!(
                    "node {i} {:?} len {:?} contiguous {:?} fork {}",
                    n.role,
                    st.head().ok().flatten().map(|h| h.length),
                    st.contiguous().ok(),
                    st.fork_proof().ok().flatten().is_some()
                );
                for line in n.endpoint.as_ref().map(|e| e.debug_streams()).unwrap_or_default() {
                    eprintln!("    {line}");
                }
            }
            for l in &self.links {
                let open = l.handles.map(|(ha, hb)| {
                    let o = |n: usize, h| self.nodes[n].endpoint.as_ref().is_some_and(|e| e.is_open(h));
                    (o(l.a, ha), o(l.b, hb))
                });
                eprintln!("link {}-{} open {:?}", l.a, l.b, open);
            }
        }
        let converged_at = converged_at.ok_or_else(|| {
            let lengths: Vec<String> = self
                .honest()
                .map(|i| {
                    let s = self.nodes[i].store.borrow();
                    let fork = if s.fork_proof().ok().flatten().is_some() { " (fork proof)" } else { "" };
                    format!("node {i}: {:?}{fork}", s.contiguous().ok())
                })
                .collect();
            self.violation(
                "every honest follower converges after healing",
                format!(
                    "not within {} ms; writer at {:?}; {}",
                    p.liveness_bound_ms,
                    writer_head.map(|h| h.length),
                    lengths.join(", ")
                ),
            )
        })?;
        self.check_safety()?;
        // Honest calls keep being made for a while, then their answers are awaited.
        let probing_until = self.now + 3_000 * MS;
        while self.step(probing_until) {
            self.check_own()?;
        }
        self.probing = false;
        let answers_by = self.now + 3_000 * MS;
        while self.step(answers_by) {
            self.check_own()?;
        }
        if self.probes_sent == 0 || self.probes_answered * 10 < self.probes_sent * 9 {
            return Err(self.violation(
                "honest requests are still served under a flood",
                format!(
                    "{} of {} honest calls answered (flooder: {} calls made, {} served)",
                    self.probes_answered, self.probes_sent, self.flood_sent, self.flood_served
                ),
            ));
        }
        if self.params.forker {
            for i in self.honest() {
                let proof = self.nodes[i].store.borrow().fork_proof().ok().flatten();
                if proof.is_some_and(|p| p.verify_for(&self.key).is_err()) {
                    return Err(self.violation("fork proofs verify", format!("node {i} holds a bad fork proof")));
                }
            }
        }
        Ok(Report {
            trace_hash: *self.trace.finalize().as_bytes(),
            deliveries: self.deliveries,
            length: writer_head.map_or(0, |h| h.length),
            converged_at_ms: (converged_at - healed_at) / MS,
            liveness_bound_ms: p.liveness_bound_ms,
            fork_detected: self.params.forker,
            probes: (self.probes_sent, self.probes_answered),
            flood: (self.flood_sent, self.flood_served),
            damaged: self.damaged,
            params: p,
        })
    }

    fn converged(&self, writer_head: Option<&SignedHead>) -> bool {
        if self.params.forker {
            // With a forking writer, convergence means every honest follower holds a fork proof.
            return self.honest().all(|i| self.nodes[i].store.borrow().fork_proof().ok().flatten().is_some());
        }
        self.honest().all(|i| {
            let s = self.nodes[i].store.borrow();
            s.head().ok().flatten().as_ref() == writer_head
                && s.contiguous().ok() == writer_head.map(|h| h.length).or(Some(0))
        })
    }
}
