//! A running node: an [`Endpoint`] over redb, driven by smol on one thread.
//!
//! One task accepts connections, one task per connection moves bytes between its socket and
//! the endpoint, and one task fires the endpoint's timers. This module is the only place that
//! reads the clock or the OS random number generator.

use crate::store::{Db, RedbStore};
use async_net::{TcpListener, TcpStream};
use ed25519_dalek::SigningKey;
use event_listener::Event;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use isocore_log::{Config, Download, Feed, FeedKey};
use isocore_proto::{ConnectionHandle, Endpoint, EndpointConfig, EndpointEvent, Identity, Role};
use smol::LocalExecutor;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Node settings, with defaults that suit a laptop.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Where the identity and database live.
    pub data_dir: PathBuf,
    /// Address to accept connections on.
    pub listen: Option<SocketAddr>,
    /// Peers to dial (and re-dial when the connection drops).
    pub connect: Vec<SocketAddr>,
    /// Most connections at once; more are refused.
    pub max_connections: usize,
    /// Protocol settings.
    pub endpoint: EndpointConfig,
}

impl NodeConfig {
    /// Defaults for a node keeping its data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        NodeConfig {
            data_dir: data_dir.into(),
            listen: None,
            connect: Vec::new(),
            max_connections: 256,
            // Bulk transfers between nodes on one machine or a LAN: data messages of a
            // quarter MiB and windows of several, so neither side waits on the other.
            endpoint: {
                let mut e = EndpointConfig::default();
                e.replication.data_budget = 256 << 10;
                e.connection.stream_window = 4 << 20;
                e.connection.connection_window = 8 << 20;
                e
            },
        }
    }
}

/// The default data directory: `$ISOCORE_HOME`, else `$XDG_DATA_HOME/isocore`, else
/// `~/.local/share/isocore`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ISOCORE_HOME") {
        return dir.into();
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(dir).join("isocore");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/isocore")
}

/// Fresh randomness from the OS.
pub fn random_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("the OS provides randomness");
    seed
}

/// The node's identity, created on first use in `data_dir/identity.key`.
pub fn load_identity(data_dir: &Path) -> std::io::Result<Identity> {
    std::fs::create_dir_all(data_dir)?;
    let path = data_dir.join("identity.key");
    let seed: [u8; 32] = match std::fs::read(&path) {
        Ok(bytes) => bytes
            .try_into()
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "identity.key is not 32 bytes"))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let seed = random_seed();
            write_private(&path, &seed)?;
            seed
        }
        Err(e) => return Err(e),
    };
    Ok(Identity::from_seed(seed))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

/// Open the node database in `data_dir`.
pub fn open_db(data_dir: &Path) -> Result<Db, isocore_log::StoreError> {
    std::fs::create_dir_all(data_dir).map_err(|e| isocore_log::StoreError(Box::new(e)))?;
    Db::open(&data_dir.join("store.redb"))
}

/// Create a new feed written by this node. Returns its key.
pub fn create_feed(db: &Db) -> Result<FeedKey, Box<dyn std::error::Error>> {
    let seed = random_seed();
    let signer = SigningKey::from_bytes(&seed);
    let key = FeedKey::standalone(signer.verifying_key());
    db.add_writer(&key, &seed)?;
    db.feed(&key, true)?;
    Ok(key)
}

/// Parse a feed key: the writer's public key in hex (a standalone feed), or
/// `CHANNEL:WRITER` in hex.
pub fn parse_feed_key(text: &str) -> Result<FeedKey, String> {
    let parse32 = |s: &str| -> Result<[u8; 32], String> {
        let bytes = hex::decode(s).map_err(|_| format!("`{s}` is not hex"))?;
        bytes.try_into().map_err(|_| format!("`{s}` is not 32 bytes of hex"))
    };
    let (channel, writer) = match text.split_once(':') {
        Some((c, w)) => (parse32(c)?, parse32(w)?),
        None => {
            let w = parse32(text)?;
            (w, w)
        }
    };
    FeedKey::from_bytes(channel, &writer).map_err(|_| "not a valid Ed25519 public key".to_string())
}

/// Print form of a feed key (the inverse of [`parse_feed_key`]).
pub fn format_feed_key(key: &FeedKey) -> String {
    if key.channel() == key.writer().as_bytes() {
        hex::encode(key.writer().as_bytes())
    } else {
        format!("{}:{}", hex::encode(key.channel()), hex::encode(key.writer().as_bytes()))
    }
}

/// Shared state of a running node.
pub struct Node {
    /// The identity key, for proofs of possession on calls this node makes.
    signer: SigningKey,
    endpoint: RefCell<Endpoint<RedbStore>>,
    db: Db,
    writers: RefCell<Vec<(FeedKey, SigningKey)>>,
    origin: Instant,
    changed: Event,
    events: RefCell<Vec<EndpointEvent>>,
    subscribers: RefCell<Vec<async_channel::Sender<EndpointEvent>>>,
    config: NodeConfig,
    connections: RefCell<usize>,
}

impl Node {
    /// Open the node in `config.data_dir`: identity, database and every feed in it.
    pub fn open(config: NodeConfig) -> Result<Rc<Node>, Box<dyn std::error::Error>> {
        let identity = load_identity(&config.data_dir)?;
        let db = open_db(&config.data_dir)?;
        // A new secret per start: the time origin below is new too.
        let signer = identity.signing_key().clone();
        let mut endpoint = Endpoint::new(identity, config.endpoint.clone(), random_seed());
        let mut writers = Vec::new();
        for key in db.feeds()? {
            let seed = db.writer_seed(&key)?;
            let store = db.feed(&key, seed.is_some())?;
            let feed = Feed::open(key, store)?;
            // Writers serve; everyone else follows everything.
            let replication = if seed.is_some() {
                Config { download: Download::None, live: false, ..config.endpoint.replication.clone() }
            } else {
                config.endpoint.replication.clone()
            };
            endpoint.add_feed(feed, Some(replication), Duration::ZERO);
            if let Some(seed) = seed {
                writers.push((key, SigningKey::from_bytes(&seed)));
            }
        }
        Ok(Rc::new(Node {
            signer,
            endpoint: RefCell::new(endpoint),
            db,
            writers: RefCell::new(writers),
            origin: Instant::now(),
            changed: Event::new(),
            events: RefCell::new(Vec::new()),
            subscribers: RefCell::new(Vec::new()),
            config,
            connections: RefCell::new(0),
        }))
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Our peer id.
    pub fn peer_id(&self) -> isocore_proto::PeerId {
        self.endpoint.borrow().peer_id()
    }

    /// Start following (or serving) a feed.
    pub fn follow(&self, key: &FeedKey) -> Result<(), Box<dyn std::error::Error>> {
        if self.endpoint.borrow().feed(key).is_some() {
            return Ok(());
        }
        let store = self.db.feed(key, false)?;
        let feed = Feed::open(*key, store)?;
        self.endpoint.borrow_mut().add_feed(feed, None, self.now());
        self.wake();
        Ok(())
    }

    /// Append entries to a feed this node writes.
    pub fn append(&self, key: &FeedKey, entries: Vec<Vec<u8>>) -> Result<u64, Box<dyn std::error::Error>> {
        let signer = self
            .writers
            .borrow()
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, s)| s.clone())
            .ok_or("this node does not write that feed")?;
        let now = self.now();
        let length = self.endpoint.borrow_mut().append(key, &signer, entries, now)?;
        self.wake();
        Ok(length)
    }

    /// Run `f` on a feed, if this node has it.
    pub fn with_feed<T>(&self, key: &FeedKey, f: impl FnOnce(&Feed<RedbStore>) -> T) -> Option<T> {
        self.endpoint.borrow().feed(key).map(f)
    }

    /// Open connections, and who is on the other end of each (once the handshake is done).
    pub fn connections(&self) -> Vec<(ConnectionHandle, Option<isocore_proto::PeerId>)> {
        let endpoint = self.endpoint.borrow();
        endpoint.connections().filter(|(h, _)| endpoint.is_open(*h)).collect()
    }

    /// Who is on the other end of a connection, and its session's handshake hash.
    pub fn session(&self, connection: ConnectionHandle) -> Option<(isocore_proto::PeerId, [u8; 32])> {
        let endpoint = self.endpoint.borrow();
        let c = endpoint.connection(connection)?;
        Some((c.peer()?, c.handshake_hash()?))
    }

    /// Call a method on the peer of `connection`. Returns the call id.
    pub fn call(&self, connection: ConnectionHandle, interface: [u8; 32], method: &str, payload: &[u8]) -> Option<u64> {
        let id = self.endpoint.borrow_mut().call(connection, interface, method, payload);
        self.wake();
        id
    }

    /// Answer a call.
    pub fn reply(&self, connection: ConnectionHandle, id: u64, payload: &[u8]) {
        self.endpoint.borrow_mut().reply(connection, id, payload);
        self.wake();
    }

    /// Refuse a call.
    pub fn fail_call(&self, connection: ConnectionHandle, id: u64, code: u16, reason: &str) {
        self.endpoint.borrow_mut().fail_call(connection, id, code, reason);
        self.wake();
    }

    /// The node's identity key, for proofs of possession.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signer
    }

    /// Endpoint events from now on.
    pub fn subscribe(&self) -> async_channel::Receiver<EndpointEvent> {
        let (tx, rx) = async_channel::unbounded();
        self.subscribers.borrow_mut().push(tx);
        rx
    }

    /// Deliver pending events and wake every task that may have something to do.
    fn wake(&self) {
        let mut endpoint = self.endpoint.borrow_mut();
        let mut events = self.events.borrow_mut();
        while let Some(e) = endpoint.poll_event() {
            match &e {
                EndpointEvent::Closed { connection, error } => {
                    if error.is_remote() {
                        tracing::warn!(?connection, %error, "peer dropped");
                    } else {
                        tracing::info!(?connection, %error, "connection closed");
                    }
                }
                EndpointEvent::StreamFailed { connection, reason } => {
                    tracing::warn!(?connection, %reason, "replication stream failed")
                }
                EndpointEvent::Connected { connection, peer } => {
                    tracing::info!(?connection, peer = %hex::encode(&peer.0[..8]), "connected")
                }
                EndpointEvent::FeedForked { .. } => tracing::error!("a writer forked; the feed is frozen"),
                _ => tracing::debug!(?e, "event"),
            }
            events.push(e);
        }
        drop(endpoint);
        let mut subscribers = self.subscribers.borrow_mut();
        for e in events.drain(..) {
            subscribers.retain(|s| s.try_send(e.clone()).is_ok());
        }
        self.changed.notify(usize::MAX);
    }

    /// Serve one TCP connection until it ends.
    pub async fn serve_connection(self: Rc<Self>, stream: TcpStream, role: Role) {
        let _ = stream.set_nodelay(true);
        self.serve_transport(stream.clone(), role).await;
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }

    /// Serve one connection over any reliable, ordered byte stream (TCP, a WebSocket adapter,
    /// an in-memory pipe): the transport is only something to read from and write to.
    pub async fn serve_transport<T>(self: Rc<Self>, stream: T, role: Role)
    where
        T: futures_lite::AsyncRead + futures_lite::AsyncWrite + Clone + Unpin + 'static,
    {
        if *self.connections.borrow() >= self.config.max_connections {
            tracing::warn!("connection refused: at the limit of {}", self.config.max_connections);
            return;
        }
        *self.connections.borrow_mut() += 1;
        let handle = self.endpoint.borrow_mut().connect(role, random_seed(), self.now());
        let reader = {
            let node = self.clone();
            let mut stream = stream.clone();
            async move {
                let mut buf = vec![0u8; 256 << 10];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            tracing::debug!(?handle, bytes = n, "receive");
                            let now = node.now();
                            node.endpoint.borrow_mut().handle_input(handle, now, &buf[..n]);
                            node.wake();
                            if node.is_closed(handle) {
                                // Let the writer send our Close before the socket goes.
                                futures_lite::future::pending::<()>().await;
                            }
                        }
                    }
                }
            }
        };
        let writer = {
            let node = self.clone();
            let mut stream = stream.clone();
            async move {
                let mut buf = Vec::with_capacity(256 << 10);
                loop {
                    let listener = node.changed.listen();
                    buf.clear();
                    {
                        let now = node.now();
                        let mut endpoint = node.endpoint.borrow_mut();
                        while buf.len() < (256 << 10) && endpoint.poll_transmit(handle, now, &mut buf).is_some() {}
                    }
                    if buf.is_empty() {
                        if node.is_closed(handle) {
                            break;
                        }
                        listener.await;
                        continue;
                    }
                    node.wake();
                    tracing::debug!(?handle, bytes = buf.len(), "send");
                    if stream.write_all(&buf).await.is_err() {
                        break;
                    }
                }
            }
        };
        futures_lite::future::or(reader, writer).await;
        self.endpoint.borrow_mut().close(handle, "connection ended");
        self.endpoint.borrow_mut().remove_closed();
        *self.connections.borrow_mut() -= 1;
        self.wake();
    }

    fn is_closed(&self, handle: ConnectionHandle) -> bool {
        !self.endpoint.borrow().is_open(handle)
    }

    /// Fire the endpoint's timers, forever.
    async fn timers(self: Rc<Self>) {
        loop {
            let listener = self.changed.listen();
            let deadline = self.endpoint.borrow().poll_timeout();
            let sleep = deadline.map(|d| d.saturating_sub(self.now())).unwrap_or(Duration::from_secs(1));
            futures_lite::future::or(
                async {
                    async_io::Timer::after(sleep).await;
                },
                async {
                    listener.await;
                },
            )
            .await;
            let now = self.now();
            if self.endpoint.borrow().poll_timeout().is_some_and(|d| d <= now) {
                self.endpoint.borrow_mut().handle_timeout(now);
                self.endpoint.borrow_mut().remove_closed();
                self.wake();
            }
        }
    }

    /// Write out what the stores hold back, then make every commit durable (even if one
    /// store could not write: the others' data is durable all the same).
    fn sync(&self) {
        if let Err(e) = self.endpoint.borrow_mut().flush() {
            tracing::error!(%e, "writing held-back entries failed; they stay held back");
        }
        if let Err(e) = self.db.sync() {
            tracing::error!(%e, "database sync failed");
        }
    }

    /// Make replicated data durable once a second.
    async fn flusher(self: Rc<Self>) {
        loop {
            async_io::Timer::after(Duration::from_secs(1)).await;
            self.sync();
        }
    }

    /// Dial `addr`, and dial again whenever the connection drops.
    async fn dial(self: Rc<Self>, addr: SocketAddr) {
        let mut backoff = Duration::from_millis(50);
        loop {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    backoff = Duration::from_millis(50);
                    tracing::info!(%addr, "dialled");
                    self.clone().serve_connection(stream, Role::Initiator).await;
                }
                Err(e) => tracing::debug!(%addr, %e, "dial failed"),
            }
            async_io::Timer::after(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// Run the node on `ex` until the future `until` completes.
    pub async fn run<T>(
        self: Rc<Self>,
        ex: Rc<LocalExecutor<'static>>,
        listener: Option<TcpListener>,
        until: impl std::future::Future<Output = T>,
    ) -> T {
        let mut tasks = Vec::new();
        tasks.push(ex.spawn(self.clone().timers()));
        tasks.push(ex.spawn(self.clone().flusher()));
        for addr in self.config.connect.clone() {
            tasks.push(ex.spawn(self.clone().dial(addr)));
        }
        if let Some(listener) = listener {
            let node = self.clone();
            // A weak handle: tasks owned by the executor must not keep it alive.
            let ex2 = Rc::downgrade(&ex);
            tasks.push(ex.spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((stream, peer)) => {
                            tracing::debug!(%peer, "accepted");
                            if let Some(ex) = ex2.upgrade() {
                                ex.spawn(node.clone().serve_connection(stream, Role::Responder)).detach();
                            }
                        }
                        Err(e) => {
                            tracing::warn!(%e, "accept failed");
                            async_io::Timer::after(Duration::from_millis(100)).await;
                        }
                    }
                }
            }));
        }
        let out = until.await;
        drop(tasks);
        self.sync();
        out
    }
}
