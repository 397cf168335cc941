//! The Isocore session.
//!
//! Two nodes talk over one connection: a Noise XX handshake that authenticates each side's
//! Ed25519 identity, then encrypted frames that carry many feed-replication streams, RPC
//! calls in both directions and control messages, under credit-based flow control. Client and
//! server run the same code. The crate is sans-IO: bytes, time and randomness are arguments.
//! The normative description is `spec/proto.md`.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod cipher;
mod codec;
pub mod connection;
pub mod handshake;
pub mod message;

pub use codec::MAX_MESSAGE_LEN;
pub use connection::{Admit, Connection, ConnectionConfig, ConnectionError, Event, PeerPrice, STREAM_HEADROOM};
pub use handshake::{Handshake, HandshakeConfig, HandshakeError, Identity, PeerId, Role};
pub use message::{Message, Unsolicited};
pub mod endpoint;
pub use endpoint::{ConnectionHandle, Endpoint, EndpointConfig, EndpointEvent};
