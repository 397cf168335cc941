#![allow(dead_code)]

use isocore_host::{App, Node, NodeConfig};
use std::time::Duration;

pub const WAIT: Duration = Duration::from_secs(10);

pub fn guest(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("ISOCORE_GUESTS_DIR")).join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn node() -> Node {
    Node::new(NodeConfig { max_processes: 256, threads: 2, ..NodeConfig::default() }).unwrap()
}

pub fn load(node: &Node, name: &str) -> App {
    node.load(&guest(name)).unwrap()
}

pub fn u64_of(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().unwrap())
}
