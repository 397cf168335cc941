//! The solver works in caller-sized steps; the sender policy prices, doubles and gives up.

use core::time::Duration;
use isocore_pow::stamp::{VER_ALG_V1, epoch_seed};
use isocore_pow::{Busy, GiveUp, Params, Request, SenderPolicy, Solver, StampKey};

fn params(price: u32) -> Params {
    Params {
        ver_alg: VER_ALG_V1,
        epoch: 3,
        seed: epoch_seed(&[1; 32], 3),
        epoch_ends_in: Duration::from_secs(1),
        price,
        p_start: 256,
    }
}

#[test]
fn stepping_in_small_pieces_finds_the_same_stamp_as_one_big_step() {
    let p = params(0);
    let key = StampKey::derive(&p.seed, &[2; 32], &[3; 32]);
    let d = [4; 32];
    let whole = Solver::new(&key, &d, p.epoch, 20, 9).unwrap().step(u64::MAX).unwrap();
    let mut solver = Solver::new(&key, &d, p.epoch, 20, 9).unwrap();
    let mut steps = 0;
    let pieces = loop {
        steps += 1;
        if let Some(s) = solver.step(7) {
            break s;
        }
    };
    assert_eq!(pieces, whole);
    assert!(steps > 1 && solver.attempts() <= 7 * steps);
    assert_eq!(whole.verify(&key, &d).map(|_| ()), Ok(()));
    assert!(Solver::new(&key, &d, p.epoch, 0, 0).is_err(), "effort 0 cannot be solved");
}

#[test]
fn policy_prices_with_margin_doubles_on_busy_and_gives_up_past_budget() {
    let policy = SenderPolicy { budget: 1_000, ..SenderPolicy::default() };
    assert_eq!(Request::new(policy, &params(0)).effort(), 0, "dormant: no stamp");
    let mut r = Request::new(policy, &params(100));
    assert_eq!(r.effort(), 125);
    let quiet = Busy { price: 10, retry_after: Duration::ZERO };
    assert_eq!(r.on_busy(&quiet), Ok(250), "at least double");
    let steep = Busy { price: 400, retry_after: Duration::ZERO };
    assert_eq!(r.on_busy(&steep), Ok(500), "at least the margin over the quoted price");
    assert_eq!(r.spent(), 375);
    assert_eq!(r.on_busy(&quiet), Err(GiveUp { spent: 875 }), "875 + 1000 > budget");
    let mut from_zero = Request::new(SenderPolicy::default(), &params(0));
    assert_eq!(from_zero.on_busy(&Busy { price: 256, retry_after: Duration::ZERO }), Ok(320));
}
