//! Two endpoints over one session: feeds, live pushes and calls in both directions.

mod common;

use common::Net;
use ed25519_dalek::SigningKey;
use isocore_log::{Config, Download, FeedKey};
use isocore_proto::EndpointEvent;
use std::time::Duration;

fn writer() -> (SigningKey, FeedKey) {
    let signer = SigningKey::from_bytes(&[77; 32]);
    (signer.clone(), FeedKey::standalone(signer.verifying_key()))
}

#[test]
fn handshake_authenticates_both_sides() {
    let mut net = Net::new();
    let a = net.add(1);
    let b = net.add(2);
    net.connect(a, b);
    net.run();
    let peer_of = |n: usize| {
        net.nodes[n].events.iter().find_map(|e| match e {
            EndpointEvent::Connected { peer, .. } => Some(*peer),
            _ => None,
        })
    };
    assert_eq!(peer_of(a), Some(net.nodes[b].endpoint.peer_id()));
    assert_eq!(peer_of(b), Some(net.nodes[a].endpoint.peer_id()));
}

#[test]
fn feed_replicates_and_follows_live_over_the_session() {
    let (signer, key) = writer();
    let mut net = Net::new();
    let a = net.add(1);
    let b = net.add(2);
    net.add_feed(a, key, Some(Config { download: Download::None, live: false, ..Config::default() }));
    net.add_feed(b, key, None);
    let now = net.now;
    for i in 0..20u64 {
        let entries: Vec<Vec<u8>> = (0..500).map(|j| format!("entry {}", i * 500 + j).into_bytes()).collect();
        net.nodes[a].endpoint.append(&key, &signer, entries, now).unwrap();
    }
    net.connect(a, b);
    net.run();
    let fb = net.nodes[b].endpoint.feed(&key).unwrap();
    assert_eq!(fb.contiguous_len(), 10_000);
    assert_eq!(fb.get(9_999).unwrap().as_deref(), Some(&b"entry 9999"[..]));
    // Live: each append arrives in one hop.
    for i in 0..10u64 {
        let now = net.now;
        net.nodes[a].endpoint.append(&key, &signer, [format!("live {i}").into_bytes()], now).unwrap();
        net.flush();
        let sent = net.now;
        net.run();
        assert_eq!(net.nodes[b].endpoint.feed(&key).unwrap().len(), 10_001 + i);
        assert_eq!(net.now - sent, net.latency);
    }
}

#[test]
fn relays_carry_a_feed_across_sessions() {
    let (signer, key) = writer();
    let mut net = Net::new();
    let [a, b, c] = [1, 2, 3].map(|s| net.add(s));
    for n in [a, b, c] {
        net.add_feed(n, key, None);
    }
    net.connect(a, b);
    net.connect(c, b);
    net.run();
    for i in 0..50u64 {
        let now = net.now;
        net.nodes[a].endpoint.append(&key, &signer, [vec![i as u8; 100]], now).unwrap();
        net.flush();
        net.run();
    }
    let head = |n: usize| net.nodes[n].endpoint.feed(&key).unwrap().head().copied();
    assert_eq!(head(c), head(a));
    assert_eq!(net.nodes[c].endpoint.feed(&key).unwrap().contiguous_len(), 50);
}

#[test]
fn calls_in_both_directions_at_once() {
    let mut net = Net::new();
    let a = net.add(1);
    let b = net.add(2);
    let wire = net.connect(a, b);
    net.run();
    let interface = [5; 32];
    let ca = net.nodes[a].endpoint.call(wire.a.1, interface, "echo", b"from a").unwrap();
    let cb = net.nodes[b].endpoint.call(wire.b.1, interface, "echo", b"from b").unwrap();
    net.flush();
    net.run();
    // Each side answers the call it received.
    for (node, handle) in [wire.a, wire.b] {
        let calls: Vec<(u64, Vec<u8>)> = net
            .take_events(node)
            .into_iter()
            .filter_map(|e| match e {
                EndpointEvent::Call { id, method, payload, .. } if method == "echo" => Some((id, payload.to_vec())),
                _ => None,
            })
            .collect();
        assert_eq!(calls.len(), 1);
        let mut answer = b"echo: ".to_vec();
        answer.extend_from_slice(&calls[0].1);
        net.nodes[node].endpoint.reply(handle, calls[0].0, &answer);
    }
    net.flush();
    net.run();
    let reply_of = |net: &mut Net, node: usize| {
        net.take_events(node).into_iter().find_map(|e| match e {
            EndpointEvent::Reply { id, payload, .. } => Some((id, payload.to_vec())),
            _ => None,
        })
    };
    assert_eq!(reply_of(&mut net, a), Some((ca, b"echo: from a".to_vec())));
    assert_eq!(reply_of(&mut net, b), Some((cb, b"echo: from b".to_vec())));
}

#[test]
fn keepalive_holds_an_idle_connection_open() {
    let mut net = Net::new();
    let a = net.add(1);
    let b = net.add(2);
    net.connect(a, b);
    net.run();
    net.run_for(Duration::from_secs(120));
    let closed = net.nodes.iter().flat_map(|n| &n.events).any(|e| matches!(e, EndpointEvent::Closed { .. }));
    assert!(!closed, "an idle but live connection was closed");
}

#[test]
fn bulk_download_does_not_starve_a_call() {
    let (signer, key) = writer();
    let mut net = Net::new();
    let a = net.add(1);
    let b = net.add(2);
    net.add_feed(a, key, Some(Config { download: Download::None, live: false, ..Config::default() }));
    net.add_feed(b, key, None);
    let now = net.now;
    for _ in 0..40 {
        net.nodes[a].endpoint.append(&key, &signer, (0..16).map(|_| vec![1u8; 60_000]), now).unwrap();
    }
    let wire = net.connect(a, b);
    // Let the download get going, then call from b while a is busy sending bulk data.
    for _ in 0..10 {
        net.step();
    }
    let id = net.nodes[b].endpoint.call(wire.b.1, [1; 32], "ping", b"?").unwrap();
    net.flush();
    let mut answered_at = None;
    while answered_at.is_none() && net.step() {
        for e in net.take_events(a) {
            if let EndpointEvent::Call { id: cid, .. } = e {
                net.nodes[a].endpoint.reply(wire.a.1, cid, b"!");
                net.flush();
            }
        }
        if net.take_events(b).iter().any(|e| matches!(e, EndpointEvent::Reply { id: r, .. } if *r == id)) {
            answered_at = Some(net.nodes[b].endpoint.feed(&key).unwrap().contiguous_len());
        }
    }
    let held = answered_at.expect("the call was answered");
    assert!(held < 640, "the call waited for the whole download ({held} of 640 entries first)");
    net.run();
    assert_eq!(net.nodes[b].endpoint.feed(&key).unwrap().contiguous_len(), 640);
}

/// A writer `w` that serves one subscriber per feed, with one entry, and two followers.
fn one_seat_writer() -> (SigningKey, FeedKey, Net, [usize; 3]) {
    let (signer, key) = writer();
    let mut net = Net::new();
    let limited = isocore_proto::EndpointConfig { max_subscribers: Some(1), ..Default::default() };
    let w = net.add_with(1, limited);
    let [b, c] = [2, 3].map(|s| net.add(s));
    let serve_only = Config { download: Download::None, live: false, ..Config::default() };
    net.add_feed(w, key, Some(serve_only));
    for n in [b, c] {
        net.add_feed(n, key, None);
    }
    net.nodes[w].endpoint.append(&key, &signer, [b"one".to_vec()], Duration::ZERO).unwrap();
    (signer, key, net, [w, b, c])
}

#[test]
fn a_node_serving_its_limit_redirects_a_newcomer_to_the_peers_it_serves() {
    let (signer, key, mut net, [w, b, c]) = one_seat_writer();
    net.connect(b, w);
    net.run();
    net.connect(c, w);
    net.run();
    let redirected: Vec<_> = net
        .take_events(c)
        .into_iter()
        .filter_map(|e| match e {
            EndpointEvent::Redirected { peers, .. } => Some(peers),
            _ => None,
        })
        .collect();
    assert_eq!(redirected, vec![vec![net.nodes[b].endpoint.peer_id()]]);
    let len = |net: &Net, n: usize| net.nodes[n].endpoint.feed(&key).unwrap().len();
    assert_eq!((len(&net, b), len(&net, c)), (1, 0), "the writer serves its one seat only");
    // Following the redirect, the newcomer is served by the seated peer.
    net.connect(c, b);
    net.run();
    let now = net.now;
    net.nodes[w].endpoint.append(&key, &signer, [b"two".to_vec()], now).unwrap();
    net.flush();
    net.run();
    assert_eq!((len(&net, b), len(&net, c)), (2, 2));
}

#[test]
fn a_peer_subscribed_on_two_sessions_keeps_its_one_seat_until_both_end() {
    let (_, _, mut net, [w, b, c]) = one_seat_writer();
    let first = net.connect(b, w);
    net.connect(b, w);
    net.run();
    // One session of b ends; it is still subscribed on the other, so the seat stays taken.
    net.nodes[w].endpoint.close(first.b.1, "test");
    net.run();
    net.connect(c, w);
    net.run();
    let redirected = net.take_events(c).into_iter().any(|e| matches!(e, EndpointEvent::Redirected { .. }));
    assert!(redirected, "a second subscriber took a seat still held");
}
