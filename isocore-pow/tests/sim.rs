//! The admission simulator (benches/sim) is deterministic: one seed, one event log.

#[path = "../benches/sim/mod.rs"]
mod sim;

use sim::{Receiver, Scenario, Strategy, run};

fn small(seed: u64) -> Scenario {
    Scenario {
        seed,
        duration_s: 160,
        attack: (5, 30),
        machines: 50.0,
        epoch_s: 20,
        ..Scenario::prop327(Strategy::Follow(2.0), "small")
    }
}

#[test]
fn same_seed_same_event_log() {
    for rx in [Receiver::Iso, Receiver::Tor327, Receiver::Prop362] {
        let (a, b) = (run(&small(7), rx), run(&small(7), rx));
        assert_eq!(a.log_hash, b.log_hash, "{rx:?}");
        assert_ne!(a.log_hash, run(&small(8), rx).log_hash, "{rx:?}: the seed must matter");
    }
}

#[test]
fn attacked_node_still_serves_honest_senders() {
    let r = run(&small(7), Receiver::Iso);
    assert!(r.honest > 0 && r.ok120 > 0.9, "{r:?}");
}
