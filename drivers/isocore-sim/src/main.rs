//! Soak runs: `cargo run --release -p isocore-sim -- --seeds 200 [--start 1] [--followers N]`.

use isocore_sim::{Params, Sim};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(|v| v.parse::<u64>());
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
                "  ok: length {} deliveries {} converged {} ms after healing, trace {}",
                r.length,
                r.deliveries,
                r.converged_at_ms,
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
