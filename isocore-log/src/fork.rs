//! Fork proofs: two signed heads of one writer that cannot both be true.

use crate::hash::{Hash, root_hash};
use crate::head::{FeedKey, SignedHead};
use crate::proof::{self, Proven};
use crate::tree::{self, ProofShape};
use serde::{Deserialize, Serialize};

/// Evidence that a writer signed two incompatible states of its feed.
///
/// `first.length <= second.length`. When the lengths are equal, two different roots are the
/// whole proof. Otherwise `first_roots` are the first head's tree roots, and `second_nodes`
/// are an upgrade proof from `first.length` to `second.length` (`spec/log.md` §5.3): the second
/// head's values at the first head's root positions, then the nodes right of them. The two
/// disagree on at least one root position, and both heads verify.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkProof {
    /// The channel id of the feed.
    pub channel: [u8; 32],
    /// The writer's public key.
    pub writer: [u8; 32],
    /// The shorter (or equal) head.
    pub first: SignedHead,
    /// The longer (or equal) head.
    pub second: SignedHead,
    /// The roots of `first`, left to right.
    pub first_roots: Vec<Hash>,
    /// The upgrade proof of `second` over `first.length`.
    pub second_nodes: Vec<Hash>,
}

/// Why a fork proof was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForkProofError {
    /// The writer key is not a valid Ed25519 point.
    BadKey,
    /// A head's signature does not verify.
    BadSignature,
    /// `first` is longer than `second`.
    Misordered,
    /// The node lists have the wrong size or do not lead to the signed roots.
    BadNodes,
    /// The two heads agree: no fork.
    Consistent,
    /// The proof is for another feed than the one asked about.
    WrongFeed,
}

impl core::fmt::Display for ForkProofError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ForkProofError::BadKey => "fork proof names an invalid writer key",
            ForkProofError::BadSignature => "fork proof head signature does not verify",
            ForkProofError::Misordered => "fork proof heads are out of order",
            ForkProofError::BadNodes => "fork proof nodes do not match the signed roots",
            ForkProofError::Consistent => "fork proof heads are consistent",
            ForkProofError::WrongFeed => "fork proof is for another feed",
        })
    }
}

impl core::error::Error for ForkProofError {}

impl ForkProof {
    /// Check the proof on its own, with no other state. Returns the feed it convicts.
    pub fn verify(&self) -> Result<FeedKey, ForkProofError> {
        let key = FeedKey::from_bytes(self.channel, &self.writer).map_err(|_| ForkProofError::BadKey)?;
        let (n, m) = (self.first.length, self.second.length);
        if n > m {
            return Err(ForkProofError::Misordered);
        }
        if m > tree::MAX_LENGTH {
            return Err(ForkProofError::BadNodes);
        }
        if n == m {
            if !self.first_roots.is_empty() || !self.second_nodes.is_empty() {
                return Err(ForkProofError::BadNodes);
            }
            if self.first.root == self.second.root {
                return Err(ForkProofError::Consistent);
            }
        } else {
            if self.first_roots.len() != tree::roots(n).count() || root_hash(n, &self.first_roots) != self.first.root {
                return Err(ForkProofError::BadNodes);
            }
            let proven = upgrade(n, m, &self.second_nodes)?;
            if root_hash(m, &proven.roots) != self.second.root {
                return Err(ForkProofError::BadNodes);
            }
            let agrees = tree::roots(n).zip(&self.first_roots).all(|(i, h)| proven.get(i) == Some(*h));
            if agrees {
                return Err(ForkProofError::Consistent);
            }
        }
        for head in [&self.first, &self.second] {
            head.verify(&key).map_err(|_| ForkProofError::BadSignature)?;
        }
        Ok(key)
    }

    /// Check the proof and that it convicts `key`.
    pub fn verify_for(&self, key: &FeedKey) -> Result<(), ForkProofError> {
        if self.verify()? != *key {
            return Err(ForkProofError::WrongFeed);
        }
        Ok(())
    }

    /// Build a proof from our head (`first`, with its roots) and a conflicting head whose
    /// tree values `proven` were recomputed while checking it.
    pub(crate) fn from_conflict(
        key: &FeedKey,
        first: SignedHead,
        first_roots: Vec<Hash>,
        second: SignedHead,
        second_values: &Proven,
    ) -> Option<Self> {
        let (second_nodes, first_roots) = if first.length == second.length {
            (Vec::new(), Vec::new())
        } else {
            let mut indices = Vec::new();
            tree::proof_nodes(&empty_upgrade(first.length, second.length), &mut indices);
            let nodes = indices.iter().map(|&i| second_values.get(i)).collect::<Option<Vec<_>>>()?;
            (nodes, first_roots)
        };
        let proof = ForkProof {
            channel: *key.channel(),
            writer: key.writer().to_bytes(),
            first,
            second,
            first_roots,
            second_nodes,
        };
        proof.verify().ok().map(|_| proof)
    }
}

fn empty_upgrade(base: u64, target: u64) -> ProofShape {
    ProofShape { base, target, start: base, end: base }
}

fn upgrade(n: u64, m: u64, nodes: &[Hash]) -> Result<Proven, ForkProofError> {
    proof::evaluate(&empty_upgrade(n, m), &[], nodes, |_| None).map_err(|_| ForkProofError::BadNodes)
}
