//! Admission over the session (`spec/proto.md` §10): prices advertised and pushed, stamps on
//! unsolicited calls and opens, `Busy` and retries, and credit for what a node asked for.

mod common;

use common::{Net, identity};
use ed25519_dalek::SigningKey;
use isocore_log::{Config, Download, FeedKey};
use isocore_pow::{Solver, StampKey};
use isocore_proto::connection::{call_code, stream_proof};
use isocore_proto::message::{Message, Unsolicited};
use isocore_proto::{
    Admit, Connection, ConnectionConfig, ConnectionHandle, EndpointConfig, EndpointEvent, Event, Role,
};
use std::time::Duration;

const INTERFACE: [u8; 32] = [5; 32];

/// A node that serves one call at a time and leaves dormancy at a price of 4 units, so stamps
/// solve in microseconds.
fn small_server() -> EndpointConfig {
    let mut c = EndpointConfig::default();
    c.admission.controller.p_start = 4;
    c.admission.deadline = Duration::from_millis(500);
    c.max_serving = 1;
    c
}

fn price(net: &Net, node: usize) -> u32 {
    net.nodes[node].endpoint.admission().controller().price()
}

fn stamps_sent(net: &Net, node: usize, handle: ConnectionHandle) -> u64 {
    net.nodes[node].endpoint.connection(handle).unwrap().stamps_sent()
}

fn busy_received(net: &Net, node: usize, handle: ConnectionHandle) -> u64 {
    net.nodes[node].endpoint.connection(handle).unwrap().busy_received()
}

/// Ids of the calls the application of `node` was handed since last asked.
fn calls_handed_out(net: &mut Net, node: usize) -> Vec<u64> {
    let events = std::mem::take(&mut net.nodes[node].events);
    let (calls, rest): (Vec<_>, Vec<_>) = events.into_iter().partition(|e| matches!(e, EndpointEvent::Call { .. }));
    net.nodes[node].events = rest;
    calls
        .into_iter()
        .map(|e| match e {
            EndpointEvent::Call { id, .. } => id,
            _ => unreachable!(),
        })
        .collect()
}

fn replies(net: &Net, node: usize) -> Vec<u64> {
    net.nodes[node]
        .events
        .iter()
        .filter_map(|e| match e {
            EndpointEvent::Reply { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

fn failures(net: &Net, node: usize) -> Vec<(u64, u16)> {
    net.nodes[node]
        .events
        .iter()
        .filter_map(|e| match e {
            EndpointEvent::CallFailed { id, code, .. } => Some((*id, *code)),
            _ => None,
        })
        .collect()
}

/// `loader` calls `server` three times and `server` answers none: the two queued calls pass
/// their deadline, get `Busy`, come back stamped and stand in the queue, which prices the
/// server. Returns the call ids, the first of them being served.
fn raise_price(net: &mut Net, loader: usize, loader_end: ConnectionHandle, server: usize) -> Vec<u64> {
    let ids: Vec<u64> =
        (0..3u8).map(|i| net.nodes[loader].endpoint.call(loader_end, INTERFACE, "work", &[i]).unwrap()).collect();
    net.flush();
    net.run();
    assert_eq!(calls_handed_out(net, server), vec![ids[0]], "one call at a time reaches the application");
    for _ in 0..100 {
        if price(net, server) > 0 {
            break;
        }
        net.run_for(Duration::from_millis(50));
    }
    assert!(price(net, server) > 0, "the standing queue of stamped calls did not raise the price");
    net.run();
    ids
}

#[test]
fn dormant_node_serves_unstamped_calls() {
    let mut net = Net::new();
    let a = net.add(1);
    let b = net.add(2);
    let wire = net.connect(a, b);
    net.run();
    // The price is advertised right after the handshake: 0, dormant.
    let advertised =
        net.nodes[a].endpoint.connection(wire.a.1).unwrap().peer_price().expect("a Price after the handshake");
    assert_eq!(advertised.price, 0);
    assert_eq!(advertised.seed, net.nodes[b].endpoint.admission().params(net.now).seed);
    let ids: Vec<u64> =
        (0..5u8).map(|i| net.nodes[a].endpoint.call(wire.a.1, INTERFACE, "echo", &[i]).unwrap()).collect();
    net.flush();
    net.run();
    let handed = calls_handed_out(&mut net, b);
    assert_eq!(handed, ids);
    for id in handed {
        net.nodes[b].endpoint.reply(wire.b.1, id, b"ok");
    }
    net.flush();
    net.run();
    assert_eq!(replies(&net, a), ids);
    assert_eq!(stamps_sent(&net, a, wire.a.1), 0);
    assert_eq!(busy_received(&net, a, wire.a.1), 0);
    assert_eq!(price(&net, b), 0);
}

#[test]
fn unstamped_call_gets_busy_and_the_stamped_retry_is_served() {
    let mut net = Net::new();
    let a = net.add(1);
    let b = net.add_with(2, small_server());
    let wire = net.connect(a, b);
    net.run();
    let ids = raise_price(&mut net, a, wire.a.1, b);
    // Both queued calls went out unstamped, were answered Busy and were stamped for the retry.
    assert!(busy_received(&net, a, wire.a.1) >= 2);
    assert!(stamps_sent(&net, a, wire.a.1) >= 2);
    // The rise was pushed to the caller.
    let pushed = net.nodes[a].endpoint.connection(wire.a.1).unwrap().peer_price().unwrap();
    assert!(pushed.price > 0, "the new price was not pushed");

    // Serving again: every retried call reaches the application once and is answered.
    let mut handed = vec![ids[0]];
    net.nodes[b].endpoint.reply(wire.b.1, ids[0], b"done");
    net.flush();
    net.run();
    for _ in 0..10 {
        let next = calls_handed_out(&mut net, b);
        if next.is_empty() {
            break;
        }
        for id in next {
            handed.push(id);
            net.nodes[b].endpoint.reply(wire.b.1, id, b"done");
        }
        net.flush();
        net.run();
    }
    assert_eq!(handed, ids, "each call was handed out exactly once, in order");
    assert_eq!(replies(&net, a), ids);
    assert!(price(&net, b) > 0);

    // Knowing the price, the next call is stamped on its first attempt and needs no Busy.
    let (busy, stamps) = (busy_received(&net, a, wire.a.1), stamps_sent(&net, a, wire.a.1));
    let id = net.nodes[a].endpoint.call(wire.a.1, INTERFACE, "work", b"again").unwrap();
    net.flush();
    net.run();
    assert_eq!(calls_handed_out(&mut net, b), vec![id]);
    net.nodes[b].endpoint.reply(wire.b.1, id, b"done");
    net.flush();
    net.run();
    assert_eq!(replies(&net, a).last(), Some(&id));
    assert_eq!(busy_received(&net, a, wire.a.1), busy);
    assert_eq!(stamps_sent(&net, a, wire.a.1), stamps + 1);
}

#[test]
fn caller_gives_up_beyond_its_budget() {
    let mut net = Net::new();
    let mut caller = EndpointConfig::default();
    caller.connection.stamp_policy.budget = 16;
    let a = net.add_with(1, caller);
    let mut server = small_server();
    server.admission.controller.p_start = 64;
    let b = net.add_with(2, server);
    let wire = net.connect(a, b);
    net.run();
    let first = net.nodes[a].endpoint.call(wire.a.1, INTERFACE, "work", b"1").unwrap();
    let second = net.nodes[a].endpoint.call(wire.a.1, INTERFACE, "work", b"2").unwrap();
    net.flush();
    net.run();
    assert_eq!(calls_handed_out(&mut net, b), vec![first]);
    // The queued call passes its deadline; Busy quotes 64 units, above the budget of 16.
    net.run_for(Duration::from_secs(2));
    let given_up: Vec<_> = net.nodes[a]
        .events
        .iter()
        .filter_map(|e| match e {
            EndpointEvent::NotAdmitted { of, spent, .. } => Some((*of, *spent)),
            _ => None,
        })
        .collect();
    assert_eq!(given_up, vec![(Unsolicited::Call(second), 0)]);
    assert_eq!(stamps_sent(&net, a, wire.a.1), 0);
    assert!(calls_handed_out(&mut net, b).is_empty());
}

/// Sends a call from `a` to `b` outside `a`'s own sender, stamped at effort 1 with the key of
/// `(sender, receiver)` and `b`'s current epoch seed.
fn send_stamped_call(
    net: &mut Net,
    a: (usize, ConnectionHandle),
    b: usize,
    sender: [u8; 32],
    receiver: [u8; 32],
    id: u64,
) {
    let params = net.nodes[b].endpoint.admission().params(net.now);
    let connection = net.nodes[a.0].endpoint.connection_mut(a.1).unwrap();
    let hash = connection.handshake_hash().unwrap();
    let payload = id.to_le_bytes();
    let unstamped = Message::Call { id, interface: INTERFACE, method: "raw", payload: &payload, stamp: None };
    let digest = unstamped.stamp_digest(&hash);
    let key = StampKey::derive(&params.seed, &sender, &receiver);
    let stamp = Solver::new(&key, &digest, params.epoch, 1, 0).unwrap().step(u64::MAX).unwrap().encode();
    connection.send_raw(&Message::Call {
        id,
        interface: INTERFACE,
        method: "raw",
        payload: &payload,
        stamp: Some(&stamp),
    });
    net.flush();
    net.run();
}

#[test]
fn stamp_made_for_another_receiver_or_sender_is_refused() {
    let mut net = Net::new();
    let a = net.add(1);
    let b = net.add(2);
    let wire = net.connect(a, b);
    net.run();
    let (pa, pb, pc) = (identity(1).peer_id().0, identity(2).peer_id().0, identity(3).peer_id().0);
    send_stamped_call(&mut net, wire.a, b, pc, pb, 101); // made by another sender
    send_stamped_call(&mut net, wire.a, b, pa, pc, 102); // made for another receiver
    send_stamped_call(&mut net, wire.a, b, pb, pa, 103); // the reverse direction's key
    send_stamped_call(&mut net, wire.a, b, pa, pb, 104); // right
    assert_eq!(calls_handed_out(&mut net, b), vec![104]);
    let refused = call_code::BAD_STAMP;
    assert_eq!(failures(&net, a), vec![(101, refused), (102, refused), (103, refused)]);
}

#[test]
fn replayed_stamp_is_refused() {
    let mut net = Net::new();
    let a = net.add(1);
    let b = net.add(2);
    let wire = net.connect(a, b);
    net.run();
    let (pa, pb) = (identity(1).peer_id().0, identity(2).peer_id().0);
    // The solver is deterministic: the same call stamped twice is the same stamp.
    send_stamped_call(&mut net, wire.a, b, pa, pb, 7);
    send_stamped_call(&mut net, wire.a, b, pa, pb, 7);
    assert_eq!(calls_handed_out(&mut net, b), vec![7]);
    assert_eq!(failures(&net, a), vec![(7, call_code::BAD_STAMP)]);
}

#[test]
fn solicited_replication_flows_under_a_price_without_stamps() {
    let signer = SigningKey::from_bytes(&[77; 32]);
    let key = FeedKey::standalone(signer.verifying_key());
    let mut net = Net::new();
    let w = net.add(1);
    let b = net.add_with(2, small_server());
    let c = net.add(3);
    net.add_feed(w, key, Some(Config { download: Download::None, live: false, ..Config::default() }));
    net.add_feed(b, key, None);
    let feed = net.connect(w, b);
    let load = net.connect(c, b);
    net.run();
    // `c` loads `b` with calls until `b` charges for anything unsolicited.
    raise_price(&mut net, c, load.a.1, b);
    let pushed = net.nodes[w].endpoint.connection(feed.a.1).unwrap().peer_price().unwrap();
    assert!(pushed.price > 0, "the writer knows it talks to a priced node");

    // `b` follows the feed: entries arrive on the stream it subscribed to, with no stamp.
    for i in 0..30u64 {
        let now = net.now;
        net.nodes[w].endpoint.append(&key, &signer, [format!("entry {i}").into_bytes()], now).unwrap();
        net.flush();
        net.run();
    }
    assert!(price(&net, b) > 0, "the price held while the feed replicated");
    assert_eq!(net.nodes[b].endpoint.feed(&key).unwrap().contiguous_len(), 30);
    assert_eq!(stamps_sent(&net, w, feed.a.1), 0);
    assert_eq!(stamps_sent(&net, b, feed.b.1), 0);
    assert_eq!(busy_received(&net, w, feed.a.1), 0);
}

#[test]
fn stream_open_to_a_priced_node_is_stamped_and_replicates() {
    let signer = SigningKey::from_bytes(&[77; 32]);
    let key = FeedKey::standalone(signer.verifying_key());
    let mut net = Net::new();
    let b = net.add_with(2, small_server());
    let c = net.add(3);
    let d = net.add(4);
    let serve = Config { download: Download::None, live: false, data_budget: 8 << 10, ..Config::default() };
    net.add_feed(b, key, Some(serve));
    let now = net.now;
    // Several messages beyond the initial stream credit, so the follower's full window must
    // reach `b` although `b` refused the first open and forgot its credit with it.
    let entries: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 4096]).collect();
    net.nodes[b].endpoint.append(&key, &signer, entries, now).unwrap();
    let load = net.connect(c, b);
    net.run();
    let calls = raise_price(&mut net, c, load.a.1, b);
    // A follower opens its stream before it hears the price: Busy, then a stamped open.
    net.add_feed(d, key, None);
    let feed = net.connect(d, b);
    net.run();
    // Serve the loader's calls so the admission queue moves.
    net.nodes[b].endpoint.reply(load.b.1, calls[0], b"done");
    for _ in 0..20 {
        net.flush();
        net.run();
        for id in calls_handed_out(&mut net, b) {
            net.nodes[b].endpoint.reply(load.b.1, id, b"done");
        }
        if net.nodes[d].endpoint.feed(&key).unwrap().contiguous_len() == 20 {
            break;
        }
        net.run_for(Duration::from_millis(100));
    }
    assert_eq!(net.nodes[d].endpoint.feed(&key).unwrap().contiguous_len(), 20);
    assert!(busy_received(&net, d, feed.a.1) >= 1, "the unstamped open was answered Busy");
    assert!(stamps_sent(&net, d, feed.a.1) >= 1, "the open was retried with a stamp");
}

fn transfer(from: &mut Connection, to: &mut Connection) -> bool {
    let mut buf = Vec::new();
    while from.poll_transmit(Duration::ZERO, &mut buf).is_some() {}
    if !buf.is_empty() {
        to.handle_input(Duration::ZERO, &buf).unwrap();
    }
    !buf.is_empty()
}

/// Move bytes both ways between two bare connections until quiet; returns each side's events.
fn pump(a: &mut Connection, b: &mut Connection) -> (Vec<Event>, Vec<Event>) {
    let (mut ea, mut eb) = (Vec::new(), Vec::new());
    loop {
        let moved = transfer(a, b) | transfer(b, a);
        ea.extend(std::iter::from_fn(|| a.poll_event()));
        eb.extend(std::iter::from_fn(|| b.poll_event()));
        if !moved {
            return (ea, eb);
        }
    }
}

#[test]
fn only_unsolicited_messages_are_handed_to_admission() {
    let cfg = ConnectionConfig::default();
    let mut i = Connection::new(Role::Initiator, &identity(1), cfg.clone(), [11; 32], Duration::ZERO);
    let mut r = Connection::new(Role::Responder, &identity(2), cfg, [22; 32], Duration::ZERO);
    pump(&mut i, &mut r);
    let hash = i.handshake_hash().unwrap();
    let feed = |seed: u8| FeedKey::standalone(SigningKey::from_bytes(&[seed; 32]).verifying_key());
    let (both, only_i) = (feed(1), feed(2));
    // Both open `both` at once: the responder's own open solicits the initiator's.
    r.open_stream(&both).unwrap();
    let s1 = i.open_stream(&both).unwrap();
    // Only the initiator wants `only_i`, and it calls: both unsolicited.
    let s3 = i.open_stream(&only_i).unwrap();
    let call = i.call(INTERFACE, "m", b"args");
    let (_, events) = pump(&mut i, &mut r);
    let requested: Vec<(u64, Option<[u8; 32]>)> = events
        .iter()
        .filter_map(|e| match e {
            Event::StreamRequested { stream, admit, .. } => Some((*stream, admit.as_ref().map(|a| a.digest))),
            _ => None,
        })
        .collect();
    let open3 = Message::Open {
        stream: s3,
        discovery_key: only_i.discovery_key(),
        proof: stream_proof(&only_i, &hash, s3),
        stamp: None,
    };
    assert_eq!(requested, vec![(s1, None), (s3, Some(open3.stamp_digest(&hash)))]);
    let call_admit = events.iter().find_map(|e| match e {
        Event::Call { id, admit, .. } if *id == call => Some(admit.clone()),
        _ => None,
    });
    let unstamped = Message::Call { id: call, interface: INTERFACE, method: "m", payload: b"args", stamp: None };
    assert_eq!(call_admit, Some(Admit { digest: unstamped.stamp_digest(&hash), stamp: None }));
}
