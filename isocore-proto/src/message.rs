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
/// BLAKE3 `derive_key` context of the digest a stamp pays for (`spec/proto.md` §10).
pub const STAMP_DIGEST_CONTEXT: &str = "isocore/proto/v1/stamp-digest";

/// The unsolicited message a `Busy` answers: a stream open or a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Unsolicited {
    /// The `Open` of this stream.
    Open(u64),
    /// The `Call` with this id.
    Call(u64),
}

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
        /// Proof of work (`spec/pow.md`), when the receiver did not ask for this feed.
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
        /// Proof of work (`spec/pow.md`), when the receiver asks for one.
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
    /// The receiver did not admit or dropped an unsolicited message: send it again, with a
    /// stamp of at least `price`, after `retry_after_ms`.
    Busy {
        /// The message answered.
        of: Unsolicited,
        /// Price in effort units to pay next time.
        price: u32,
        /// Milliseconds to wait.
        retry_after_ms: u32,
    },
    /// The sender's admission parameters for stamps addressed to it (`spec/pow.md` §8).
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
        // Sized up front: a payload of a quarter MiB would otherwise be copied as it grows.
        let payload = match self {
            Message::Stream { payload, .. } | Message::Call { payload, .. } | Message::Reply { payload, .. } => {
                payload.len()
            }
            _ => 0,
        };
        let mut out = Vec::with_capacity(payload + 128);
        self.encode(&mut out);
        out
    }

    /// The digest a stamp on this message pays for, in the session with handshake hash
    /// `handshake_hash`: `derive_key(STAMP_DIGEST_CONTEXT, H ‖ encoding with stamp = None)`.
    pub fn stamp_digest(&self, handshake_hash: &[u8; 32]) -> [u8; 32] {
        let unstamped = match *self {
            Message::Open { stream, discovery_key, proof, .. } => {
                Message::Open { stream, discovery_key, proof, stamp: None }
            }
            Message::Call { id, interface, method, payload, .. } => {
                Message::Call { id, interface, method, payload, stamp: None }
            }
            ref other => other.clone(),
        };
        let mut hasher = blake3::Hasher::new_derive_key(STAMP_DIGEST_CONTEXT);
        hasher.update(handshake_hash);
        hasher.update(&unstamped.to_vec());
        *hasher.finalize().as_bytes()
    }

    /// The stamp carried, if any.
    pub fn stamp(&self) -> Option<&'a [u8]> {
        match self {
            Message::Open { stamp, .. } | Message::Call { stamp, .. } => *stamp,
            _ => None,
        }
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

/// [`Message::stamp_digest`] of the `Open` or `Call` whose canonical encoding is `encoded`,
/// without copying it: the stamp is the last field, so the unstamped encoding is the bytes
/// before the stamp's `Some` tag followed by the `None` tag.
pub(crate) fn stamp_digest_of_encoded(handshake_hash: &[u8; 32], encoded: &[u8], stamp: Option<&[u8]>) -> [u8; 32] {
    let prefix = match stamp {
        None => encoded.len() - 1,
        Some(s) => encoded.len() - s.len() - varint_len(s.len() as u64) - 1,
    };
    let mut hasher = blake3::Hasher::new_derive_key(STAMP_DIGEST_CONTEXT);
    hasher.update(handshake_hash);
    hasher.update(&encoded[..prefix]);
    hasher.update(&[0]);
    *hasher.finalize().as_bytes()
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_encoded_matches_the_definition() {
        let hash = [9; 32];
        let stamp = [0x11; 41];
        let long = [0x22; 128];
        let messages = [
            Message::Open { stream: 1, discovery_key: [1; 32], proof: [2; 32], stamp: None },
            Message::Open { stream: 1, discovery_key: [1; 32], proof: [2; 32], stamp: Some(&stamp) },
            Message::Call { id: 300, interface: [3; 32], method: "m", payload: &[5; 200], stamp: Some(&long) },
            Message::Call { id: 300, interface: [3; 32], method: "m", payload: &[5; 200], stamp: None },
        ];
        for m in &messages {
            let bytes = m.to_vec();
            let decoded = Message::decode(&bytes).unwrap();
            assert_eq!(stamp_digest_of_encoded(&hash, &bytes, decoded.stamp()), m.stamp_digest(&hash), "{m:?}");
        }
        // The stamp does not enter the digest; the session and every other field do.
        assert_eq!(messages[0].stamp_digest(&hash), messages[1].stamp_digest(&hash));
        assert_ne!(messages[0].stamp_digest(&hash), messages[0].stamp_digest(&[8; 32]));
        assert_ne!(messages[0].stamp_digest(&hash), messages[2].stamp_digest(&hash));
    }
}
