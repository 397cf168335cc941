//! Checking Merkle proofs: recompute a target length's roots from entries, supplied sibling
//! hashes and the roots the verifier already holds.

use crate::hash::{Hash, parent_hash};
use crate::tree::{self, ProofShape, Step};

/// Why a proof did not check out. Every variant is the prover's fault except
/// [`ProofError::MissingLocalNode`], which means the verifier's own store lacks a node it
/// should have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProofError {
    /// The range, base and target lengths do not fit together.
    InvalidShape,
    /// The number of entries differs from the proven range.
    WrongEntryCount,
    /// Fewer sibling hashes than the shape requires.
    TooFewNodes,
    /// More sibling hashes than the shape requires.
    TooManyNodes,
    /// The recomputed root hash differs from the one signed (or held).
    RootMismatch,
    /// The verifier's store lacks a node at this index.
    MissingLocalNode(u64),
    /// The head's signature does not verify against the feed's writer.
    BadSignature,
}

impl core::fmt::Display for ProofError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ProofError::InvalidShape => f.write_str("proof range does not fit its lengths"),
            ProofError::WrongEntryCount => f.write_str("entry count differs from the proven range"),
            ProofError::TooFewNodes => f.write_str("proof has too few nodes"),
            ProofError::TooManyNodes => f.write_str("proof has too many nodes"),
            ProofError::RootMismatch => f.write_str("proof does not lead to the signed root"),
            ProofError::MissingLocalNode(i) => write!(f, "local store lacks tree node {i}"),
            ProofError::BadSignature => f.write_str("head signature does not verify"),
        }
    }
}

impl core::error::Error for ProofError {}

/// The outcome of a proof walk: every node value it touched, sorted by index.
#[derive(Debug)]
pub(crate) struct Proven {
    pub nodes: Vec<(u64, Hash)>,
    pub roots: Vec<Hash>,
}

impl Proven {
    pub fn get(&self, index: u64) -> Option<Hash> {
        self.nodes.binary_search_by_key(&index, |(i, _)| *i).ok().map(|at| self.nodes[at].1)
    }
}

/// Recompute the roots of `shape.target` from the leaves of `[start, end)`, the supplied
/// sibling hashes (in walk order) and `known`, which returns the verifier's stored roots of
/// `shape.base` for a range proof.
pub(crate) fn evaluate(
    shape: &ProofShape,
    leaves: &[Hash],
    supplied: &[Hash],
    known: impl Fn(u64) -> Option<Hash>,
) -> Result<Proven, ProofError> {
    if !shape.is_valid() {
        return Err(ProofError::InvalidShape);
    }
    if leaves.len() as u64 != shape.end - shape.start {
        return Err(ProofError::WrongEntryCount);
    }
    struct Walk<'a, K> {
        shape: &'a ProofShape,
        leaves: &'a [Hash],
        supplied: core::slice::Iter<'a, Hash>,
        known: K,
        nodes: Vec<(u64, Hash)>,
    }
    impl<K: Fn(u64) -> Option<Hash>> Walk<'_, K> {
        fn value(&mut self, node: u64, top: bool) -> Result<Hash, ProofError> {
            let hash = match tree::step(self.shape, node, top) {
                Step::Known => return (self.known)(node).ok_or(ProofError::MissingLocalNode(node)),
                Step::Supply => *self.supplied.next().ok_or(ProofError::TooFewNodes)?,
                Step::Compute if tree::depth(node) == 0 => {
                    self.leaves[(tree::span(node).0 - self.shape.start) as usize]
                }
                Step::Compute | Step::Descend => {
                    let (l, r) = tree::children(node).expect("leaves are handled above");
                    let left = self.value(l, false)?;
                    let right = self.value(r, false)?;
                    parent_hash(&left, &right)
                }
            };
            self.nodes.push((node, hash));
            Ok(hash)
        }
    }
    let mut walk = Walk {
        shape,
        leaves,
        supplied: supplied.iter(),
        known,
        nodes: Vec::with_capacity(2 * leaves.len() + supplied.len() + 64),
    };
    let mut roots = Vec::with_capacity(64);
    for root in tree::roots(shape.target) {
        roots.push(walk.value(root, true)?);
    }
    if walk.supplied.next().is_some() {
        return Err(ProofError::TooManyNodes);
    }
    let mut nodes = walk.nodes;
    nodes.sort_unstable_by_key(|(i, _)| *i);
    Ok(Proven { nodes, roots })
}

/// A self-contained proof that some entries are in a feed: the signed head, the index of the
/// first entry, and the sibling hashes of a proof from length 0 (`spec/log.md` §5.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeProof {
    /// The head the entries are proven against.
    pub head: crate::head::SignedHead,
    /// Index of the first entry.
    pub start: u64,
    /// Sibling hashes in walk order.
    pub nodes: Vec<Hash>,
}

impl RangeProof {
    /// Check that `entries` sit at `start..` in the feed `key` as of `head`.
    pub fn verify(&self, key: &crate::head::FeedKey, entries: &[&[u8]]) -> Result<(), ProofError> {
        let end = self.start.checked_add(entries.len() as u64).ok_or(ProofError::InvalidShape)?;
        let shape = ProofShape { base: 0, target: self.head.length, start: self.start, end };
        let leaves: Vec<Hash> = entries.iter().map(|e| crate::hash::leaf_hash(e)).collect();
        let proven = evaluate(&shape, &leaves, &self.nodes, |_| None)?;
        if crate::hash::root_hash(self.head.length, &proven.roots) != self.head.root {
            return Err(ProofError::RootMismatch);
        }
        self.head.verify(key).map_err(|_| ProofError::BadSignature)
    }
}
