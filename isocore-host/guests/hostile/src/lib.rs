//! A process that misbehaves on request, for the host's isolation tests.
//!
//! | tag | behaviour |
//! |---|---|
//! | 1 | spins forever |
//! | 2 | allocates `u64` KiB at a time until refused, then replies with the KiB it got |
//! | 3 | traps (`unreachable`) |
//! | 4 | panics |
//! | 5 | calls a method on a handle number it was never given |
//! | 6 | uses its reply handle after dropping it |
//! | 7 | creates handles until the host refuses, then replies with how many it got |
//! | 8 | sends to itself until its own mailbox is full (it is not draining it), then replies with the count |
//! | 9 | sends itself a message and receives it (re-entrance without deadlock) |
//! | 10 | exits by returning from `handle` after blocking in `receive` with a timeout |
//! | 11 | asks a host built with fault injection to panic while serving it |
#![no_std]

extern crate alloc;

use alloc::vec::Vec;
use isocore_guest::process::{Process, Signal, receive, self_handle};
use isocore_guest::{Guest, export, u64_of};

struct Hostile;

impl Guest for Hostile {
    fn init(args: Vec<u8>) -> Result<(), alloc::string::String> {
        if args == b"refuse" { Err("refused at init".into()) } else { Ok(()) }
    }

    fn handle(signal: Signal) {
        let Signal::Message(m) = signal else { return };
        match m.tag {
            1 => {
                let mut x = 0u64;
                loop {
                    x = core::hint::black_box(x.wrapping_add(1));
                }
            }
            2 => {
                let step = (u64_of(&m.body).max(1) * 1024) as usize;
                let mut held: Vec<Vec<u8>> = Vec::new();
                let mut kib = 0u64;
                loop {
                    let mut chunk = Vec::new();
                    if chunk.try_reserve_exact(step).is_err() {
                        break;
                    }
                    chunk.resize(step, 1);
                    held.push(chunk);
                    kib += step as u64 / 1024;
                }
                if let Some(r) = m.reply {
                    let _ = r.send(2, &kib.to_le_bytes());
                }
            }
            3 => core::arch::wasm32::unreachable(),
            4 => panic!("asked to"),
            5 => {
                // SAFETY: deliberately not; the host must trap this process and only it.
                let forged = unsafe { Process::from_handle(0x7fff_0000) };
                let _ = forged.send(1, b"forged");
            }
            6 => {
                if let Some(r) = m.reply {
                    let raw = r.take_handle();
                    // SAFETY: deliberately not: the handle is used after it was dropped.
                    drop(unsafe { Process::from_handle(raw) });
                    let stale = unsafe { Process::from_handle(raw) };
                    let _ = stale.send(1, b"stale");
                }
            }
            7 => {
                let mut held = Vec::new();
                while let Ok(h) = self_handle() {
                    held.push(h);
                }
                if let Some(r) = m.reply {
                    let _ = r.send(7, &(held.len() as u64).to_le_bytes());
                }
            }
            8 => {
                if let (Ok(me), Some(r)) = (self_handle(), m.reply) {
                    let mut sent = 0u64;
                    while me.send(8, &[0u8; 64]).is_ok() {
                        sent += 1;
                    }
                    let _ = r.send(8, &sent.to_le_bytes());
                }
            }
            9 => {
                if let Ok(me) = self_handle() {
                    let _ = me.send(99, b"to myself");
                    if let Signal::Message(back) = receive(Some(&[99]), Some(1000)) {
                        if let Some(r) = m.reply {
                            let _ = r.send(9, &back.body);
                        }
                    }
                }
            }
            10 => {
                let waited = matches!(receive(Some(&[12345]), Some(u64_of(&m.body))), Signal::Timeout);
                if let Some(r) = m.reply {
                    let _ = r.send(10, &[waited as u8]);
                }
            }
            11 => isocore_guest::log::log(isocore_guest::log::Level::Info, "isocore:fault:host-panic"),
            _ => {}
        }
    }
}

export!(Hostile);
