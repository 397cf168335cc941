//! Processes, mailboxes, links, monitors and kills on real components.

mod common;

use common::*;
use isocore_host::*;
use std::time::Duration;

#[test]
fn echo_replies_and_counts() {
    let node = node();
    let echo = load(&node, "echo");
    let pid = node.spawn(&echo, b"").unwrap();
    let inbox = node.inbox(16);
    node.send(pid, 1, b"hello", Some(inbox.pid())).unwrap();
    let r = inbox.recv(WAIT).unwrap();
    assert_eq!((r.tag, r.body.as_slice(), r.from), (1, b"hello".as_slice(), Some(pid)));
    for (add, total) in [(5u64, 5u64), (7, 12)] {
        node.send(pid, 2, &add.to_le_bytes(), Some(inbox.pid())).unwrap();
        assert_eq!(u64_of(&inbox.recv(WAIT).unwrap().body), total);
    }
}

#[test]
fn two_processes_ping_pong_through_handles() {
    let node = node();
    let echo = load(&node, "echo");
    let (a, b) = (node.spawn(&echo, b"").unwrap(), node.spawn(&echo, b"").unwrap());
    let inbox = node.inbox(16);
    // A reports to us; it reaches B only through the handle that comes with our message.
    node.send(a, 6, b"", Some(inbox.pid())).unwrap();
    node.send(a, 3, &100u64.to_le_bytes(), Some(b)).unwrap();
    let done = inbox.recv(WAIT).unwrap();
    assert_eq!((done.tag, u64_of(&done.body), done.from), (4, 100, Some(a)));
    assert_eq!(node.processes(), 2);
}

#[test]
fn a_trap_ends_only_that_process_and_fires_its_monitor() {
    let node = node();
    let hostile = load(&node, "hostile");
    let echo = load(&node, "echo");
    let bystander = node.spawn(&echo, b"").unwrap();
    for tag in [3u64, 4, 5, 6] {
        let (pid, monitor) = node.spawn_monitored(&hostile, b"", None).unwrap();
        let inbox = node.inbox(4);
        node.send(pid, tag, b"", Some(inbox.pid())).unwrap();
        let reason = monitor.wait(WAIT).expect("exits");
        assert!(matches!(reason, ExitReason::Crashed(_)), "tag {tag}: {reason:?}");
    }
    let inbox = node.inbox(4);
    node.send(bystander, 1, b"still here", Some(inbox.pid())).unwrap();
    assert_eq!(inbox.recv(WAIT).unwrap().body, b"still here");
}

#[test]
fn forged_and_stale_handles_trap() {
    let node = node();
    let hostile = load(&node, "hostile");
    for tag in [5u64, 6] {
        let (pid, monitor) = node.spawn_monitored(&hostile, b"", None).unwrap();
        let inbox = node.inbox(4);
        node.send(pid, tag, b"", Some(inbox.pid())).unwrap();
        let ExitReason::Crashed(why) = monitor.wait(WAIT).unwrap() else { panic!("tag {tag} did not crash") };
        assert!(why.contains("unknown handle") || why.contains("handle"), "tag {tag}: {why}");
        // Nothing reached the inbox: the forged send never happened.
        assert!(inbox.recv(Duration::from_millis(50)).is_none());
    }
}

#[test]
fn a_runaway_is_preempted_and_killed() {
    let node = node();
    let hostile = load(&node, "hostile");
    let echo = load(&node, "echo");
    // More runaways than executor threads: a well-behaved process still gets its turn.
    let runaways: Vec<_> = (0..4).map(|_| node.spawn_monitored(&hostile, b"", None).unwrap()).collect();
    for (pid, _) in &runaways {
        node.send(*pid, 1, b"", None).unwrap();
    }
    let echo_pid = node.spawn(&echo, b"").unwrap();
    let inbox = node.inbox(4);
    node.send(echo_pid, 1, b"served", Some(inbox.pid())).unwrap();
    assert_eq!(inbox.recv(WAIT).unwrap().body, b"served");
    for (pid, monitor) in runaways {
        assert!(node.kill(pid));
        assert_eq!(monitor.wait(WAIT), Some(ExitReason::Killed));
    }
    assert_eq!(node.processes(), 1);
}

#[test]
fn a_memory_hog_stops_at_its_limit() {
    let node = node();
    let hostile = load(&node, "hostile");
    let limits = Limits { memory: 2 << 20, ..Limits::default() };
    let (pid, _monitor) = node.spawn_monitored(&hostile, b"", Some(limits)).unwrap();
    let inbox = node.inbox(4);
    node.send(pid, 2, &64u64.to_le_bytes(), Some(inbox.pid())).unwrap();
    let kib = u64_of(&inbox.recv(WAIT).unwrap().body);
    assert!(kib > 0 && kib * 1024 <= 2 << 20, "got {kib} KiB");
    assert!(hostile.memory_in_use() <= 2 << 20);
}

#[test]
fn memory_hogs_of_one_app_stop_at_the_app_budget() {
    let budget = 6 << 20;
    let node =
        Node::new(NodeConfig { max_processes: 64, threads: 2, app_memory: budget, ..NodeConfig::default() }).unwrap();
    let hostile = load(&node, "hostile");
    let limits = Limits { memory: 4 << 20, ..Limits::default() };
    let inbox = node.inbox(16);
    let mut hogs = 0;
    let refused = loop {
        // Spawning needs the initial memory too, so the budget also stops new processes.
        let pid = match node.spawn_monitored(&hostile, b"", Some(limits)) {
            Ok((pid, _)) => pid,
            Err(e) => break e,
        };
        node.send(pid, 2, &64u64.to_le_bytes(), Some(inbox.pid())).unwrap();
        inbox.recv(WAIT).unwrap();
        hogs += 1;
        assert!(hogs < 8, "the budget never ran out");
    };
    assert!(matches!(refused, HostError::Limit(what) if what.starts_with("memory")), "{refused}");
    assert!(hogs >= 1);
    assert!(hostile.memory_in_use() <= budget, "{}", hostile.memory_in_use());
    // Another app has its own budget.
    let other = load(&node, "hostile");
    assert!(node.spawn(&other, b"").is_ok());
}

#[test]
fn a_handle_flood_stops_at_the_table_capacity() {
    let node = node();
    let hostile = load(&node, "hostile");
    let limits = Limits { handles: 100, ..Limits::default() };
    let (pid, _m) = node.spawn_monitored(&hostile, b"", Some(limits)).unwrap();
    let inbox = node.inbox(4);
    node.send(pid, 7, b"", Some(inbox.pid())).unwrap();
    let got = u64_of(&inbox.recv(WAIT).unwrap().body);
    // The reply handle itself holds one slot.
    assert!((90..100).contains(&got), "{got}");
}

#[test]
fn a_mailbox_flood_is_refused_to_the_sender() {
    let node = node();
    let hostile = load(&node, "hostile");
    // By messages: the flooder fills its own mailbox (it cannot drain it while it floods) and
    // is refused at the bound, not queued without limit.
    let small = Limits { mailbox_messages: 8, ..Limits::default() };
    let (flooder, _m) = node.spawn_monitored(&hostile, b"", Some(small)).unwrap();
    let inbox = node.inbox(4);
    node.send(flooder, 8, b"", Some(inbox.pid())).unwrap();
    assert_eq!(u64_of(&inbox.recv(WAIT).unwrap().body), 8);
    // By bytes: 64-byte bodies against a 640-byte bound.
    let bytes = Limits { mailbox_bytes: 640, ..Limits::default() };
    let (flooder, _m) = node.spawn_monitored(&hostile, b"", Some(bytes)).unwrap();
    node.send(flooder, 8, b"", Some(inbox.pid())).unwrap();
    assert_eq!(u64_of(&inbox.recv(WAIT).unwrap().body), 10);
    // The host is refused the same way: a runaway never drains its mailbox.
    let (busy, _m) = node.spawn_monitored(&hostile, b"", Some(small)).unwrap();
    node.send(busy, 1, b"", None).unwrap();
    while node.queued(busy) != Some(0) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let accepted = (0..20).take_while(|_| node.send(busy, 0, b"x", None).is_ok()).count();
    assert_eq!(accepted, 8);
    assert_eq!(node.send(busy, 0, b"x", None), Err(SendError::Full));
    assert!(node.kill(busy));
}

#[test]
fn a_process_can_receive_its_own_message_without_deadlock() {
    let node = node();
    let hostile = load(&node, "hostile");
    let pid = node.spawn(&hostile, b"").unwrap();
    let inbox = node.inbox(4);
    node.send(pid, 9, b"", Some(inbox.pid())).unwrap();
    assert_eq!(inbox.recv(WAIT).unwrap().body, b"to myself");
    node.send(pid, 10, &20u64.to_le_bytes(), Some(inbox.pid())).unwrap();
    assert_eq!(inbox.recv(WAIT).unwrap().body, [1]);
}

#[test]
fn init_errors_end_the_process_normally() {
    let node = node();
    let hostile = load(&node, "hostile");
    let (_pid, monitor) = node.spawn_monitored(&hostile, b"refuse", None).unwrap();
    assert_eq!(monitor.wait(WAIT), Some(ExitReason::Normal));
}

#[test]
fn links_propagate_abnormal_exits_and_trap_exits_turns_them_into_signals() {
    let node = node();
    let sup = load(&node, "supervisor");
    let (pid, monitor) = node.spawn_monitored(&sup, b"supervisor:3", None).unwrap();
    let inbox = node.inbox(8);
    let status = |inbox: &Inbox| {
        node.send(pid, 1, b"", Some(inbox.pid())).unwrap();
        let b = inbox.recv(WAIT).unwrap().body;
        (u64_of(&b[..8]), u64_of(&b[8..]))
    };
    assert_eq!(status(&inbox), (3, 0));
    assert_eq!(node.processes(), 4);
    // Crash worker 1: the supervisor traps the exit and restarts it.
    node.send(pid, 2, &1u64.to_le_bytes(), None).unwrap();
    let mut seen = (0, 0);
    for _ in 0..100 {
        seen = status(&inbox);
        if seen.1 == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(seen, (3, 1));
    assert_eq!(node.processes(), 4);
    // Killing the supervisor takes its linked workers with it (they do not trap exits).
    assert!(node.kill(pid));
    assert_eq!(monitor.wait(WAIT), Some(ExitReason::Killed));
    for _ in 0..100 {
        if node.processes() == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(node.processes(), 0);
}

#[test]
fn unknown_imports_and_invalid_bytes_are_refused_at_load() {
    let node = node();
    assert!(matches!(node.load(b"not wasm"), Err(HostError::Invalid(_))));
    // Components importing WASI or an interface of ours at another version.
    for import in ["wasi:cli/environment@0.2.0", "isocore:process/process@0.2.0", "isocore:secret/keys@0.1.0"] {
        let text = format!(r#"(component (import "{import}" (instance)))"#);
        match node.load(text.as_bytes()) {
            Err(HostError::UnknownImport(name)) => assert_eq!(name, import),
            other => panic!("{import}: {:?}", other.map(|_| ())),
        }
    }
    // A component that imports nothing but does not export the actor world.
    assert!(matches!(node.load(b"(component)"), Err(HostError::WrongWorld(_))));
}

#[test]
fn density_beyond_the_map_count_is_refused_with_a_clear_message() {
    let e = check_density(100_000, Some(65_530)).unwrap_err();
    assert_eq!(u64::from(e.reachable), (65_530 - config::VMA_RESERVE) / config::VMAS_PER_PROCESS);
    assert_eq!(e.needed, 100_000 * config::VMAS_PER_PROCESS + config::VMA_RESERVE);
    let text = e.to_string();
    assert!(text.contains("vm.max_map_count") && text.contains("100000"), "{text}");
    assert!(check_density(1000, Some(65_530)).is_ok());
}

#[test]
fn spawning_past_the_process_budget_is_a_limit_not_an_abort() {
    let node = Node::new(NodeConfig { max_processes: 8, threads: 1, ..NodeConfig::default() }).unwrap();
    let echo = load(&node, "echo");
    let pids: Vec<_> = (0..8).map(|_| node.spawn(&echo, b"").unwrap()).collect();
    assert!(matches!(node.spawn(&echo, b""), Err(HostError::Limit(_))));
    assert!(node.kill(pids[0]));
    for _ in 0..100 {
        if node.spawn(&echo, b"").is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("a slot was not freed");
}

#[test]
fn spawning_up_to_and_past_the_map_budget_returns_limit_never_an_abort() {
    // As many processes as this machine's vm.max_map_count allows (capped for test time),
    // then more: the extra spawns are refused with a limit, and every slot was usable.
    let reachable = match check_density(u32::MAX / 8, None) {
        Err(e) => e.reachable.min(20_000),
        Ok(()) => 20_000,
    };
    let config =
        NodeConfig { max_processes: reachable, threads: 2, app_memory: usize::MAX / 2, ..NodeConfig::default() };
    let node = Node::new(config).unwrap();
    let echo = load(&node, "echo");
    let small = Limits { mailbox_messages: 4, mailbox_bytes: 1024, handles: 8, ..Limits::default() };
    let mut pids = Vec::new();
    for _ in 0..reachable {
        pids.push(node.spawn_with(&echo, b"", small).expect("a slot the density check promised"));
    }
    for _ in 0..10 {
        assert!(matches!(node.spawn_with(&echo, b"", small), Err(HostError::Limit(_))));
    }
    // The last one spawned still works.
    let inbox = node.inbox(4);
    node.send(*pids.last().unwrap(), 1, b"last", Some(inbox.pid())).unwrap();
    assert_eq!(inbox.recv(WAIT).unwrap().body, b"last");
}

#[test]
fn a_host_panic_ends_only_that_process_and_fires_its_monitor() {
    let node = node();
    let hostile = load(&node, "hostile");
    let sup = load(&node, "supervisor");
    let (victim, monitor) = node.spawn_monitored(&hostile, b"", None).unwrap();
    let bystander = node.spawn(&sup, b"").unwrap();
    node.send(victim, 11, b"", None).unwrap();
    match monitor.wait(WAIT) {
        Some(ExitReason::Crashed(why)) => {
            assert!(why.contains("host panic") && why.contains("fault injected"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    // The node and other processes carry on.
    let inbox = node.inbox(4);
    node.send(bystander, 4, b"", Some(inbox.pid())).unwrap();
    assert_eq!(inbox.recv(WAIT).unwrap().tag, 4);
    let next = node.spawn(&hostile, b"").unwrap();
    node.send(next, 9, b"", Some(inbox.pid())).unwrap();
    assert_eq!(inbox.recv(WAIT).unwrap().body, b"to myself");
}
