//! Replication between in-memory replicas on a virtual network.

mod common;

use common::{LinkFaults, Net, entry, writer};
use isocore_log::{Config, Download, Event};
use proptest::prelude::*;
use std::time::Duration;

fn follower() -> Config {
    Config::default()
}

fn server() -> Config {
    Config { download: Download::None, live: false, ..Config::default() }
}

#[test]
fn full_download_of_an_existing_feed() {
    let (signer, key) = writer(1);
    let mut net = Net::new(1);
    let a = net.add(key);
    let b = net.add(key);
    for batch in 0..10 {
        net.append(a, &signer, (0..500).map(|i| entry(batch * 500 + i, 64)).collect());
    }
    net.connect(a, server(), b, Config { live: false, ..follower() });
    net.run(100_000);
    assert!(net.errors().is_empty(), "{:?}", net.errors());
    net.assert_same_as(b, a);
}

#[test]
fn pipelined_download_takes_few_round_trips() {
    let (signer, key) = writer(2);
    let mut net = Net::new(2);
    let a = net.add(key);
    let b = net.add(key);
    net.append(a, &signer, (0..20_000).map(|i| entry(i, 16)).collect());
    net.connect(a, server(), b, Config { live: false, ..follower() });
    net.run(100_000);
    net.assert_same_as(b, a);
    // One round trip for the head and first chunk, then 16-deep pipelining of 1024-entry
    // requests: 19 more chunks fit in two further round trips.
    let round_trips = net.now.as_millis() / (2 * net.latency.as_millis());
    assert!(round_trips <= 4, "took {round_trips} round trips");
}

#[test]
fn live_appends_are_pushed_to_a_subscriber() {
    let (signer, key) = writer(3);
    let mut net = Net::new(3);
    let a = net.add(key);
    let b = net.add(key);
    net.connect(a, server(), b, follower());
    net.run(1000);
    for i in 0..50 {
        net.append(a, &signer, vec![entry(i, 32)]);
        let sent = net.now;
        net.run(1000);
        assert_eq!(net.nodes[b].feed.len(), i + 1);
        // A push is one message: it arrives after one link latency, no round trip.
        assert_eq!(net.now - sent, net.latency, "append {i} took more than one hop");
    }
    net.assert_same_as(b, a);
}

#[test]
fn a_full_replica_redirects_a_subscriber_and_sends_it_nothing() {
    let (signer, key) = writer(9);
    let mut net = Net::new(9);
    let a = net.add(key);
    let b = net.add(key);
    let c = net.add(key);
    net.nodes[a].seats = Some(isocore_log::Seats::new(1));
    net.append(a, &signer, (0..100).map(|i| entry(i, 64)).collect());
    net.connect(a, server(), b, follower());
    net.run(10_000);
    assert_eq!(net.nodes[b].feed.len(), 100, "the first subscriber is seated and served");
    let before = net.bytes_sent;
    net.connect(a, server(), c, follower());
    net.run(10_000);
    assert!(net.errors().is_empty(), "{:?}", net.errors());
    // The second is told where to go and given nothing: no head, no entries.
    let to_c = net.nodes[c].peers.iter().find(|p| p.node == a).unwrap();
    assert_eq!(to_c.replicator.redirected_to(), Some(&[(b as u64).to_le_bytes().to_vec()][..]));
    assert!(net.nodes[c].events.contains(&Event::Redirected));
    assert_eq!(net.nodes[c].feed.len(), 0);
    assert!(net.bytes_sent - before < 200, "redirecting cost {} bytes", net.bytes_sent - before);
    // Live appends reach the seated subscriber only.
    net.append(a, &signer, vec![entry(100, 64)]);
    net.run(10_000);
    assert_eq!((net.nodes[b].feed.len(), net.nodes[c].feed.len()), (101, 0));
    // Following the redirect, the second subscribes to the first, which relays to it.
    net.connect(b, server(), c, follower());
    net.run(10_000);
    net.append(a, &signer, vec![entry(101, 64)]);
    net.run(10_000);
    net.assert_same_as(c, a);
}

#[test]
fn sparse_download_fetches_only_what_is_wanted() {
    let (signer, key) = writer(4);
    let mut net = Net::new(4);
    let a = net.add(key);
    let b = net.add(key);
    net.append(a, &signer, (0..1000).map(|i| entry(i, 64)).collect());
    net.connect(a, server(), b, Config { download: Download::Sparse, live: false, ..follower() });
    net.run(1000);
    // The head came with the announcement; no entries yet.
    assert_eq!(net.nodes[b].feed.len(), 1000);
    assert_eq!(net.nodes[b].feed.get(0).unwrap(), None);
    let now = net.now;
    let node = &mut net.nodes[b];
    node.peers[0].replicator.want(&node.feed, now, 500, 510);
    net.run(1000);
    let feed = &net.nodes[b].feed;
    for i in 0..1000 {
        assert_eq!(feed.get(i).unwrap().is_some(), (500..510).contains(&i), "entry {i}");
    }
    assert_eq!(feed.get(505).unwrap().as_deref(), Some(&entry(505, 64)[..]));
}

#[test]
fn relay_chain_serves_what_it_verified() {
    // A writes; B follows A; C and D follow only B and never talk to A.
    let (signer, key) = writer(5);
    let mut net = Net::new(5);
    let [a, b, c, d] = [0; 4].map(|_| net.add(key));
    net.append(a, &signer, (0..3000).map(|i| entry(i, 40)).collect());
    net.connect(a, server(), b, follower());
    net.connect(b, follower(), c, follower());
    net.connect(b, follower(), d, follower());
    net.run(100_000);
    for i in 0..20 {
        net.append(a, &signer, (0..7).map(|j| entry(3000 + i * 7 + j, 40)).collect());
        net.run(100_000);
    }
    assert!(net.errors().is_empty(), "{:?}", net.errors());
    for n in [b, c, d] {
        net.assert_same_as(n, a);
    }
}

#[test]
fn subscriber_joining_mid_stream_catches_up_and_follows() {
    let (signer, key) = writer(6);
    let mut net = Net::new(6);
    let a = net.add(key);
    let b = net.add(key);
    let c = net.add(key);
    net.connect(a, server(), b, follower());
    for i in 0..30 {
        net.append(a, &signer, (0..100).map(|j| entry(i * 100 + j, 64)).collect());
        net.run(100_000);
        if i == 15 {
            net.connect(a, server(), c, follower());
        }
    }
    net.run(100_000);
    net.assert_same_as(b, a);
    net.assert_same_as(c, a);
    let got: Vec<_> = net.nodes[c].events.iter().filter(|e| matches!(e, Event::Downloaded { .. })).collect();
    assert!(!got.is_empty());
}

#[test]
fn request_timeouts_recover_from_a_silent_peer() {
    let (signer, key) = writer(7);
    let mut net = Net::new(7);
    let a = net.add(key);
    let b = net.add(key);
    let c = net.add(key);
    net.append(a, &signer, (0..5000).map(|i| entry(i, 8)).collect());
    net.connect(a, server(), b, follower());
    net.run(10_000);
    // B knows everything; C starts from B, then B vanishes mid-download and A takes over.
    net.connect(b, server(), c, follower());
    for _ in 0..6 {
        net.step();
    }
    net.disconnect(b);
    net.connect(a, server(), c, follower());
    net.run(100_000);
    net.assert_same_as(c, a);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the reordering and duplication of requests and answers, and however the
    /// appends are batched, every follower ends byte-identical to the writer.
    #[test]
    fn converges_under_reordering_and_duplication(
        seed in any::<u64>(),
        batches in proptest::collection::vec(1usize..40, 1..12),
        jitter_ms in 0u64..40,
        dup in 0u32..300,
        request_entries in 1u64..64,
        max_inflight in 1usize..8,
    ) {
        let (signer, key) = writer(8);
        let mut net = Net::new(seed);
        net.faults = LinkFaults { jitter: Duration::from_millis(jitter_ms), duplicate_per_mille: dup };
        let a = net.add(key);
        let b = net.add(key);
        let c = net.add(key);
        let config = Config { request_entries, max_inflight, ..follower() };
        net.connect(a, server(), b, config.clone());
        net.connect(b, config.clone(), c, config);
        let mut n = 0;
        for (i, size) in batches.iter().enumerate() {
            net.append(a, &signer, (0..*size as u64).map(|j| entry(n + j, 1 + (j as usize % 50))).collect());
            n += *size as u64;
            if i % 2 == 0 {
                net.run(200_000);
            }
        }
        net.run(200_000);
        prop_assert!(net.errors().is_empty(), "{:?}", net.errors());
        net.assert_same_as(b, a);
        net.assert_same_as(c, a);
    }
}
