//! The sender's half: which effort to stamp at, and when to give up.

use crate::admission::{Busy, Params};

/// How a sender prices its unsolicited messages. [`Default`] gives the v1 policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderPolicy {
    /// Margin over the advertised price, in quarters: 5 stamps at 1.25 × price. The margin keeps
    /// a sender ahead of a price that rises while it solves.
    pub margin_quarters: u32,
    /// Total effort units one request may spend over all its attempts before giving up.
    pub budget: u64,
}

impl Default for SenderPolicy {
    fn default() -> Self {
        SenderPolicy { margin_quarters: 5, budget: u64::MAX }
    }
}

/// The request ran out of budget; report failure to the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GiveUp {
    /// Effort units spent on the abandoned attempts.
    pub spent: u64,
}

/// One unsolicited request's pricing state across its retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    policy: SenderPolicy,
    effort: u32,
    spent: u64,
}

impl Request {
    /// Prices the first attempt from the receiver's advertised parameters: `ceil(margin × price)`,
    /// or no stamp at all while the receiver is dormant.
    pub fn new(policy: SenderPolicy, params: &Params) -> Self {
        Request { effort: policy.with_margin(params.price), policy, spent: 0 }
    }

    /// Effort to stamp the next attempt with; 0 means send without a stamp.
    pub fn effort(&self) -> u32 {
        self.effort
    }

    /// Effort units spent on attempts already sent.
    pub fn spent(&self) -> u64 {
        self.spent
    }

    /// The attempt was answered `Busy`: the next effort is at least double the last one and at
    /// least the margin over the quoted price (and never below it), unless that would overrun the budget.
    pub fn on_busy(&mut self, busy: &Busy) -> Result<u32, GiveUp> {
        self.spent = self.spent.saturating_add(u64::from(self.effort));
        let next = u64::from(self.effort)
            .saturating_mul(2)
            .max(u64::from(self.policy.with_margin(busy.price)))
            .max(u64::from(busy.price))
            .clamp(1, u64::from(u32::MAX));
        if self.spent.saturating_add(next) > self.policy.budget {
            return Err(GiveUp { spent: self.spent });
        }
        self.effort = next as u32;
        Ok(self.effort)
    }
}

impl SenderPolicy {
    /// `ceil(price × margin_quarters / 4)`, saturating.
    pub fn with_margin(&self, price: u32) -> u32 {
        (u64::from(price) * u64::from(self.margin_quarters)).div_ceil(4).min(u64::from(u32::MAX)) as u32
    }
}
