//! Work-based admission for Isocore nodes, as a pure, deterministic sans-IO core.
//!
//! An overloaded node raises the computational price of unsolicited messages, tells senders
//! the price, and serves in priority order, while traffic it asked for rides free on credit.
//!
//! - [`stamp`]: the 41-byte BLAKE3 stamp bound to the receiver's epoch seed, the sender, the
//!   message digest and a committed effort; strict decoding; a solver that works in steps.
//! - [`credit`]: per-peer grants for solicited traffic (subscriptions, replies).
//! - [`queue`]: the bounded priority queue where age and effort both move a message forward.
//! - [`controller`]: the price state machine, stepped once per tick.
//! - [`Admission`]: the receiver's poll-style façade over all of them.
//! - [`sender`]: the sender's pricing policy.
//!
//! Time is always an argument (`now: Duration` since a driver-chosen origin); randomness (the
//! receiver's secret, the solver's start nonce) is supplied by the caller. The wire format and
//! every constant are specified in `spec/pow.md`.
//!
//! # Example: a sender pays the advertised price and the receiver admits it
//!
//! ```
//! use core::time::Duration;
//! use isocore_pow::{Admission, Config, Event, Inbound, Request, SenderPolicy, Solver, StampKey};
//!
//! let (receiver, sender) = ([1u8; 32], [2u8; 32]);
//! let mut cfg = Config::default();
//! cfg.controller.p_start = 8; // small, so the example solves quickly
//! let mut node = Admission::new(cfg, receiver, [7u8; 32], Duration::ZERO);
//!
//! // Load: a stamped message nobody serves forms a standing queue of paying messages. At the
//! // next tick the node leaves dormancy and advertises a price (the cheap message, now below
//! // the new floor, is dropped with a `Busy` answer in the same drain).
//! let t0 = Duration::from_millis(10);
//! let key = StampKey::derive(&node.params(t0).seed, &sender, &receiver);
//! let early = Solver::new(&key, &[0xaa; 32], node.params(t0).epoch, 1, 0).unwrap().step(u64::MAX).unwrap();
//! node.on_message(t0, &sender, Inbound { digest: [0xaa; 32], solicit: None, stamp: Some(&early.encode()) })
//!     .unwrap();
//! node.handle_timeout(Duration::from_millis(250));
//! let params = core::iter::from_fn(|| node.poll_event())
//!     .find_map(|e| match e {
//!         Event::Advertise(p) => Some(p),
//!         _ => None,
//!     })
//!     .expect("an advertisement");
//! assert_eq!(params.price, 8);
//!
//! // The sender prices its request with the policy (1.25 × price) and solves in steps.
//! let digest = *blake3::hash(b"hello, isocore").as_bytes();
//! let request = Request::new(SenderPolicy::default(), &params);
//! let key = StampKey::derive(&params.seed, &sender, &receiver);
//! let mut solver = Solver::new(&key, &digest, params.epoch, request.effort(), 0).unwrap();
//! let stamp = loop {
//!     if let Some(s) = solver.step(1024) {
//!         break s;
//!     }
//! };
//!
//! // The receiver checks the 41 bytes, queues the message and hands it out first.
//! let now = Duration::from_millis(300);
//! let ticket = node
//!     .on_message(now, &sender, Inbound { digest, solicit: None, stamp: Some(&stamp.encode()) })
//!     .unwrap();
//! let next = node.poll_next(now).unwrap();
//! assert_eq!(next.ticket, ticket);
//! node.on_served(now, next.ticket, Duration::from_millis(5));
//! ```
#![no_std]
#![warn(missing_docs)]
#![warn(unreachable_pub)]

extern crate alloc;

pub mod admission;
pub mod controller;
pub mod credit;
pub mod queue;
pub mod sender;
pub mod stamp;

pub use admission::{
    Admission, Blake3Check, Busy, Class, Config, Event, Inbound, Next, Params, Reason, Refused, Ticket, WorkCheck,
};
pub use controller::{Controller, ControllerConfig};
pub use credit::{Credit, Solicit};
pub use queue::PriorityQueue;
pub use sender::{GiveUp, Request, SenderPolicy};
pub use stamp::{DecodeError, Digest, InsufficientWork, PeerKey, STAMP_LEN, Solver, Stamp, StampKey, SubSolver};
