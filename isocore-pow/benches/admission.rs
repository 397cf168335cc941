//! The admission benchmark. Part 1 drives the real `Admission` through the deterministic
//! simulator (`sim/`) against attackers of several strategies, next to Tor's prop 327 and
//! prop 362 controllers under the same load. Part 2 measures the stamp check through enqueue
//! per message against the raw BLAKE3 ceiling, in the same run. Output ends with one JSON line.
//! Run with `cargo bench -p isocore-pow`.

mod sim;

use isocore_pow::{Admission, Config, Inbound, Solver, StampKey};
use sim::{Receiver, Report, Scenario, Strategy, run};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Median of `runs` timings of `f`, in nanoseconds per iteration of `n` iterations.
fn median_ns(runs: usize, n: u64, mut f: impl FnMut() -> Duration) -> f64 {
    let mut v: Vec<f64> = (0..runs).map(|_| f().as_nanos() as f64 / n as f64).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v[runs / 2]
}

/// (ns per message for check through enqueue, ns per raw keyed 64-byte BLAKE3 hash).
fn micro() -> (f64, f64) {
    let n = 20_000u64;
    let key = [7u8; 32];
    let hash_ns = median_ns(7, n * 4, || {
        let t = Instant::now();
        let mut b = [9u8; 64];
        for i in 0..n * 4 {
            b[40..48].copy_from_slice(&i.to_le_bytes());
            black_box(blake3::keyed_hash(&key, black_box(&b)));
        }
        t.elapsed()
    });
    let (me, sender, cfg) = ([1u8; 32], [2u8; 32], Config::default());
    let params = Admission::new(cfg, me, [3; 32], Duration::ZERO).params(Duration::ZERO);
    let k = StampKey::derive(&params.seed, &sender, &me);
    let msgs: Vec<([u8; 32], [u8; 41])> = (0..n)
        .map(|i| {
            let d = *blake3::hash(&i.to_le_bytes()).as_bytes();
            let mut s = Solver::new(&k, &d, params.epoch, 1, 0).expect("effort 1");
            (d, s.step(u64::MAX).expect("solved").encode())
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
                black_box(node.on_message(now, &sender, msg).expect("admitted"));
            }
            spent += t.elapsed();
            while node.poll_next(now).is_some() {}
        }
        spent
    });
    (check_ns, hash_ns)
}

fn opt(v: Option<u64>) -> String {
    v.map_or("-".into(), |s| s.to_string())
}

fn main() {
    let started = Instant::now();
    let (check_ns, hash_ns) = micro();
    let s1 = |s, n: &str| Scenario::prop327(s, n);
    let all = [Receiver::Tor327, Receiver::Prop362, Receiver::Iso];
    let iso = [Receiver::Iso];
    let runs: Vec<(Scenario, &[Receiver])> = vec![
        (s1(Strategy::Follow(1.0), "S1 follow x1"), &all),
        (s1(Strategy::Follow(2.0), "S1 outbid x2"), &all),
        (s1(Strategy::Follow(1.3), "S1 outbid x1.3"), &iso),
        (s1(Strategy::Pulse { f: 1.0, on: 60, period: 300 }, "S2 pulse 60s/300s"), &all),
        (s1(Strategy::Maintain { f: 1.0, switch: 600, flood: 1.2 }, "S3 maintain (0-effort flood)"), &all),
        (s1(Strategy::Invalid { f: 1.0, rate: 20_000.0 }, "S5 follow + invalid-stamp flood 20k/s"), &iso),
        (s1(Strategy::Replay { f: 1.0, rate: 20_000.0 }, "S5 follow + replay flood 20k/s"), &iso),
        (s1(Strategy::Precompute { f: 1.0 }, "S5 precomputed burst at epoch start"), &iso),
        (Scenario::isocore(100.0, Strategy::Follow(2.0), "S4 isocore K=100 outbid x2"), &iso),
        (Scenario::isocore(10.0, Strategy::Follow(1.0), "S4 isocore K=10 follow x1"), &iso),
    ];
    println!(
        "{:<42} {:<8} {:>6} {:>6} {:>7} {:>7} {:>7} {:>8} {:>7} {:>7} {:>6} {:>6} {:>9} {:>8} {:>6} {:>7}",
        "scenario",
        "receiver",
        "ok10%",
        "ok120%",
        "ttc50s",
        "ttc99s",
        "add99s",
        "queue99",
        "work_s",
        "fair_s",
        "conv_s",
        "dorm_s",
        "mean_p",
        "cpu%",
        "sol%",
        "sol99ms"
    );
    let mut rows = Vec::new();
    for (sc, rxs) in &runs {
        for &rx in rxs.iter() {
            let t = Instant::now();
            let r = run(sc, rx);
            eprintln!("{} {rx:?}: {:.1} s", sc.name, t.elapsed().as_secs_f64());
            let verify_ns = if rx == Receiver::Iso { check_ns } else { 52_000.0 };
            let cpu = r.stamps_per_s * verify_ns / 1e9 * 100.0;
            println!(
                "{:<42} {:<8} {:>6.1} {:>6.1} {:>7.1} {:>7.1} {:>7.2} {:>8.0} {:>7.2} {:>7.2} {:>6} {:>6} {:>9.0} {:>8.3} {:>6.1} {:>7.0}",
                sc.name,
                format!("{rx:?}"),
                100.0 * r.ok10,
                100.0 * r.ok120,
                r.ttc50_s,
                r.ttc99_s,
                r.added99_s,
                r.queue99_ms,
                r.work_s,
                r.fair_s,
                opt(r.converge_s),
                opt(r.dormant_s),
                r.mean_price,
                cpu,
                100.0 * r.solicited_ok,
                r.solicited99_ms
            );
            rows.push((sc.name.clone(), rx, r, cpu));
        }
    }
    println!(
        "stamp check through enqueue: {check_ns:.0} ns/message; raw keyed BLAKE3 64-byte hash: {hash_ns:.1} ns ({:.1} M/s); check / (4 hashes) = {:.2}",
        1e3 / hash_ns,
        check_ns / (4.0 * hash_ns)
    );
    println!(
        "hard limit (any design): at Tor's 100k-machine botnet, p*/c_h = {:.0} s of honest compute per request",
        {
            let big = Scenario { machines: 100_000.0 * 4.0, ..Scenario::prop327(Strategy::Follow(1.0), "") };
            big.fair_price() / big.c_h
        }
    );
    let find = |name: &str, rx: Receiver| -> &Report {
        &rows.iter().find(|(n, r, _, _)| n == name && *r == rx).expect("row").2
    };
    let iso_rows: Vec<&Report> =
        rows.iter().filter(|(n, r, _, _)| *r == Receiver::Iso && n.starts_with("S1")).map(|x| &x.2).collect();
    let attacked: Vec<&Report> = rows.iter().filter(|(_, r, _, _)| *r == Receiver::Iso).map(|x| &x.2).collect();
    let min = |f: &dyn Fn(&Report) -> f64, v: &[&Report]| v.iter().map(|r| f(r)).fold(f64::INFINITY, f64::min);
    let max = |f: &dyn Fn(&Report) -> f64, v: &[&Report]| v.iter().map(|r| f(r)).fold(f64::NEG_INFINITY, f64::max);
    let s4 = find("S4 isocore K=100 outbid x2", Receiver::Iso);
    let s1 = find("S1 follow x1", Receiver::Iso);
    let json = serde_json::json!({
        "bench": "isocore-pow admission",
        "seconds": started.elapsed().as_secs_f64(),
        "T1_s1_ok10_min": min(&|r| r.ok10, &iso_rows),
        "T1_s1_ok120_min": min(&|r| r.ok120, &iso_rows),
        "T1_tor327_ok10": [find("S1 follow x1", Receiver::Tor327).ok10, find("S1 outbid x2", Receiver::Tor327).ok10],
        "T1_prop362_ok10": [find("S1 follow x1", Receiver::Prop362).ok10, find("S1 outbid x2", Receiver::Prop362).ok10],
        "T2_added_latency_p99_s_max": max(&|r| r.added99_s, &attacked),
        "T3_honest_queue_p99_ms_max": max(&|r| r.queue99_ms, &attacked),
        "T3_solicited_served": s4.solicited_ok,
        "T3_solicited_p99_ms": s4.solicited99_ms,
        "T3_solicited_stamps": s4.solicited_stamps,
        "T4_work_over_fair_s1": s1.work_s / s1.fair_s,
        "T4_work_s_s1": s1.work_s,
        "T4_fair_s_s1": s1.fair_s,
        "T6_converge_s_max": max(&|r| r.converge_s.map_or(f64::INFINITY, |s| s as f64), &iso_rows),
        "T7_dormant_s_max": max(&|r| r.dormant_s.map_or(f64::INFINITY, |s| s as f64), &iso_rows),
        "T10_check_ns_per_msg": check_ns,
        "raw_blake3_ns": hash_ns,
        "check_over_4_hashes": check_ns / (4.0 * hash_ns),
    });
    println!("{json}");
}
