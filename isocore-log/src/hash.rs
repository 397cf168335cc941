//! BLAKE3 hashing of leaves, parents and the folded root, each under its own key.
//!
//! Every key is `BLAKE3.derive_key(context, "")` for a context of the form
//! `isocore/log/v1/<purpose>`; hashes are then `BLAKE3.keyed_hash(key, input)`. A leaf can
//! therefore never be mistaken for a parent or a root, and the keys are computed once.

use core::fmt;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// Length in bytes of every hash in the log.
pub const HASH_LEN: usize = 32;

/// Key-derivation contexts, one per purpose. Listed in `spec/log.md` §2.
pub(crate) const LEAF_CONTEXT: &str = "isocore/log/v1/leaf";
pub(crate) const PARENT_CONTEXT: &str = "isocore/log/v1/parent";
pub(crate) const ROOT_CONTEXT: &str = "isocore/log/v1/root";
pub(crate) const DISCOVERY_CONTEXT: &str = "isocore/log/v1/discovery";

/// A 32-byte BLAKE3 hash of a tree node.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Hash(pub [u8; HASH_LEN]);

impl Hash {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

struct Keys {
    leaf: [u8; 32],
    parent: [u8; 32],
    root: [u8; 32],
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        leaf: blake3::derive_key(LEAF_CONTEXT, &[]),
        parent: blake3::derive_key(PARENT_CONTEXT, &[]),
        root: blake3::derive_key(ROOT_CONTEXT, &[]),
    })
}

/// Hash of one entry: the leaf of the tree.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    Hash(*blake3::keyed_hash(&keys().leaf, entry).as_bytes())
}

/// Hash of a parent node from its two children.
pub fn parent_hash(left: &Hash, right: &Hash) -> Hash {
    let mut input = [0u8; 2 * HASH_LEN];
    input[..HASH_LEN].copy_from_slice(&left.0);
    input[HASH_LEN..].copy_from_slice(&right.0);
    Hash(*blake3::keyed_hash(&keys().parent, &input).as_bytes())
}

/// The root hash of a feed of `length` entries: its tree roots, largest first, folded into one.
pub fn root_hash<'a>(length: u64, roots: impl IntoIterator<Item = &'a Hash>) -> Hash {
    let mut hasher = blake3::Hasher::new_keyed(&keys().root);
    hasher.update(&length.to_le_bytes());
    for root in roots {
        hasher.update(&root.0);
    }
    Hash(*hasher.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_give_distinct_hashes_for_the_same_bytes() {
        let zero = Hash([0; 32]);
        let as_parent = parent_hash(&zero, &zero);
        let as_leaf = leaf_hash(&[0u8; 64]);
        assert_ne!(as_parent, as_leaf);
        assert_ne!(root_hash(0, []), leaf_hash(&0u64.to_le_bytes()));
    }
}
