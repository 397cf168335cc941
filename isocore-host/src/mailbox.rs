//! A process's mailbox: bounded in messages and bytes, with selective receive.
//!
//! Messages beyond the bounds are refused to the sender (who decides what to do), never
//! queued without limit. Exit and down signals are bounded by the number of links and
//! monitors and always fit.

use crate::Pid;
use crate::process::ExitReason;
use event_listener::Event;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The sender of a message: its pid, and its mailbox for the reply handle (carried, so that
/// delivering a message never looks the sender up in the node's registry).
pub(crate) type Sender = Option<(Pid, Arc<Mailbox>)>;

/// One queued item.
pub(crate) enum Item {
    Message { tag: u64, body: Vec<u8>, from: Sender },
    Exit { pid: Pid, reason: ExitReason },
    Down { reference: u64, pid: Pid, reason: ExitReason },
}

/// Why a send was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The mailbox is at its message or byte bound.
    Full,
    /// The process has exited.
    Gone,
}

struct Queue {
    items: VecDeque<Item>,
    bytes: usize,
    messages: usize,
    closed: bool,
}

pub(crate) struct Mailbox {
    queue: Mutex<Queue>,
    changed: Event,
    max_messages: usize,
    max_bytes: usize,
}

impl Mailbox {
    pub(crate) fn new(max_messages: usize, max_bytes: usize) -> Self {
        Mailbox {
            queue: Mutex::new(Queue { items: VecDeque::new(), bytes: 0, messages: 0, closed: false }),
            changed: Event::new(),
            max_messages,
            max_bytes,
        }
    }

    pub(crate) fn send(&self, tag: u64, body: Vec<u8>, from: Sender) -> Result<(), SendError> {
        let mut q = self.queue.lock().expect("mailbox lock");
        if q.closed {
            return Err(SendError::Gone);
        }
        if q.messages >= self.max_messages || q.bytes + body.len() > self.max_bytes {
            return Err(SendError::Full);
        }
        q.messages += 1;
        q.bytes += body.len();
        q.items.push_back(Item::Message { tag, body, from });
        drop(q);
        self.changed.notify(1);
        Ok(())
    }

    /// Queues an exit or down signal; these are not counted against the bounds.
    pub(crate) fn signal(&self, item: Item) {
        let mut q = self.queue.lock().expect("mailbox lock");
        if !q.closed {
            q.items.push_back(item);
            drop(q);
            self.changed.notify(1);
        }
    }

    /// Refuses further sends, drops what is queued (nobody will read it, and a queued
    /// message holds its sender's mailbox) and wakes the owner (which is exiting).
    pub(crate) fn close(&self) {
        let items = {
            let mut q = self.queue.lock().expect("mailbox lock");
            q.closed = true;
            (q.bytes, q.messages) = (0, 0);
            core::mem::take(&mut q.items)
        };
        drop(items);
        self.changed.notify(usize::MAX);
    }

    /// Wakes the owner without queuing anything (it checks its kill flag).
    pub(crate) fn wake(&self) {
        self.changed.notify(usize::MAX);
    }

    fn take(&self, tags: Option<&[u64]>) -> Option<Item> {
        let mut q = self.queue.lock().expect("mailbox lock");
        let at = q.items.iter().position(|item| match (item, tags) {
            (Item::Message { tag, .. }, Some(tags)) => tags.contains(tag),
            _ => true,
        })?;
        let item = q.items.remove(at)?;
        if let Item::Message { body, .. } = &item {
            q.messages -= 1;
            q.bytes -= body.len();
        }
        Some(item)
    }

    /// The first item matching `tags` (every signal matches), waiting up to `timeout`, or
    /// `None` on timeout or when `stop()` becomes true.
    pub(crate) async fn receive(
        &self,
        tags: Option<&[u64]>,
        timeout: Option<Duration>,
        stop: impl Fn() -> bool,
    ) -> Option<Item> {
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        loop {
            if stop() {
                return None;
            }
            if let Some(item) = self.take(tags) {
                return Some(item);
            }
            // On the stack: a wait allocates nothing.
            event_listener::listener!(self.changed => listener);
            // Re-check after registering, so a send between the check and `listen` is not lost.
            if stop() {
                return None;
            }
            if let Some(item) = self.take(tags) {
                return Some(item);
            }
            match deadline {
                None => listener.await,
                Some(d) => {
                    let timer = async {
                        smol::Timer::at(d).await;
                        false
                    };
                    let woke = futures_lite::future::or(
                        async {
                            listener.await;
                            true
                        },
                        timer,
                    )
                    .await;
                    if !woke {
                        return self.take(tags);
                    }
                }
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.lock().expect("mailbox lock").items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_drops_what_is_queued_and_the_senders_it_holds() {
        let (a, b) = (Arc::new(Mailbox::new(4, 64)), Arc::new(Mailbox::new(4, 64)));
        // Each holds a message from the other: a cycle until one closes.
        a.send(1, b"to a".to_vec(), Some((2, b.clone()))).unwrap();
        b.send(1, b"to b".to_vec(), Some((1, a.clone()))).unwrap();
        assert_eq!((Arc::strong_count(&a), Arc::strong_count(&b)), (2, 2));
        a.close();
        assert_eq!(a.len(), 0);
        assert_eq!(Arc::strong_count(&b), 1, "a's queue no longer holds b");
        assert_eq!(a.send(1, Vec::new(), None), Err(SendError::Gone));
        // b still holds its message, and with it a.
        assert_eq!((b.len(), Arc::strong_count(&a)), (1, 2));
    }
}
