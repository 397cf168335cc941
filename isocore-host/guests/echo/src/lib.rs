//! A counter and echo service: the smallest useful process.
//!
//! | tag | body | reply |
//! |---|---|---|
//! | 1 | anything | the same bytes (tag 1) |
//! | 2 | `u64` | the counter after adding it (tag 2) |
//! | 3 | `u64` n, with a peer handle as reply | n round trips with the peer (tag 5 out, tag 1 back), then `u64` n with tag 4 to the report handle |
//! | 5 | anything | the same bytes (tag 1): the peer's side of a round trip |
//! | 6 | nothing | keeps the reply handle as the report handle |
//! | 2^32 + m | arguments | an exported interface: method m answers with its arguments, reversed |
#![no_std]

extern crate alloc;

use core::cell::{Cell, RefCell};
use isocore_guest::process::{Process, Signal, receive};
use isocore_guest::{Guest, export, u64_of};

struct Echo;

struct Counter(Cell<u64>);
// A process is single-threaded; the host never runs two calls of one instance at once.
unsafe impl Sync for Counter {}
static COUNT: Counter = Counter(Cell::new(0));

struct Report(RefCell<Option<Process>>);
// As above: one thread per instance.
unsafe impl Sync for Report {}
static REPORT: Report = Report(RefCell::new(None));

impl Guest for Echo {
    fn init(_args: alloc::vec::Vec<u8>) -> Result<(), alloc::string::String> {
        Ok(())
    }

    fn handle(signal: Signal) {
        let Signal::Message(m) = signal else { return };
        let Some(reply) = m.reply else { return };
        match m.tag {
            1 => {
                let _ = reply.send(1, &m.body);
            }
            2 => {
                COUNT.0.set(COUNT.0.get().wrapping_add(u64_of(&m.body)));
                let _ = reply.send(2, &COUNT.0.get().to_le_bytes());
            }
            3 => {
                // Ping-pong with the peer: it echoes each tag-1 message back to us.
                let n = u64_of(&m.body);
                for _ in 0..n {
                    let _ = reply.send(5, &[0u8; 16]);
                    let _ = receive(Some(&[1]), None);
                }
                let report = REPORT.0.borrow();
                let _ = report.as_ref().unwrap_or(&reply).send(4, &n.to_le_bytes());
            }
            5 => {
                // A ping from a peer whose reply handle points back to it.
                let _ = reply.send(1, &m.body);
            }
            6 => *REPORT.0.borrow_mut() = Some(reply),
            t if t >= 1 << 32 => {
                let mut answer = m.body;
                answer.reverse();
                let _ = reply.send(t, &answer);
            }
            _ => {}
        }
    }
}

export!(Echo);
