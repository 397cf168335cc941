//! Fan-out trees built by the replicas themselves: shape, upload, latency, repair, replay.

use isocore_sim::{FanoutParams, run_fanout};

#[test]
fn a_thousand_subscribers_form_a_tree_of_fan_out_k() {
    for (seed, k) in [(1, 8), (2, 4), (3, 2)] {
        let params = FanoutParams::new(seed, 1_000, k);
        println!("{params}");
        let r = run_fanout(params).unwrap_or_else(|v| panic!("seed {seed}: {v}"));
        println!("{}", r.to_json());
        assert!(r.max_served <= k);
        // The publisher uploads each entry once per child, however many follow it.
        assert!(r.publisher_copies_per_entry <= (k + 1) as f64, "{}", r.publisher_copies_per_entry);
        assert!(r.publisher_copies_per_entry >= 1.0);
        // A full tree of fan-out k holds 1000 subscribers within ceil(log_k) levels, plus one
        // for the joins that raced.
        let full = (1_000f64 * (k as f64 - 1.0) / k as f64 + 1.0).log(k as f64).ceil() as usize;
        assert!(r.max_depth <= full + 1, "depth {} for k = {k}, a full tree has {full}", r.max_depth);
        for d in &r.depths {
            assert!(d.p99_ms <= d.bound_ms, "depth {}: p99 {} over {}", d.depth, d.p99_ms, d.bound_ms);
        }
        assert!(r.orphans > 0 && r.repaired_ms > 0.0, "crashes orphaned nobody: {}", r.to_json());
    }
}

#[test]
fn upload_does_not_grow_with_the_audience() {
    let small = run_fanout(FanoutParams::new(5, 100, 4)).unwrap();
    let large = run_fanout(FanoutParams::new(5, 3_000, 4)).unwrap();
    assert_eq!(small.publisher_copies_per_entry, large.publisher_copies_per_entry);
    assert!(large.publisher_bytes_per_entry <= small.publisher_bytes_per_entry * 1.1);
    assert!(large.max_depth > small.max_depth);
}

#[test]
fn a_fan_out_seed_replays_to_the_same_trace() {
    let a = run_fanout(FanoutParams::new(9, 300, 3)).unwrap();
    let b = run_fanout(FanoutParams::new(9, 300, 3)).unwrap();
    assert_eq!((a.trace_hash, a.messages), (b.trace_hash, b.messages));
    let c = run_fanout(FanoutParams::new(10, 300, 3)).unwrap();
    assert_ne!(a.trace_hash, c.trace_hash);
}
