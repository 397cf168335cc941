//! Property tests of the price controller, alone and inside `Admission`.

mod common;

use common::*;
use core::time::Duration;
use isocore_pow::{Config, Controller, ControllerConfig, Event, Inbound, Solicit};
use proptest::prelude::*;

/// One tick's worth of input to a bare controller.
#[derive(Debug, Clone)]
struct TickInput {
    paid: Vec<u32>,
    served: u32,
    solicited: u32,
    head: Option<(u32, u64)>,
}

fn tick_input() -> impl Strategy<Value = TickInput> {
    (
        proptest::collection::vec(prop_oneof![0u32..10, 0u32..100_000, Just(u32::MAX)], 0..20),
        0u32..400,
        0u32..400,
        proptest::option::of((0u32..100_000, 0u64..3_000)),
    )
        .prop_map(|(paid, served, solicited, head)| TickInput { paid, served, solicited, head })
}

fn feed(c: &mut Controller, t: &TickInput) -> u32 {
    for &e in &t.paid {
        c.on_paid(e.max(1));
    }
    for i in 0..t.served {
        c.on_served(Duration::from_millis(2), i < t.solicited);
    }
    c.tick(t.head.map(|(e, age)| (e, ms(age))))
}

/// The dormancy bound of spec/pow.md §6.4: after the last arrival, the queue empties within
/// deadline + tick, the window forgets it within another window, then the hold runs.
fn dormancy_bound(cfg: &Config) -> Duration {
    let c = &cfg.controller;
    cfg.deadline + c.tick + c.tick * c.window_ticks as u32 + c.hold + c.tick
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Per tick the price rises at most ×8 (from `p_start` when dormant) and falls at most ÷2,
    /// except the final drop to 0 after the hold; a non-zero price never sits below the floor.
    #[test]
    fn slew_bounds(ticks in proptest::collection::vec(tick_input(), 1..120)) {
        let cfg = ControllerConfig { p_start: 256, ..Default::default() };
        let mut c = Controller::new(cfg);
        for t in &ticks {
            let before = u64::from(c.price());
            let after = u64::from(feed(&mut c, t));
            let hi = 8 * before.max(u64::from(cfg.p_start));
            prop_assert!(after <= hi, "{} -> {}", before, after);
            prop_assert!(after == 0 || after >= before / 2, "{} -> {}", before, after);
            prop_assert!(after == 0 || after >= u64::from(c.floor()));
        }
    }

    /// More paid work in the same tick never gives a lower price.
    #[test]
    fn more_paid_work_never_lowers_the_price(
        ticks in proptest::collection::vec(tick_input(), 1..40),
        extra in 1u32..1_000_000,
    ) {
        let mut c = Controller::new(ControllerConfig::default());
        for t in &ticks[..ticks.len() - 1] {
            feed(&mut c, t);
        }
        let last = ticks.last().unwrap();
        let mut more = c.clone();
        more.on_paid(extra);
        prop_assert!(feed(&mut more, last) >= feed(&mut c, last));
    }

    /// Messages without a stamp and solicited messages, in any mix, served or not, never take
    /// the node out of dormancy.
    #[test]
    fn zero_effort_and_solicited_never_raise_the_price(
        arrivals in proptest::collection::vec((0u64..30, any::<bool>(), 1u32..20), 1..400),
        capacity in 1u64..500,
        serving in any::<bool>(),
    ) {
        let mut b = Bench::new(Config::default(), capacity);
        b.serving = serving;
        let peer = [0xc1; 32];
        for (i, (dt, solicited, burst)) in arrivals.into_iter().enumerate() {
            let to = b.now + ms(dt);
            b.run_to(to);
            for j in 0..burst {
                let solicit = solicited.then_some(Solicit::Stream(i as u64));
                if solicited {
                    b.node.credit().grant(&peer, Solicit::Stream(i as u64), 1);
                }
                let msg = Inbound { digest: [j as u8; 32], solicit, stamp: None };
                let _ = b.node.on_message(b.now, &peer, msg);
            }
            while let Some(e) = b.node.poll_event() {
                prop_assert!(!matches!(e, Event::Advertise(p) if p.price > 0));
            }
        }
        let end = b.now + Duration::from_secs(5);
        b.run_to(end);
        prop_assert!(b.prices.iter().all(|&(_, p)| p == 0));
    }

    /// After the last arrival the price is 0 within the stated bound, whether or not the
    /// application keeps serving.
    #[test]
    fn dormant_within_the_bound_after_arrivals_stop(
        arrivals in proptest::collection::vec((0u64..20, 1u32..4, 1u32..1_000_000), 1..300),
        capacity in 20u64..2_000,
        serving in any::<bool>(),
    ) {
        let mut cfg = Config::default();
        cfg.controller.p_start = 64;
        let bound = dormancy_bound(&cfg);
        let mut b = Bench::new(cfg, capacity);
        b.serving = serving;
        let mut id = 0;
        for (dt, burst, effort) in arrivals {
            let to = b.now + ms(dt);
            b.run_to(to);
            for _ in 0..burst {
                id += 1;
                let st = fake(&b.node, b.now, effort, id);
                let _ = b.node.on_message_with(b.now, &[0xb1; 32], paid(&st, id), &mut FakeCheck);
            }
            b.drain();
        }
        let stop = b.now;
        b.run_to(stop + bound + Duration::from_secs(1));
        let late: Vec<_> = b.prices.iter().filter(|&&(t, p)| t >= stop + bound && p > 0).collect();
        prop_assert!(late.is_empty(), "still priced {:?} after the bound", late.first());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// spec/pow.md §6.5: holding the price at or above P for T >= 10 s costs the attacker at
    /// least 0.5 · ρ · μ_paid · P · T of paid work, whatever its schedule of rates and efforts.
    #[test]
    fn holding_a_price_costs_the_attacker_its_share_of_capacity(
        phases in proptest::collection::vec((1u64..8_000, 1u32..60, 1u32..200_000), 1..8),
        capacity in 50u64..400,
    ) {
        let mut cfg = Config::default();
        cfg.controller.p_start = 64;
        let rho = f64::from(cfg.controller.rho_permille) / 1000.0;
        let window = cfg.controller.tick * cfg.controller.window_ticks as u32;
        let mut b = Bench::new(cfg, capacity);
        let mut sent: Vec<(Duration, u64)> = Vec::new(); // (time, effort) of every stamp sent
        let mut id = 0u64;
        for (len_ms, per_10ms, effort) in phases {
            let end = b.now + ms(len_ms);
            while b.now < end {
                let to = b.now + ms(10);
                b.run_to(to);
                for _ in 0..per_10ms {
                    id += 1;
                    let st = fake(&b.node, b.now, effort, id);
                    let _ = b.node.on_message_with(b.now, &[0xb1; 32], paid(&st, id), &mut FakeCheck);
                    sent.push((b.now, u64::from(effort)));
                }
                b.drain();
            }
        }
        let end = b.now + Duration::from_secs(12);
        b.run_to(end);
        // Check every interval of whole 250 ms ticks lasting at least 10 s.
        let ticks: Vec<(Duration, u32)> = b.prices.iter().copied().filter(|(t, _)| t.as_millis() % 250 == 0).collect();
        let mu = capacity as f64;
        for i in 0..ticks.len() {
            let mut p_min = u32::MAX;
            for j in i..ticks.len() {
                p_min = p_min.min(ticks[j].1);
                if p_min == 0 { break; }
                let (a, z) = (ticks[i].0, ticks[j].0);
                let held = (z - a).as_secs_f64();
                if held < 10.0 { continue; }
                let work: u64 = sent.iter().filter(|(t, _)| *t + window >= a && *t <= z).map(|(_, e)| *e).sum();
                let bound = 0.5 * rho * mu * f64::from(p_min) * held;
                prop_assert!(work as f64 >= bound, "held >= {} for {:.2} s with {} work < {:.0}", p_min, held, work, bound);
            }
        }
    }
}
