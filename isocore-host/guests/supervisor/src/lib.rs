//! A supervision tree written as processes: a supervisor that starts workers linked to it,
//! traps their exits, and restarts each one that crashes (one-for-one), up to an intensity.
//!
//! Spawn with `init = b"supervisor:N"` for N workers; workers are spawned with `b"worker"`.
//!
//! | tag | to | behaviour |
//! |---|---|---|
//! | 1 | supervisor | reply with `[live workers, restarts]` as two `u64` |
//! | 2 | supervisor | tell worker `u64` to crash |
//! | 3 | worker | crash |
//! | 4 | worker | reply with tag 4 |
#![no_std]

extern crate alloc;

use alloc::vec::Vec;
use core::cell::RefCell;
use isocore_guest::process::{Process, Signal, spawn, trap_exits};
use isocore_guest::{Guest, export, u64_of};

/// Restarts allowed before the supervisor gives up and crashes itself, as OTP does.
const MAX_RESTARTS: u64 = 5;

struct State {
    workers: Vec<Process>,
    restarts: u64,
}

struct Cell(RefCell<Option<State>>);
// A process is single-threaded; the host never runs two calls of one instance at once.
unsafe impl Sync for Cell {}
static STATE: Cell = Cell(RefCell::new(None));

struct Supervisor;

impl Guest for Supervisor {
    fn init(args: Vec<u8>) -> Result<(), alloc::string::String> {
        let Some(n) = args.strip_prefix(b"supervisor:") else { return Ok(()) };
        let n: usize = core::str::from_utf8(n).ok().and_then(|s| s.parse().ok()).ok_or("bad worker count")?;
        trap_exits(true);
        let workers = (0..n).map(|_| spawn(b"worker", true)).collect::<Result<Vec<_>, _>>().map_err(|_| "spawn failed")?;
        *STATE.0.borrow_mut() = Some(State { workers, restarts: 0 });
        Ok(())
    }

    fn handle(signal: Signal) {
        let mut guard = STATE.0.borrow_mut();
        let Some(state) = guard.as_mut() else {
            // A worker.
            if let Signal::Message(m) = signal {
                match m.tag {
                    3 => panic!("worker told to crash"),
                    4 => {
                        if let Some(r) = m.reply {
                            let _ = r.send(4, &[]);
                        }
                    }
                    _ => {}
                }
            }
            return;
        };
        match signal {
            Signal::Exit((pid, _reason)) => {
                let Some(i) = state.workers.iter().position(|w| w.id() == pid) else { return };
                state.restarts += 1;
                if state.restarts > MAX_RESTARTS {
                    panic!("restart intensity exceeded");
                }
                match spawn(b"worker", true) {
                    Ok(w) => state.workers[i] = w,
                    Err(_) => panic!("cannot restart a worker"),
                }
            }
            Signal::Message(m) => match m.tag {
                1 => {
                    if let Some(r) = m.reply {
                        let mut body = (state.workers.len() as u64).to_le_bytes().to_vec();
                        body.extend_from_slice(&state.restarts.to_le_bytes());
                        let _ = r.send(1, &body);
                    }
                }
                2 => {
                    if let Some(w) = state.workers.get(u64_of(&m.body) as usize) {
                        let _ = w.send(3, &[]);
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
}

export!(Supervisor);
