//! Many connections, many feeds: routes each stream to its feed's replicator and each call to
//! the application, and relays what one peer sends to every other peer of the same feed.
//!
//! The endpoint admits what peers send unsolicited (calls, and stream opens for feeds it did
//! not ask for) through one `isocore_pow::Admission`, since the price is the node's
//! (`spec/proto.md` §10). Admitted calls reach the application in the admission queue's order,
//! at most [`EndpointConfig::max_serving`] at a time; answering one lets the next through.

use crate::connection::{
    Admit, Connection, ConnectionConfig, ConnectionError, Event as ConnEvent, STREAM_HEADROOM, call_code, stream_code,
};
use crate::handshake::{Identity, PeerId, Role};
use crate::message::Unsolicited;
use bytes::Bytes;
use core::time::Duration;
use ed25519_dalek::SigningKey;
use isocore_log::{Event as LogEvent, Feed, FeedError, FeedKey, Replicator, Seating, Seats, Storage};
use isocore_pow::{Admission, Event as AdmissionEvent, Inbound, Ticket};
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
    /// Admission of unsolicited messages (`spec/pow.md`).
    pub admission: isocore_pow::Config,
    /// Admitted calls handed to the application and not yet answered, over all connections.
    /// Further ones wait in the admission queue, where their wait is what prices them.
    pub max_serving: usize,
    /// Subscribers served per feed; newcomers past it are redirected to them
    /// (`spec/log.md` §8.6). `None` serves everyone.
    pub max_subscribers: Option<usize>,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            connection: ConnectionConfig::default(),
            // Small data messages keep one bulk download from holding the line for long.
            replication: isocore_log::Config { data_budget: 64 << 10, ..isocore_log::Config::default() },
            stream_backlog: 256 << 10,
            admission: isocore_pow::Config::default(),
            max_serving: 256,
            max_subscribers: None,
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
    /// A peer will not serve a feed to us and named peers that hold it (`spec/log.md` §8.6):
    /// connect to one of them for it.
    Redirected {
        /// The connection.
        connection: ConnectionHandle,
        /// The feed.
        discovery_key: [u8; 32],
        /// The peers named, best first.
        peers: Vec<PeerId>,
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
    /// The peer kept refusing one of our calls or stream opens as underpaid, and the stamp
    /// budget is spent. For a call this is its final answer.
    NotAdmitted {
        /// The connection.
        connection: ConnectionHandle,
        /// The call or stream open given up.
        of: Unsolicited,
        /// Effort units spent on its stamps.
        spent: u64,
    },
}

struct FeedSlot<S> {
    feed: Feed<S>,
    config: isocore_log::Config,
    /// The peers subscribed to this feed here.
    seats: Seats<PeerId>,
}

struct Link {
    connection: Connection,
    /// Stream id → (feed, replicator).
    streams: BTreeMap<u64, ([u8; 32], Replicator)>,
}

/// An admitted unsolicited message waiting for its turn.
struct Held {
    connection: ConnectionHandle,
    what: Pending,
}

enum Pending {
    Open { stream: u64, discovery_key: [u8; 32] },
    Call { id: u64, interface: [u8; 32], method: String, payload: Bytes },
}

impl Pending {
    fn of(&self) -> Unsolicited {
        match self {
            Pending::Open { stream, .. } => Unsolicited::Open(*stream),
            Pending::Call { id, .. } => Unsolicited::Call(*id),
        }
    }
}

/// A node's protocol state: its connections and the feeds it replicates.
pub struct Endpoint<S> {
    identity: Identity,
    config: EndpointConfig,
    feeds: BTreeMap<[u8; 32], FeedSlot<S>>,
    links: BTreeMap<ConnectionHandle, Link>,
    next_handle: u64,
    events: VecDeque<EndpointEvent>,
    admission: Admission,
    /// Admitted messages in the admission queue, by ticket id.
    held: BTreeMap<u64, Held>,
    /// Calls handed to the application: their tickets and when they were handed out.
    serving: BTreeMap<(ConnectionHandle, u64), (Ticket, Duration)>,
    /// The latest time passed in; answers to calls take no time argument.
    now: Duration,
}

impl<S: Storage> Endpoint<S> {
    /// An endpoint with no connections and no feeds. `admission_secret` derives the epoch
    /// seeds of stamps addressed to this node: it MUST be fresh random bytes whenever the
    /// driver's time origin is new (every start, unless time persists across restarts).
    pub fn new(identity: Identity, config: EndpointConfig, admission_secret: [u8; 32]) -> Self {
        let admission = Admission::new(config.admission, identity.peer_id().0, admission_secret, Duration::ZERO);
        Endpoint {
            identity,
            config,
            feeds: BTreeMap::new(),
            links: BTreeMap::new(),
            next_handle: 1,
            events: VecDeque::new(),
            admission,
            held: BTreeMap::new(),
            serving: BTreeMap::new(),
            now: Duration::ZERO,
        }
    }

    /// The admission state of this node: its price, queue and parameters.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// A connection, for inspection.
    pub fn connection(&self, connection: ConnectionHandle) -> Option<&Connection> {
        self.links.get(&connection).map(|l| &l.connection)
    }

    /// A connection, mutably. Exists so tests can play a misbehaving peer.
    #[doc(hidden)]
    pub fn connection_mut(&mut self, connection: ConnectionHandle) -> Option<&mut Connection> {
        self.links.get_mut(&connection).map(|l| &mut l.connection)
    }

    /// Whether a message waits for its stamp on some connection ([`Connection::is_stamping`]);
    /// [`Endpoint::handle_timeout`] does the work when [`Endpoint::poll_timeout`] says.
    pub fn is_stamping(&self) -> bool {
        self.links.values().any(|l| l.connection.is_stamping())
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
        let seats = Seats::new(self.config.max_subscribers.unwrap_or(usize::MAX));
        self.feeds.insert(discovery_key, FeedSlot { feed, config, seats });
        let handles: Vec<ConnectionHandle> = self.links.keys().copied().collect();
        for handle in handles {
            self.open_feed_stream(handle, &key, now);
        }
    }

    /// Write out what every feed's store holds back ([`isocore_log::Storage::flush`]); the
    /// first failure is returned, after every store was asked.
    pub fn flush(&mut self) -> Result<(), isocore_log::StoreError> {
        let mut first = Ok(());
        for slot in self.feeds.values_mut() {
            if let Err(e) = slot.feed.flush()
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        first
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

    /// Answer a call. Its service time, measured to the latest time passed in, tells
    /// admission the node's capacity.
    pub fn reply(&mut self, connection: ConnectionHandle, id: u64, payload: &[u8]) {
        if let Some(link) = self.links.get_mut(&connection) {
            link.connection.reply(id, payload);
        }
        self.served(connection, id);
    }

    /// Fail a call.
    pub fn fail_call(&mut self, connection: ConnectionHandle, id: u64, code: u16, reason: &str) {
        if let Some(link) = self.links.get_mut(&connection) {
            link.connection.fail_call(id, code, reason);
        }
        self.served(connection, id);
    }

    fn served(&mut self, connection: ConnectionHandle, id: u64) {
        if let Some((ticket, since)) = self.serving.remove(&(connection, id)) {
            self.admission.on_served(self.now, ticket, self.now.saturating_sub(since));
            self.pump_admission();
        }
    }

    /// Pass an unsolicited message through admission: queue it, or answer the peer at once.
    fn admit(&mut self, handle: ConnectionHandle, what: Pending, admit: Admit) {
        let Some(link) = self.links.get_mut(&handle) else {
            return;
        };
        let Some(peer) = link.connection.peer() else {
            return;
        };
        let inbound = Inbound { digest: admit.digest, solicit: None, stamp: admit.stamp.as_deref() };
        match self.admission.on_message(self.now, &peer.0, inbound) {
            Ok(ticket) => {
                self.held.insert(ticket.id(), Held { connection: handle, what });
            }
            Err(refused) => match (refused.busy, what) {
                (Some(busy), what) => link.connection.busy(what.of(), busy.price, busy.retry_after),
                // The sender's fault: a typed refusal, and no invitation to pay again.
                (None, Pending::Call { id, .. }) => {
                    link.connection.fail_call(id, call_code::BAD_STAMP, &format!("stamp refused: {:?}", refused.reason))
                }
                (None, Pending::Open { stream, .. }) => link.connection.reject_stream(stream, stream_code::BAD_STAMP),
            },
        }
        self.pump_admission();
    }

    /// Push advertisements to every peer, and answer dropped messages with `Busy`.
    fn admission_events(&mut self) {
        while let Some(event) = self.admission.poll_event() {
            match event {
                AdmissionEvent::Advertise(p) => {
                    for link in self.links.values_mut() {
                        link.connection.advertise(p.epoch, p.seed, p.price);
                    }
                }
                AdmissionEvent::Dropped { ticket, busy, .. } => {
                    if let Some(held) = self.held.remove(&ticket.id())
                        && let Some(link) = self.links.get_mut(&held.connection)
                    {
                        link.connection.busy(held.what.of(), busy.price, busy.retry_after);
                    }
                }
            }
        }
    }

    /// Act on admission's events, then hand out admitted messages while there is room.
    fn pump_admission(&mut self) {
        let now = self.now;
        loop {
            self.admission_events();
            if self.serving.len() >= self.config.max_serving {
                return;
            }
            let Some(next) = self.admission.poll_next(now) else {
                // Looking may have dropped expired messages.
                self.admission_events();
                return;
            };
            // Held messages of closed connections were forgotten with them.
            let Some(held) = self.held.remove(&next.ticket.id()) else {
                continue;
            };
            match held.what {
                Pending::Call { id, interface, method, payload } => {
                    self.serving.insert((held.connection, id), (next.ticket, now));
                    self.events.push_back(EndpointEvent::Call {
                        connection: held.connection,
                        id,
                        interface,
                        method,
                        payload,
                    });
                }
                Pending::Open { stream, discovery_key } => {
                    // Opening costs the replication that follows, which flow control bounds.
                    self.open_requested(held.connection, stream, discovery_key, now);
                    self.admission.on_served(now, next.ticket, Duration::ZERO);
                }
            }
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
        self.now = self.now.max(now);
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
                    // Our price and seed go first, so the peer can stamp what it sends us.
                    let params = self.admission.params(self.now);
                    link.connection.advertise(params.epoch, params.seed, params.price);
                    self.events.push_back(EndpointEvent::Connected { connection: handle, peer });
                    let keys: Vec<FeedKey> = self.feeds.values().map(|s| *s.feed.key()).collect();
                    for key in keys {
                        self.open_feed_stream(handle, &key, now);
                    }
                }
                ConnEvent::StreamRequested { stream, discovery_key, admit: None } => {
                    self.open_requested(handle, stream, discovery_key, now)
                }
                ConnEvent::StreamRequested { stream, discovery_key, admit: Some(admit) } => {
                    self.admit(handle, Pending::Open { stream, discovery_key }, admit)
                }
                ConnEvent::StreamAccepted { .. } => {}
                ConnEvent::StreamReset { stream, .. } => {
                    if let Some((dk, _)) = link.streams.remove(&stream) {
                        let peer = link.connection.peer();
                        self.unseat(peer, [dk]);
                    }
                }
                ConnEvent::StreamData { stream, payload } => self.on_stream_data(handle, stream, &payload, now),
                ConnEvent::Call { id, interface, method, payload, admit } => {
                    self.admit(handle, Pending::Call { id, interface, method, payload }, admit)
                }
                ConnEvent::NotAdmitted { of, spent } => {
                    if let Unsolicited::Open(stream) = of {
                        link.streams.remove(&stream);
                    }
                    self.events.push_back(EndpointEvent::NotAdmitted { connection: handle, of, spent });
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
                    let peer = link.connection.peer();
                    let feeds: Vec<[u8; 32]> =
                        std::mem::take(&mut link.streams).into_values().map(|(dk, _)| dk).collect();
                    self.unseat(peer, feeds);
                    self.held.retain(|_, h| h.connection != handle);
                    let calls: Vec<u64> =
                        self.serving.range((handle, 0)..=(handle, u64::MAX)).map(|((_, id), _)| *id).collect();
                    for id in calls {
                        self.served(handle, id);
                    }
                }
            }
        }
    }

    /// A peer's subscription to these feeds ended on one stream: its seat is free unless it is
    /// still subscribed on another (a seat is one per peer, over all its sessions).
    fn unseat(&mut self, peer: Option<PeerId>, feeds: impl IntoIterator<Item = [u8; 32]>) {
        let Some(peer) = peer else { return };
        for dk in feeds {
            let still = self
                .links
                .values()
                .filter(|l| l.connection.peer() == Some(peer))
                .any(|l| l.streams.values().any(|(d, r)| *d == dk && r.is_peer_subscribed()));
            if !still && let Some(slot) = self.feeds.get_mut(&dk) {
                slot.seats.leave(&peer);
            }
        }
    }

    /// Accept or refuse a stream the peer opened, now that it may be served.
    fn open_requested(&mut self, handle: ConnectionHandle, stream: u64, discovery_key: [u8; 32], now: Duration) {
        let Some(link) = self.links.get_mut(&handle) else {
            return;
        };
        let Some(slot) = self.feeds.get(&discovery_key) else {
            link.connection.reject_stream(stream, stream_code::UNKNOWN_FEED);
            return;
        };
        if link.connection.accept_stream(stream, slot.feed.key()) {
            let mut replicator = Replicator::new(slot.config.clone());
            replicator.start(&slot.feed, now);
            link.streams.insert(stream, (discovery_key, replicator));
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
            let peer = link.connection.peer();
            self.unseat(peer, [discovery_key]);
            return;
        }
        let mut changed = false;
        let mut forked = false;
        let mut unsubscribed = false;
        let peer = link.connection.peer();
        while let Some(event) = replicator.poll_event() {
            changed |= matches!(event, LogEvent::HeadAdvanced { .. } | LogEvent::Downloaded { .. });
            forked |= event == LogEvent::Forked;
            match (event, peer) {
                (LogEvent::Subscribed, Some(peer)) => {
                    if let Seating::Redirect(to) = slot.seats.admit(peer) {
                        let contacts: Vec<&[u8]> = to.iter().map(|p| &p.0[..]).collect();
                        replicator.redirect(&contacts);
                    }
                }
                (LogEvent::Unsubscribed, Some(_)) => unsubscribed = true,
                (LogEvent::Redirected, _) => {
                    let peers = replicator.redirected_to().unwrap_or_default();
                    let peers = peers.iter().filter_map(|c| Some(PeerId(c.as_slice().try_into().ok()?))).collect();
                    self.events.push_back(EndpointEvent::Redirected { connection: handle, discovery_key, peers });
                }
                _ => {}
            }
        }
        if unsubscribed {
            self.unseat(peer, [discovery_key]);
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
        self.now = self.now.max(now);
        let backlog = self.config.stream_backlog;
        let link = self.links.get_mut(&connection)?;
        // Pull replication messages into the streams, up to a backlog, so a slow peer holds
        // back its own replicators and nobody else's.
        for (stream, (dk, replicator)) in link.streams.iter_mut() {
            let Some(slot) = self.feeds.get(dk) else {
                continue;
            };
            while link.connection.stream_backlog(*stream) < backlog {
                // Encoded after room for the session header, and handed over whole: a data
                // message is copied once, into its frames.
                let mut message = Vec::with_capacity(STREAM_HEADROOM + 64);
                message.resize(STREAM_HEADROOM, 0);
                match replicator.poll_transmit(&slot.feed, &mut message) {
                    Ok(Some(_)) => {
                        link.connection.send_stream_buffer(*stream, message);
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

    /// The earliest deadline of any connection, replicator or of admission. While a stamp is
    /// being solved this is a time already reached: call [`Endpoint::handle_timeout`] again at
    /// once; each call spends at most [`ConnectionConfig::solve_step`] compressions per connection.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.links
            .values()
            .flat_map(|l| {
                l.connection.poll_timeout().into_iter().chain(l.streams.values().filter_map(|(_, r)| r.poll_timeout()))
            })
            .chain(self.admission.poll_timeout())
            .min()
    }

    /// Act on every deadline that has passed.
    pub fn handle_timeout(&mut self, now: Duration) {
        self.now = self.now.max(now);
        if self.admission.poll_timeout().is_some_and(|t| t <= now) {
            self.admission.handle_timeout(now);
        }
        self.pump_admission();
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
