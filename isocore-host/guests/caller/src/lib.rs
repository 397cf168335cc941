//! A client of the chat room on another node: it posts through the room's exported
//! interface, with the capability that node issued to this one.
//!
//! `init` takes the room's node key (32 bytes), then optionally a first message to post at
//! once. A message with tag 1 and a reply handle posts its body; the answer (tag 1) is the
//! room's new length (`u64` LE), or one byte: the error's number.
#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use isocore_guest::log::{Level, log};
use isocore_guest::process::Signal;
use isocore_guest::service::{Error, call};
use isocore_guest::{Guest, export};

const ROOM: &str = "isocore:chat/room@0.1.0";

struct Node(RefCell<Vec<u8>>);
// A process is single-threaded; the host never runs two calls of one instance at once.
unsafe impl Sync for Node {}
static NODE: Node = Node(RefCell::new(Vec::new()));

fn post(text: &[u8]) -> Result<Vec<u8>, Error> {
    call(&NODE.0.borrow(), ROOM, 0, text, 10_000)
}

struct Caller;

impl Guest for Caller {
    fn init(args: Vec<u8>) -> Result<(), String> {
        if args.len() < 32 {
            return Err("init: the room's node key (32 bytes), then a message".into());
        }
        *NODE.0.borrow_mut() = args[..32].to_vec();
        if args.len() > 32 {
            match post(&args[32..]) {
                Ok(_) => log(Level::Info, "posted"),
                Err(e) => log(Level::Warn, &alloc::format!("post failed: {e:?}")),
            }
        }
        Ok(())
    }

    fn handle(signal: Signal) {
        let Signal::Message(m) = signal else { return };
        let (1, Some(reply)) = (m.tag, m.reply) else { return };
        let answer = match post(&m.body) {
            Ok(a) => a,
            Err(e) => alloc::vec![e as u8],
        };
        let _ = reply.send(1, &answer);
    }
}

export!(Caller);
