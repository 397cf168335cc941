//! Feed identity and signed heads.

use crate::hash::{DISCOVERY_CONTEXT, HASH_LEN, Hash};
use core::fmt;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Prefix of every signed head's signed bytes (`spec/log.md` §4).
pub const HEAD_CONTEXT: &[u8] = b"isocore/log/v1/signed-head\0";

/// Length of the bytes a signed head's signature covers.
pub const SIGNABLE_LEN: usize = HEAD_CONTEXT.len() + 32 + 32 + 8 + HASH_LEN;

/// Who a feed belongs to: the channel it is part of and the key of its one writer.
///
/// A feed outside any channel uses its writer key as the channel id.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FeedKey {
    channel: [u8; 32],
    writer: VerifyingKey,
}

impl FeedKey {
    /// A feed of `writer` inside `channel`.
    pub fn new(channel: [u8; 32], writer: VerifyingKey) -> Self {
        FeedKey { channel, writer }
    }

    /// A feed that is its own channel.
    pub fn standalone(writer: VerifyingKey) -> Self {
        FeedKey { channel: writer.to_bytes(), writer }
    }

    /// Parse from the 32-byte channel id and the 32-byte writer key.
    pub fn from_bytes(channel: [u8; 32], writer: &[u8; 32]) -> Result<Self, ed25519_dalek::SignatureError> {
        Ok(FeedKey { channel, writer: VerifyingKey::from_bytes(writer)? })
    }

    /// The channel id.
    pub fn channel(&self) -> &[u8; 32] {
        &self.channel
    }

    /// The writer's public key.
    pub fn writer(&self) -> &VerifyingKey {
        &self.writer
    }

    /// The discovery key: names the feed on the wire without revealing its keys.
    pub fn discovery_key(&self) -> [u8; 32] {
        let mut material = [0u8; 64];
        material[..32].copy_from_slice(&self.channel);
        material[32..].copy_from_slice(self.writer.as_bytes());
        blake3::derive_key(DISCOVERY_CONTEXT, &material)
    }
}

impl fmt::Debug for FeedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FeedKey({:?}/{:?})", Hash(self.channel), Hash(self.writer.to_bytes()))
    }
}

/// An Ed25519 signature, 64 bytes on the wire.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({:?})", Hash(self.0[..32].try_into().expect("32 bytes")))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(64)?;
        for b in &self.0 {
            t.serialize_element(b)?;
        }
        t.end()
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Signature;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 signature bytes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Signature, A::Error> {
                let mut out = [0u8; 64];
                for (i, b) in out.iter_mut().enumerate() {
                    *b = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                Ok(Signature(out))
            }
        }
        d.deserialize_tuple(64, V)
    }
}

/// The writer's signature over the state of its feed at one length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHead {
    /// Number of entries.
    pub length: u64,
    /// The tree's roots folded into one hash.
    pub root: Hash,
    /// Ed25519 over [`SignedHead::signable`].
    pub signature: Signature,
}

impl SignedHead {
    /// The exact bytes the signature covers: context ‖ channel ‖ writer ‖ length (LE) ‖ root.
    pub fn signable(key: &FeedKey, length: u64, root: &Hash) -> [u8; SIGNABLE_LEN] {
        let mut out = [0u8; SIGNABLE_LEN];
        let mut at = 0;
        for part in [HEAD_CONTEXT, &key.channel, key.writer.as_bytes(), &length.to_le_bytes(), &root.0] {
            out[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        out
    }

    /// Sign `length` and `root` as the writer of `key`.
    pub(crate) fn sign(key: &FeedKey, signer: &SigningKey, length: u64, root: Hash) -> Self {
        let signature = signer.sign(&Self::signable(key, length, &root));
        SignedHead { length, root, signature: Signature(signature.to_bytes()) }
    }

    /// Check the signature strictly against the feed's writer.
    pub fn verify(&self, key: &FeedKey) -> Result<(), ed25519_dalek::SignatureError> {
        let signature = ed25519_dalek::Signature::from_bytes(&self.signature.0);
        key.writer.verify_strict(&Self::signable(key, self.length, &self.root), &signature)
    }
}
