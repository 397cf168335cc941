//! The admission benchmark: per-message cost of stamp check through enqueue, against the raw
//! BLAKE3 ceiling measured in the same run. Run with `cargo bench -p isocore-pow`.

use isocore_pow::{Admission, Config, Inbound, Solver, StampKey};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Median of `runs` timings of `f`, in nanoseconds per iteration of `n` iterations.
fn median_ns(runs: usize, n: u64, mut f: impl FnMut() -> Duration) -> f64 {
    let mut v: Vec<f64> = (0..runs).map(|_| f().as_nanos() as f64 / n as f64).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v[runs / 2]
}

fn main() {
    let n = 20_000u64;
    let key = [7u8; 32];
    let block = [9u8; 64];
    let hash_ns = median_ns(7, n * 4, || {
        let t = Instant::now();
        let mut b = block;
        for i in 0..n * 4 {
            b[40..48].copy_from_slice(&i.to_le_bytes());
            black_box(blake3::keyed_hash(&key, black_box(&b)));
        }
        t.elapsed()
    });

    let me = [1u8; 32];
    let sender = [2u8; 32];
    let cfg = Config::default();
    let probe = Admission::new(cfg, me, [3; 32], Duration::ZERO);
    let params = probe.params(Duration::ZERO);
    let k = StampKey::derive(&params.seed, &sender, &me);
    let msgs: Vec<([u8; 32], [u8; 41])> = (0..n)
        .map(|i| {
            let d = *blake3::hash(&i.to_le_bytes()).as_bytes();
            let s = Solver::new(&k, &d, params.epoch, 1, 0).unwrap().step(u64::MAX).unwrap();
            (d, s.encode())
        })
        .collect();
    let check_ns = median_ns(7, n, || {
        let mut node = Admission::new(cfg, me, [3; 32], Duration::ZERO);
        let now = Duration::from_millis(1);
        let mut spent = Duration::ZERO;
        for chunk in msgs.chunks(500) {
            let t = Instant::now();
            for (d, s) in chunk {
                let msg = Inbound { digest: *d, solicit: None, stamp: Some(s) };
                black_box(node.on_message(now, &sender, msg).unwrap());
            }
            spent += t.elapsed();
            while node.poll_next(now).is_some() {}
        }
        spent
    });
    println!(
        "stamp check through enqueue: {check_ns:.0} ns/message; raw BLAKE3 keyed 64-byte hash: {hash_ns:.1} ns ({:.1} M/s); ratio to 4 hashes {:.2}",
        1e3 / hash_ns,
        check_ns / (4.0 * hash_ns)
    );
}
