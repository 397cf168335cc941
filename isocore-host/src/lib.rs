//! The Isocore component host: untrusted WebAssembly components run as isolated processes.
//!
//! Each process is one component instance in its own wasmtime `Store`, driven as a smol
//! task: `init` once, then `handle` for every signal its mailbox delivers. It can reach
//! nothing it was not given: the only imports it may have are the `isocore:*` interfaces
//! (`wit/`), and every effect goes through a handle the host hands out. A trap, a panic, a
//! runaway loop or a memory hog ends only that process, and its links, monitors and
//! supervisors decide what follows.
//!
//! - [`Node`]: the engine, the pooled instance slots (sized against `vm.max_map_count`),
//!   the executor threads and the preemption tick;
//! - [`App`]: a validated, compiled component whose imports were checked;
//! - [`Supervisor`]: OTP-style restart strategies with a restart intensity;
//! - [`Inbox`] and [`Monitor`]: how the host talks to and watches processes.
//!
//! # Example
//!
//! ```no_run
//! use isocore_host::{Node, NodeConfig};
//! use std::time::Duration;
//!
//! let node = Node::new(NodeConfig::default())?;
//! let echo = node.load(&std::fs::read("echo.wasm")?)?;
//! let pid = node.spawn(&echo, b"")?;
//! let inbox = node.inbox(16);
//! node.send(pid, 1, b"hello", Some(inbox.pid())).unwrap();
//! assert_eq!(inbox.recv(Duration::from_secs(1)).unwrap().body, b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "actor",
        imports: {
            "isocore:process/process.receive": async | trappable,
            "isocore:service/service.call": async | trappable,
            default: trappable,
        },
        exports: { default: async },
        with: {
            "isocore:process/process.process": crate::node::ProcessRef,
            "isocore:channel/channel.feed": crate::channel::FeedRef,
        },
    });
}

pub mod app;
pub mod channel;
pub mod config;
mod mailbox;
mod node;
pub mod process;
pub mod remote;
pub mod service;
mod supervisor;

pub use config::{DensityError, NodeConfig, check_density};
pub use mailbox::SendError;
pub use node::{ALLOWED_IMPORTS, App, Inbox, Monitor, Node, ProcState, ProcessRef, Received};
pub use process::{ExitReason, Limits, Pid};
pub use service::{CALL_TAG, Call, CallError, OutgoingCall, Remote, RemoteAnswer, RemoteFailure};
pub use supervisor::{ChildSpec, Strategy, Supervisor, SupervisorSpec};

/// Where this build put the guest components of `guests/` (for tests and examples of
/// crates that embed the host).
#[doc(hidden)]
pub const GUESTS_DIR: &str = env!("ISOCORE_GUESTS_DIR");

/// Why the host refused something.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The machine cannot hold the processes asked for.
    #[error(transparent)]
    Density(#[from] DensityError),
    /// wasmtime could not be configured.
    #[error("engine: {0}")]
    Engine(String),
    /// The bytes are not a valid component.
    #[error("invalid component: {0}")]
    Invalid(String),
    /// The component imports something outside the `isocore:*` allowlist.
    #[error("unknown import {0}: components may import only isocore:* interfaces")]
    UnknownImport(String),
    /// The component does not export the actor world (`init`, `handle`).
    #[error("not an actor component: {0}")]
    WrongWorld(String),
    /// A bound was reached.
    #[error("limit reached: {0}")]
    Limit(&'static str),
    /// The node is stopping.
    #[error("node stopped")]
    Stopped,
}
