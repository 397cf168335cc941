//! The receiver with real BLAKE3 stamps: epochs, replay, binding, credit, queue and deadlines.

mod common;

use common::*;
use core::time::Duration;
use isocore_pow::stamp::epoch_seed;
use isocore_pow::{Admission, Class, Config, Event, Inbound, PriorityQueue, Reason, Solicit, Solver, StampKey};
use proptest::prelude::*;

const SENDER: [u8; 32] = [0xb1; 32];

fn node() -> Admission {
    let mut cfg = Config::default();
    cfg.controller.p_start = 8;
    Admission::new(cfg, ME, SECRET, Duration::ZERO)
}

/// A real stamp from `sender` to `receiver` for `epoch`.
fn stamp(epoch: u32, sender: &[u8; 32], receiver: &[u8; 32], d: &[u8; 32], start: u64) -> Vec<u8> {
    let key = StampKey::derive(&epoch_seed(&SECRET, epoch), sender, receiver);
    let mut s = Solver::new(&key, d, epoch, 2, start).unwrap();
    s.step(u64::MAX).unwrap().encode().to_vec()
}

fn send(node: &mut Admission, now: Duration, from: &[u8; 32], d: [u8; 32], st: &[u8]) -> Result<(), Reason> {
    let msg = Inbound { digest: d, solicit: None, stamp: Some(st) };
    node.on_message(now, from, msg).map(|_| ()).map_err(|r| r.reason)
}

#[test]
fn current_and_previous_epochs_accepted_others_refused() {
    let mut n = node();
    let now = Duration::from_secs(601); // epoch 2
    n.handle_timeout(now);
    let adv: Vec<_> = std::iter::from_fn(|| n.poll_event()).collect();
    assert!(matches!(adv.last(), Some(Event::Advertise(p)) if p.epoch == 2 && p.seed == epoch_seed(&SECRET, 2)));
    let d = [9; 32];
    for (e, ok) in [(2, true), (1, true), (0, false), (3, false)] {
        let r = send(&mut n, now, &SENDER, d, &stamp(e, &SENDER, &ME, &d, u64::from(e)));
        assert_eq!(r.is_ok(), ok, "epoch {e}: {r:?}");
        if !ok {
            assert_eq!(r, Err(Reason::StaleEpoch(e)));
        }
    }
    // Epoch 0 has no predecessor: u32::MAX is not "the previous epoch".
    let mut fresh = node();
    let r = send(&mut fresh, Duration::ZERO, &SENDER, d, &stamp(u32::MAX, &SENDER, &ME, &d, 0));
    assert_eq!(r, Err(Reason::StaleEpoch(u32::MAX)));
}

#[test]
fn stale_epoch_refusal_carries_busy_and_params_rotate_exactly_at_the_boundary() {
    let mut n = node();
    assert_eq!(n.params(Duration::from_secs(300) - Duration::from_nanos(1)).epoch, 0);
    n.handle_timeout(Duration::from_secs(300));
    assert_eq!(n.params(Duration::from_secs(300)).epoch, 1);
    assert_eq!(n.params(Duration::from_secs(300)).epoch_ends_in, Duration::from_secs(300));
    let d = [1; 32];
    let refused = n
        .on_message(
            Duration::from_secs(900),
            &SENDER,
            Inbound { digest: d, solicit: None, stamp: Some(&stamp(1, &SENDER, &ME, &d, 0)) },
        )
        .unwrap_err();
    assert_eq!(refused.reason, Reason::StaleEpoch(1));
    assert!(refused.busy.is_some());
}

#[test]
fn replay_within_and_across_an_epoch_boundary_is_refused() {
    let mut n = node();
    let d = [3; 32];
    let st = stamp(0, &SENDER, &ME, &d, 0);
    assert_eq!(send(&mut n, ms(1), &SENDER, d, &st), Ok(()));
    assert_eq!(send(&mut n, ms(2), &SENDER, d, &st), Err(Reason::Duplicate));
    let _ = n.poll_next(ms(3));
    assert_eq!(send(&mut n, ms(4), &SENDER, d, &st), Err(Reason::Duplicate), "served, then replayed");
    // Still refused in the next epoch, where epoch-0 stamps remain valid.
    assert_eq!(send(&mut n, Duration::from_secs(301), &SENDER, d, &st), Err(Reason::Duplicate));
    // Two epochs on, the stamp is simply stale.
    assert_eq!(send(&mut n, Duration::from_secs(601), &SENDER, d, &st), Err(Reason::StaleEpoch(0)));
    // A fresh stamp for the same message is new work, and is admitted.
    let again = stamp(2, &SENDER, &ME, &d, 1 << 40);
    assert_eq!(send(&mut n, Duration::from_secs(602), &SENDER, d, &again), Ok(()));
}

#[test]
fn a_stamp_is_bound_to_sender_receiver_and_message() {
    let mut n = node();
    let d = [4; 32];
    let other = [0xb2; 32];
    let for_sender = stamp(0, &SENDER, &ME, &d, 0);
    assert_eq!(send(&mut n, ms(1), &other, d, &for_sender), Err(Reason::InsufficientWork));
    assert_eq!(send(&mut n, ms(1), &SENDER, [5; 32], &for_sender), Err(Reason::InsufficientWork));
    let for_other_receiver = stamp(0, &SENDER, &[0xa2; 32], &d, 0);
    assert_eq!(send(&mut n, ms(1), &SENDER, d, &for_other_receiver), Err(Reason::InsufficientWork));
    assert!(Reason::InsufficientWork.is_peer_fault());
    assert_eq!(send(&mut n, ms(1), &SENDER, d, &for_sender), Ok(()));
}

#[test]
fn malformed_stamps_are_refused_without_busy() {
    let mut n = node();
    let r = n.on_message(ms(1), &SENDER, Inbound { digest: [0; 32], solicit: None, stamp: Some(&[0x11; 40]) });
    let r = r.unwrap_err();
    assert!(matches!(r.reason, Reason::Malformed(_)));
    assert_eq!(r.busy, None);
}

#[test]
fn credit_rides_free_and_over_grant_traffic_is_unsolicited() {
    let mut b = Bench::new(
        Config { controller: isocore_pow::ControllerConfig { p_start: 8, ..Default::default() }, ..Config::default() },
        1000,
    );
    let peer = [0xc1; 32];
    b.node.credit().grant(&peer, Solicit::Stream(1), 2);
    b.node.credit().grant(&peer, Solicit::Reply(9), 1);
    let msg = |s| Inbound { digest: [0; 32], solicit: Some(s), stamp: None };
    let t = b.node.on_message(ms(0), &peer, msg(Solicit::Stream(1))).unwrap();
    assert_eq!(t.class(), Class::Solicited);
    assert_eq!(b.node.on_message(ms(0), &peer, msg(Solicit::Reply(9))).unwrap().class(), Class::Solicited);
    assert_eq!(b.node.on_message(ms(0), &peer, msg(Solicit::Stream(1))).unwrap().class(), Class::Solicited);
    // Window used up: dormant, so it queues as unsolicited at effort 0.
    assert_eq!(b.node.on_message(ms(0), &peer, msg(Solicit::Stream(1))).unwrap().class(), Class::Paid);
    assert_eq!(b.node.on_message(ms(0), &peer, msg(Solicit::Reply(9))).unwrap().class(), Class::Paid);
    // Make the node active with a standing queue of paying messages nobody serves.
    b.serving = false;
    for i in 0..50 {
        let st = fake(&b.node, b.now, 1, i);
        b.node.on_message_with(b.now, &SENDER, paid(&st, i), &mut FakeCheck).unwrap();
    }
    b.run_to(ms(600));
    assert!(b.node.controller().price() > 0);
    let r = b.node.on_message(b.now, &peer, msg(Solicit::Stream(1))).unwrap_err();
    assert_eq!(r.reason, Reason::MissingStamp);
    assert!(r.busy.unwrap().price >= b.node.controller().price());
    // Granted traffic still rides free while the price is up.
    b.node.credit().grant(&peer, Solicit::Stream(1), 1);
    assert_eq!(b.node.on_message(b.now, &peer, msg(Solicit::Stream(1))).unwrap().class(), Class::Solicited);
}

#[test]
fn queue_evicts_the_lowest_priority_and_says_so() {
    let mut cfg = Config::default();
    cfg.controller.initial_capacity = 32.0; // queue bound: max(64, 2 s × capacity) = 64
    let mut b = Bench::new(cfg, 100);
    b.serving = false;
    let mut admitted = Vec::new();
    for i in 0..64 {
        let st = fake(&b.node, b.now, 1000, i);
        admitted.push(b.node.on_message_with(b.now, &SENDER, paid(&st, i), &mut FakeCheck).unwrap());
    }
    // A cheaper newcomer is the lowest priority itself: refused with Busy.
    let st = fake(&b.node, b.now, 1, 99);
    let r = b.node.on_message_with(b.now, &SENDER, paid(&st, 99), &mut FakeCheck).unwrap_err();
    assert_eq!(r.reason, Reason::Overloaded);
    assert!(r.busy.is_some());
    // A better-paid newcomer evicts the youngest of the cheaper ones.
    let st = fake(&b.node, b.now, 1 << 20, 100);
    b.node.on_message_with(b.now, &SENDER, paid(&st, 100), &mut FakeCheck).unwrap();
    match b.node.poll_event() {
        Some(Event::Dropped { ticket, busy, .. }) => {
            assert_eq!(ticket, *admitted.last().unwrap());
            assert!(busy.price > 0);
        }
        other => panic!("expected a drop, got {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Pop order is the key order: no entry is ever served before one with a smaller key, equal
    /// efforts are first-in first-out, and eviction removes the largest key.
    #[test]
    fn queue_order_and_eviction(items in proptest::collection::vec((0u64..5_000, 0u32..100_000), 1..200), bound in 1usize..64) {
        let mut q = PriorityQueue::new(ms(500));
        let mut t = 0u64;
        let mut kept: Vec<isocore_pow::queue::Entry> = Vec::new();
        for (id, (dt, effort)) in items.into_iter().enumerate() {
            t += dt;
            let e = isocore_pow::queue::Entry { id: id as u64, peer: [0; 32], effort, arrival: Duration::from_micros(t) };
            kept.push(e);
            if let Some(out) = q.push(e, bound) {
                let max = kept.iter().map(|x| (q.key(x), x.id)).max().unwrap();
                prop_assert_eq!((q.key(&out), out.id), max);
                kept.retain(|x| x.id != out.id);
            }
        }
        let mut last: Option<(i64, u64)> = None;
        while let Some(e) = q.pop() {
            let k = (q.key(&e), e.id);
            if let Some(l) = last { prop_assert!(l < k); }
            last = Some(k);
        }
        prop_assert_eq!(q.len(), 0);
    }

    /// Whatever arrives and however slowly the node serves, every admitted paid message is
    /// served or dropped with a `Busy` within the deadline plus one tick of its arrival.
    #[test]
    fn no_message_waits_past_the_deadline_unanswered(
        arrivals in proptest::collection::vec((0u64..8, 0u32..2_000), 1..400),
        capacity in 2u64..200,
    ) {
        let cfg = Config::default();
        let limit = cfg.deadline + cfg.controller.tick;
        let mut b = Bench::new(cfg, capacity);
        let mut admitted = Vec::new();
        for (i, (dt, effort)) in arrivals.into_iter().enumerate() {
            let to = b.now + ms(dt);
            b.run_to(to);
            let st = fake(&b.node, b.now, effort.max(1), i as u64);
            let msg = if effort == 0 { Inbound { stamp: None, ..paid(&st, i as u64) } } else { paid(&st, i as u64) };
            if let Ok(t) = b.node.on_message_with(b.now, &SENDER, msg, &mut FakeCheck) {
                admitted.push((t.id(), b.now));
            }
            b.drain();
        }
        let end = b.now + limit + ms(1);
        b.run_to(end);
        for (id, at) in admitted {
            let answered = b.served.iter().chain(&b.dropped).find(|(x, _)| *x == id);
            prop_assert!(answered.is_some(), "ticket {} never answered", id);
            let (_, when) = answered.unwrap();
            prop_assert!(*when <= at + limit, "ticket {} answered after {:?}", id, *when - at);
        }
    }
}

#[test]
fn an_unstamped_flood_costs_honest_senders_one_cheap_stamp_not_a_queue_wait() {
    let mut cfg = Config::default();
    cfg.controller.initial_capacity = 100.0; // 250 ms of queue = 25 messages
    let mut b = Bench::new(cfg, 100);
    b.serving = false;
    let free = |i: u64| Inbound { digest: [i as u8; 32], solicit: None, stamp: None };
    for i in 0..25 {
        b.node.on_message(b.now, &[0xd1; 32], free(i)).unwrap();
    }
    let r = b.node.on_message(b.now, &SENDER, free(99)).unwrap_err();
    assert_eq!(r.reason, Reason::MissingStamp);
    assert_eq!(r.busy.unwrap().price, cfg.controller.p_start);
    assert_eq!(b.node.controller().price(), 0, "still dormant");
    // The cheap stamp the sender pays after that Busy jumps the unstamped queue.
    let st = fake(&b.node, b.now, cfg.controller.p_start, 1);
    let t = b.node.on_message_with(b.now, &SENDER, paid(&st, 1), &mut FakeCheck).unwrap();
    assert_eq!(b.node.poll_next(b.now).unwrap().ticket, t);
}
