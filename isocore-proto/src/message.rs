//! Session messages: what travels inside the encrypted frames (`spec/proto.md` §5).

use crate::codec::{self, MAX_MESSAGE_LEN};
use isocore_log::DecodeError;
use serde::{Deserialize, Serialize};

/// Longest RPC method name, in bytes.
pub const MAX_METHOD_LEN: usize = 64;
/// Longest close or failure reason, in bytes.
pub const MAX_REASON_LEN: usize = 256;
/// Longest proof-of-work stamp carried in a message, in bytes.
pub const MAX_STAMP_LEN: usize = 128;

/// One session message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message<'a> {
    /// Open stream `stream` to replicate the feed with this discovery key. `proof` shows the
    /// opener knows the feed key (`spec/proto.md` §6.1).
    Open {
        /// Odd when the handshake initiator opens it, even otherwise.
        stream: u64,
        /// The feed's discovery key.
        discovery_key: [u8; 32],
        /// Keyed hash of the handshake hash and the stream id under the feed key.
        proof: [u8; 32],
        /// Proof of work, when the opener has no credit with the receiver (reserved).
        stamp: Option<&'a [u8]>,
    },
    /// The stream is accepted.
    Accept {
        /// The stream.
        stream: u64,
    },
    /// The stream is refused or ended, with a code from the stream code table.
    Reset {
        /// The stream.
        stream: u64,
        /// Why.
        code: u16,
    },
    /// A replication message on a stream.
    Stream {
        /// The stream.
        stream: u64,
        /// One `isocore-log` message.
        #[serde(with = "serde_bytes")]
        payload: &'a [u8],
    },
    /// Permission to send `bytes` more payload bytes on `stream` (0 = the whole connection).
    Credit {
        /// The stream, or 0 for the connection.
        stream: u64,
        /// Additional bytes allowed.
        bytes: u64,
    },
    /// Call a method of an interface.
    Call {
        /// Chosen by the caller, unique among its outstanding calls.
        id: u64,
        /// Interface id (a component interface digest).
        interface: [u8; 32],
        /// Method name.
        method: &'a str,
        /// Arguments.
        #[serde(with = "serde_bytes")]
        payload: &'a [u8],
        /// Proof of work for an unsolicited call (reserved).
        stamp: Option<&'a [u8]>,
    },
    /// A call's result.
    Reply {
        /// The call.
        id: u64,
        /// The result.
        #[serde(with = "serde_bytes")]
        payload: &'a [u8],
    },
    /// A call failed.
    Fail {
        /// The call.
        id: u64,
        /// Application or protocol code.
        code: u16,
        /// Human-readable reason.
        reason: &'a str,
    },
    /// The caller no longer wants the result.
    CancelCall {
        /// The call.
        id: u64,
    },
    /// Are you there?
    Ping {
        /// Echoed in the pong.
        nonce: u64,
    },
    /// Yes.
    Pong {
        /// From the ping.
        nonce: u64,
    },
    /// The sender is closing the connection.
    Close {
        /// From the connection code table.
        code: u16,
        /// Human-readable reason.
        reason: &'a str,
    },
    /// Overloaded: the message was not served; retry with a stamp of at least `price` (reserved).
    Busy {
        /// Required work.
        price: u32,
        /// Milliseconds to wait.
        retry_after_ms: u32,
    },
    /// The receiver's admission price and epoch seed (reserved).
    Price {
        /// Current epoch.
        epoch: u32,
        /// Seed for stamps in this epoch.
        seed: [u8; 32],
        /// Current price.
        price: u32,
    },
}

impl<'a> Message<'a> {
    /// Append the encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        isocore_log::encode_into(self, out);
    }

    /// The encoding.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decode strictly, then check bounds.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let message: Message<'a> = codec::decode(bytes)?;
        let ok = match &message {
            Message::Open { stamp, .. } => stamp.is_none_or(|s| s.len() <= MAX_STAMP_LEN),
            Message::Call { method, stamp, payload, .. } => {
                method.len() <= MAX_METHOD_LEN
                    && stamp.is_none_or(|s| s.len() <= MAX_STAMP_LEN)
                    && payload.len() <= MAX_MESSAGE_LEN
            }
            Message::Fail { reason, .. } | Message::Close { reason, .. } => reason.len() <= MAX_REASON_LEN,
            Message::Stream { stream, .. } | Message::Accept { stream } | Message::Reset { stream, .. } => *stream != 0,
            _ => true,
        };
        ok.then_some(message).ok_or(DecodeError::OutOfBounds)
    }
}
