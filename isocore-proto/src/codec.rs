//! Canonical postcard encoding shared by the handshake and the session.

pub use isocore_log::Signature as Bytes64;
use isocore_log::{DecodeError, decode_canonical};
use serde::{Deserialize, Serialize};

/// Largest session message, in bytes: a full replication message plus its envelope.
pub const MAX_MESSAGE_LEN: usize = isocore_log::MAX_MESSAGE_LEN + 1024;

/// Decode strictly (see `spec/proto.md` §5).
pub fn decode<'a, T: Deserialize<'a> + Serialize>(bytes: &'a [u8]) -> Result<T, DecodeError> {
    decode_canonical(bytes, MAX_MESSAGE_LEN)
}
