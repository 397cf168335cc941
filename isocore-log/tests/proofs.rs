//! The tree and its proofs against a naive model.

mod common;

use common::{entry, writer};
use isocore_log::hash::{leaf_hash, parent_hash, root_hash};
use isocore_log::{Feed, Hash, MemoryStore, ProofError, tree};
use proptest::prelude::*;

/// The root of `entries`, computed the slow, obvious way: split into power-of-two blocks,
/// largest first, hash each block recursively, fold.
fn model_root(entries: &[Vec<u8>]) -> Hash {
    fn block(entries: &[Vec<u8>]) -> Hash {
        if entries.len() == 1 {
            return leaf_hash(&entries[0]);
        }
        let (l, r) = entries.split_at(entries.len() / 2);
        parent_hash(&block(l), &block(r))
    }
    let mut roots = Vec::new();
    let mut rest = entries;
    while !rest.is_empty() {
        let size = 1usize << (usize::BITS - 1 - rest.len().leading_zeros());
        roots.push(block(&rest[..size]));
        rest = &rest[size..];
    }
    root_hash(entries.len() as u64, &roots)
}

fn feed_of(entries: &[Vec<u8>], batch: usize) -> Feed<MemoryStore> {
    let (signer, key) = writer(9);
    let mut feed = Feed::open(key, MemoryStore::new()).unwrap();
    for chunk in entries.chunks(batch.max(1)) {
        feed.append(&signer, chunk.iter().cloned()).unwrap();
    }
    feed
}

#[test]
fn single_entry_proof_in_a_million_entry_feed_is_twenty_hashes() {
    let (signer, key) = writer(10);
    let mut feed = Feed::open(key, MemoryStore::new()).unwrap();
    let entries: Vec<Vec<u8>> = (0..1u64 << 20).map(|i| i.to_le_bytes().to_vec()).collect();
    feed.append(&signer, entries).unwrap();
    for index in [0, 1, 12345, (1 << 20) - 1] {
        let proof = feed.prove_range(index, index + 1).unwrap().unwrap();
        assert!(proof.nodes.len() <= 21, "{} hashes", proof.nodes.len());
        assert_eq!(proof.nodes.len(), 20);
        proof.verify(&key, &[&(index).to_le_bytes()[..]]).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn root_matches_the_model(
        sizes in proptest::collection::vec(0usize..80, 1..70),
        batch in 1usize..20,
    ) {
        let entries: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, n)| entry(i as u64, *n)).collect();
        let feed = feed_of(&entries, batch);
        prop_assert_eq!(feed.head().unwrap().root, model_root(&entries));
        prop_assert_eq!(feed.len(), entries.len() as u64);
    }

    #[test]
    fn every_range_proof_verifies_and_every_byte_flip_is_caught(
        len in 1u64..200,
        a in any::<u64>(),
        b in any::<u64>(),
        flip in any::<proptest::sample::Index>(),
        bit in 0u8..8,
    ) {
        let entries: Vec<Vec<u8>> = (0..len).map(|i| entry(i, 1 + (i as usize % 9))).collect();
        let feed = feed_of(&entries, 7);
        let key = *feed.key();
        let (start, end) = { let (x, y) = (a % len, b % len); (x.min(y), x.max(y) + 1) };
        let proof = feed.prove_range(start, end).unwrap().unwrap();
        let slice: Vec<&[u8]> = entries[start as usize..end as usize].iter().map(|e| &e[..]).collect();
        proof.verify(&key, &slice).unwrap();

        // The proof is minimal: one hash per maximal subtree outside the range.
        let mut expected = Vec::new();
        tree::proof_nodes(&tree::ProofShape { base: 0, target: len, start, end }, &mut expected);
        prop_assert_eq!(proof.nodes.len(), expected.len());

        // Flip one bit anywhere in the entries, the nodes, or the head: always refused.
        let mut owned: Vec<Vec<u8>> = slice.iter().map(|e| e.to_vec()).collect();
        let entry_bytes: usize = owned.iter().map(Vec::len).sum();
        let total = entry_bytes + 32 * proof.nodes.len() + 32 + 64;
        let mut at = flip.index(total);
        let mut bad = proof.clone();
        if at < entry_bytes {
            for e in owned.iter_mut() {
                if at < e.len() { e[at] ^= 1 << bit; break; }
                at -= e.len();
            }
        } else if at < entry_bytes + 32 * proof.nodes.len() {
            at -= entry_bytes;
            bad.nodes[at / 32].0[at % 32] ^= 1 << bit;
        } else if at < entry_bytes + 32 * proof.nodes.len() + 32 {
            bad.head.root.0[at - entry_bytes - 32 * proof.nodes.len()] ^= 1 << bit;
        } else {
            bad.head.signature.0[at - entry_bytes - 32 * proof.nodes.len() - 32] ^= 1 << bit;
        }
        let refs: Vec<&[u8]> = owned.iter().map(|e| &e[..]).collect();
        prop_assert!(bad.verify(&key, &refs).is_err());
    }

    #[test]
    fn truncated_or_padded_proofs_are_refused(len in 2u64..300, index in any::<u64>()) {
        let entries: Vec<Vec<u8>> = (0..len).map(|i| entry(i, 4)).collect();
        let feed = feed_of(&entries, 3);
        let key = *feed.key();
        let i = index % len;
        let proof = feed.prove_range(i, i + 1).unwrap().unwrap();
        let e = [&entries[i as usize][..]];
        let mut short = proof.clone();
        if short.nodes.pop().is_some() {
            prop_assert_eq!(short.verify(&key, &e), Err(ProofError::TooFewNodes));
        }
        let mut long = proof.clone();
        long.nodes.push(Hash([0; 32]));
        prop_assert_eq!(long.verify(&key, &e), Err(ProofError::TooManyNodes));
        // The entry moved to a neighbouring index does not verify either.
        let mut moved = proof.clone();
        moved.start = (i + 1) % len;
        prop_assert!(moved.verify(&key, &e).is_err());
    }
}
