//! A node serves any ordered byte stream, not only TCP: two nodes over a Unix socket pair.

use isocore_node::node::{Node, NodeConfig, create_feed, open_db};
use isocore_proto::Role;
use smol::LocalExecutor;
use std::rc::Rc;
use std::time::{Duration, Instant};

#[test]
fn two_nodes_over_a_unix_socket_pair() {
    let dir = tempfile::tempdir().unwrap();
    let key = create_feed(&open_db(&dir.path().join("w")).unwrap()).unwrap();
    let writer = Node::open(NodeConfig::new(dir.path().join("w"))).unwrap();
    let reader = Node::open(NodeConfig::new(dir.path().join("r"))).unwrap();
    reader.follow(&key).unwrap();
    writer.append(&key, (0..500).map(|i| format!("entry {i}").into_bytes()).collect()).unwrap();

    let ex = Rc::new(LocalExecutor::new());
    let (a, b) = async_net::unix::UnixStream::pair().unwrap();
    let _w = ex.spawn(writer.clone().serve_transport(a, Role::Initiator));
    let _r = ex.spawn(reader.clone().serve_transport(b, Role::Responder));
    let deadline = Instant::now() + Duration::from_secs(20);
    smol::block_on(ex.run(async {
        while reader.with_feed(&key, |f| f.contiguous_len()) != Some(500) {
            assert!(Instant::now() < deadline, "no replication over the socket pair");
            async_io::Timer::after(Duration::from_millis(5)).await;
        }
    }));
    assert_eq!(reader.with_feed(&key, |f| f.get(499).unwrap()).flatten().as_deref(), Some(&b"entry 499"[..]));
}
