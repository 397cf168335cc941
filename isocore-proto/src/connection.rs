//! One connection between two nodes: the handshake, then encrypted frames carrying
//! multiplexed feed streams, RPC calls and control messages, with credit-based flow control.
//!
//! The caller's loop (`spec/proto.md` §8): pass bytes read from the transport to
//! [`Connection::handle_input`]; drain [`Connection::poll_transmit`] into the transport;
//! drain [`Connection::poll_event`]; call [`Connection::handle_timeout`] when
//! [`Connection::poll_timeout`] passes. Any call may change what the polls return.
//!
//! Admission (`spec/proto.md` §10): the connection stamps its own unsolicited messages at the
//! price the peer advertised and retries them after `Busy`; stamps are solved in
//! [`Connection::handle_timeout`], at most [`ConnectionConfig::solve_step`] compressions per
//! call, and while one is pending [`Connection::poll_timeout`] returns a time already reached.
//! What the peer sends unsolicited arrives with an [`Admit`] for the caller's admission
//! (`isocore_pow::Admission`), which answers with [`Connection::busy`] when it refuses.

use crate::cipher::TAG_LEN;
use crate::codec::MAX_MESSAGE_LEN;
use crate::handshake::{Established, Handshake, HandshakeConfig, HandshakeError, Identity, PeerId, Role};
use crate::message::{MAX_REASON_LEN, Message, Unsolicited, stamp_digest_of_encoded};
use bytes::Bytes;
use core::time::Duration;
use isocore_log::{DecodeError, FeedKey};
use isocore_pow::{Request, SenderPolicy, Solver, Stamp, StampKey};
use std::collections::{BTreeMap, VecDeque};

/// Largest Noise message, and so the largest frame body.
pub const MAX_FRAME_BODY: usize = 65_535;
/// Credit each side starts with on every stream, before any `Credit` message.
pub const INITIAL_STREAM_CREDIT: u64 = 16 << 10;
/// Credit each side starts with on the connection, before any `Credit` message.
pub const INITIAL_CONNECTION_CREDIT: u64 = 64 << 10;
/// Largest plaintext in one frame.
pub const MAX_FRAME_PLAINTEXT: usize = MAX_FRAME_BODY - TAG_LEN;
/// Bytes to leave free at the front of a buffer passed to [`Connection::send_stream_buffer`]:
/// the longest header of a `Stream` message (its tag and two varints).
pub const STREAM_HEADROOM: usize = 21;

/// Settings of a connection.
#[derive(Clone, Debug)]
pub struct ConnectionConfig {
    /// Handshake settings.
    pub handshake: HandshakeConfig,
    /// Close when nothing has been received for this long.
    pub idle_timeout: Duration,
    /// Send a ping when nothing has been sent for this long.
    pub keepalive: Duration,
    /// Payload bytes the peer may send on one stream before we grant more (at least
    /// [`INITIAL_STREAM_CREDIT`]).
    pub stream_window: u64,
    /// Payload bytes the peer may send on the whole connection before we grant more (at least
    /// [`INITIAL_CONNECTION_CREDIT`]).
    pub connection_window: u64,
    /// Streams open at once; a peer opening more is cut off.
    pub max_streams: usize,
    /// Calls from the peer awaiting our answer; more is a violation.
    pub max_incoming_calls: usize,
    /// How our unsolicited messages are priced, and the effort budget of each before it is
    /// given up (`spec/pow.md` §9).
    pub stamp_policy: SenderPolicy,
    /// Most BLAKE3 compressions one [`Connection::handle_timeout`] spends solving stamps.
    pub solve_step: u64,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            handshake: HandshakeConfig::default(),
            idle_timeout: Duration::from_secs(30),
            keepalive: Duration::from_secs(10),
            stream_window: 1 << 20,
            connection_window: 4 << 20,
            max_streams: 256,
            max_incoming_calls: 64,
            // 2^18 units is about 6.7e7 compressions: seconds of one core.
            stamp_policy: SenderPolicy { margin_quarters: 5, budget: 1 << 18 },
            solve_step: 1 << 16,
        }
    }
}

impl ConnectionConfig {
    /// The most bytes a connection buffers for received data it has not handed out yet:
    /// one partial frame, one partly reassembled message, and the connection window plus one
    /// message of overshoot (`spec/proto.md` §7.3).
    pub fn receive_memory_bound(&self) -> u64 {
        (2 + MAX_FRAME_BODY) as u64 + MAX_MESSAGE_LEN as u64 + self.connection_window + MAX_MESSAGE_LEN as u64
    }
}

/// Connection close codes (`spec/proto.md` §9).
pub mod code {
    /// Orderly close.
    pub const NORMAL: u16 = 0;
    /// The handshake failed.
    pub const HANDSHAKE: u16 = 1;
    /// A frame failed to decrypt.
    pub const DECRYPT: u16 = 2;
    /// A message that does not decode.
    pub const MALFORMED: u16 = 3;
    /// A message that breaks the protocol's rules.
    pub const PROTOCOL: u16 = 4;
    /// Data sent beyond the credit granted.
    pub const FLOW_CONTROL: u16 = 5;
    /// Too many streams opened.
    pub const TOO_MANY_STREAMS: u16 = 6;
    /// Too many calls outstanding.
    pub const TOO_MANY_CALLS: u16 = 7;
    /// A message over the maximum size.
    pub const MESSAGE_TOO_LARGE: u16 = 8;
    /// Nothing received for too long.
    pub const IDLE_TIMEOUT: u16 = 9;
}

/// Stream reset codes (`spec/proto.md` §9).
pub mod stream_code {
    /// The stream is done.
    pub const DONE: u16 = 0;
    /// No such feed here.
    pub const UNKNOWN_FEED: u16 = 1;
    /// The opener did not prove it knows the feed key.
    pub const BAD_PROOF: u16 = 2;
    /// Both sides opened the same feed; the other stream is kept.
    pub const DUPLICATE: u16 = 3;
    /// The replication on the stream failed; see the log error code.
    pub const REPLICATION: u16 = 4;
    /// The `Open` carried a stamp that is malformed, lacks its work or was used before.
    pub const BAD_STAMP: u16 = 5;
}

/// Call failure codes the session itself sends in `Fail` (`spec/proto.md` §9.3). Codes from
/// `0xff00` up are reserved for the session; applications use the rest.
pub mod call_code {
    /// The `Call` carried a stamp that is malformed, lacks its work or was used before.
    pub const BAD_STAMP: u16 = 0xff00;
}

/// Why a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionError {
    /// The handshake failed.
    Handshake(HandshakeError),
    /// A frame failed to decrypt: tampered, replayed or reordered.
    Decrypt,
    /// A frame or message that does not decode.
    Malformed(DecodeError),
    /// A message that breaks a rule of the protocol.
    Protocol(&'static str),
    /// The peer sent beyond the credit we granted.
    FlowControl,
    /// The peer opened more streams than allowed.
    TooManyStreams,
    /// The peer made more calls than allowed.
    TooManyCalls,
    /// A message over the maximum size.
    MessageTooLarge,
    /// Nothing received within the idle timeout.
    IdleTimeout,
    /// The peer closed the connection.
    PeerClosed {
        /// Its code.
        code: u16,
        /// Its reason.
        reason: String,
    },
    /// We closed it.
    LocallyClosed,
}

impl ConnectionError {
    /// The code sent in `Close`.
    pub fn code(&self) -> u16 {
        match self {
            ConnectionError::Handshake(_) => code::HANDSHAKE,
            ConnectionError::Decrypt => code::DECRYPT,
            ConnectionError::Malformed(_) => code::MALFORMED,
            ConnectionError::Protocol(_) => code::PROTOCOL,
            ConnectionError::FlowControl => code::FLOW_CONTROL,
            ConnectionError::TooManyStreams => code::TOO_MANY_STREAMS,
            ConnectionError::TooManyCalls => code::TOO_MANY_CALLS,
            ConnectionError::MessageTooLarge => code::MESSAGE_TOO_LARGE,
            ConnectionError::IdleTimeout => code::IDLE_TIMEOUT,
            ConnectionError::PeerClosed { code, .. } => *code,
            ConnectionError::LocallyClosed => code::NORMAL,
        }
    }

    /// Whether the peer is to blame.
    pub fn is_remote(&self) -> bool {
        !matches!(
            self,
            ConnectionError::IdleTimeout | ConnectionError::LocallyClosed | ConnectionError::PeerClosed { .. }
        )
    }
}

impl core::fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConnectionError::Handshake(e) => write!(f, "handshake failed: {e}"),
            ConnectionError::Decrypt => f.write_str("frame failed to decrypt"),
            ConnectionError::Malformed(e) => write!(f, "malformed message: {e}"),
            ConnectionError::Protocol(what) => write!(f, "protocol violation: {what}"),
            ConnectionError::FlowControl => f.write_str("peer exceeded its credit"),
            ConnectionError::TooManyStreams => f.write_str("peer opened too many streams"),
            ConnectionError::TooManyCalls => f.write_str("peer made too many calls"),
            ConnectionError::MessageTooLarge => f.write_str("message over the maximum size"),
            ConnectionError::IdleTimeout => f.write_str("connection idle too long"),
            ConnectionError::PeerClosed { code, reason } => {
                write!(f, "peer closed ({code}): {reason}")
            }
            ConnectionError::LocallyClosed => f.write_str("closed locally"),
        }
    }
}

impl core::error::Error for ConnectionError {}

/// What happened on the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The handshake finished.
    Connected {
        /// The authenticated peer.
        peer: PeerId,
        /// The session's handshake hash.
        handshake_hash: [u8; 32],
    },
    /// The peer wants to replicate the feed with this discovery key on `stream`. Answer with
    /// [`Connection::accept_stream`] or [`Connection::reject_stream`] (or [`Connection::busy`]).
    StreamRequested {
        /// The stream.
        stream: u64,
        /// The feed's discovery key.
        discovery_key: [u8; 32],
        /// For admission; `None` when we opened a stream of the same feed ourselves, which
        /// solicits this one.
        admit: Option<Admit>,
    },
    /// The peer accepted a stream we opened.
    StreamAccepted {
        /// The stream.
        stream: u64,
    },
    /// A message arrived on a stream.
    StreamData {
        /// The stream.
        stream: u64,
        /// One replication message.
        payload: Bytes,
    },
    /// The stream ended.
    StreamReset {
        /// The stream.
        stream: u64,
        /// Why (a stream code).
        code: u16,
    },
    /// The peer calls a method. Answer with [`Connection::reply`] or [`Connection::fail_call`]
    /// (or [`Connection::busy`]).
    Call {
        /// The call.
        id: u64,
        /// Interface id.
        interface: [u8; 32],
        /// Method name.
        method: String,
        /// Arguments.
        payload: Bytes,
        /// For admission: a call is always unsolicited.
        admit: Admit,
    },
    /// The peer withdrew a call.
    CallCancelled {
        /// The call.
        id: u64,
    },
    /// An answer to one of our calls.
    Reply {
        /// The call.
        id: u64,
        /// The result.
        payload: Bytes,
    },
    /// One of our calls failed.
    CallFailed {
        /// The call.
        id: u64,
        /// The code.
        code: u16,
        /// The reason.
        reason: String,
    },
    /// The peer kept answering `Busy` to one of our calls or stream opens, and the next stamp
    /// would overrun the budget ([`ConnectionConfig::stamp_policy`]): the call has failed, or
    /// the stream is gone.
    NotAdmitted {
        /// The message given up.
        of: Unsolicited,
        /// Effort units spent on its stamps.
        spent: u64,
    },
    /// The connection is over; nothing more will happen.
    Closed(ConnectionError),
}

/// What admission needs to know of an unsolicited message: pass it to
/// `isocore_pow::Admission::on_message` as an `Inbound` with `solicit: None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admit {
    /// The digest the stamp pays for ([`Message::stamp_digest`] in this session).
    pub digest: [u8; 32],
    /// The stamp bytes, if any.
    pub stamp: Option<Bytes>,
}

/// Admission parameters the peer advertised in its last `Price`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerPrice {
    /// The peer's epoch.
    pub epoch: u32,
    /// Its seed for that epoch.
    pub seed: [u8; 32],
    /// Its price in effort units; 0 = dormant.
    pub price: u32,
}

/// One of our unsolicited messages that the peer may still answer with `Busy`.
struct Outgoing {
    body: Body,
    request: Request,
    stamping: Stamping,
}

/// What is needed to send an unsolicited message again with another stamp.
enum Body {
    Open { stream: u64, discovery_key: [u8; 32], proof: [u8; 32] },
    Call { id: u64, interface: [u8; 32], method: String, payload: Vec<u8> },
}

impl Body {
    fn message<'a>(&'a self, stamp: Option<&'a [u8]>) -> Message<'a> {
        match self {
            Body::Open { stream, discovery_key, proof } => {
                Message::Open { stream: *stream, discovery_key: *discovery_key, proof: *proof, stamp }
            }
            Body::Call { id, interface, method, payload } => {
                Message::Call { id: *id, interface: *interface, method, payload, stamp }
            }
        }
    }
}

enum Stamping {
    /// On the wire (or queued); an answer or a `Busy` will follow.
    Sent,
    /// Needs a stamp, but the peer has not advertised its parameters yet.
    Waiting { not_before: Duration },
    /// Being solved; once found, sent no earlier than `not_before` (the `Busy`'s wait).
    Solving { solver: Box<Solver>, found: Option<Stamp>, not_before: Duration },
}

#[derive(Debug, PartialEq, Eq)]
enum StreamPhase {
    /// We opened it; waiting for the peer's answer.
    Opening,
    /// The peer opened it; waiting for our answer.
    Requested {
        proof: [u8; 32],
    },
    Open,
}

#[derive(Debug)]
struct Stream {
    phase: StreamPhase,
    discovery_key: [u8; 32],
    /// Payload bytes we may still send (may go below zero by one message).
    send_credit: i64,
    /// Payload bytes the peer may still send before it must wait.
    recv_credit: i64,
    /// Bytes handed out since we last granted credit.
    consumed: u64,
    /// Encoded messages and the payload bytes each costs in credit.
    queue: VecDeque<Queued>,
}

/// A stream message waiting to be sent: its encoding is `bytes[start..]`.
#[derive(Debug)]
struct Queued {
    bytes: Vec<u8>,
    start: usize,
    cost: u64,
}

enum Phase {
    Handshaking(Box<Handshake>),
    Open(Box<Session>),
    Closed,
}

struct Session {
    established: Established,
}

/// `Request::new` reads only the price; the rest is what stamping uses, kept apart.
fn advertised(price: u32) -> isocore_pow::Params {
    isocore_pow::Params {
        ver_alg: isocore_pow::stamp::VER_ALG_V1,
        epoch: 0,
        seed: [0; 32],
        epoch_ends_in: Duration::ZERO,
        price,
        p_start: 0,
    }
}

/// Discovery proof: shows the opener knows the feed key, bound to this session and stream.
pub fn stream_proof(feed: &FeedKey, handshake_hash: &[u8; 32], stream: u64) -> [u8; 32] {
    let mut material = [0u8; 64];
    material[..32].copy_from_slice(feed.channel());
    material[32..].copy_from_slice(feed.writer().as_bytes());
    let key = blake3::derive_key("isocore/proto/v1/stream-proof", &material);
    let mut hasher = blake3::Hasher::new_keyed(&key);
    hasher.update(handshake_hash);
    hasher.update(&stream.to_le_bytes());
    *hasher.finalize().as_bytes()
}

/// One connection, in any phase.
pub struct Connection {
    config: ConnectionConfig,
    role: Role,
    phase: Phase,
    inbuf: Vec<u8>,
    inbuf_start: usize,
    /// A message arriving in several records.
    reassembly: Vec<u8>,
    /// Length of the last message reassembled from fragments.
    reassembled_len: usize,
    /// Encoded messages ahead of all streams and calls.
    control: VecDeque<Vec<u8>>,
    /// Calls, replies and failures, served in turn with the streams.
    calls: VecDeque<(Vec<u8>, u64)>,
    /// The rest of a message that did not fit in the last frame.
    spill: Option<(Vec<u8>, usize)>,
    streams: BTreeMap<u64, Stream>,
    /// Where the round robin over streams resumes.
    cursor: u64,
    next_stream: u64,
    next_call: u64,
    incoming_calls: usize,
    conn_send_credit: i64,
    conn_recv_credit: i64,
    conn_consumed: u64,
    events: VecDeque<Event>,
    last_received: Duration,
    last_sent: Duration,
    ping_nonce: u64,
    /// Set once a Close is queued: send it, then stop.
    closing: Option<ConnectionError>,
    me: PeerId,
    /// The latest time passed in.
    now: Duration,
    peer_price: Option<PeerPrice>,
    outgoing: BTreeMap<Unsolicited, Outgoing>,
    /// Start nonce of the next solver; stepped so no two stamps of a session start alike.
    next_nonce: u64,
    stamps_sent: u64,
    busy_received: u64,
}

impl Connection {
    /// Start a connection. The initiator's first handshake message is ready at once.
    pub fn new(role: Role, identity: &Identity, mut config: ConnectionConfig, seed: [u8; 32], now: Duration) -> Self {
        config.stream_window = config.stream_window.max(INITIAL_STREAM_CREDIT);
        config.connection_window = config.connection_window.max(INITIAL_CONNECTION_CREDIT);
        let handshake = Handshake::new(role, identity, config.handshake.clone(), seed, now);
        Connection {
            role,
            phase: Phase::Handshaking(Box::new(handshake)),
            inbuf: Vec::new(),
            inbuf_start: 0,
            reassembly: Vec::new(),
            reassembled_len: 0,
            control: VecDeque::new(),
            calls: VecDeque::new(),
            spill: None,
            streams: BTreeMap::new(),
            cursor: 0,
            next_stream: if role == Role::Initiator { 1 } else { 2 },
            next_call: 1,
            incoming_calls: 0,
            conn_send_credit: INITIAL_CONNECTION_CREDIT as i64,
            conn_recv_credit: INITIAL_CONNECTION_CREDIT as i64,
            conn_consumed: 0,
            events: VecDeque::new(),
            last_received: now,
            last_sent: now,
            ping_nonce: 0,
            closing: None,
            me: identity.peer_id(),
            now,
            peer_price: None,
            outgoing: BTreeMap::new(),
            next_nonce: 0,
            stamps_sent: 0,
            busy_received: 0,
            config,
        }
    }

    /// The admission parameters the peer last advertised.
    pub fn peer_price(&self) -> Option<PeerPrice> {
        self.peer_price
    }

    /// Stamps attached to messages sent so far.
    pub fn stamps_sent(&self) -> u64 {
        self.stamps_sent
    }

    /// `Busy` answers received so far.
    pub fn busy_received(&self) -> u64 {
        self.busy_received
    }

    /// Whether a message of ours waits for its stamp: being solved, or solved and waiting out
    /// a `Busy`'s wait.
    pub fn is_stamping(&self) -> bool {
        self.outgoing.values().any(|o| matches!(o.stamping, Stamping::Solving { .. }))
    }

    /// The authenticated peer, once connected.
    pub fn peer(&self) -> Option<PeerId> {
        match &self.phase {
            Phase::Open(s) => Some(s.established.peer),
            _ => None,
        }
    }

    /// The handshake hash, once connected.
    pub fn handshake_hash(&self) -> Option<[u8; 32]> {
        match &self.phase {
            Phase::Open(s) => Some(s.established.handshake_hash),
            _ => None,
        }
    }

    /// Whether the handshake finished and the connection is not closed.
    pub fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open(_)) && self.closing.is_none()
    }

    /// Whether the connection is over.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// Streams currently known.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Feed bytes read from the transport. On error the connection is closed (a `Close` is
    /// queued for the peer) and [`Event::Closed`] is emitted.
    pub fn handle_input(&mut self, now: Duration, data: &[u8]) -> Result<(), ConnectionError> {
        if matches!(self.phase, Phase::Closed) || self.closing.is_some() {
            return Ok(());
        }
        self.last_received = now;
        self.now = self.now.max(now);
        self.inbuf.extend_from_slice(data);
        let result = self.process_frames();
        if self.inbuf_start > 0 && self.inbuf_start * 2 >= self.inbuf.len() {
            self.inbuf.drain(..self.inbuf_start);
            self.inbuf_start = 0;
        }
        if let Err(e) = &result {
            self.fail(e.clone());
        }
        result
    }

    fn process_frames(&mut self) -> Result<(), ConnectionError> {
        loop {
            // A handshake message that arrives before we wrote ours waits in the buffer.
            if let Phase::Handshaking(h) = &self.phase
                && h.wants_to_write()
            {
                return Ok(());
            }
            let available = &self.inbuf[self.inbuf_start..];
            if available.len() < 2 {
                return Ok(());
            }
            let len = u16::from_be_bytes([available[0], available[1]]) as usize;
            if len == 0 {
                return Err(ConnectionError::Malformed(DecodeError::Malformed));
            }
            if available.len() < 2 + len {
                return Ok(());
            }
            // Open the frame in place: the input buffer is set aside while it is handled.
            let start = self.inbuf_start + 2;
            self.inbuf_start += 2 + len;
            let mut inbuf = core::mem::take(&mut self.inbuf);
            let result = self.handle_frame(&mut inbuf[start..start + len]);
            self.inbuf = inbuf;
            result?;
            if self.closing.is_some() || matches!(self.phase, Phase::Closed) {
                return Ok(());
            }
        }
    }

    fn handle_frame(&mut self, frame: &mut [u8]) -> Result<(), ConnectionError> {
        match &mut self.phase {
            Phase::Handshaking(handshake) => {
                handshake.read_message(frame).map_err(ConnectionError::Handshake)?;
                self.advance_handshake();
                Ok(())
            }
            Phase::Open(session) => {
                let plain = session.established.receiver.open(frame).map_err(|_| ConnectionError::Decrypt)?;
                self.handle_records(plain)
            }
            Phase::Closed => Ok(()),
        }
    }

    /// Move to the session once the handshake has no more to do.
    fn advance_handshake(&mut self) {
        let Phase::Handshaking(handshake) = &self.phase else {
            return;
        };
        if !handshake.is_finished() || handshake.wants_to_write() {
            return;
        }
        let Phase::Handshaking(handshake) = core::mem::replace(&mut self.phase, Phase::Closed) else { unreachable!() };
        match handshake.into_established() {
            Ok(established) => {
                self.events
                    .push_back(Event::Connected { peer: established.peer, handshake_hash: established.handshake_hash });
                self.phase = Phase::Open(Box::new(Session { established }));
                let extra = self.config.connection_window - INITIAL_CONNECTION_CREDIT;
                self.raise_window(0, extra);
            }
            Err(handshake) => self.phase = Phase::Handshaking(handshake),
        }
    }

    /// A frame's plaintext is a sequence of records: `varint(len << 1 | more)` then `len`
    /// bytes; `more` means the message continues in the next record.
    fn handle_records(&mut self, mut plain: &[u8]) -> Result<(), ConnectionError> {
        if plain.is_empty() {
            return Err(ConnectionError::Malformed(DecodeError::Malformed));
        }
        while !plain.is_empty() {
            let (header, used) = read_varint(plain).ok_or(ConnectionError::Malformed(DecodeError::Malformed))?;
            plain = &plain[used..];
            let len = usize::try_from(header >> 1).map_err(|_| ConnectionError::Malformed(DecodeError::Malformed))?;
            let more = header & 1 == 1;
            if len > plain.len() || (len == 0 && more) {
                return Err(ConnectionError::Malformed(DecodeError::Malformed));
            }
            if self.reassembly.len() + len > MAX_MESSAGE_LEN {
                return Err(ConnectionError::MessageTooLarge);
            }
            let (body, rest) = plain.split_at(len);
            plain = rest;
            if more {
                if self.reassembly.is_empty() {
                    // Messages on a stream tend to be alike: room for one as long as the last
                    // saves growing the buffer (and copying it) fragment by fragment.
                    self.reassembly.reserve(self.reassembled_len);
                }
                self.reassembly.extend_from_slice(body);
                continue;
            }
            if self.reassembly.is_empty() {
                let message = Bytes::copy_from_slice(body);
                self.handle_message(&message)?;
            } else {
                self.reassembly.extend_from_slice(body);
                self.reassembled_len = self.reassembly.len();
                // Entries are slices of the message and keep its whole buffer alive: no more
                // than twice what it holds.
                if self.reassembly.capacity() > 2 * self.reassembly.len() {
                    self.reassembly.shrink_to_fit();
                }
                let message = Bytes::from(core::mem::take(&mut self.reassembly));
                self.handle_message(&message)?;
            }
        }
        Ok(())
    }

    fn handle_message(&mut self, bytes: &Bytes) -> Result<(), ConnectionError> {
        let message = Message::decode(bytes).map_err(ConnectionError::Malformed)?;
        match message {
            Message::Open { stream, discovery_key, proof, stamp } => {
                let peer_opens_odd = self.role == Role::Responder;
                if (stream % 2 == 1) != peer_opens_odd || self.streams.contains_key(&stream) {
                    return Err(ConnectionError::Protocol("stream id reused or of the wrong parity"));
                }
                if self.streams.len() >= self.config.max_streams {
                    return Err(ConnectionError::TooManyStreams);
                }
                // Our own stream of this feed asks for the peer's; anything else is unsolicited.
                let ours = self.next_stream % 2;
                let solicited = self.streams.iter().any(|(id, s)| id % 2 == ours && s.discovery_key == discovery_key);
                // Both sides opened the same feed: the initiator's stream is kept.
                let duplicate = self.streams.values().any(|s| s.discovery_key == discovery_key);
                if duplicate && self.role == Role::Initiator {
                    self.queue_control(&Message::Reset { stream, code: crate::connection::stream_code::DUPLICATE });
                    return Ok(());
                }
                if duplicate {
                    let ours: Vec<u64> = self
                        .streams
                        .iter()
                        .filter(|(_, s)| s.discovery_key == discovery_key)
                        .map(|(id, _)| *id)
                        .collect();
                    for id in ours {
                        self.streams.remove(&id);
                        self.outgoing.remove(&Unsolicited::Open(id));
                        self.events.push_back(Event::StreamReset { stream: id, code: stream_code::DUPLICATE });
                    }
                }
                let admit = (!solicited).then(|| self.admit(bytes, stamp));
                self.streams.insert(stream, self.new_stream(StreamPhase::Requested { proof }, discovery_key));
                self.events.push_back(Event::StreamRequested { stream, discovery_key, admit });
            }
            Message::Accept { stream } => {
                let s =
                    self.streams.get_mut(&stream).ok_or(ConnectionError::Protocol("accept for an unknown stream"))?;
                if s.phase != StreamPhase::Opening {
                    return Err(ConnectionError::Protocol("accept for a stream not being opened"));
                }
                s.phase = StreamPhase::Open;
                self.outgoing.remove(&Unsolicited::Open(stream));
                self.events.push_back(Event::StreamAccepted { stream });
            }
            Message::Reset { stream, code } => {
                self.outgoing.remove(&Unsolicited::Open(stream));
                if self.streams.remove(&stream).is_some() {
                    self.events.push_back(Event::StreamReset { stream, code });
                }
            }
            Message::Stream { stream, payload } => {
                let len = payload.len() as i64;
                if self.conn_recv_credit <= 0 {
                    return Err(ConnectionError::FlowControl);
                }
                let s = match self.streams.get_mut(&stream) {
                    Some(s) if s.phase == StreamPhase::Open => s,
                    // Data racing a reset we sent: dropped, but it still counts against credit.
                    None if stream % 2 == (self.next_stream % 2) || stream < self.next_stream => {
                        self.conn_recv_credit -= len;
                        return Ok(());
                    }
                    _ => {
                        return Err(ConnectionError::Protocol("data on a stream that is not open"));
                    }
                };
                if s.recv_credit <= 0 {
                    return Err(ConnectionError::FlowControl);
                }
                s.recv_credit -= len;
                self.conn_recv_credit -= len;
                self.events.push_back(Event::StreamData { stream, payload: bytes.slice_ref(payload) });
            }
            Message::Credit { stream, bytes: more } => {
                let more = i64::try_from(more).map_err(|_| ConnectionError::Protocol("credit overflow"))?;
                let credit = if stream == 0 {
                    &mut self.conn_send_credit
                } else {
                    match self.streams.get_mut(&stream) {
                        Some(s) => &mut s.send_credit,
                        None => return Ok(()),
                    }
                };
                *credit = credit
                    .checked_add(more)
                    .filter(|c| *c <= 1 << 48)
                    .ok_or(ConnectionError::Protocol("credit overflow"))?;
            }
            Message::Call { id, interface, method, payload, stamp } => {
                if self.incoming_calls >= self.config.max_incoming_calls {
                    return Err(ConnectionError::TooManyCalls);
                }
                if self.conn_recv_credit <= 0 {
                    return Err(ConnectionError::FlowControl);
                }
                self.conn_recv_credit -= payload.len() as i64;
                self.incoming_calls += 1;
                let admit = self.admit(bytes, stamp);
                self.events.push_back(Event::Call {
                    id,
                    interface,
                    method: method.to_string(),
                    payload: bytes.slice_ref(payload),
                    admit,
                });
            }
            Message::Reply { id, payload } => {
                self.outgoing.remove(&Unsolicited::Call(id));
                self.events.push_back(Event::Reply { id, payload: bytes.slice_ref(payload) });
            }
            Message::Fail { id, code, reason } => {
                self.outgoing.remove(&Unsolicited::Call(id));
                self.events.push_back(Event::CallFailed { id, code, reason: reason.to_string() });
            }
            Message::CancelCall { id } => self.events.push_back(Event::CallCancelled { id }),
            Message::Ping { nonce } => self.queue_control(&Message::Pong { nonce }),
            Message::Pong { .. } => {}
            Message::Close { code, reason } => {
                let error = ConnectionError::PeerClosed { code, reason: reason.to_string() };
                self.phase = Phase::Closed;
                self.events.push_back(Event::Closed(error));
            }
            Message::Busy { of, price, retry_after_ms } => {
                self.on_busy(of, price, Duration::from_millis(retry_after_ms.into()))
            }
            Message::Price { epoch, seed, price } => self.on_price(PeerPrice { epoch, seed, price }),
        }
        Ok(())
    }

    /// The digest and stamp of an unsolicited message, for the caller's admission.
    fn admit(&self, bytes: &Bytes, stamp: Option<&[u8]>) -> Admit {
        let hash = self.handshake_hash().unwrap_or_default();
        Admit { digest: stamp_digest_of_encoded(&hash, bytes, stamp), stamp: stamp.map(|s| bytes.slice_ref(s)) }
    }

    fn on_price(&mut self, price: PeerPrice) {
        self.peer_price = Some(price);
        let waiting: Vec<Unsolicited> = self
            .outgoing
            .iter()
            .filter(|(_, o)| matches!(o.stamping, Stamping::Waiting { .. }))
            .map(|(k, _)| *k)
            .collect();
        for of in waiting {
            let mut out = self.outgoing.remove(&of).expect("listed above");
            if let Stamping::Waiting { not_before } = out.stamping {
                out.stamping = self.start_stamp(&out.body, out.request.effort(), not_before);
            }
            self.outgoing.insert(of, out);
        }
    }

    /// The peer did not admit `of`: stamp it again at a higher effort, or give up.
    fn on_busy(&mut self, of: Unsolicited, price: u32, retry_after: Duration) {
        self.busy_received += 1;
        // A `Busy` for something not sent, or already being re-stamped, changes nothing.
        let Some(mut out) = self.outgoing.remove(&of) else {
            return;
        };
        if !matches!(out.stamping, Stamping::Sent) {
            self.outgoing.insert(of, out);
            return;
        }
        match out.request.on_busy(&isocore_pow::Busy { price, retry_after }) {
            Ok(effort) => {
                out.stamping = self.start_stamp(&out.body, effort, self.now + retry_after);
                self.outgoing.insert(of, out);
            }
            Err(give_up) => self.give_up(of, give_up.spent),
        }
    }

    fn give_up(&mut self, of: Unsolicited, spent: u64) {
        if let Unsolicited::Open(stream) = of {
            self.streams.remove(&stream);
        }
        self.events.push_back(Event::NotAdmitted { of, spent });
    }

    fn start_stamp(&mut self, body: &Body, effort: u32, not_before: Duration) -> Stamping {
        let (Some(peer), Some(hash), Some(price)) = (self.peer(), self.handshake_hash(), self.peer_price) else {
            return Stamping::Waiting { not_before };
        };
        let digest = body.message(None).stamp_digest(&hash);
        let key = StampKey::derive(&price.seed, &self.me.0, &peer.0);
        self.next_nonce = self.next_nonce.wrapping_add(1 << 40);
        let solver = Solver::new(&key, &digest, price.epoch, effort.max(1), self.next_nonce)
            .expect("a non-zero effort has a target");
        Stamping::Solving { solver: Box::new(solver), found: None, not_before }
    }

    /// Queue an unsolicited message of ours, remembering it until it is answered.
    fn send_unsolicited(&mut self, body: Body, solicited: bool) {
        let of = match body {
            Body::Open { stream, .. } => Unsolicited::Open(stream),
            Body::Call { id, .. } => Unsolicited::Call(id),
        };
        let price = if solicited { 0 } else { self.peer_price.map_or(0, |p| p.price) };
        let request = Request::new(self.config.stamp_policy, &advertised(price));
        let stamping = match request.effort() {
            0 => {
                self.queue_unsolicited(&body, None);
                Stamping::Sent
            }
            // An advertised price beyond the whole budget is not worth starting on.
            effort if u64::from(effort) > self.config.stamp_policy.budget => return self.give_up(of, 0),
            effort => self.start_stamp(&body, effort, self.now),
        };
        // Tracked even when solicited: a peer that dropped its own stream meanwhile answers `Busy`.
        self.outgoing.insert(of, Outgoing { body, request, stamping });
    }

    fn queue_unsolicited(&mut self, body: &Body, stamp: Option<&[u8]>) {
        let message = body.message(stamp).to_vec();
        match body {
            Body::Open { stream, .. } => {
                self.control.push_back(message);
                // A stream the peer refused with `Busy` was forgotten with its credit: every
                // `Open` carries the window again.
                let extra = self.config.stream_window - INITIAL_STREAM_CREDIT;
                if extra > 0 {
                    self.queue_control(&Message::Credit { stream: *stream, bytes: extra });
                }
            }
            Body::Call { payload, .. } => self.calls.push_back((message, payload.len() as u64)),
        }
    }

    /// Spend at most `max_attempts` BLAKE3 compressions on pending stamps, then queue every
    /// message whose stamp is found and whose `Busy` wait is over. Returns the compressions
    /// spent. [`Connection::handle_timeout`] calls it with [`ConnectionConfig::solve_step`].
    pub fn solve(&mut self, now: Duration, max_attempts: u64) -> u64 {
        self.now = self.now.max(now);
        if !self.is_open() {
            return 0;
        }
        let mut spent = 0;
        let mut ready = Vec::new();
        for (of, out) in self.outgoing.iter_mut() {
            let Stamping::Solving { solver, found, not_before } = &mut out.stamping else {
                continue;
            };
            if found.is_none() && spent < max_attempts {
                let before = solver.attempts();
                *found = solver.step(max_attempts - spent);
                spent += solver.attempts() - before;
            }
            if found.is_some() && *not_before <= self.now {
                ready.push(*of);
            }
        }
        for of in ready {
            let mut out = self.outgoing.remove(&of).expect("listed above");
            if let Stamping::Solving { found: Some(stamp), .. } = core::mem::replace(&mut out.stamping, Stamping::Sent)
            {
                self.queue_unsolicited(&out.body, Some(&stamp.encode()));
                self.stamps_sent += 1;
            }
            self.outgoing.insert(of, out);
        }
        spent
    }

    /// When the next stamp work is due: now while one is being solved, else the end of the
    /// earliest `Busy` wait of a solved one.
    fn stamp_deadline(&self) -> Option<Duration> {
        self.outgoing
            .values()
            .filter_map(|o| match &o.stamping {
                Stamping::Solving { found: None, .. } => Some(self.now),
                Stamping::Solving { found: Some(_), not_before, .. } => Some(*not_before),
                _ => None,
            })
            .min()
    }

    /// Answer the peer's unsolicited `of` with `Busy`, because admission refused or dropped it
    /// (`spec/pow.md` §8): the call no longer awaits our answer, the requested stream is
    /// forgotten, and the peer may send it again with a stamp of at least `price`.
    pub fn busy(&mut self, of: Unsolicited, price: u32, retry_after: Duration) {
        match of {
            Unsolicited::Call(_) => self.incoming_calls = self.incoming_calls.saturating_sub(1),
            Unsolicited::Open(stream) => {
                match self.streams.get(&stream) {
                    Some(s) if matches!(s.phase, StreamPhase::Requested { .. }) => {}
                    _ => return,
                }
                self.streams.remove(&stream);
            }
        }
        let retry_after_ms = retry_after.as_millis().min(u128::from(u32::MAX)) as u32;
        self.queue_control(&Message::Busy { of, price, retry_after_ms });
    }

    /// Tell the peer our admission parameters (`spec/pow.md` §8): after the handshake and on
    /// every change.
    pub fn advertise(&mut self, epoch: u32, seed: [u8; 32], price: u32) {
        if self.is_open() {
            self.queue_control(&Message::Price { epoch, seed, price });
        }
    }

    /// Grant the peer `extra` bytes beyond what it has (stream 0: the connection).
    fn raise_window(&mut self, stream: u64, extra: u64) {
        if extra == 0 {
            return;
        }
        if stream == 0 {
            self.conn_recv_credit += extra as i64;
        } else if let Some(s) = self.streams.get_mut(&stream) {
            s.recv_credit += extra as i64;
        } else {
            return;
        }
        self.queue_control(&Message::Credit { stream, bytes: extra });
    }

    fn new_stream(&self, phase: StreamPhase, discovery_key: [u8; 32]) -> Stream {
        Stream {
            phase,
            discovery_key,
            send_credit: INITIAL_STREAM_CREDIT as i64,
            recv_credit: INITIAL_STREAM_CREDIT as i64,
            consumed: 0,
            queue: VecDeque::new(),
        }
    }

    fn queue_control(&mut self, message: &Message<'_>) {
        self.control.push_back(message.to_vec());
    }

    fn fail(&mut self, error: ConnectionError) {
        if matches!(self.phase, Phase::Open(_)) && error.is_remote() {
            let reason = error.to_string();
            let reason = &reason[..reason.len().min(MAX_REASON_LEN)];
            self.control.clear();
            self.queue_control(&Message::Close { code: error.code(), reason });
            self.closing = Some(error.clone());
        } else {
            self.phase = Phase::Closed;
        }
        self.events.push_back(Event::Closed(error));
    }

    /// Close the connection: a `Close` is sent, then nothing more.
    pub fn close(&mut self, reason: &str) {
        if self.is_closed() || self.closing.is_some() {
            return;
        }
        if matches!(self.phase, Phase::Open(_)) {
            let reason = &reason[..reason.len().min(MAX_REASON_LEN)];
            self.control.clear();
            self.queue_control(&Message::Close { code: code::NORMAL, reason });
            self.closing = Some(ConnectionError::LocallyClosed);
        } else {
            self.phase = Phase::Closed;
        }
        self.events.push_back(Event::Closed(ConnectionError::LocallyClosed));
    }

    /// Open a stream to replicate `feed`. Data may be queued on it at once; it is sent once
    /// the peer accepts.
    pub fn open_stream(&mut self, feed: &FeedKey) -> Option<u64> {
        let hash = self.handshake_hash()?;
        if self.closing.is_some() {
            return None;
        }
        let stream = self.next_stream;
        self.next_stream += 2;
        let discovery_key = feed.discovery_key();
        let proof = stream_proof(feed, &hash, stream);
        // The peer's own stream of this feed solicits ours: no stamp.
        let solicited = self.streams.iter().any(|(id, s)| id % 2 != stream % 2 && s.discovery_key == discovery_key);
        let mut s = self.new_stream(StreamPhase::Opening, discovery_key);
        // The `Credit` for the rest of the window follows each sending of the `Open`.
        s.recv_credit += (self.config.stream_window - INITIAL_STREAM_CREDIT) as i64;
        self.streams.insert(stream, s);
        self.send_unsolicited(Body::Open { stream, discovery_key, proof }, solicited);
        Some(stream)
    }

    /// Accept a stream the peer requested, for `feed`. Refuses it (and returns false) if the
    /// peer did not prove it knows that feed's key.
    pub fn accept_stream(&mut self, stream: u64, feed: &FeedKey) -> bool {
        let Some(hash) = self.handshake_hash() else {
            return false;
        };
        let Some(s) = self.streams.get_mut(&stream) else {
            return false;
        };
        let StreamPhase::Requested { proof } = s.phase else {
            return false;
        };
        if feed.discovery_key() != s.discovery_key || proof != stream_proof(feed, &hash, stream) {
            self.reject_stream(stream, stream_code::BAD_PROOF);
            return false;
        }
        s.phase = StreamPhase::Open;
        self.queue_control(&Message::Accept { stream });
        self.raise_window(stream, self.config.stream_window - INITIAL_STREAM_CREDIT);
        true
    }

    /// Refuse or end a stream.
    pub fn reject_stream(&mut self, stream: u64, code: u16) {
        self.outgoing.remove(&Unsolicited::Open(stream));
        if self.streams.remove(&stream).is_some() {
            self.queue_control(&Message::Reset { stream, code });
        }
    }

    /// Queue any message, bypassing every local rule (credit, stream state). Exists so tests
    /// can play a misbehaving peer.
    #[doc(hidden)]
    pub fn send_raw(&mut self, message: &Message<'_>) {
        self.control.push_back(message.to_vec());
    }

    /// Queue one message on a stream. Returns `false` if there is no such stream.
    pub fn send_stream(&mut self, stream: u64, payload: &[u8]) -> bool {
        let mut buffer = Vec::with_capacity(STREAM_HEADROOM + payload.len());
        buffer.resize(STREAM_HEADROOM, 0);
        buffer.extend_from_slice(payload);
        self.send_stream_buffer(stream, buffer)
    }

    /// Queue one message on a stream, its payload being `buffer[STREAM_HEADROOM..]`. The
    /// message's header is written into the room before the payload, so a large payload is
    /// not copied until it goes into a frame. Returns `false` if there is no such stream.
    ///
    /// # Panics
    ///
    /// If `buffer` is shorter than [`STREAM_HEADROOM`].
    pub fn send_stream_buffer(&mut self, stream: u64, mut buffer: Vec<u8>) -> bool {
        assert!(buffer.len() >= STREAM_HEADROOM, "a stream buffer starts with STREAM_HEADROOM bytes of room");
        let Some(s) = self.streams.get_mut(&stream) else {
            return false;
        };
        let payload_len = buffer.len() - STREAM_HEADROOM;
        let header = stream_header(stream, payload_len);
        let start = STREAM_HEADROOM - header.len();
        buffer[start..STREAM_HEADROOM].copy_from_slice(&header);
        s.queue.push_back(Queued { bytes: buffer, start, cost: payload_len as u64 });
        true
    }

    /// Bytes queued on a stream and not yet sent.
    pub fn stream_backlog(&self, stream: u64) -> usize {
        self.streams.get(&stream).map_or(0, |s| s.queue.iter().map(|q| q.bytes.len() - q.start).sum())
    }

    /// Call a method on the peer. Returns the call id. While the peer's price is above 0 the
    /// call is sent once its stamp is solved; after `Busy` it is sent again with a new stamp.
    pub fn call(&mut self, interface: [u8; 32], method: &str, payload: &[u8]) -> u64 {
        let id = self.next_call;
        self.next_call += 1;
        let body = Body::Call { id, interface, method: method.to_string(), payload: payload.to_vec() };
        self.send_unsolicited(body, false);
        id
    }

    /// Answer a call.
    pub fn reply(&mut self, id: u64, payload: &[u8]) {
        self.incoming_calls = self.incoming_calls.saturating_sub(1);
        self.calls.push_back((Message::Reply { id, payload }.to_vec(), 0));
    }

    /// Fail a call.
    pub fn fail_call(&mut self, id: u64, code: u16, reason: &str) {
        self.incoming_calls = self.incoming_calls.saturating_sub(1);
        let reason = &reason[..reason.len().min(MAX_REASON_LEN)];
        self.calls.push_back((Message::Fail { id, code, reason }.to_vec(), 0));
    }

    /// The next event. Taking a stream's data out counts as consuming it, which may grant the
    /// peer more credit.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front()?;
        let consumed = match &event {
            Event::StreamData { stream, payload } => Some((*stream, payload.len() as u64)),
            Event::Call { payload, .. } => Some((0, payload.len() as u64)),
            _ => None,
        };
        if let Some((stream, n)) = consumed {
            self.consume(stream, n);
        }
        Some(event)
    }

    fn consume(&mut self, stream: u64, n: u64) {
        self.conn_consumed += n;
        if self.conn_consumed >= self.config.connection_window / 2 {
            let grant = core::mem::take(&mut self.conn_consumed);
            self.conn_recv_credit += grant as i64;
            self.queue_control(&Message::Credit { stream: 0, bytes: grant });
        }
        let window = self.config.stream_window;
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        s.consumed += n;
        if s.consumed >= window / 2 {
            let grant = core::mem::take(&mut s.consumed);
            s.recv_credit += grant as i64;
            self.control.push_back(Message::Credit { stream, bytes: grant }.to_vec());
        }
    }

    /// The next frame (or handshake message) for the transport, appended to `buf`, with its
    /// 2-byte length prefix. Returns the bytes appended, or `None` if there is nothing to send.
    #[must_use = "the bytes must be written to the transport"]
    pub fn poll_transmit(&mut self, now: Duration, buf: &mut Vec<u8>) -> Option<usize> {
        let before = buf.len();
        self.now = self.now.max(now);
        match &mut self.phase {
            Phase::Closed => return None,
            Phase::Handshaking(handshake) => {
                buf.extend_from_slice(&[0, 0]);
                match handshake.write_message(buf) {
                    Ok(true) => {}
                    Ok(false) => {
                        buf.truncate(before);
                        return None;
                    }
                    Err(e) => {
                        buf.truncate(before);
                        self.fail(ConnectionError::Handshake(e));
                        return None;
                    }
                }
                let len = (buf.len() - before - 2) as u16;
                buf[before..before + 2].copy_from_slice(&len.to_be_bytes());
                self.advance_handshake();
                if let Err(e) = self.process_frames() {
                    self.fail(e);
                }
            }
            Phase::Open(_) => {
                // The records go straight into `buf` and are sealed there.
                buf.extend_from_slice(&[0, 0]);
                let start = buf.len();
                self.fill_frame(buf, start);
                if buf.len() == start {
                    buf.truncate(before);
                    if let Some(_error) = self.closing.take() {
                        self.phase = Phase::Closed;
                    }
                    return None;
                }
                buf.extend_from_slice(&[0; TAG_LEN]);
                let Phase::Open(session) = &mut self.phase else { unreachable!() };
                if session.established.sender.seal(&mut buf[start..]).is_err() {
                    buf.truncate(before);
                    self.phase = Phase::Closed;
                    self.events
                        .push_back(Event::Closed(ConnectionError::Protocol("the session's nonces are exhausted")));
                    return None;
                }
                let n = (buf.len() - start) as u16;
                buf[before..start].copy_from_slice(&n.to_be_bytes());
            }
        }
        self.last_sent = now;
        Some(buf.len() - before)
    }

    /// Fill one frame's plaintext, `plain[start..]`, with records: the spilled message first,
    /// then control, then streams and calls in turn.
    fn fill_frame(&mut self, plain: &mut Vec<u8>, start: usize) {
        loop {
            let room = MAX_FRAME_PLAINTEXT.saturating_sub(plain.len() - start);
            if room < 16 {
                return;
            }
            let (message, offset) = match self.spill.take() {
                Some(spill) => spill,
                None => match self.next_message() {
                    Some(next) => next,
                    None => return,
                },
            };
            let rest = message.len() - offset;
            let take = rest.min(room - 10);
            let more = take < rest;
            write_varint(plain, ((take as u64) << 1) | more as u64);
            plain.extend_from_slice(&message[offset..offset + take]);
            if more {
                self.spill = Some((message, offset + take));
                return;
            }
        }
    }

    /// The next message to send, as a buffer and where its encoding starts.
    fn next_message(&mut self) -> Option<(Vec<u8>, usize)> {
        if let Some(m) = self.control.pop_front() {
            return Some((m, 0));
        }
        if self.closing.is_some() {
            return None;
        }
        // Round robin: streams in id order from the cursor, with the call queue as the turn
        // after the last stream, so neither bulk data nor calls can starve the other.
        let ids: Vec<u64> =
            self.streams.range(self.cursor..).chain(self.streams.range(..self.cursor)).map(|(id, _)| *id).collect();
        for id in ids {
            let s = self.streams.get_mut(&id).expect("listed above");
            if s.phase != StreamPhase::Open || s.send_credit <= 0 || self.conn_send_credit <= 0 {
                continue;
            }
            if let Some(Queued { bytes, start, cost }) = s.queue.pop_front() {
                s.send_credit -= cost as i64;
                self.conn_send_credit -= cost as i64;
                self.cursor = id + 1;
                return Some((bytes, start));
            }
        }
        if self.conn_send_credit > 0
            && let Some((m, cost)) = self.calls.pop_front()
        {
            self.conn_send_credit -= cost as i64;
            self.cursor = 0;
            return Some((m, 0));
        }
        None
    }

    /// When [`Connection::handle_timeout`] must next be called. While a stamp is being solved
    /// this is the latest time passed in, so the caller calls again at once.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Duration> {
        match &self.phase {
            Phase::Closed => None,
            Phase::Handshaking(h) => Some(h.deadline()),
            Phase::Open(_) => {
                let timers =
                    (self.last_received + self.config.idle_timeout).min(self.last_sent + self.config.keepalive);
                Some(self.stamp_deadline().map_or(timers, |t| t.min(timers)))
            }
        }
    }

    /// Act on timers: handshake deadline, idle timeout, keepalive; then spend up to
    /// [`ConnectionConfig::solve_step`] compressions on stamps.
    pub fn handle_timeout(&mut self, now: Duration) {
        self.now = self.now.max(now);
        match &self.phase {
            Phase::Closed => {}
            Phase::Handshaking(h) => {
                if let Err(e) = h.handle_timeout(now) {
                    self.phase = Phase::Closed;
                    self.events.push_back(Event::Closed(ConnectionError::Handshake(e)));
                }
            }
            Phase::Open(_) => {
                if now >= self.last_received + self.config.idle_timeout {
                    self.phase = Phase::Closed;
                    self.events.push_back(Event::Closed(ConnectionError::IdleTimeout));
                } else if now >= self.last_sent + self.config.keepalive {
                    // Something queued will go out anyway; otherwise send a ping. Either way
                    // the keepalive timer moves on.
                    if self.control.is_empty() {
                        self.ping_nonce += 1;
                        self.queue_control(&Message::Ping { nonce: self.ping_nonce });
                    }
                    self.last_sent = now;
                }
                self.solve(now, self.config.solve_step);
            }
        }
    }
}

/// The encoding of `Stream { stream, payload }` up to the payload's bytes: that of an empty
/// payload with the payload's length in place of the final zero.
fn stream_header(stream: u64, payload_len: usize) -> Vec<u8> {
    let mut header = Message::Stream { stream, payload: &[] }.to_vec();
    header.pop();
    write_varint(&mut header, payload_len as u64);
    header
}

fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A canonical LEB128 varint: at most 10 bytes, no redundant final zero group.
fn read_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        let part = (b & 0x7f) as u64;
        if i == 9 && b > 1 {
            return None;
        }
        value |= part << (7 * i);
        if b & 0x80 == 0 {
            if i > 0 && b == 0 {
                return None;
            }
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_stream_header_and_payload_encode_the_stream_message(
            stream in any::<u64>(),
            payload in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut framed = stream_header(stream, payload.len());
            prop_assert!(framed.len() <= STREAM_HEADROOM);
            framed.extend_from_slice(&payload);
            prop_assert_eq!(framed, Message::Stream { stream, payload: &payload }.to_vec());
        }
    }

    #[test]
    fn a_header_for_the_largest_stream_and_length_fits_the_headroom() {
        let header = stream_header(u64::MAX, usize::MAX);
        assert_eq!(header.len(), STREAM_HEADROOM);
    }
}
