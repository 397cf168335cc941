//! `cargo bench -p isocore-cap`: capability verification, caches, session handles and the key
//! ladder, each next to the primitive it is bounded by (Ed25519 `verify_strict`, BLAKE3
//! `derive_key`), measured in the same run. Ends with one JSON object on one line.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use ed25519_dalek::{Signature, Signer, VerifyingKey};
use isocore_cap::*;
use std::hint::black_box;
use std::time::Instant;

/// Median nanoseconds per call of `f` over `runs` runs of `iters` calls.
fn ns(runs: usize, iters: u32, mut f: impl FnMut()) -> f64 {
    let mut samples: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(iters)
        })
        .collect();
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[runs / 2]
}

fn main() {
    let w = World::new();
    let set = RevocationSet::new();
    let ctx = w.ctx(&set);
    let chain4 = build(&w.channel(), &signed(&four_links(&w)));
    let chain8 = {
        let keys = [&w.alice, &w.bob, &w.carol, &w.dave, &w.mallory, &w.alice, &w.bob, &w.carol];
        let links: Vec<_> = (0..8)
            .map(|i| (if i == 0 { w.root_key() } else { keys[i - 1].clone() }, body(keys[i], Mode::Read, 7 - i as u8)))
            .collect();
        build(&w.channel(), &signed(&links))
    };

    // Ceilings.
    let msg = [7u8; 160];
    let sig = w.alice.sign(&msg);
    let vk = w.alice.verifying_key();
    let verify_strict_ns = ns(9, 400, || {
        black_box(vk.verify_strict(black_box(&msg), &sig)).unwrap();
    });
    let decompress_ns = ns(9, 2000, || {
        black_box(VerifyingKey::from_bytes(black_box(&pk(&w.bob))).unwrap());
    });
    let derive_key_ns = ns(9, 200_000, || {
        black_box(blake3::derive_key("isocore/cap/v1/ladder/read", black_box(&[1u8; 32])));
    });
    let _ = Signature::from_bytes(&[0; 64]);

    // Decoding and cold verification.
    let decode4_ns = ns(9, 50_000, || {
        black_box(UnverifiedChain::decode(black_box(&chain4)).unwrap());
    });
    let decoded4 = UnverifiedChain::decode(&chain4).unwrap();
    let cold4_ns = ns(9, 100, || {
        black_box(verify(&decoded4, &ctx).unwrap());
    });
    // Cold chain, warm keys: what a node sees for a new chain from known issuers.
    let mut fresh = 0u64;
    let mut keyed = Verifier::new(VerifierConfig { cold_burst: u32::MAX, chains: 1, ..VerifierConfig::default() });
    let variants: Vec<Vec<u8>> = (0..64u64)
        .map(|i| {
            let mut links = four_links(&w);
            links[3].1.expires = Some(NOW + DAY + i);
            build(&w.channel(), &signed(&links))
        })
        .collect();
    keyed.verify(&[0; 32], &variants[0], &ctx).unwrap();
    let cold4_cached_keys_ns = ns(9, 64, || {
        fresh += 1;
        black_box(keyed.verify(&[0; 32], &variants[(fresh % 64) as usize], &ctx).unwrap());
    });
    let decoded8 = UnverifiedChain::decode(&chain8).unwrap();
    let cold8_ns = ns(9, 50, || {
        black_box(verify(&decoded8, &ctx).unwrap());
    });

    // Warm paths.
    let mut verifier = Verifier::default();
    verifier.verify(&[0; 32], &chain4, &ctx).unwrap();
    let warm_bytes_ns = ns(9, 100_000, || {
        black_box(verifier.verify(&[0; 32], black_box(&chain4), &ctx).unwrap());
    });
    let head = *verifier.verify(&[0; 32], &chain4, &ctx).unwrap().head();
    let warm_head_ns = ns(9, 200_000, || {
        black_box(verifier.by_head(black_box(&head), &ctx).unwrap().unwrap());
    });
    let mut session = SessionCaps::new([5; 32], 16);
    let proof = prove_possession(&w.dave, &[5; 32], &head);
    let handle = session.bind(&mut verifier, &pk(&w.dave), &chain4, &proof, &ctx).unwrap();
    let path = Path::parse("/a/b/c").unwrap();
    let access = Access::Channel { mode: Mode::Relay, path: &path, key: 20 };
    let handle_ns = ns(9, 1_000_000, || {
        black_box(session.check(black_box(handle), &access, &ctx).unwrap());
    });
    // Re-check after the revocation generation moves: ≤ 8 lookups, no signatures.
    let mut sets: Vec<RevocationSet> = Vec::new();
    let mut grow = RevocationSet::new();
    for i in 0..2000u32 {
        let mut target = [0u8; 32];
        target[..4].copy_from_slice(&i.to_le_bytes());
        grow.insert(&Revocation::sign(w.owner.channel(), LinkId(target), 0, &w.mallory)).unwrap();
        if i % 100 == 99 {
            sets.push(grow.clone());
        }
    }
    let mut k = 0;
    let recheck_ns = ns(9, 20, || {
        k += 1;
        let s = &sets[k % sets.len()];
        black_box(session.check(handle, &access, &Context { revocations: s, ..ctx }).unwrap());
    });

    // The ladder.
    let write = w.owner.write_seed(0);
    let derive_read_ns = ns(9, 200_000, || {
        black_box(black_box(&write).read_seed());
    });
    let read_auth_ns = ns(9, 2000, || {
        black_box(black_box(&write).read_seed().auth_key());
    });

    // Sizes.
    let one = Grant::to(pk(&w.alice))
        .mode(Mode::Read)
        .path(Path::parse("/photos").unwrap())
        .expires(NOW + 4 * DAY)
        .issue(w.channel(), &w.root_key())
        .unwrap();
    let header_len = 35;
    let link_bytes = one.len() - header_len;
    let chain4_len = chain4.len();

    let ratio4 = cold4_ns / verify_strict_ns;
    println!("{:<54} {:>12} {:>10}", "measure", "value", "target");
    let rows = [
        ("ceiling: ed25519 verify_strict (ns)", verify_strict_ns, f64::NAN),
        ("ceiling: ed25519 point decompression (ns)", decompress_ns, f64::NAN),
        ("ceiling: BLAKE3 derive_key over 32 B (ns)", derive_key_ns, f64::NAN),
        ("strict decode, 4-link chain (ns)", decode4_ns, 2000.0),
        ("cold verify, 4 links, no caches (ns)", cold4_ns, 150_000.0),
        ("cold verify, 4 links, keys cached (ns)", cold4_cached_keys_ns, 150_000.0),
        ("cold verify, 8 links, no caches (ns)", cold8_ns, 300_000.0),
        ("warm check from presented bytes (ns)", warm_bytes_ns, 1000.0),
        ("warm check by head id (ns)", warm_head_ns, 1000.0),
        ("check by session handle (ns)", handle_ns, 100.0),
        ("handle re-check after a revocation (ns)", recheck_ns, 1000.0),
        ("write -> read derivation (ns)", derive_read_ns, 200.0),
        ("write -> read incl. read-auth key pair (ns)", read_auth_ns, 15_000.0),
        ("one link, /photos, expiry (bytes)", link_bytes as f64, 128.0),
        ("4-link chain (bytes)", chain4_len as f64, 600.0),
    ];
    for (name, value, target) in rows {
        println!("{name:<54} {value:>12.1} {target:>10}");
    }
    println!("cold 4-link verify / one verify_strict: {ratio4:.2} (4 signatures; gate 4.6)");
    println!(
        "published, not this run: biscuit-auth 6 full authorize of 4 blocks 189 µs, research/capabilities.md §2.1"
    );
    println!(
        "{{\"verify_strict_ns\":{verify_strict_ns:.0},\"decompress_ns\":{decompress_ns:.0},\"derive_key_ns\":{derive_key_ns:.1},\"decode_4_links_ns\":{decode4_ns:.0},\"cold_verify_4_links_ns\":{cold4_ns:.0},\"cold_verify_4_links_cached_keys_ns\":{cold4_cached_keys_ns:.0},\"cold_verify_8_links_ns\":{cold8_ns:.0},\"warm_check_bytes_ns\":{warm_bytes_ns:.1},\"warm_check_head_ns\":{warm_head_ns:.1},\"session_handle_check_ns\":{handle_ns:.1},\"revocation_recheck_ns\":{recheck_ns:.0},\"derive_read_ns\":{derive_read_ns:.1},\"derive_read_auth_ns\":{read_auth_ns:.0},\"link_bytes\":{link_bytes},\"chain_4_links_bytes\":{chain4_len},\"ratio_cold4_to_verify_strict\":{ratio4:.3},\"fresh_chains\":{fresh}}}"
    );
}
