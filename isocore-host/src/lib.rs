//! The Isocore component host: processes, mailboxes, supervisors and apps on wasmtime.
//!
//! This crate is not built yet. It will run untrusted WebAssembly components as isolated
//! processes that hold only the capability handles they were granted.
#![warn(missing_docs)]
