//! Flat-tree (in-order) indexing of the Merkle tree over a feed's entries.
//!
//! Entry `i` is leaf `2i`. A node at depth `d` (leaves have depth 0) and offset `o` among the
//! nodes of its depth has index `o·2^(d+1) + 2^d − 1`, so every node sits between its two
//! children and a node's depth is the number of trailing one bits of its index. A feed of
//! length `n` has one *root* per set bit of `n`: the complete subtrees that cover `[0, n)`,
//! largest (leftmost) first. Complete nodes never change once written, which is what lets any
//! replica serve proofs from whatever it has stored.

/// The largest length a feed may reach: indices then still fit in 63 bits.
pub const MAX_LENGTH: u64 = 1 << 62;

/// Depth of a node: 0 for leaves.
pub fn depth(index: u64) -> u32 {
    index.trailing_ones()
}

/// Offset of a node among the nodes of its depth.
pub fn offset(index: u64) -> u64 {
    index >> (depth(index) + 1)
}

/// Index of the node at `depth` and `offset`.
pub fn index(depth: u32, offset: u64) -> u64 {
    (offset << (depth + 1)) | ((1u64 << depth) - 1)
}

/// Index of the leaf that holds entry `entry`.
pub fn leaf(entry: u64) -> u64 {
    entry * 2
}

/// The range of entries `[start, end)` that a node covers.
pub fn span(index: u64) -> (u64, u64) {
    let d = depth(index);
    let o = offset(index);
    (o << d, (o + 1) << d)
}

/// The two children of a node, or `None` for a leaf.
pub fn children(index: u64) -> Option<(u64, u64)> {
    match depth(index) {
        0 => None,
        d => {
            let half = 1u64 << (d - 1);
            Some((index - half, index + half))
        }
    }
}

/// The roots of a feed of `length` entries, left to right (which is also ascending index).
pub fn roots(length: u64) -> impl Iterator<Item = u64> {
    let mut start = 0u64;
    (0..64u32).rev().filter_map(move |bit| {
        let size = 1u64 << bit;
        (length & size != 0).then(|| {
            let root = index(bit, start >> bit);
            start += size;
            root
        })
    })
}

/// Which proof a [`proof_nodes`] walk builds; see `spec/log.md` §5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProofShape {
    /// The length the verifier has already verified (its roots are known to it).
    pub base: u64,
    /// The length being proven: equal to `base` for a range proof, larger for an upgrade.
    pub target: u64,
    /// First entry whose leaf the verifier hashes itself.
    pub start: u64,
    /// One past the last such entry.
    pub end: u64,
}

impl ProofShape {
    /// Whether the shape is well formed: `start ≤ end ≤ target`, `base ≤ target ≤ MAX_LENGTH`,
    /// and a range proof (`base == target`) proves entries the verifier's length covers.
    pub fn is_valid(&self) -> bool {
        self.start <= self.end && self.end <= self.target && self.base <= self.target && self.target <= MAX_LENGTH
    }

    fn covered(&self, (s, e): (u64, u64)) -> bool {
        self.start < self.end && self.start <= s && e <= self.end
    }

    fn disjoint(&self, (s, e): (u64, u64)) -> bool {
        self.start == self.end || e <= self.start || s >= self.end
    }

    fn crosses_base(&self, (s, e): (u64, u64)) -> bool {
        s < self.base && self.base < e
    }
}

/// What the proof walk does at one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// The verifier hashes this node from the entries it received.
    Compute,
    /// The verifier already holds this node (a root of `base` in a range proof).
    Known,
    /// The prover sends this node's hash.
    Supply,
    /// Descend into both children.
    Descend,
}

/// Decide what to do at `node`; `top` says whether it is a root of the target length.
pub(crate) fn step(shape: &ProofShape, node: u64, top: bool) -> Step {
    let span = span(node);
    if shape.covered(span) {
        Step::Compute
    } else if shape.disjoint(span) {
        if shape.base == shape.target {
            if top { Step::Known } else { Step::Supply }
        } else if shape.crosses_base(span) {
            Step::Descend
        } else {
            Step::Supply
        }
    } else {
        Step::Descend
    }
}

/// The indices of the nodes a prover sends for `shape`, in the order they are sent
/// (ascending index). Appends to `out`.
pub fn proof_nodes(shape: &ProofShape, out: &mut Vec<u64>) {
    fn walk(shape: &ProofShape, node: u64, top: bool, out: &mut Vec<u64>) {
        match step(shape, node, top) {
            Step::Compute | Step::Known => {}
            Step::Supply => out.push(node),
            Step::Descend => {
                let (l, r) = children(node).expect("a leaf is always covered or disjoint");
                walk(shape, l, false, out);
                walk(shape, r, false, out);
            }
        }
    }
    for root in roots(shape.target) {
        walk(shape, root, true, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_tree_layout() {
        // 0 1 2 3 4 5 6 ... with 1 = parent(0, 2), 3 = parent(1, 5), 5 = parent(4, 6).
        assert_eq!(children(1), Some((0, 2)));
        assert_eq!(children(3), Some((1, 5)));
        assert_eq!(children(5), Some((4, 6)));
        assert_eq!(span(3), (0, 4));
        assert_eq!(span(5), (2, 4));
        assert_eq!(roots(0).count(), 0);
        assert_eq!(roots(5).collect::<Vec<_>>(), vec![3, 8]);
        assert_eq!(roots(7).collect::<Vec<_>>(), vec![3, 9, 12]);
    }

    proptest! {
        #[test]
        fn roots_partition_the_feed(len in 0u64..1 << 40) {
            let mut next = 0;
            let mut last = None;
            for root in roots(len) {
                let (s, e) = span(root);
                prop_assert_eq!(s, next);
                next = e;
                prop_assert!(last.is_none_or(|l| l < root));
                last = Some(root);
            }
            prop_assert_eq!(next, len);
        }

        #[test]
        fn children_split_their_parent(depth in 1u32..40, offset in 0u64..1 << 20) {
            let node = index(depth, offset);
            let (l, r) = children(node).unwrap();
            let (s, e) = span(node);
            prop_assert_eq!(span(l), (s, (s + e) / 2));
            prop_assert_eq!(span(r), ((s + e) / 2, e));
            prop_assert!(l < node && node < r);
        }
    }
}
