//! Revocation records and the grow-only set a verifier consults.
//!
//! ```text
//! Revocation := version:u8 (1) ‖ subject:[32] ‖ target:[32] ‖ revoker:[32] ‖ watermark:varint
//!               ‖ signature:[64]
//! ```
//!
//! A record revokes the link `target` in chains over `subject` (a channel id or node key). It
//! takes effect in a chain only if `revoker` is the subject's own key or the issuer of the
//! target link or of a link above it: whoever granted authority may take it back, nobody
//! below may. Records are signed over their exact bytes under their own context, so no other
//! signature can stand in for one.
//!
//! The set only grows and a verdict depends on what it holds, not on the order records
//! arrived in, so replicas that hold the same records agree.

use crate::error::{DecodeError, Refused};
use crate::wire::{Reader, put_varint};
use crate::{KeyCache, LinkId, VERSION, context};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use ed25519_dalek::{Signature, Signer, SigningKey};

/// Longest encoded revocation (fixed fields plus the longest varint).
pub const MAX_REVOCATION_LEN: usize = 1 + 32 * 3 + 10 + 64;

/// A decoded revocation whose signature has not been checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// The channel id or node key whose chains it applies to.
    pub subject: [u8; 32],
    /// The revoked link.
    pub target: LinkId,
    /// Who signed it.
    pub revoker: [u8; 32],
    /// Entries the revoked holder wrote below this position in its feed stay valid.
    pub watermark: u64,
}

impl Revocation {
    /// Encodes and signs a revocation by `revoker`.
    pub fn sign(subject: [u8; 32], target: LinkId, watermark: u64, revoker: &SigningKey) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_REVOCATION_LEN);
        out.push(VERSION);
        out.extend_from_slice(&subject);
        out.extend_from_slice(&target.0);
        out.extend_from_slice(&revoker.verifying_key().to_bytes());
        put_varint(&mut out, watermark);
        let signature = revoker.sign(&signed_message(&out));
        out.extend_from_slice(&signature.to_bytes());
        out
    }

    /// Strictly decodes a record, returning it, its signed body and its signature.
    pub fn decode(bytes: &[u8]) -> Result<(Revocation, &[u8], [u8; 64]), DecodeError> {
        if bytes.len() > MAX_REVOCATION_LEN {
            return Err(DecodeError::TooLong { len: bytes.len(), max: MAX_REVOCATION_LEN });
        }
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(DecodeError::UnknownVersion(version));
        }
        let subject = r.array()?;
        let target = LinkId(r.array()?);
        let revoker = r.array()?;
        let watermark = r.varint()?;
        let body = &bytes[..r.position()];
        let signature = r.array()?;
        r.finish()?;
        Ok((Revocation { subject, target, revoker, watermark }, body, signature))
    }
}

fn signed_message(body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(context::REVOKE_SIG.len() + body.len());
    m.extend_from_slice(context::REVOKE_SIG);
    m.extend_from_slice(body);
    m
}

/// Identifies what a [`RevocationSet`] holds: the number of records and an order-free digest
/// of them. Caches keep the version they last checked against and look again when it
/// differs, so a cache used with several sets never mistakes one for another.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Version {
    /// Records held.
    pub count: u64,
    /// XOR of the BLAKE3 hashes of the records' bytes.
    pub digest: [u8; 32],
}

/// The revocations a verifier knows: grow-only, with a [`Version`] that changes whenever a
/// new record is added (so caches know to look again).
#[derive(Clone, Debug, Default)]
pub struct RevocationSet {
    by_target: BTreeMap<LinkId, Vec<Revocation>>,
    version: Version,
}

impl RevocationSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks a record's encoding and signature and adds it. Returns whether it was new.
    pub fn insert(&mut self, bytes: &[u8]) -> Result<bool, Refused> {
        let (record, body, signature) = Revocation::decode(bytes)?;
        let key = KeyCache::new(0).get(&record.revoker).ok_or(Refused::BadKey { link: 0 })?;
        key.verify_strict(&signed_message(body), &Signature::from_bytes(&signature))
            .map_err(|_| Refused::BadSignature { link: 0 })?;
        let records = self.by_target.entry(record.target).or_default();
        if records.contains(&record) {
            return Ok(false);
        }
        records.push(record);
        self.version.count += 1;
        for (d, h) in self.version.digest.iter_mut().zip(blake3::hash(bytes).as_bytes()) {
            *d ^= h;
        }
        Ok(true)
    }

    /// Changes whenever a record is added.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Number of records added so far.
    pub fn generation(&self) -> u64 {
        self.version.count
    }

    /// Number of records held.
    pub fn len(&self) -> usize {
        self.by_target.values().map(Vec::len).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.by_target.is_empty()
    }

    /// The first revoked link of a chain over `subject` whose link `i` was issued by
    /// `issuers[i]` and has id `links[i]`, with the lowest watermark any effective record set.
    pub fn find(&self, subject: &[u8; 32], issuers: &[[u8; 32]], links: &[LinkId]) -> Option<(usize, u64)> {
        if self.by_target.is_empty() {
            return None;
        }
        links.iter().enumerate().find_map(|(i, id)| {
            let records = self.by_target.get(id)?;
            records
                .iter()
                .filter(|r| &r.subject == subject && (&r.revoker == subject || issuers[..=i].contains(&r.revoker)))
                .map(|r| r.watermark)
                .min()
                .map(|w| (i, w))
        })
    }
}
