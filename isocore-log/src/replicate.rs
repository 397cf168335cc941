//! The replication machine: one feed, one peer, bytes in and bytes out.
//!
//! A [`Replicator`] never touches a socket, a clock or the feed's store on its own; every call
//! that needs them takes them as arguments. The caller's loop (`spec/log.md` §8):
//!
//! 1. feed each message from the peer to [`Replicator::handle_input`];
//! 2. after a local append, or when any replicator of the same feed reports
//!    [`Event::HeadAdvanced`] or [`Event::Downloaded`], call [`Replicator::on_feed_updated`] on
//!    every *other* replicator of that feed, which is how data is relayed;
//! 3. drain [`Replicator::poll_transmit`] and send each message, in order;
//! 4. drain [`Replicator::poll_event`];
//! 5. call [`Replicator::handle_timeout`] when [`Replicator::poll_timeout`] passes.
//!
//! After any of these calls, the outputs of steps 3–5 may have changed.

use crate::feed::{Announced, DataParts, Feed, FeedError, ReceiveError, Received};
use crate::fork::ForkProofError;
use crate::head::SignedHead;
use crate::proof::ProofError;
use crate::store::{Storage, StoreError};
use crate::wire::{DecodeError, Message};
use bytes::Bytes;
use core::time::Duration;
use std::collections::VecDeque;

/// What a replicator downloads from its peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Download {
    /// Nothing: only serve, and follow heads if `live`.
    None,
    /// Every entry.
    Full,
    /// Only ranges passed to [`Replicator::want`].
    Sparse,
}

/// Settings of one replicator.
#[derive(Clone, Debug)]
pub struct Config {
    /// What to download.
    pub download: Download,
    /// Ask the peer to push new entries as they are appended.
    pub live: bool,
    /// Requests outstanding at once (the pipeline depth).
    pub max_inflight: usize,
    /// Entries asked for in one request.
    pub request_entries: u64,
    /// Bytes of entries put in one data message when serving.
    pub data_budget: usize,
    /// When an unanswered request is given up and asked again.
    pub request_timeout: Duration,
    /// Requests from the peer queued at once; more is a protocol violation.
    pub max_peer_requests: usize,
    /// A subscriber this many entries behind or fewer gets them pushed; further behind, it
    /// gets only the new head and asks for the rest.
    pub push_window: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            download: Download::Full,
            live: true,
            max_inflight: 16,
            request_entries: 1024,
            data_budget: 1 << 20,
            request_timeout: Duration::from_secs(10),
            max_peer_requests: 256,
            push_window: 4096,
        }
    }
}

/// Something the caller may want to act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The peer announced a head of this length.
    PeerHead {
        /// Its length.
        length: u64,
    },
    /// Our verified head moved to this length.
    HeadAdvanced {
        /// The new length.
        length: u64,
    },
    /// Entries `[start, end)` were verified and stored.
    Downloaded {
        /// First entry.
        start: u64,
        /// One past the last.
        end: u64,
    },
    /// The writer forked; the feed is frozen and holds the proof.
    Forked,
    /// The peer asked for live pushes. The owner may seat it or [`Replicator::redirect`] it.
    Subscribed,
    /// The peer withdrew its subscription.
    Unsubscribed,
    /// The peer will not serve us and named others that hold the feed
    /// ([`Replicator::redirected_to`]).
    Redirected,
}

/// The peer broke the protocol. The stream should be closed with the code of
/// [`RemoteError::code`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteError {
    /// Bytes that are not a canonical message.
    Decode(DecodeError),
    /// A proof that does not check out.
    Proof(ProofError),
    /// A head whose signature does not verify.
    BadSignature,
    /// A head shorter than one the peer announced before.
    HeadRegression,
    /// More queued requests than allowed.
    TooManyRequests,
    /// A fork proof that does not verify.
    BadForkProof(ForkProofError),
}

impl RemoteError {
    /// The error code from `spec/log.md` §9.
    pub fn code(&self) -> u16 {
        match self {
            RemoteError::Decode(_) => 1,
            RemoteError::Proof(_) => 2,
            RemoteError::BadSignature => 3,
            RemoteError::HeadRegression => 4,
            RemoteError::TooManyRequests => 5,
            RemoteError::BadForkProof(_) => 6,
        }
    }
}

impl core::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RemoteError::Decode(e) => write!(f, "peer sent a bad message: {e}"),
            RemoteError::Proof(e) => write!(f, "peer sent a bad proof: {e}"),
            RemoteError::BadSignature => f.write_str("peer sent a head with a bad signature"),
            RemoteError::HeadRegression => f.write_str("peer announced a shorter head than before"),
            RemoteError::TooManyRequests => f.write_str("peer queued too many requests"),
            RemoteError::BadForkProof(e) => write!(f, "peer sent a bad fork proof: {e}"),
        }
    }
}

/// Why replication with a peer stopped.
#[derive(Debug)]
pub enum ReplicationError {
    /// The peer's fault.
    Remote(RemoteError),
    /// Our store failed; nothing half-written is visible.
    Store(StoreError),
}

impl core::fmt::Display for ReplicationError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ReplicationError::Remote(e) => e.fmt(f),
            ReplicationError::Store(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for ReplicationError {}

impl From<StoreError> for ReplicationError {
    fn from(e: StoreError) -> Self {
        ReplicationError::Store(e)
    }
}

impl From<RemoteError> for ReplicationError {
    fn from(e: RemoteError) -> Self {
        ReplicationError::Remote(e)
    }
}

impl From<ReceiveError> for ReplicationError {
    fn from(e: ReceiveError) -> Self {
        match e {
            ReceiveError::Proof(p) => RemoteError::Proof(p).into(),
            ReceiveError::BadSignature => RemoteError::BadSignature.into(),
            ReceiveError::Store(s) => ReplicationError::Store(s),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Inflight {
    id: u64,
    start: u64,
    end: u64,
    upgrade: bool,
    deadline: Duration,
}

#[derive(Clone, Copy, Debug)]
struct PeerRequest {
    id: u64,
    base: u64,
    start: u64,
    end: u64,
    upgrade: bool,
}

/// Replication of one feed with one peer.
///
/// Two replicas of a feed, one writing and one following it live:
///
/// ```
/// use ed25519_dalek::SigningKey;
/// use isocore_log::{Config, Feed, FeedKey, MemoryStore, Replicator};
/// use std::time::Duration;
///
/// let writer = SigningKey::from_bytes(&[1; 32]);
/// let key = FeedKey::standalone(writer.verifying_key());
/// let mut alice = Feed::open(key, MemoryStore::new())?;
/// let mut bob = Feed::open(key, MemoryStore::new())?;
/// alice.append(&writer, [&b"first"[..], b"second"])?;
///
/// let (mut a, mut b) = (Replicator::new(Config::default()), Replicator::new(Config::default()));
/// let now = Duration::ZERO;
/// a.start(&alice, now);
/// b.start(&bob, now);
/// // Shuttle messages until both sides are quiet.
/// let pump = |from: &mut Replicator, ff: &Feed<MemoryStore>, to: &mut Replicator, tf: &mut Feed<MemoryStore>| {
///     let mut moved = false;
///     let mut buf = Vec::new();
///     while from.poll_transmit(ff, &mut buf).unwrap().is_some() {
///         to.handle_input(tf, now, &bytes::Bytes::from(std::mem::take(&mut buf))).unwrap();
///         moved = true;
///     }
///     moved
/// };
/// loop {
///     let ab = pump(&mut a, &alice, &mut b, &mut bob);
///     let ba = pump(&mut b, &bob, &mut a, &mut alice);
///     if !ab && !ba { break }
/// }
/// assert_eq!(bob.len(), 2);
///
/// // A live append reaches Bob as a push, verified against Alice's signature.
/// alice.append(&writer, [&b"third"[..]])?;
/// a.on_feed_updated(&alice, now);
/// pump(&mut a, &alice, &mut b, &mut bob);
/// assert_eq!(bob.get(2)?.as_deref(), Some(&b"third"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Replicator {
    config: Config,
    peer_head: Option<SignedHead>,
    peer_contiguous: u64,
    /// The peer has verified at least this length.
    peer_length: u64,
    peer_subscribed: bool,
    /// The peer refused an upgrade; wait for its next announcement or the pause to end.
    upgrade_refused: bool,
    /// After a refusal, no requests to this peer before this time.
    backoff_until: Duration,
    inflight: Vec<Inflight>,
    next_id: u64,
    /// Entries below this were requested, are held or are not wanted (except `retry`).
    cursor: u64,
    retry: Vec<(u64, u64)>,
    wants: Vec<(u64, u64)>,
    /// Entries per request: the configured size, or what the peer's answers show fits.
    chunk: u64,
    pending: VecDeque<PeerRequest>,
    push_base: Option<u64>,
    outbox: VecDeque<Vec<u8>>,
    /// The longest head and prefix the peer has heard of from us (or told us it has).
    told_length: u64,
    told_contiguous: u64,
    /// Re-announce even if told: the peer assumed something wrong about us.
    send_have: bool,
    fork_sent: bool,
    events: VecDeque<Event>,
    /// We sent the peer elsewhere: push nothing, announce nothing, refuse its requests.
    redirecting: bool,
    /// The peer sent us elsewhere, to these contacts.
    redirected: Option<Vec<Vec<u8>>>,
}

impl Replicator {
    /// A replicator that has not started.
    pub fn new(config: Config) -> Self {
        let chunk = config.request_entries.max(1);
        Replicator {
            chunk,
            config,
            peer_head: None,
            peer_contiguous: 0,
            peer_length: 0,
            peer_subscribed: false,
            upgrade_refused: false,
            backoff_until: Duration::ZERO,
            inflight: Vec::new(),
            next_id: 1,
            cursor: 0,
            retry: Vec::new(),
            wants: Vec::new(),
            pending: VecDeque::new(),
            push_base: None,
            outbox: VecDeque::new(),
            told_length: 0,
            told_contiguous: 0,
            send_have: false,
            fork_sent: false,
            events: VecDeque::new(),
            redirecting: false,
            redirected: None,
        }
    }

    /// Open replication: announce our head and, if live, subscribe.
    pub fn start<S: Storage>(&mut self, feed: &Feed<S>, now: Duration) {
        // Always announce once, even to a peer that is ahead: comparing heads is how a fork
        // between two replicas is found.
        self.send_have = feed.head().is_some();
        if self.config.live {
            self.queue(&Message::Subscribe);
        }
        self.on_feed_updated(feed, now);
    }

    /// Ask for entries `[start, end)` (sparse download).
    pub fn want<S: Storage>(&mut self, feed: &Feed<S>, now: Duration, start: u64, end: u64) {
        if start < end {
            self.wants.push((start, end));
            self.wants.sort_unstable();
            self.cursor = self.cursor.min(start);
            self.plan(feed, now);
        }
    }

    /// Send the peer elsewhere: tell it these contacts hold the feed, push it nothing and answer
    /// its requests with `NoData` from now on. For a node that serves as many subscribers as it
    /// will ([`crate::Seats`]).
    pub fn redirect(&mut self, contacts: &[&[u8]]) {
        self.queue(&Message::Redirect { peers: contacts.to_vec() });
        self.redirecting = true;
        self.peer_subscribed = false;
        self.push_base = None;
        self.send_have = false;
    }

    /// Where the peer sent us, if it redirected us.
    pub fn redirected_to(&self) -> Option<&[Vec<u8>]> {
        self.redirected.as_deref()
    }

    /// Whether the peer subscribed and is being pushed new entries.
    pub fn is_peer_subscribed(&self) -> bool {
        self.peer_subscribed
    }

    /// The head the peer last announced or proved.
    pub fn peer_head(&self) -> Option<&SignedHead> {
        self.peer_head.as_ref()
    }

    /// A one-line summary of the machine's state, for debugging.
    #[doc(hidden)]
    pub fn debug_state(&self) -> String {
        format!(
            "peer_head={:?} peer_contiguous={} peer_length={} subscribed={} inflight={:?} retry={:?} cursor={} chunk={} backoff={:?} refused={} pending={}",
            self.peer_head.map(|h| h.length),
            self.peer_contiguous,
            self.peer_length,
            self.peer_subscribed,
            self.inflight.iter().map(|r| (r.start, r.end, r.upgrade)).collect::<Vec<_>>(),
            self.retry,
            self.cursor,
            self.chunk,
            self.backoff_until,
            self.upgrade_refused,
            self.pending.len()
        )
    }

    /// Requests sent and not yet answered.
    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    /// Whether nothing is waiting to be sent or answered.
    pub fn is_idle(&self) -> bool {
        self.inflight.is_empty()
            && self.pending.is_empty()
            && self.outbox.is_empty()
            && self.push_base.is_none()
            && !self.send_have
    }

    fn needs_have<S: Storage>(&self, feed: &Feed<S>) -> bool {
        !self.redirecting
            && feed.head().is_some()
            && (self.send_have
                // Announce every new head the peer has not seen, even to a peer that is ahead:
                // comparing heads is how a fork between replicas comes to light.
                || (feed.len() > self.told_length && self.peer_head.as_ref() != feed.head())
                // A peer that holds as much as we do has no use for our prefix.
                || feed.contiguous_len() > self.told_contiguous.max(self.peer_contiguous))
    }

    fn queue(&mut self, message: &Message<'_>) {
        self.outbox.push_back(message.to_vec());
    }

    /// Tell the replicator the feed changed: a local append, or data from another peer.
    pub fn on_feed_updated<S: Storage>(&mut self, feed: &Feed<S>, now: Duration) {
        if let Some(proof) = feed.fork_proof() {
            if !self.fork_sent {
                self.fork_sent = true;
                self.queue(&Message::Fork(proof.clone()));
            }
            return;
        }
        if self.peer_subscribed && feed.len() > self.peer_length {
            self.push_base.get_or_insert(self.peer_length);
        }
        self.plan(feed, now);
    }

    /// Handle one message from the peer. On error, close the stream; the feed is unharmed.
    pub fn handle_input<S: Storage>(
        &mut self,
        feed: &mut Feed<S>,
        now: Duration,
        bytes: &Bytes,
    ) -> Result<(), ReplicationError> {
        let message = Message::decode(bytes).map_err(RemoteError::Decode)?;
        match message {
            Message::Have { head, contiguous } => self.on_have(feed, head, contiguous)?,
            Message::Request { id, base, start, end, upgrade } => {
                if self.pending.len() >= self.config.max_peer_requests {
                    return Err(RemoteError::TooManyRequests.into());
                }
                self.pending.push_back(PeerRequest { id, base, start, end, upgrade });
                self.peer_length = self.peer_length.max(base.min(feed.len()));
            }
            Message::Data { id, base, head, contiguous, start, entries, nodes } => {
                self.peer_contiguous = self.peer_contiguous.max(contiguous);
                let parts = DataParts { base, head, start, entries, nodes };
                self.on_data(feed, id, &parts, bytes)?;
            }
            Message::NoData { id } => {
                if let Some(request) = self.take_inflight(id) {
                    // The peer cannot serve it now (it may be behind us, or lack a node): ask
                    // again after a pause, or sooner if it announces something new.
                    if request.upgrade {
                        self.upgrade_refused = true;
                    }
                    if request.start < request.end {
                        self.retry.push((request.start, request.end));
                    }
                    self.backoff_until = now + self.config.request_timeout / 10;
                }
            }
            Message::Subscribe if self.redirecting || self.peer_subscribed => {}
            Message::Subscribe => {
                self.peer_subscribed = true;
                self.events.push_back(Event::Subscribed);
                if feed.len() > self.peer_length {
                    self.push_base.get_or_insert(self.peer_length);
                }
            }
            Message::Unsubscribe => {
                if core::mem::take(&mut self.peer_subscribed) {
                    self.events.push_back(Event::Unsubscribed);
                }
            }
            Message::Redirect { peers } => {
                if self.redirected.is_none() {
                    self.redirected = Some(peers.iter().map(|p| p.to_vec()).collect());
                    self.inflight.clear();
                    self.events.push_back(Event::Redirected);
                }
            }
            Message::Cancel { id } => self.pending.retain(|r| r.id != id),
            Message::Fork(proof) => {
                proof.verify_for(feed.key()).map_err(RemoteError::BadForkProof)?;
                // The peer knows; no need to tell it back.
                self.fork_sent = true;
                match feed.accept_fork_proof(proof) {
                    Ok(true) => self.events.push_back(Event::Forked),
                    Ok(false) => {}
                    Err(FeedError::Store(e)) => return Err(e.into()),
                    Err(_) => {
                        return Err(RemoteError::BadForkProof(ForkProofError::BadNodes).into());
                    }
                }
            }
        }
        // Covers what this message changed: a fork to pass back, a push, new requests.
        self.on_feed_updated(feed, now);
        Ok(())
    }

    fn on_have<S: Storage>(
        &mut self,
        feed: &mut Feed<S>,
        head: SignedHead,
        contiguous: u64,
    ) -> Result<(), ReplicationError> {
        if self.peer_head.is_some_and(|prev| head.length < prev.length) {
            return Err(RemoteError::HeadRegression.into());
        }
        match feed.check_announced(&head)? {
            Announced::Forked => {
                self.events.push_back(Event::Forked);
                return Ok(());
            }
            // Show the peer our head over its length: it holds the roots to prove the fork.
            Announced::Conflicting => self.push_base = Some(head.length),
            Announced::Ahead | Announced::NotAhead => {}
        }
        self.peer_head = Some(head);
        self.peer_contiguous = self.peer_contiguous.max(contiguous);
        // The peer's own word on its length replaces what we assumed from our pushes.
        self.peer_length = head.length;
        self.upgrade_refused = false;
        self.backoff_until = Duration::ZERO;
        self.events.push_back(Event::PeerHead { length: head.length });
        if self.peer_subscribed && feed.len() > self.peer_length {
            self.push_base.get_or_insert(self.peer_length);
        }
        Ok(())
    }

    fn on_data<S: Storage>(
        &mut self,
        feed: &mut Feed<S>,
        id: u64,
        parts: &DataParts<&[u8]>,
        source: &Bytes,
    ) -> Result<(), ReplicationError> {
        // An answer to a request we gave up on is still checked and may still be useful.
        let request = if id == 0 { None } else { self.take_inflight(id) };
        if let Some(head) = parts.head {
            self.peer_length = self.peer_length.max(head.length);
            if self.peer_head.is_none_or(|h| h.length < head.length) {
                self.peer_head = Some(head);
            }
        }
        match feed.receive(parts, source)? {
            Received::Stored { start, end, head } => {
                if let Some(length) = head {
                    self.events.push_back(Event::HeadAdvanced { length });
                }
                if end > start {
                    self.events.push_back(Event::Downloaded { start, end });
                }
                if let Some(r) = request.filter(|r| r.end > end.max(r.start)) {
                    self.retry.push((end.max(r.start), r.end));
                    // The peer's data budget cut the answer short: ask for what fits, so the
                    // pipelined requests are each answered in full.
                    if end > start && end > r.start {
                        self.chunk = (end - start).max(1);
                    }
                } else if request.is_some() {
                    self.chunk = (self.chunk * 2).min(self.config.request_entries.max(1));
                }
            }
            Received::Stale => {
                if let Some(r) = request.filter(|r| r.start < r.end) {
                    self.retry.push((r.start, r.end));
                }
                self.send_have = true;
            }
            Received::Forked => self.events.push_back(Event::Forked),
            Received::Frozen => {}
        }
        Ok(())
    }

    fn take_inflight(&mut self, id: u64) -> Option<Inflight> {
        let at = self.inflight.iter().position(|r| r.id == id)?;
        Some(self.inflight.swap_remove(at))
    }

    fn send_request(&mut self, now: Duration, base: u64, start: u64, end: u64, upgrade: bool) {
        let id = self.next_id;
        self.next_id += 1;
        self.queue(&Message::Request { id, base, start, end, upgrade });
        let deadline = now + self.config.request_timeout;
        self.inflight.push(Inflight { id, start, end, upgrade, deadline });
    }

    fn wanted(&self, index: u64) -> Option<u64> {
        match self.config.download {
            Download::None => None,
            Download::Full => Some(index),
            Download::Sparse => {
                let (s, e) = *self.wants.iter().find(|(_, e)| *e > index)?;
                Some(s.max(index)).filter(|i| *i < e)
            }
        }
    }

    /// Issue whatever requests the current state calls for.
    fn plan<S: Storage>(&mut self, feed: &Feed<S>, now: Duration) {
        if feed.fork_proof().is_some() {
            return;
        }
        let Some(peer) = self.peer_head else { return };
        if now < self.backoff_until || self.redirected.is_some() {
            return;
        }
        let ours = feed.len();
        let following = self.config.live || self.config.download != Download::None;
        let upgrading = self.inflight.iter().any(|r| r.upgrade);
        if following && peer.length > ours && !upgrading && !self.upgrade_refused {
            // Catching up in order: fetch the first new entries with the head, in one trip.
            let first_new =
                if self.config.download == Download::Full && self.cursor >= ours && feed.contiguous_len() == ours {
                    ours.saturating_add(self.config.request_entries).min(peer.length).min(self.peer_contiguous)
                } else {
                    ours
                };
            let first_new = first_new.max(ours);
            self.cursor = self.cursor.max(first_new);
            self.send_request(now, ours, ours, first_new, true);
        }
        let limit = ours.min(self.peer_contiguous);
        while self.inflight.len() < self.config.max_inflight {
            let Some((start, end)) = self.next_range(feed, limit) else {
                break;
            };
            self.send_request(now, ours, start, end, false);
        }
    }

    fn next_range<S: Storage>(&mut self, feed: &Feed<S>, limit: u64) -> Option<(u64, u64)> {
        let chunk = self.chunk;
        for range in self.retry.iter_mut() {
            while range.0 < range.1 && feed.has(range.0).unwrap_or(false) {
                range.0 += 1;
            }
        }
        self.retry.retain(|(s, e)| s < e);
        if let Some(at) = self.retry.iter().position(|(s, _)| *s < limit) {
            let (s, e) = self.retry[at];
            let end = e.min(limit).min(s + chunk);
            if end < e {
                self.retry[at].0 = end;
            } else {
                self.retry.swap_remove(at);
            }
            return Some((s, end));
        }
        // With nothing outstanding, anything missing below the cursor was lost on the way (an
        // answer from a peer that has since gone): scan again from the first hole.
        let mut start = if self.inflight.is_empty() && self.retry.is_empty() {
            feed.contiguous_len()
        } else {
            self.cursor.max(feed.contiguous_len())
        };
        loop {
            start = self.wanted(start)?;
            if start >= limit {
                self.cursor = start;
                return None;
            }
            if !feed.has(start).unwrap_or(false) {
                break;
            }
            start += 1;
        }
        let mut end = start + 1;
        while end < limit && end - start < chunk && self.wanted(end) == Some(end) && !feed.has(end).unwrap_or(true) {
            end += 1;
        }
        self.cursor = end;
        Some((start, end))
    }

    /// The next message to send to the peer, appended to `buf`. Returns its length, or `None`
    /// when there is nothing to send.
    #[must_use = "the message must be sent"]
    pub fn poll_transmit<S: Storage>(
        &mut self,
        feed: &Feed<S>,
        buf: &mut Vec<u8>,
    ) -> Result<Option<usize>, StoreError> {
        let before = buf.len();
        if let Some(message) = self.outbox.pop_front() {
            buf.extend_from_slice(&message);
            return Ok(Some(buf.len() - before));
        }
        if let Some(base) = self.push_base.take() {
            let ours = feed.len();
            if ours > base {
                let end =
                    if ours - base <= self.config.push_window && feed.contiguous_len() >= ours { ours } else { base };
                if let Some(parts) = feed.serve(base, base, end, true, self.config.data_budget)? {
                    self.peer_length = self.peer_length.max(ours);
                    self.encode_data(0, &parts, feed, buf);
                    return Ok(Some(buf.len() - before));
                }
            }
        }
        if self.needs_have(feed) {
            let head = *feed.head().expect("checked by needs_have");
            let contiguous = feed.contiguous_len();
            self.send_have = false;
            self.told_length = self.told_length.max(head.length);
            self.told_contiguous = contiguous;
            Message::Have { head, contiguous }.encode(buf);
            return Ok(Some(buf.len() - before));
        }
        if let Some(request) = self.pending.pop_front() {
            let PeerRequest { id, base, start, end, upgrade } = request;
            if self.redirecting {
                Message::NoData { id }.encode(buf);
                return Ok(Some(buf.len() - before));
            }
            match feed.serve(base, start, end, upgrade, self.config.data_budget)? {
                Some(parts) => {
                    if let Some(head) = parts.head {
                        self.peer_length = self.peer_length.max(head.length);
                    }
                    self.encode_data(id, &parts, feed, buf);
                }
                None => Message::NoData { id }.encode(buf),
            }
            return Ok(Some(buf.len() - before));
        }
        Ok(None)
    }

    fn encode_data<S: Storage>(&mut self, id: u64, parts: &DataParts<Bytes>, feed: &Feed<S>, buf: &mut Vec<u8>) {
        let contiguous = feed.contiguous_len();
        self.told_contiguous = self.told_contiguous.max(contiguous);
        if let Some(head) = parts.head {
            self.told_length = self.told_length.max(head.length);
        }
        let entries: Vec<&[u8]> = parts.entries.iter().map(|e| &e[..]).collect();
        // Sized up front: entries of a quarter MiB would otherwise be copied as `buf` grows.
        // Each entry, node and field costs at most its bytes and a 10-byte varint.
        let entry_bytes: usize = entries.iter().map(|e| e.len() + 10).sum();
        buf.reserve(entry_bytes + parts.nodes.len() * 48 + 256);
        Message::Data {
            id,
            base: parts.base,
            head: parts.head,
            contiguous,
            start: parts.start,
            entries,
            nodes: parts.nodes.clone(),
        }
        .encode(buf);
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Replicator::handle_timeout`] should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Duration> {
        let waiting = (!self.retry.is_empty() || self.upgrade_refused) && self.backoff_until > Duration::ZERO;
        self.inflight.iter().map(|r| r.deadline).chain(waiting.then_some(self.backoff_until)).min()
    }

    /// Give up on requests whose deadline passed, and ask again.
    pub fn handle_timeout<S: Storage>(&mut self, feed: &Feed<S>, now: Duration) {
        if self.backoff_until > Duration::ZERO && self.backoff_until <= now {
            // The pause after a refusal is over: try again.
            self.backoff_until = Duration::ZERO;
            self.upgrade_refused = false;
        }
        let mut expired = Vec::new();
        self.inflight.retain(|r| {
            let keep = r.deadline > now;
            if !keep {
                expired.push(*r);
            }
            keep
        });
        for r in expired {
            self.queue(&Message::Cancel { id: r.id });
            if r.start < r.end {
                self.retry.push((r.start, r.end));
            }
        }
        self.plan(feed, now);
    }
}
