//! The leanest process: it counts the signals it is handed and calls nothing, so its component
//! is one core module that imports only the drop of a reply handle. What instantiating it
//! costs is the host's own cost of a process.
#![no_std]

extern crate alloc;

use core::sync::atomic::{AtomicU64, Ordering};
use isocore_guest::process::Signal;
use isocore_guest::{Guest, export};

struct Lean;

static SEEN: AtomicU64 = AtomicU64::new(0);

impl Guest for Lean {
    fn init(_args: alloc::vec::Vec<u8>) -> Result<(), alloc::string::String> {
        Ok(())
    }

    fn handle(_signal: Signal) {
        SEEN.fetch_add(1, Ordering::Relaxed);
    }
}

export!(Lean);
