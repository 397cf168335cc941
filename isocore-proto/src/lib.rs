//! The Isocore session: Noise handshake, frames, multiplexed streams, RPC and the endpoint.
//!
//! This crate is not built yet. It will hold the sans-IO session machine that carries
//! `isocore-log` replication and RPC calls between two nodes over one encrypted connection.
#![no_std]
#![warn(missing_docs)]
