//! The replication messages and their canonical encoding.
//!
//! Messages are postcard-encoded (`spec/log.md` §7). Decoding is strict: the input must be at
//! most [`MAX_MESSAGE_LEN`] bytes, decode completely with no trailing bytes, and re-encode to
//! exactly the same bytes (which refuses overlong varints and any other second spelling of the
//! same value); then every length is checked against the limits below.

use crate::fork::ForkProof;
use crate::hash::Hash;
use crate::head::SignedHead;
use crate::tree::MAX_LENGTH;
use serde::{Deserialize, Serialize};

/// Largest entry, in bytes.
pub const MAX_ENTRY_LEN: usize = 1 << 20;
/// Largest encoded message, in bytes. Checked before anything is decoded.
pub const MAX_MESSAGE_LEN: usize = 4 << 20;
/// Most entries in one `Data` message.
pub const MAX_ENTRIES_PER_MESSAGE: usize = 1 << 16;
/// Most hashes in one proof: two per tree level plus the roots.
pub const MAX_PROOF_NODES: usize = 3 * 64;
/// Most peers named in one `Redirect`.
pub const MAX_REDIRECT_PEERS: usize = 16;
/// Longest contact (how a peer is named in a `Redirect`), in bytes.
pub const MAX_CONTACT_LEN: usize = 64;

/// One replication message for one feed between two peers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message<'a> {
    /// My verified head, and that I hold every entry below `contiguous`.
    Have {
        /// The head.
        head: SignedHead,
        /// Entries `[0, contiguous)` are stored here and can be served.
        contiguous: u64,
    },
    /// Send entries `[start, end)` proven against my verified length `base`; with `upgrade`,
    /// also bring me up to your head. `start == end` asks for an upgrade alone.
    Request {
        /// Chosen by the requester; echoed in the answer.
        id: u64,
        /// A length the requester has verified and holds the roots of.
        base: u64,
        /// First entry wanted.
        start: u64,
        /// One past the last entry wanted.
        end: u64,
        /// Whether to prove the responder's newer head too.
        upgrade: bool,
    },
    /// Entries `[start, start + entries.len())` with the proof nodes that tie them to
    /// `head` (or, when `head` is absent, to the receiver's own roots of `base`).
    Data {
        /// The request answered, or 0 for a push to a subscriber.
        id: u64,
        /// The receiver's verified length the proof builds on.
        base: u64,
        /// A newer head, longer than `base`, proven by this message.
        head: Option<SignedHead>,
        /// The sender holds every entry below this (as in `Have`).
        contiguous: u64,
        /// Index of the first entry.
        start: u64,
        /// The entries.
        #[serde(borrow, serialize_with = "serialize_entries")]
        entries: Vec<&'a [u8]>,
        /// Proof nodes in walk order (`spec/log.md` §5).
        nodes: Vec<Hash>,
    },
    /// The request cannot be served here.
    NoData {
        /// The request refused.
        id: u64,
    },
    /// Push new entries to me as they are appended.
    Subscribe,
    /// Stop pushing.
    Unsubscribe,
    /// Forget request `id`.
    Cancel {
        /// The request withdrawn.
        id: u64,
    },
    /// The writer forked: here is the evidence.
    Fork(ForkProof),
    /// I serve as many subscribers of this feed as I will; these peers replicate it. The
    /// sender pushes nothing to this subscriber and answers its requests with `NoData`.
    Redirect {
        /// Contacts of peers that hold the feed, best first (`spec/log.md` §8.6).
        #[serde(borrow, serialize_with = "serialize_entries")]
        peers: Vec<&'a [u8]>,
    },
}

/// Entries as byte strings in one call each, not byte by byte (the encoding is the same).
fn serialize_entries<S: serde::Serializer>(entries: &[&[u8]], serializer: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = serializer.serialize_seq(Some(entries.len()))?;
    for entry in entries {
        seq.serialize_element(serde_bytes::Bytes::new(entry))?;
    }
    seq.end()
}

/// Why bytes were refused as a message. Always the sender's fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Longer than [`MAX_MESSAGE_LEN`].
    TooLong,
    /// Not a message at all (truncated, unknown tag, bad value).
    Malformed,
    /// Bytes left over after the message.
    TrailingBytes,
    /// A valid message, spelled in a non-canonical way (an overlong varint, say).
    NonCanonical,
    /// A field is outside its stated limit.
    OutOfBounds,
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            DecodeError::TooLong => "message exceeds the maximum length",
            DecodeError::Malformed => "message is malformed",
            DecodeError::TrailingBytes => "message has trailing bytes",
            DecodeError::NonCanonical => "message is not canonically encoded",
            DecodeError::OutOfBounds => "message field out of bounds",
        })
    }
}

impl core::error::Error for DecodeError {}

impl<'a> Message<'a> {
    /// Append the encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_into(self, out);
    }

    /// The encoding as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decode one message strictly. Entries borrow from `bytes`.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let message: Message<'a> = decode_canonical(bytes, MAX_MESSAGE_LEN)?;
        message.check_bounds()?;
        Ok(message)
    }

    fn check_bounds(&self) -> Result<(), DecodeError> {
        let ok = match self {
            Message::Have { head, contiguous } => head.length <= MAX_LENGTH && *contiguous <= head.length,
            Message::Request { base, start, end, .. } => start <= end && *end <= MAX_LENGTH && *base <= MAX_LENGTH,
            Message::Data { base, head, contiguous, start, entries, nodes, .. } => {
                let target = head.map_or(*base, |h| h.length);
                *contiguous <= MAX_LENGTH
                    && entries.len() <= MAX_ENTRIES_PER_MESSAGE
                    && nodes.len() <= MAX_PROOF_NODES
                    && entries.iter().all(|e| e.len() <= MAX_ENTRY_LEN)
                    && target <= MAX_LENGTH
                    && head.is_none_or(|h| h.length > *base)
                    && start.checked_add(entries.len() as u64).is_some_and(|end| end <= target)
            }
            Message::Fork(proof) => proof.first_roots.len() <= 64 && proof.second_nodes.len() <= MAX_PROOF_NODES,
            Message::Redirect { peers } => {
                peers.len() <= MAX_REDIRECT_PEERS && peers.iter().all(|p| !p.is_empty() && p.len() <= MAX_CONTACT_LEN)
            }
            Message::NoData { .. } | Message::Subscribe | Message::Unsubscribe | Message::Cancel { .. } => true,
        };
        ok.then_some(()).ok_or(DecodeError::OutOfBounds)
    }
}

/// Append the postcard encoding of `value` to `out`.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    let taken = core::mem::take(out);
    *out = postcard::to_extend(value, taken).expect("writing to a Vec cannot fail");
}

/// Decode a postcard value strictly: at most `max_len` bytes (checked first), no trailing
/// bytes, and the value must re-encode to exactly `bytes`. Bounds on fields are the caller's.
pub fn decode_canonical<'a, T>(bytes: &'a [u8], max_len: usize) -> Result<T, DecodeError>
where
    T: Deserialize<'a> + Serialize,
{
    if bytes.len() > max_len {
        return Err(DecodeError::TooLong);
    }
    let (value, rest): (T, _) = postcard::take_from_bytes(bytes).map_err(|_| DecodeError::Malformed)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes);
    }
    if postcard::serialize_with_flavor(&value, Compare { expected: bytes, at: 0 }).is_err() {
        return Err(DecodeError::NonCanonical);
    }
    Ok(value)
}

/// A postcard output that compares against the input instead of writing, so checking that a
/// message is canonical costs no allocation.
struct Compare<'a> {
    expected: &'a [u8],
    at: usize,
}

impl postcard::ser_flavors::Flavor for Compare<'_> {
    type Output = ();

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.try_extend(&[byte])
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        let end = self.at + bytes.len();
        if self.expected.get(self.at..end) != Some(bytes) {
            return Err(postcard::Error::SerializeBufferFull);
        }
        self.at = end;
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        if self.at == self.expected.len() { Ok(()) } else { Err(postcard::Error::SerializeBufferFull) }
    }
}
