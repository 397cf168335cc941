//! A chat room kept in a channel: every message is an entry of a feed this node writes, so
//! it is signed, stored, and replicated live to whoever follows the room. The process
//! exports the room's interface for other nodes to call.
//!
//! `init` takes the room's feed key (32 bytes). Calls (tag 2^32 + method):
//!
//! | method | arguments | answer |
//! |---|---|---|
//! | 0 `post` | the message | the room's length after it, `u64` LE |
//! | 1 `history` | the first index wanted, `u64` LE (0 if absent) | entries from there, each `u32` LE length then bytes, up to 64 KiB |
//!
//! From local processes: tag 1 asks the same as `history`; tag 2 registers the reply handle
//! as a watcher, which is sent tag 7 with the room's new length whenever it grows (whoever
//! appended: this process, or the writer's other replicas through replication).
#![no_std]

extern crate alloc;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;
use isocore_guest::channel::{Feed, open};
use isocore_guest::log::{Level, log};
use isocore_guest::process::Signal;
use isocore_guest::{Guest, export, u64_of};

const CALL: u64 = 1 << 32;
const GREW: u64 = 7;
/// Most bytes of entries in one `history` answer.
const PAGE: usize = 64 << 10;

struct Room(RefCell<Option<Feed>>, RefCell<Vec<isocore_guest::process::Process>>);
// A process is single-threaded; the host never runs two calls of one instance at once.
unsafe impl Sync for Room {}
static ROOM: Room = Room(RefCell::new(None), RefCell::new(Vec::new()));

fn history(feed: &Feed, from: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let len = feed.len().unwrap_or(0);
    for i in from..len {
        let Ok(entry) = feed.read(i) else { break };
        if !out.is_empty() && out.len() + 4 + entry.len() > PAGE {
            break;
        }
        out.extend_from_slice(&(entry.len() as u32).to_le_bytes());
        out.extend_from_slice(&entry);
    }
    out
}

struct Chat;

impl Guest for Chat {
    fn init(args: Vec<u8>) -> Result<(), String> {
        let feed = open(&args).map_err(|e| alloc::format!("cannot open the room: {e:?}"))?;
        feed.subscribe(GREW).map_err(|e| alloc::format!("cannot follow the room: {e:?}"))?;
        // Calls of the room's interface come here (if the release declares it).
        if isocore_guest::service::export("isocore:chat/room@0.1.0").is_err() {
            log(Level::Info, "the release does not export the room; local use only");
        }
        *ROOM.0.borrow_mut() = Some(feed);
        Ok(())
    }

    fn handle(signal: Signal) {
        let Signal::Message(m) = signal else { return };
        let room = ROOM.0.borrow();
        let Some(feed) = room.as_ref() else { return };
        match (m.tag, m.reply) {
            (GREW, _) => {
                log(Level::Debug, &alloc::format!("room has {} messages", u64_of(&m.body)));
                ROOM.1.borrow_mut().retain(|w| w.send(GREW, &m.body).is_ok());
            }
            (2, Some(reply)) => ROOM.1.borrow_mut().push(reply),
            (t, Some(reply)) if t == CALL => {
                let answer = match feed.append(&[m.body]) {
                    Ok(len) => len.to_le_bytes().to_vec(),
                    Err(e) => {
                        log(Level::Warn, &alloc::format!("post refused: {e:?}"));
                        Vec::new()
                    }
                };
                let _ = reply.send(t, &answer);
            }
            (t, Some(reply)) if t == CALL + 1 || t == 1 => {
                let _ = reply.send(t, &history(feed, u64_of(&m.body)));
            }
            (t, _) if t >= CALL => log(Level::Warn, &"unknown method".to_string()),
            _ => {}
        }
    }
}

export!(Chat);
