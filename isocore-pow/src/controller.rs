//! The price controller: a pure state machine stepped once per tick.
//!
//! The price follows the work actually paid against measured capacity (a clearing price), is
//! raised step by step while paying messages form a standing queue, is slew-limited, and falls
//! back to dormant (price 0) after a quiet hold. Zero-effort and solicited messages never feed
//! it work and never count as paying. See `spec/pow.md` §6.

use core::time::Duration;

/// Controller constants. [`Default`] gives the v1 values of `spec/pow.md`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControllerConfig {
    /// Control period.
    pub tick: Duration,
    /// Ticks in the measurement window.
    pub window_ticks: usize,
    /// A paying message that waited longer than this, while the queue never drained below it
    /// for a whole tick, marks congestion (CoDel's standing-queue test).
    pub target_sojourn: Duration,
    /// Target utilisation of the paid class, in thousandths.
    pub rho_permille: u32,
    /// Price on leaving dormancy, in effort units; the floor is a quarter of it.
    pub p_start: u32,
    /// Quiet time before returning to dormant.
    pub hold: Duration,
    /// Capacity assumed (messages per second) until service times are reported.
    pub initial_capacity: f64,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            tick: Duration::from_millis(250),
            window_ticks: 8,
            target_sojourn: Duration::from_millis(20),
            rho_permille: 900,
            p_start: 256,
            hold: Duration::from_secs(5),
            initial_capacity: 1000.0,
        }
    }
}

/// Largest rise per tick (×8) and largest fall (÷2).
pub const SLEW_UP: u64 = 8;
/// Price step per congested tick: ×5/4.
pub const CONG_STEP: (u64, u64) = (5, 4);
/// A stamp counts for at most this many times `max(price, p_start)` of paid work.
pub const ACCT_CAP: u64 = 16;
/// A tick counts at most this many times the stamps its measured capacity could serve, so
/// work banked and released in a burst moves the price no faster than paid congestion.
pub const BURST_CAP: f64 = 8.0;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Slot {
    paid: u64,
    stamps: u64,
    served: u64,
    busy: Duration,
    solicited: u64,
}

/// The price state machine. Time enters only through [`Controller::tick`], one call per period.
#[derive(Debug, Clone)]
pub struct Controller {
    cfg: ControllerConfig,
    price: u32,
    quiet: Duration,
    capacity: f64,
    slot: Slot,
    ring: alloc::vec::Vec<Slot>,
    at: usize,
    min_sojourn: Option<Duration>,
}

impl Controller {
    /// A dormant controller.
    pub fn new(cfg: ControllerConfig) -> Self {
        Controller {
            price: 0,
            quiet: Duration::ZERO,
            capacity: cfg.initial_capacity.max(1.0),
            slot: Slot::default(),
            ring: alloc::vec![Slot::default(); cfg.window_ticks.max(1)],
            at: 0,
            min_sojourn: None,
            cfg,
        }
    }

    /// The current price in effort units; 0 means dormant.
    pub fn price(&self) -> u32 {
        self.price
    }

    /// The lowest non-zero price: `ceil(p_start / 4)`.
    pub fn floor(&self) -> u32 {
        self.cfg.p_start.div_ceil(4).max(1)
    }

    /// The constants in use.
    pub fn config(&self) -> &ControllerConfig {
        &self.cfg
    }

    /// Estimated service capacity, messages per second.
    pub fn capacity(&self) -> f64 {
        self.capacity
    }

    /// How much of `effort` counts as paid work: capped so one lucky or lavish stamp cannot
    /// move the price alone.
    pub fn accounted(&self, effort: u32) -> u64 {
        let cap = ACCT_CAP * u64::from(self.price.max(self.cfg.p_start).max(1));
        u64::from(effort).min(cap)
    }

    /// A verified stamp of `effort` arrived.
    pub fn on_paid(&mut self, effort: u32) {
        let cap = BURST_CAP * self.capacity * self.cfg.tick.as_secs_f64();
        if (self.slot.stamps as f64) < cap.max(1.0) {
            self.slot.stamps += 1;
            self.slot.paid += self.accounted(effort);
        }
    }

    /// A message left the queue for service after waiting `sojourn`. Only paying messages
    /// (a stamp at no less than the price) can signal congestion.
    pub fn on_dequeue(&mut self, effort: u32, sojourn: Duration) {
        if self.is_paying(effort) {
            self.min_sojourn = Some(self.min_sojourn.map_or(sojourn, |m| m.min(sojourn)));
        }
    }

    /// The application finished one message; `service_time` is what it cost.
    pub fn on_served(&mut self, service_time: Duration, solicited: bool) {
        self.slot.served += 1;
        self.slot.busy += service_time;
        self.slot.solicited += u64::from(solicited);
    }

    fn is_paying(&self, effort: u32) -> bool {
        effort > 0 && effort >= self.price
    }

    /// `true` when ticking changes nothing: dormant, with an empty window.
    pub fn is_idle(&self) -> bool {
        self.price == 0
            && self.min_sojourn.is_none()
            && self.slot == Slot::default()
            && self.ring.iter().all(|s| s.paid == 0 && s.served == 0)
    }

    /// Ends a tick. `head` is the effort and age of the first queued message, if any, so a
    /// queue that never drains still counts as standing. Returns the new price.
    pub fn tick(&mut self, head: Option<(u32, Duration)>) -> u32 {
        if let Some((effort, age)) = head {
            self.on_dequeue(effort, age);
        }
        self.ring[self.at] = core::mem::take(&mut self.slot);
        self.at = (self.at + 1) % self.ring.len();
        let (mut paid, mut served, mut busy, mut solicited) = (0u64, 0u64, Duration::ZERO, 0u64);
        for s in &self.ring {
            paid += s.paid;
            served += s.served;
            busy += s.busy;
            solicited += s.solicited;
        }
        if served > 0 && !busy.is_zero() {
            self.capacity = served as f64 / busy.as_secs_f64();
        }
        let window = self.cfg.tick.as_secs_f64() * self.ring.len() as f64;
        let mu_paid = (self.capacity - solicited as f64 / window).max(0.25 * self.capacity);
        let rho = f64::from(self.cfg.rho_permille) / 1000.0;
        let clearing = paid as f64 / (rho * mu_paid * window);
        let congested = self.min_sojourn.take().is_some_and(|m| m > self.cfg.target_sojourn);

        let price = u64::from(self.price);
        let floor = u64::from(self.floor());
        // `as` saturates; round up by hand since `core` has no `ceil`.
        let mut target = clearing as u64;
        if (target as f64) < clearing {
            target = target.saturating_add(1);
        }
        if congested {
            let step =
                if price == 0 { u64::from(self.cfg.p_start) } else { (price * CONG_STEP.0).div_ceil(CONG_STEP.1) };
            target = target.max(step);
        }
        let new = if target < floor && !congested {
            self.quiet += self.cfg.tick;
            if price == 0 || self.quiet >= self.cfg.hold { 0 } else { (price / 2).max(floor) }
        } else {
            self.quiet = Duration::ZERO;
            let hi = SLEW_UP * if price == 0 { u64::from(self.cfg.p_start) } else { price };
            target.clamp(price / 2, hi.max(price / 2)).max(floor)
        };
        self.price = new.min(u64::from(u32::MAX)) as u32;
        self.price
    }
}
