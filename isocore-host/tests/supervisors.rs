//! Host-native supervisors: each strategy, and the restart intensity.

mod common;

use common::*;
use isocore_host::*;
use std::time::Duration;

fn spec(node: &Node, strategy: Strategy, intensity: u32) -> SupervisorSpec {
    let hostile = load(node, "hostile");
    let children = (0..3).map(|_| ChildSpec { app: hostile.clone(), init: Vec::new() }).collect();
    SupervisorSpec { strategy, intensity, period: Duration::from_secs(5), children }
}

/// Waits until the supervisor has made `n` restarts and every child runs again.
fn settled(sup: &Supervisor, n: u64) -> Vec<Pid> {
    for _ in 0..500 {
        let children = sup.children();
        if sup.restarts() == n && children.iter().all(Option::is_some) {
            return children.into_iter().map(Option::unwrap).collect();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("supervisor did not settle at {n} restarts: {} {:?}", sup.restarts(), sup.children());
}

fn crash(node: &Node, pid: Pid) {
    node.send(pid, 3, b"", None).unwrap();
}

#[test]
fn one_for_one_restarts_only_the_failed_child() {
    let node = node();
    let sup = Supervisor::start(&node, spec(&node, Strategy::OneForOne, 3)).unwrap();
    let before = settled(&sup, 0);
    crash(&node, before[1]);
    let after = settled(&sup, 1);
    assert_eq!((after[0], after[2]), (before[0], before[2]));
    assert_ne!(after[1], before[1]);
    assert_eq!(node.processes(), 3);
}

#[test]
fn one_for_all_restarts_every_child() {
    let node = node();
    let sup = Supervisor::start(&node, spec(&node, Strategy::OneForAll, 3)).unwrap();
    let before = settled(&sup, 0);
    crash(&node, before[0]);
    let after = settled(&sup, 1);
    for i in 0..3 {
        assert_ne!(after[i], before[i], "child {i}");
    }
    for _ in 0..100 {
        if node.processes() == 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(node.processes(), 3);
}

#[test]
fn rest_for_one_restarts_the_failed_child_and_those_after_it() {
    let node = node();
    let sup = Supervisor::start(&node, spec(&node, Strategy::RestForOne, 3)).unwrap();
    let before = settled(&sup, 0);
    crash(&node, before[1]);
    let after = settled(&sup, 1);
    assert_eq!(after[0], before[0]);
    assert_ne!(after[1], before[1]);
    assert_ne!(after[2], before[2]);
}

#[test]
fn restart_intensity_exceeded_stops_every_child() {
    let node = node();
    let sup = Supervisor::start(&node, spec(&node, Strategy::OneForOne, 2)).unwrap();
    for n in 0..2 {
        let children = settled(&sup, n);
        crash(&node, children[0]);
    }
    let children = settled(&sup, 2);
    crash(&node, children[2]);
    let why = sup.wait(WAIT).expect("the supervisor gives up");
    assert!(why.contains("more than 2 times"), "{why}");
    for _ in 0..200 {
        if node.processes() == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(node.processes(), 0);
    assert!(sup.children().iter().all(Option::is_none));
}

#[test]
fn a_killed_child_is_restarted_and_a_normal_exit_is_not() {
    let node = node();
    let hostile = load(&node, "hostile");
    let children = vec![
        ChildSpec { app: hostile.clone(), init: Vec::new() },
        ChildSpec { app: hostile.clone(), init: b"refuse".to_vec() },
    ];
    let sup = Supervisor::start(
        &node,
        SupervisorSpec { strategy: Strategy::OneForOne, intensity: 5, period: Duration::from_secs(5), children },
    )
    .unwrap();
    // The second child returns an error from init: a normal exit, not restarted.
    for _ in 0..200 {
        if sup.children()[1].is_none() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(sup.children()[1], None);
    let first = sup.children()[0].unwrap();
    assert!(node.kill(first));
    for _ in 0..200 {
        if sup.restarts() == 1 && sup.children()[0].is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(sup.restarts(), 1);
    assert_ne!(sup.children()[0], Some(first));
}
