//! A deterministic simulator of Isocore networks.
//!
//! Many nodes, each the real [`Endpoint`] over an in-memory store, on a simulated network and
//! a virtual clock: no threads, no sockets, no wall clock. Everything random — latencies,
//! partitions, crashes, clock skew, which nodes misbehave — is drawn from one seed, so a run is
//! reproduced exactly by its seed, and two runs of a seed have the same trace hash.
//!
//! A run has two phases, as in TigerBeetle's VOPR: *safety*, where faults are injected while
//! the writer appends and named invariants are checked, then *liveness*, where every fault is
//! healed and every honest follower must converge on the writer's head within a bound.
//!
//! ```
//! use isocore_sim::{Params, Sim};
//!
//! let params = Params::from_seed(7);
//! println!("{params}"); // SEED=7 nodes=… latency_ms=… (every parameter drawn)
//! let report = Sim::new(params).run().expect("invariants hold");
//! assert!(report.converged_at_ms <= report.liveness_bound_ms);
//! ```
#![warn(missing_docs)]

mod sim;

pub use sim::{Params, Report, Role, Sim, Violation};
