//! `cargo bench -p isocore-log`: feed and replication throughput, each next to the primitive
//! ceiling measured in the same run. Ends with one JSON object on one line.

use bytes::Bytes;
use ed25519_dalek::{Signer, SigningKey};
use isocore_log::{Config, Download, Feed, FeedKey, MemoryStore, Replicator, tree};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Median of `runs` timings of `f`, which returns how many units it did.
fn rate(runs: usize, mut f: impl FnMut() -> u64) -> f64 {
    let mut rates: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let units = f();
            units as f64 / t.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(|a, b| a.partial_cmp(b).unwrap());
    rates[runs / 2]
}

fn new_feed(seed: u8) -> (SigningKey, Feed<MemoryStore>) {
    let signer = SigningKey::from_bytes(&[seed; 32]);
    let feed = Feed::open(FeedKey::standalone(signer.verifying_key()), MemoryStore::new()).unwrap();
    (signer, feed)
}

/// Replicate a feed into a fresh replica in process; returns entries per second.
fn replicate(source: &Feed<MemoryStore>) -> f64 {
    let mut sink = Feed::open(*source.key(), MemoryStore::new()).unwrap();
    let serve = Config { download: Download::None, live: false, ..Config::default() };
    let follow = Config { live: false, ..Config::default() };
    let (mut a, mut b) = (Replicator::new(serve), Replicator::new(follow));
    let now = Duration::ZERO;
    let t = Instant::now();
    a.start(source, now);
    b.start(&sink, now);
    let mut source = Feed::open(*source.key(), source.store().clone()).unwrap();
    let mut buf = Vec::new();
    loop {
        let mut moved = false;
        while a.poll_transmit(&source, &mut buf).unwrap().is_some() {
            b.handle_input(&mut sink, now, &Bytes::from(std::mem::take(&mut buf))).unwrap();
            moved = true;
        }
        while b.poll_transmit(&sink, &mut buf).unwrap().is_some() {
            a.handle_input(&mut source, now, &Bytes::from(std::mem::take(&mut buf))).unwrap();
            moved = true;
        }
        if !moved {
            break;
        }
    }
    let elapsed = t.elapsed();
    assert_eq!(sink.contiguous_len(), source.len());
    sink.len() as f64 / elapsed.as_secs_f64()
}

fn main() {
    let entry64 = vec![7u8; 64];
    let entry64k = vec![9u8; 64 * 1024];

    // Ceilings: the primitives alone.
    let key = blake3::derive_key("isocore/log/v1/leaf", &[]);
    let hash64_per_s = rate(5, || {
        for i in 0..200_000u64 {
            let mut input = [0u8; 64];
            input[..8].copy_from_slice(&i.to_le_bytes());
            black_box(blake3::keyed_hash(&key, &input));
        }
        200_000
    });
    let hash64k_bytes_per_s = rate(5, || {
        for _ in 0..2000 {
            black_box(blake3::keyed_hash(&key, &entry64k));
        }
        2000 * 65536
    });
    let signer = SigningKey::from_bytes(&[1; 32]);
    let sign_per_s = rate(5, || {
        for i in 0..3000u64 {
            black_box(signer.sign(&i.to_le_bytes()));
        }
        3000
    });
    let sig = signer.sign(b"x");
    let verify_per_s = rate(5, || {
        for _ in 0..2000 {
            signer.verifying_key().verify_strict(b"x", &sig).unwrap();
        }
        2000
    });

    // Appends.
    let batch_per_s = rate(5, || {
        let (s, mut feed) = new_feed(2);
        for _ in 0..200 {
            feed.append(&s, (0..1000).map(|_| entry64.clone())).unwrap();
        }
        200_000
    });
    let single_per_s = rate(5, || {
        let (s, mut feed) = new_feed(3);
        for _ in 0..5000 {
            feed.append(&s, [entry64.clone()]).unwrap();
        }
        5000
    });
    let bytes64k_per_s = rate(5, || {
        let (s, mut feed) = new_feed(4);
        let entry = Bytes::from(entry64k.clone());
        for _ in 0..64 {
            feed.append(&s, (0..16).map(|_| entry.clone())).unwrap();
        }
        64 * 16 * 65536
    });

    // Replication of 100k x 64 B, and of 2000 x 64 KiB.
    let (s, mut small) = new_feed(5);
    for i in 0..100u64 {
        small.append(&s, (0..1000u64).map(|j| (i * 1000 + j).to_le_bytes().repeat(8))).unwrap();
    }
    let replicate_per_s = {
        let mut r: Vec<f64> = (0..5).map(|_| replicate(&small)).collect();
        r.sort_by(|a, b| a.partial_cmp(b).unwrap());
        r[2]
    };
    let (s, mut large) = new_feed(6);
    let entry = Bytes::from(entry64k.clone());
    for _ in 0..125 {
        large.append(&s, (0..16).map(|_| entry.clone())).unwrap();
    }
    let replicate64k_bytes_per_s = {
        let mut r: Vec<f64> = (0..3).map(|_| replicate(&large) * 65536.0).collect();
        r.sort_by(|a, b| a.partial_cmp(b).unwrap());
        r[1]
    };

    // Proof size for one entry of a 1M-entry feed.
    let (s, mut big) = new_feed(7);
    for i in 0..1024u64 {
        big.append(&s, (0..1024u64).map(|j| (i * 1024 + j).to_le_bytes().to_vec())).unwrap();
    }
    let n = big.len();
    let proof_hashes = big.prove_range(123_456, 123_457).unwrap().unwrap().nodes.len();
    let proof_bound = (64 - (n - 1).leading_zeros()) as usize + 1;
    let mut shape_nodes = Vec::new();
    tree::proof_nodes(&tree::ProofShape { base: 0, target: n, start: 0, end: 1 }, &mut shape_nodes);

    // Hashes per appended entry: one leaf plus (amortised) one parent.
    let append_ceiling = hash64_per_s / 2.0;
    let rows = [
        (
            "append 64 B, batches of 1000 (entries/s)",
            batch_per_s,
            2_000_000.0,
            append_ceiling,
            "BLAKE3 64 B keyed hashes/s / 2",
        ),
        ("append 64 B, one signed call each (entries/s)", single_per_s, 50_000.0, sign_per_s, "Ed25519 signs/s"),
        ("append 64 KiB entries (MB/s)", bytes64k_per_s / 1e6, 1000.0, hash64k_bytes_per_s / 1e6, "BLAKE3 64 KiB MB/s"),
        (
            "replicate 100k x 64 B, verified (entries/s)",
            replicate_per_s,
            1_000_000.0,
            append_ceiling,
            "BLAKE3 64 B keyed hashes/s / 2",
        ),
        (
            "replicate 2000 x 64 KiB, verified (MB/s)",
            replicate64k_bytes_per_s / 1e6,
            500.0,
            hash64k_bytes_per_s / 1e6,
            "BLAKE3 64 KiB MB/s",
        ),
    ];
    println!("{:<48} {:>14} {:>12} {:>14} {:>8}  ceiling", "measure", "value", "target", "ceiling", "ratio");
    for (name, value, target, ceiling, what) in rows {
        println!("{name:<48} {value:>14.0} {target:>12.0} {ceiling:>14.0} {:>8.3}  {what}", value / ceiling);
    }
    println!(
        "proof for 1 entry of {n}: {proof_hashes} hashes (bound ceil(log2 n) + 1 = {proof_bound}; shape {})",
        shape_nodes.len()
    );
    println!(
        "Hypercore 11 on this machine (research/hypercore.md, not this run): 4.4 k single appends/s, 104-122 k/s batched, 11.8 k entries/s replicated"
    );
    println!("ed25519 verify_strict: {verify_per_s:.0}/s");
    println!(
        "{{\"append_batch_entries_per_s\":{batch_per_s:.0},\"append_single_entries_per_s\":{single_per_s:.0},\"append_64k_mb_per_s\":{:.1},\"replicate_64b_entries_per_s\":{replicate_per_s:.0},\"replicate_64k_mb_per_s\":{:.1},\"proof_hashes_1m\":{proof_hashes},\"proof_bound_1m\":{proof_bound},\"ceiling_blake3_64b_hashes_per_s\":{hash64_per_s:.0},\"ceiling_blake3_64k_mb_per_s\":{:.1},\"ceiling_ed25519_sign_per_s\":{sign_per_s:.0},\"ceiling_ed25519_verify_strict_per_s\":{verify_per_s:.0},\"ratio_append_batch_to_ceiling\":{:.3},\"ratio_append_single_to_sign\":{:.3},\"ratio_append_64k_to_blake3\":{:.3},\"ratio_replicate_to_ceiling\":{:.3},\"hypercore_single_appends_per_s\":4400,\"hypercore_batched_appends_per_s\":104000,\"hypercore_replicated_entries_per_s\":11800}}",
        bytes64k_per_s / 1e6,
        replicate64k_bytes_per_s / 1e6,
        hash64k_bytes_per_s / 1e6,
        batch_per_s / append_ceiling,
        single_per_s / sign_per_s,
        bytes64k_per_s / hash64k_bytes_per_s,
        replicate_per_s / append_ceiling,
    );
}
