//! A process's mailbox: bounded in messages and bytes, with selective receive.
//!
//! Messages beyond the bounds are refused to the sender (who decides what to do), never
//! queued without limit. Exit and down signals are bounded by the number of links and
//! monitors and always fit.

use crate::Pid;
use crate::process::ExitReason;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
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

/// Waiters kept at most; past this, all are woken and whoever still waits registers again
/// (a waiter that timed out leaves its waker behind until the next wake).
const MAX_WAITERS: usize = 4;

struct Queue {
    items: VecDeque<Item>,
    bytes: usize,
    messages: usize,
    closed: bool,
    /// Who waits for the queue to change. Kept under the queue's lock, so that a change and
    /// a registration cannot miss each other.
    waiters: Waiters,
}

/// The owner, nearly always alone, held without an allocation; anyone else in a vector.
#[derive(Default)]
struct Waiters {
    first: Option<Waker>,
    others: Vec<Waker>,
}

impl Waiters {
    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.others.len()
    }

    /// Adds `waker` unless it is there already.
    fn register(&mut self, waker: &Waker) {
        if self.first.iter().chain(&self.others).any(|w| w.will_wake(waker)) {
            return;
        }
        if self.len() >= MAX_WAITERS {
            self.wake_all();
        }
        match &self.first {
            None => self.first = Some(waker.clone()),
            Some(_) => self.others.push(waker.clone()),
        }
    }

    fn wake_all(&mut self) {
        if let Some(waker) = self.first.take() {
            waker.wake();
        }
        // Drained in place: the vector keeps its capacity, and a wake allocates nothing.
        for waker in self.others.drain(..) {
            waker.wake();
        }
    }
}

impl Queue {
    /// Takes the first item matching `tags` (every signal matches).
    fn take(&mut self, tags: Option<&[u64]>) -> Option<Item> {
        let at = self.items.iter().position(|item| match (item, tags) {
            (Item::Message { tag, .. }, Some(tags)) => tags.contains(tag),
            _ => true,
        })?;
        let item = self.items.remove(at)?;
        if let Item::Message { body, .. } = &item {
            self.messages -= 1;
            self.bytes -= body.len();
        }
        Some(item)
    }
}

pub(crate) struct Mailbox {
    queue: Mutex<Queue>,
    max_messages: usize,
    max_bytes: usize,
}

impl Mailbox {
    pub(crate) fn new(max_messages: usize, max_bytes: usize) -> Self {
        let queue = Queue { items: VecDeque::new(), bytes: 0, messages: 0, closed: false, waiters: Waiters::default() };
        Mailbox { queue: Mutex::new(queue), max_messages, max_bytes }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().expect("mailbox lock")
    }

    pub(crate) fn send(&self, tag: u64, body: Vec<u8>, from: Sender) -> Result<(), SendError> {
        let mut q = self.lock();
        if q.closed {
            return Err(SendError::Gone);
        }
        if q.messages >= self.max_messages || q.bytes + body.len() > self.max_bytes {
            return Err(SendError::Full);
        }
        q.messages += 1;
        q.bytes += body.len();
        q.items.push_back(Item::Message { tag, body, from });
        q.waiters.wake_all();
        Ok(())
    }

    /// Queues an exit or down signal; these are not counted against the bounds.
    pub(crate) fn signal(&self, item: Item) {
        let mut q = self.lock();
        if !q.closed {
            q.items.push_back(item);
            q.waiters.wake_all();
        }
    }

    /// Refuses further sends, drops what is queued (nobody will read it, and a queued
    /// message holds its sender's mailbox) and wakes the owner (which is exiting).
    pub(crate) fn close(&self) {
        let items = {
            let mut q = self.lock();
            q.closed = true;
            (q.bytes, q.messages) = (0, 0);
            q.waiters.wake_all();
            core::mem::take(&mut q.items)
        };
        drop(items);
    }

    /// Wakes the owner without queuing anything (it checks its kill flag).
    pub(crate) fn wake(&self) {
        self.lock().waiters.wake_all();
    }

    /// The first item matching `tags` (every signal matches), waiting up to `timeout`, or
    /// `None` on timeout or when `stop()` becomes true.
    pub(crate) async fn receive(
        &self,
        tags: Option<&[u64]>,
        timeout: Option<Duration>,
        stop: impl Fn() -> bool,
    ) -> Option<Item> {
        let next = std::future::poll_fn(|cx| {
            let mut q = self.lock();
            // Checked under the lock: whoever sets the flag takes the lock after, to wake us.
            if stop() {
                return Poll::Ready(None);
            }
            if let Some(item) = q.take(tags) {
                return Poll::Ready(Some(item));
            }
            q.waiters.register(cx.waker());
            Poll::Pending
        });
        match timeout {
            None => next.await,
            Some(t) => {
                let expired = async {
                    smol::Timer::after(t).await;
                    self.lock().take(tags)
                };
                futures_lite::future::or(next, expired).await
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().items.len()
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

    #[test]
    fn a_stop_flag_set_then_woken_ends_a_waiting_receive() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let (m, stop) = (Arc::new(Mailbox::new(4, 64)), Arc::new(AtomicBool::new(false)));
        let waiting = {
            let (m, stop) = (m.clone(), stop.clone());
            std::thread::spawn(move || smol::block_on(m.receive(None, None, || stop.load(Ordering::Acquire))).is_none())
        };
        std::thread::sleep(Duration::from_millis(20));
        stop.store(true, Ordering::Release);
        m.wake();
        assert!(waiting.join().unwrap(), "the receive ended empty-handed");
    }

    #[test]
    fn receives_that_time_out_leave_a_bounded_number_of_wakers() {
        let m = Arc::new(Mailbox::new(4, 64));
        // Each thread has a waker of its own, so none replaces another.
        for _ in 0..3 * MAX_WAITERS {
            let m = m.clone();
            std::thread::spawn(move || smol::block_on(m.receive(None, Some(Duration::from_millis(1)), || false)))
                .join()
                .unwrap();
        }
        assert!(m.lock().waiters.len() <= MAX_WAITERS);
        // A message still reaches a receive that starts later.
        m.send(7, b"x".to_vec(), None).unwrap();
        let got = smol::block_on(m.receive(None, Some(Duration::from_secs(1)), || false));
        assert!(matches!(got, Some(Item::Message { tag: 7, .. })));
    }
}
