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
//!
//! A scenario of one's own sets the parameters (every field of [`Params`] is public, the
//! topology included), and adds invariants over a [`View`] of every node's store:
//!
//! ```
//! use isocore_sim::{Params, Role, Sim};
//!
//! // A writer and four followers in a line, with a withholding relay on the side.
//! let mut params = Params::from_seed(3);
//! params.followers = 4;
//! (params.tamperer, params.garbage, params.forker, params.flooder) = (false, false, false, false);
//! params.withholder = true;
//! params.links = Some(vec![(0, 1), (1, 2), (2, 3), (3, 4), (2, 5)]);
//! let mut sim = Sim::new(params);
//! sim.check("no follower is ahead of the writer", |v| {
//!     let writer = v.held(0);
//!     match (1..v.nodes()).find(|&i| v.role(i) == Role::Follower && v.held(i) > writer) {
//!         Some(i) => Err(format!("node {i} holds {} entries, the writer {writer}", v.held(i))),
//!         None => Ok(()),
//!     }
//! });
//! sim.run().expect("every invariant holds");
//! ```
//!
//! The fan-out scenario ([`run_fanout`]) puts one publisher and many subscribers on the
//! replication layer alone, lets the replicas build their own tree (each serving at most `k`,
//! `spec/log.md` §8.6), times every live entry to every subscriber, crashes relays and checks
//! that their subtrees re-attach:
//!
//! ```
//! use isocore_sim::{FanoutParams, run_fanout};
//!
//! let report = run_fanout(FanoutParams::new(1, 200, 4)).expect("invariants hold");
//! assert!(report.publisher_copies_per_entry <= 5.0);
//! println!("{}", report.to_json());
//! ```
#![warn(missing_docs)]

mod fanout;
mod sim;

pub use fanout::{DepthStats, FanoutParams, FanoutReport, run_fanout};
pub use sim::{Invariant, Params, Report, Role, Sim, View, Violation};
