//! Fan-out trees: how a feed reaches many subscribers while each node serves only a few.
//!
//! A node serves at most `k` subscribers of a feed ([`Seats`]). The next one is answered with
//! a `Redirect` naming the peers it already serves, rotated so that newcomers spread evenly
//! over them; those peers relay the feed and seat or redirect in turn. The subscribers of a
//! feed therefore arrange themselves into a tree of fan-out `k` and depth about
//! `log_k(subscribers)`, and the writer uploads each entry `k` times however many follow it.
//!
//! A subscriber remembers the nodes that redirected it on its way down ([`Lineage`]): they are
//! its ancestors. When its parent goes away it asks the nearest ancestor first, which has a
//! free seat (the lost parent's) or knows its children, so a subtree re-attaches just below
//! where it was. Both halves are policies over contacts of any type: the node owning the
//! replicators feeds them what the replicators report (`Event::Subscribed`,
//! `Event::Redirected`) and what its transport reports (a peer gone).
//!
//! ```
//! use isocore_log::{Lineage, Seating, Seats};
//!
//! // The writer (contact 0) seats two subscribers and sends the third to them.
//! let mut writer = Seats::new(2);
//! assert_eq!(writer.admit(1), Seating::Seated);
//! assert_eq!(writer.admit(2), Seating::Seated);
//! let Seating::Redirect(to) = writer.admit(3) else { panic!() };
//! assert_eq!(to, vec![1, 2]);
//!
//! // Subscriber 3 follows the redirect down, and remembers the way.
//! let mut three = Lineage::new(vec![0]);
//! assert_eq!(three.next(&Seats::new(2)), Some(0));
//! three.on_redirect(&0, to);
//! assert_eq!(three.next(&Seats::new(2)), Some(1));
//! three.on_seated(&1);
//! assert_eq!(three.parent(), Some(&1));
//!
//! // Its parent crashes: it goes back to the writer, which now has a free seat.
//! writer.leave(&1);
//! three.on_lost(&1);
//! assert_eq!(three.next(&Seats::new(2)), Some(0));
//! assert_eq!(writer.admit(3), Seating::Seated);
//! ```

use crate::wire::MAX_REDIRECT_PEERS;
use std::collections::VecDeque;

/// What to do with a new subscriber.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seating<C> {
    /// Serve it: it holds a seat now.
    Seated,
    /// Every seat is taken: redirect it to these peers (send [`crate::Message::Redirect`]).
    Redirect(Vec<C>),
}

/// The subscribers one node serves for one feed, at most `capacity` of them.
#[derive(Clone, Debug)]
pub struct Seats<C> {
    capacity: usize,
    seated: Vec<C>,
    /// Where the next redirect's list starts, so that newcomers spread over the children.
    rotation: usize,
}

impl<C: Clone + PartialEq> Seats<C> {
    /// Seats for at most `capacity` subscribers (at least one).
    pub fn new(capacity: usize) -> Self {
        Seats { capacity: capacity.max(1), seated: Vec::new(), rotation: 0 }
    }

    /// A peer subscribed. Seat it if a seat is free (or it already holds one); otherwise name
    /// up to [`MAX_REDIRECT_PEERS`] seated peers, starting one further along each time.
    pub fn admit(&mut self, peer: C) -> Seating<C> {
        if self.seated.contains(&peer) {
            return Seating::Seated;
        }
        if self.seated.len() < self.capacity {
            self.seated.push(peer);
            return Seating::Seated;
        }
        let n = self.seated.len();
        let start = self.rotation % n;
        self.rotation = (start + 1) % n;
        Seating::Redirect((0..n.min(MAX_REDIRECT_PEERS)).map(|i| self.seated[(start + i) % n].clone()).collect())
    }

    /// A seated peer unsubscribed or went away; its seat is free. Returns whether it held one.
    pub fn leave(&mut self, peer: &C) -> bool {
        let Some(at) = self.seated.iter().position(|p| p == peer) else { return false };
        self.seated.remove(at);
        true
    }

    /// The peers seated now, in the order they took their seats.
    pub fn seated(&self) -> &[C] {
        &self.seated
    }

    /// Whether `peer` holds a seat.
    pub fn contains(&self, peer: &C) -> bool {
        self.seated.contains(peer)
    }

    /// Most subscribers served at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// Longest redirect chain followed before starting again from the sources: a tree of fan-out
/// 2 this deep already holds 2^32 subscribers, so a longer chain is a loop or an attack.
pub const MAX_HOPS: usize = 32;

/// A subscriber's way into the tree: the sources it started from, the ancestors that
/// redirected it, the candidates it was given, and its parent once seated.
#[derive(Clone, Debug)]
pub struct Lineage<C> {
    sources: Vec<C>,
    /// Nodes that redirected us on the way to the parent, nearest the writer first.
    ancestors: Vec<C>,
    candidates: VecDeque<C>,
    trying: Option<C>,
    parent: Option<C>,
}

impl<C: Clone + PartialEq> Lineage<C> {
    /// A subscriber that knows these nodes hold the feed (its writer, say).
    pub fn new(sources: Vec<C>) -> Self {
        let candidates = sources.iter().cloned().collect();
        Lineage { sources, ancestors: Vec::new(), candidates, trying: None, parent: None }
    }

    /// Whom to subscribe to now, if anyone: `None` while a subscription is pending or held.
    /// `own` are the seats this node itself gives for the feed: subscribing to a peer it
    /// serves would close a loop, so those are skipped.
    pub fn next(&mut self, own: &Seats<C>) -> Option<C> {
        if self.trying.is_some() || self.parent.is_some() {
            return None;
        }
        if self.ancestors.len() >= MAX_HOPS {
            self.restart();
        }
        loop {
            match self.candidates.pop_front() {
                Some(c) if own.contains(&c) => continue,
                Some(c) => {
                    self.trying = Some(c.clone());
                    return Some(c);
                }
                None if self.ancestors.is_empty() && self.sources.iter().all(|s| own.contains(s)) => return None,
                None => self.restart(),
            }
        }
    }

    fn restart(&mut self) {
        self.ancestors.clear();
        self.candidates = self.sources.iter().cloned().collect();
    }

    /// `peer` redirected us to `to`: it becomes an ancestor and `to` the next candidates.
    pub fn on_redirect(&mut self, peer: &C, to: Vec<C>) {
        if self.trying.as_ref() != Some(peer) {
            return;
        }
        self.trying = None;
        self.ancestors.push(peer.clone());
        self.candidates = to.into_iter().filter(|c| !self.ancestors.contains(c)).collect();
    }

    /// `peer` serves us (it sent data or a head, and no redirect).
    pub fn on_seated(&mut self, peer: &C) {
        if self.trying.as_ref() == Some(peer) {
            self.trying = None;
            self.parent = Some(peer.clone());
        }
    }

    /// `peer` went away or could not be reached. A lost parent sends us to the nearest
    /// ancestor, which has just had a seat freed (the parent's); a candidate that could not be
    /// reached, to the next candidate, then up the ancestors.
    pub fn on_lost(&mut self, peer: &C) {
        let was_parent = self.parent.as_ref() == Some(peer);
        let was_trying = self.trying.as_ref() == Some(peer);
        if !was_parent && !was_trying {
            self.candidates.retain(|c| c != peer);
            return;
        }
        self.parent = None;
        self.trying = None;
        if was_parent {
            self.candidates.clear();
        }
        if self.candidates.is_empty() {
            // Climb: the nearest ancestor becomes the candidate, and is an ancestor no more.
            if let Some(up) = self.ancestors.pop() {
                self.candidates.push_back(up);
            }
        }
    }

    /// The peer serving us, once seated.
    pub fn parent(&self) -> Option<&C> {
        self.parent.as_ref()
    }

    /// How many redirects led to the parent: its depth below the source, minus one.
    pub fn hops(&self) -> usize {
        self.ancestors.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_rotate_over_the_seated() {
        let mut seats = Seats::new(3);
        for p in 1..=3 {
            assert_eq!(seats.admit(p), Seating::Seated);
        }
        let firsts: Vec<u32> = (10..16)
            .map(|p| match seats.admit(p) {
                Seating::Redirect(to) => to[0],
                Seating::Seated => panic!("no seat was free"),
            })
            .collect();
        assert_eq!(firsts, vec![1, 2, 3, 1, 2, 3]);
        assert_eq!(seats.seated(), &[1, 2, 3]);
        assert!(seats.leave(&2));
        assert!(!seats.leave(&2));
        assert_eq!(seats.admit(20), Seating::Seated);
        assert_eq!(seats.admit(20), Seating::Seated, "a second subscribe keeps the one seat");
        assert_eq!(seats.seated().len(), 3);
    }

    #[test]
    fn a_redirect_names_at_most_the_bound() {
        let mut seats = Seats::new(100);
        for p in 0..100u32 {
            seats.admit(p);
        }
        let Seating::Redirect(to) = seats.admit(1000) else { panic!("full") };
        assert_eq!(to.len(), MAX_REDIRECT_PEERS);
    }

    #[test]
    fn a_lost_parent_sends_the_subscriber_to_its_nearest_ancestor() {
        let none = Seats::new(1);
        let mut l = Lineage::new(vec![0u32]);
        assert_eq!(l.next(&none), Some(0));
        l.on_redirect(&0, vec![1, 2]);
        assert_eq!(l.next(&none), Some(1));
        l.on_redirect(&1, vec![3]);
        assert_eq!(l.next(&none), Some(3));
        assert_eq!(l.next(&none), None, "one attempt at a time");
        l.on_seated(&3);
        assert_eq!((l.parent(), l.hops()), (Some(&3), 2));
        l.on_lost(&3);
        assert_eq!(l.next(&none), Some(1), "the nearest ancestor first");
        l.on_lost(&1);
        assert_eq!(l.next(&none), Some(0));
        l.on_lost(&0);
        assert_eq!(l.next(&none), Some(0), "then the sources again");
    }

    #[test]
    fn a_subscriber_never_subscribes_to_its_own_child() {
        let mut own = Seats::new(2);
        own.admit(7u32);
        let mut l = Lineage::new(vec![0u32]);
        assert_eq!(l.next(&own), Some(0));
        l.on_redirect(&0, vec![7, 8]);
        assert_eq!(l.next(&own), Some(8));
    }

    #[test]
    fn a_redirect_loop_ends_back_at_the_sources() {
        let none = Seats::new(1);
        let mut l = Lineage::new(vec![0u32]);
        let mut at = l.next(&none).unwrap();
        for hop in 1..=(MAX_HOPS as u32 + 3) {
            l.on_redirect(&at, vec![hop]);
            at = l.next(&none).unwrap();
        }
        assert!(l.hops() <= MAX_HOPS);
    }
}
