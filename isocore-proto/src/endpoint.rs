//! Many connections, many feeds: routes each stream to its feed's replicator and each call to
//! the application, and relays what one peer sends to every other peer of the same feed.

use crate::connection::{Connection, ConnectionConfig, ConnectionError, Event as ConnEvent, stream_code};
use crate::handshake::{Identity, PeerId, Role};
use bytes::Bytes;
use core::time::Duration;
use ed25519_dalek::SigningKey;
use isocore_log::{Event as LogEvent, Feed, FeedError, FeedKey, Replicator, Storage};
use std::collections::{BTreeMap, VecDeque};

/// Identifies one connection of an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionHandle(pub u64);

/// Endpoint settings.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// Settings of every connection.
    pub connection: ConnectionConfig,
    /// Default replication settings for a feed.
    pub replication: isocore_log::Config,
    /// Queued bytes per stream before the endpoint stops pulling from its replicator.
    pub stream_backlog: usize,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            connection: ConnectionConfig::default(),
            // Small data messages keep one bulk download from holding the line for long.
            replication: isocore_log::Config { data_budget: 64 << 10, ..isocore_log::Config::default() },
            stream_backlog: 256 << 10,
        }
    }
}

/// What the application hears from the endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointEvent {
    /// A handshake finished.
    Connected {
        /// The connection.
        connection: ConnectionHandle,
        /// Who is on the other end.
        peer: PeerId,
    },
    /// A connection ended; its handle is no longer valid.
    Closed {
        /// The connection.
        connection: ConnectionHandle,
        /// Why.
        error: ConnectionError,
    },
    /// A feed's verified head or held entries changed.
    FeedUpdated {
        /// The feed.
        discovery_key: [u8; 32],
        /// Its verified length.
        length: u64,
        /// Entries held from the start.
        contiguous: u64,
    },
    /// A feed's writer was caught forking; the feed is frozen.
    FeedForked {
        /// The feed.
        discovery_key: [u8; 32],
    },
    /// Replication on a stream failed because of the peer; the stream was reset.
    StreamFailed {
        /// The connection.
        connection: ConnectionHandle,
        /// What went wrong.
        reason: String,
    },
    /// A peer calls a method.
    Call {
        /// The connection.
        connection: ConnectionHandle,
        /// The call id, for the answer.
        id: u64,
        /// The interface.
        interface: [u8; 32],
        /// The method.
        method: String,
        /// The arguments.
        payload: Bytes,
    },
    /// An answer to our call.
    Reply {
        /// The connection.
        connection: ConnectionHandle,
        /// The call.
        id: u64,
        /// The result.
        payload: Bytes,
    },
    /// Our call failed.
    CallFailed {
        /// The connection.
        connection: ConnectionHandle,
        /// The call.
        id: u64,
        /// Its code.
        code: u16,
        /// Its reason.
        reason: String,
    },
}

struct FeedSlot<S> {
    feed: Feed<S>,
    config: isocore_log::Config,
}

struct Link {
    connection: Connection,
    /// Stream id → (feed, replicator).
    streams: BTreeMap<u64, ([u8; 32], Replicator)>,
}

/// A node's protocol state: its connections and the feeds it replicates.
pub struct Endpoint<S> {
    identity: Identity,
    config: EndpointConfig,
    feeds: BTreeMap<[u8; 32], FeedSlot<S>>,
    links: BTreeMap<ConnectionHandle, Link>,
    next_handle: u64,
    events: VecDeque<EndpointEvent>,
}

impl<S: Storage> Endpoint<S> {
    /// An endpoint with no connections and no feeds.
    pub fn new(identity: Identity, config: EndpointConfig) -> Self {
        Endpoint {
            identity,
            config,
            feeds: BTreeMap::new(),
            links: BTreeMap::new(),
            next_handle: 1,
            events: VecDeque::new(),
        }
    }

    /// Our identity.
    pub fn peer_id(&self) -> PeerId {
        self.identity.peer_id()
    }

    /// Start a connection (as initiator when we dialled, responder when we accepted).
    /// `seed` must be fresh randomness for this handshake.
    pub fn connect(&mut self, role: Role, seed: [u8; 32], now: Duration) -> ConnectionHandle {
        let handle = ConnectionHandle(self.next_handle);
        self.next_handle += 1;
        let connection = Connection::new(role, &self.identity, self.config.connection.clone(), seed, now);
        self.links.insert(handle, Link { connection, streams: BTreeMap::new() });
        handle
    }

    /// Whether `connection` is known and not closed.
    pub fn is_open(&self, connection: ConnectionHandle) -> bool {
        self.links.get(&connection).is_some_and(|l| !l.connection.is_closed())
    }

    /// One line per replication stream, for debugging.
    #[doc(hidden)]
    pub fn debug_streams(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (h, l) in &self.links {
            for (s, (_, r)) in &l.streams {
                out.push(format!("{h:?} stream {s} open={} {}", !l.connection.is_closed(), r.debug_state()));
            }
        }
        out
    }

    /// Connections currently held.
    pub fn connections(&self) -> impl Iterator<Item = (ConnectionHandle, Option<PeerId>)> + '_ {
        self.links.iter().map(|(h, l)| (*h, l.connection.peer()))
    }

    /// Start replicating `feed` with every connected peer and every future one.
    pub fn add_feed(&mut self, feed: Feed<S>, config: Option<isocore_log::Config>, now: Duration) {
        let discovery_key = feed.key().discovery_key();
        let key = *feed.key();
        let config = config.unwrap_or_else(|| self.config.replication.clone());
        self.feeds.insert(discovery_key, FeedSlot { feed, config });
        let handles: Vec<ConnectionHandle> = self.links.keys().copied().collect();
        for handle in handles {
            self.open_feed_stream(handle, &key, now);
        }
    }

    /// A feed, by key.
    pub fn feed(&self, key: &FeedKey) -> Option<&Feed<S>> {
        self.feeds.get(&key.discovery_key()).map(|s| &s.feed)
    }

    /// Append to a feed we write, and push it to subscribers.
    pub fn append<E: Into<Bytes>>(
        &mut self,
        key: &FeedKey,
        signer: &SigningKey,
        entries: impl IntoIterator<Item = E>,
        now: Duration,
    ) -> Result<u64, FeedError> {
        let discovery_key = key.discovery_key();
        let slot = self.feeds.get_mut(&discovery_key).ok_or(FeedError::Corrupt("no such feed"))?;
        let head = slot.feed.append(signer, entries)?;
        self.feed_changed(discovery_key, None, now);
        Ok(head.length)
    }

    /// Ask for entries `[start, end)` of a sparsely replicated feed from every peer.
    pub fn want(&mut self, key: &FeedKey, start: u64, end: u64, now: Duration) {
        let discovery_key = key.discovery_key();
        let Some(slot) = self.feeds.get(&discovery_key) else {
            return;
        };
        for link in self.links.values_mut() {
            for (dk, replicator) in link.streams.values_mut() {
                if *dk == discovery_key {
                    replicator.want(&slot.feed, now, start, end);
                }
            }
        }
    }

    /// Call `method` of `interface` on the peer of `connection`.
    pub fn call(
        &mut self,
        connection: ConnectionHandle,
        interface: [u8; 32],
        method: &str,
        payload: &[u8],
    ) -> Option<u64> {
        let link = self.links.get_mut(&connection)?;
        link.connection.is_open().then(|| link.connection.call(interface, method, payload))
    }

    /// Answer a call.
    pub fn reply(&mut self, connection: ConnectionHandle, id: u64, payload: &[u8]) {
        if let Some(link) = self.links.get_mut(&connection) {
            link.connection.reply(id, payload);
        }
    }

    /// Fail a call.
    pub fn fail_call(&mut self, connection: ConnectionHandle, id: u64, code: u16, reason: &str) {
        if let Some(link) = self.links.get_mut(&connection) {
            link.connection.fail_call(id, code, reason);
        }
    }

    /// Close a connection.
    pub fn close(&mut self, connection: ConnectionHandle, reason: &str) {
        if let Some(link) = self.links.get_mut(&connection) {
            link.connection.close(reason);
        }
        self.drain(connection, Duration::ZERO);
    }

    fn open_feed_stream(&mut self, handle: ConnectionHandle, key: &FeedKey, now: Duration) {
        let discovery_key = key.discovery_key();
        let Some(slot) = self.feeds.get(&discovery_key) else {
            return;
        };
        let Some(link) = self.links.get_mut(&handle) else {
            return;
        };
        if link.streams.values().any(|(dk, _)| *dk == discovery_key) {
            return;
        }
        if let Some(stream) = link.connection.open_stream(key) {
            let mut replicator = Replicator::new(slot.config.clone());
            replicator.start(&slot.feed, now);
            link.streams.insert(stream, (discovery_key, replicator));
        }
    }

    /// Bytes read from `connection`'s transport.
    pub fn handle_input(&mut self, connection: ConnectionHandle, now: Duration, data: &[u8]) {
        let Some(link) = self.links.get_mut(&connection) else {
            return;
        };
        // Errors close the connection and surface as an event below.
        let _ = link.connection.handle_input(now, data);
        self.drain(connection, now);
    }

    /// Process what the connection produced.
    fn drain(&mut self, handle: ConnectionHandle, now: Duration) {
        loop {
            let Some(link) = self.links.get_mut(&handle) else {
                return;
            };
            let Some(event) = link.connection.poll_event() else {
                return;
            };
            match event {
                ConnEvent::Connected { peer, .. } => {
                    self.events.push_back(EndpointEvent::Connected { connection: handle, peer });
                    let keys: Vec<FeedKey> = self.feeds.values().map(|s| *s.feed.key()).collect();
                    for key in keys {
                        self.open_feed_stream(handle, &key, now);
                    }
                }
                ConnEvent::StreamRequested { stream, discovery_key } => {
                    let Some(slot) = self.feeds.get(&discovery_key) else {
                        link.connection.reject_stream(stream, stream_code::UNKNOWN_FEED);
                        continue;
                    };
                    if link.connection.accept_stream(stream, slot.feed.key()) {
                        let mut replicator = Replicator::new(slot.config.clone());
                        replicator.start(&slot.feed, now);
                        link.streams.insert(stream, (discovery_key, replicator));
                    }
                }
                ConnEvent::StreamAccepted { .. } => {}
                ConnEvent::StreamReset { stream, .. } => {
                    link.streams.remove(&stream);
                }
                ConnEvent::StreamData { stream, payload } => self.on_stream_data(handle, stream, &payload, now),
                ConnEvent::Call { id, interface, method, payload } => {
                    self.events.push_back(EndpointEvent::Call { connection: handle, id, interface, method, payload })
                }
                ConnEvent::CallCancelled { .. } => {}
                ConnEvent::Reply { id, payload } => {
                    self.events.push_back(EndpointEvent::Reply { connection: handle, id, payload })
                }
                ConnEvent::CallFailed { id, code, reason } => {
                    self.events.push_back(EndpointEvent::CallFailed { connection: handle, id, code, reason })
                }
                ConnEvent::Closed(error) => {
                    self.events.push_back(EndpointEvent::Closed { connection: handle, error });
                    if let Some(link) = self.links.get_mut(&handle) {
                        link.streams.clear();
                    }
                }
            }
        }
    }

    fn on_stream_data(&mut self, handle: ConnectionHandle, stream: u64, payload: &Bytes, now: Duration) {
        let Some(link) = self.links.get_mut(&handle) else {
            return;
        };
        let Some((discovery_key, replicator)) = link.streams.get_mut(&stream) else {
            return;
        };
        let discovery_key = *discovery_key;
        let Some(slot) = self.feeds.get_mut(&discovery_key) else {
            return;
        };
        if let Err(e) = replicator.handle_input(&mut slot.feed, now, payload) {
            self.events.push_back(EndpointEvent::StreamFailed { connection: handle, reason: e.to_string() });
            link.streams.remove(&stream);
            link.connection.reject_stream(stream, stream_code::REPLICATION);
            return;
        }
        let mut changed = false;
        let mut forked = false;
        while let Some(event) = replicator.poll_event() {
            changed |= matches!(event, LogEvent::HeadAdvanced { .. } | LogEvent::Downloaded { .. });
            forked |= event == LogEvent::Forked;
        }
        if forked {
            self.events.push_back(EndpointEvent::FeedForked { discovery_key });
        }
        if changed || forked {
            self.feed_changed(discovery_key, Some((handle, stream)), now);
        }
    }

    /// Tell every replicator of a feed, except the one the change came through, that it moved.
    fn feed_changed(&mut self, discovery_key: [u8; 32], except: Option<(ConnectionHandle, u64)>, now: Duration) {
        let Some(slot) = self.feeds.get(&discovery_key) else {
            return;
        };
        self.events.push_back(EndpointEvent::FeedUpdated {
            discovery_key,
            length: slot.feed.len(),
            contiguous: slot.feed.contiguous_len(),
        });
        for (handle, link) in self.links.iter_mut() {
            for (stream, (dk, replicator)) in link.streams.iter_mut() {
                if *dk == discovery_key && except != Some((*handle, *stream)) {
                    replicator.on_feed_updated(&slot.feed, now);
                }
            }
        }
    }

    /// The next bytes to write to `connection`'s transport.
    #[must_use = "the bytes must be written to the transport"]
    pub fn poll_transmit(&mut self, connection: ConnectionHandle, now: Duration, buf: &mut Vec<u8>) -> Option<usize> {
        let backlog = self.config.stream_backlog;
        let link = self.links.get_mut(&connection)?;
        // Pull replication messages into the streams, up to a backlog, so a slow peer holds
        // back its own replicators and nobody else's.
        for (stream, (dk, replicator)) in link.streams.iter_mut() {
            let Some(slot) = self.feeds.get(dk) else {
                continue;
            };
            let mut message = Vec::new();
            while link.connection.stream_backlog(*stream) < backlog {
                match replicator.poll_transmit(&slot.feed, &mut message) {
                    Ok(Some(_)) => {
                        link.connection.send_stream(*stream, &message);
                        message.clear();
                    }
                    Ok(None) => break,
                    Err(e) => {
                        self.events.push_back(EndpointEvent::StreamFailed { connection, reason: e.to_string() });
                        break;
                    }
                }
            }
        }
        let sent = link.connection.poll_transmit(now, buf);
        self.drain(connection, now);
        sent
    }

    /// The earliest deadline of any connection or replicator.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.links
            .values()
            .flat_map(|l| {
                l.connection.poll_timeout().into_iter().chain(l.streams.values().filter_map(|(_, r)| r.poll_timeout()))
            })
            .min()
    }

    /// Act on every deadline that has passed.
    pub fn handle_timeout(&mut self, now: Duration) {
        let handles: Vec<ConnectionHandle> = self.links.keys().copied().collect();
        for handle in handles {
            let Some(link) = self.links.get_mut(&handle) else {
                continue;
            };
            if link.connection.poll_timeout().is_some_and(|t| t <= now) {
                link.connection.handle_timeout(now);
            }
            for (dk, replicator) in link.streams.values_mut() {
                if replicator.poll_timeout().is_some_and(|t| t <= now)
                    && let Some(slot) = self.feeds.get(dk)
                {
                    replicator.handle_timeout(&slot.feed, now);
                }
            }
            self.drain(handle, now);
        }
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<EndpointEvent> {
        self.events.pop_front()
    }

    /// Forget connections that are closed and have nothing left to send.
    pub fn remove_closed(&mut self) -> Vec<ConnectionHandle> {
        let closed: Vec<ConnectionHandle> =
            self.links.iter().filter(|(_, l)| l.connection.is_closed()).map(|(h, _)| *h).collect();
        for h in &closed {
            self.links.remove(h);
        }
        closed
    }
}
