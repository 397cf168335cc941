//! The simulator on a fixed set of seeds, its determinism, and its checker.

use isocore_sim::{Params, Sim};

#[test]
fn same_seed_same_trace() {
    let a = Sim::new(Params::from_seed(11)).run().unwrap();
    let b = Sim::new(Params::from_seed(11)).run().unwrap();
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.deliveries, b.deliveries);
    let c = Sim::new(Params::from_seed(12)).run().unwrap();
    assert_ne!(a.trace_hash, c.trace_hash);
}

#[test]
fn fixed_seeds_hold_every_invariant() {
    let mut forks = 0;
    let mut faults = 0;
    let mut floods = 0;
    let (mut withholders, mut damaged) = (0, 0);
    for seed in 1..=24u64 {
        let params = Params::from_seed(seed);
        println!("{params}");
        forks += params.forker as u32;
        faults += (params.tamperer || params.garbage) as u32;
        let flooded = params.flooder;
        withholders += params.withholder as u32;
        let report = Sim::new(params).run().unwrap_or_else(|v| panic!("{v}"));
        assert!(report.converged_at_ms <= report.liveness_bound_ms);
        assert!(report.length > 0);
        assert!(report.probes.0 > 0 && report.probes.1 * 10 >= report.probes.0 * 9, "{:?}", report.probes);
        // Lost, duplicated or reordered frames end the session; the nodes dial again.
        damaged += u32::from(report.damaged > 0);
        if flooded {
            // Admission turned part of the unpaid flood away while honest calls were answered.
            let (made, served) = report.flood;
            assert!(made > 1000 && served < made * 9 / 10, "flood {made} made, {served} served");
            floods += 1;
        }
    }
    // The seed set covers the misbehaving nodes, not only the happy path.
    assert!(forks > 0 && faults > 0 && floods > 0, "forks {forks}, tamperers or garbage {faults}, floods {floods}");
    assert!(withholders > 0 && damaged > 0, "withholders {withholders}, damaged links {damaged}");
}

#[test]
fn the_checker_catches_a_corrupted_store() {
    let mut params = Params::from_seed(3);
    params.forker = false;
    let mut sim = Sim::new(params);
    sim.run_safety();
    sim.check_safety().unwrap();
    sim.corrupt_for_testing(1, 0);
    let violation = sim.check_safety().unwrap_err();
    assert_eq!(violation.invariant, "stored entries verify against the writer's signed heads");
    assert!(violation.to_string().contains("SEED=3"));
}

#[test]
fn an_invariant_of_ones_own_is_checked_and_named_when_it_breaks() {
    let mut params = Params::from_seed(5);
    params.followers = 3;
    params.links = Some(vec![(0, 1), (1, 2), (2, 3)]);
    (params.tamperer, params.garbage, params.forker, params.flooder, params.withholder) =
        (false, false, false, false, false);
    let mut sim = Sim::new(params);
    // A claim that is false as soon as the writer appends.
    sim.check("the last follower never holds anything", |v| match v.held(3) {
        0 => Ok(()),
        n => Err(format!("node 3 holds {n} entries")),
    });
    let broken = sim.run().unwrap_err();
    assert_eq!(broken.invariant, "the last follower never holds anything");
    assert!(broken.detail.starts_with("node 3 holds"), "{}", broken.detail);
}
