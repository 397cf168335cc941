//! The Isocore node: the sans-IO cores bound to TCP (smol), storage (redb), the clock and the
//! OS random number generator. The `isocore` command is built on it.
#![warn(missing_docs)]

pub mod apps;
pub mod demo;
pub mod node;
pub mod services;
pub mod store;
pub mod thread;

pub use node::{Node, NodeConfig};
