//! Soak runs: `cargo run --release -p isocore-sim -- --seeds 200 [--start 1] [--followers N]`.
//! Fan-out: `cargo run --release -p isocore-sim -- fanout --subscribers 100000 [--k 8] [--seed 1]`
//! (several `--subscribers` give one JSON line each, then a summary line).

use isocore_sim::{FanoutParams, Params, Sim, run_fanout};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(|v| v.parse::<u64>());
    if args.get(1).map(String::as_str) == Some("fanout") {
        let k = get("--k").unwrap_or(Ok(8)).expect("--k N") as usize;
        let seed = get("--seed").unwrap_or(Ok(1)).expect("--seed N");
        let sizes: Vec<usize> = args
            .windows(2)
            .filter(|w| w[0] == "--subscribers")
            .map(|w| w[1].parse().expect("--subscribers N"))
            .collect();
        let sizes = if sizes.is_empty() { vec![1_000, 10_000, 100_000] } else { sizes };
        let mut failed = 0;
        let mut summary = Vec::new();
        for n in sizes {
            let params = FanoutParams::new(seed, n, k);
            println!("{params}");
            let t = std::time::Instant::now();
            match run_fanout(params) {
                Ok(r) => {
                    let wall = t.elapsed().as_secs_f64();
                    let json = r.to_json();
                    println!("{},\"wall_s\":{wall:.2}}}", &json[..json.len() - 1]);
                    summary.push(format!(
                        "{{\"subscribers\":{n},\"copies\":{:.2},\"depth\":{},\"p99_ms\":{:.1},\"repaired_ms\":{:.0},\"wall_s\":{wall:.2}}}",
                        r.publisher_copies_per_entry, r.max_depth, r.p99_ms, r.repaired_ms
                    ));
                }
                Err(v) => {
                    println!("  FAILED: {v}");
                    failed += 1;
                }
            }
        }
        println!("{{\"k\":{k},\"seed\":{seed},\"failed\":{failed},\"runs\":[{}]}}", summary.join(","));
        std::process::exit(i32::from(failed > 0));
    }
    let seeds = get("--seeds").unwrap_or(Ok(20)).expect("--seeds N");
    let start = get("--start").unwrap_or(Ok(1)).expect("--start N");
    let followers = get("--followers").transpose().expect("--followers N");
    let t = std::time::Instant::now();
    let mut failed = 0;
    for seed in start..start + seeds {
        let mut params = Params::from_seed(seed);
        if let Some(n) = followers {
            params.followers = n as usize;
        }
        println!("{params}");
        match Sim::new(params).run() {
            Ok(r) => println!(
                "  ok: length {} deliveries {} converged {} ms after healing, probes answered {}/{}, flood {} made {} served, trace {}",
                r.length,
                r.deliveries,
                r.converged_at_ms,
                r.probes.1,
                r.probes.0,
                r.flood.0,
                r.flood.1,
                r.trace_hash.iter().take(8).map(|b| format!("{b:02x}")).collect::<String>()
            ),
            Err(v) => {
                println!("  FAILED: {v}");
                failed += 1;
            }
        }
    }
    println!("{{\"seeds\":{seeds},\"failed\":{failed},\"seconds\":{:.2}}}", t.elapsed().as_secs_f64());
    std::process::exit(i32::from(failed > 0));
}
