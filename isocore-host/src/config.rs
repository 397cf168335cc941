//! How a node is sized: processes, memory, threads, and the check that the machine can
//! hold that many.

use crate::process::Limits;
use std::time::Duration;

/// Memory maps one process may need. An idle process of the guests here takes 2
/// (`cargo bench -p isocore-host` counts them); a running one also holds an async stack and
/// its guard. Linux's `vm.max_map_count`, not RAM, is what runs out first.
pub const VMAS_PER_PROCESS: u64 = 6;
/// Maps left for everything else in the node (the allocator, code, threads, libraries).
pub const VMA_RESERVE: u64 = 8192;

/// A node's configuration.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Processes alive at once; slots for them are reserved up front.
    pub max_processes: u32,
    /// Limits a process gets unless its spawn says otherwise.
    pub limits: Limits,
    /// Memory all processes of one app may use together, in bytes.
    pub app_memory: usize,
    /// Executor threads (each runs many processes).
    pub threads: usize,
    /// Preemption tick: a running process yields at least this often.
    pub tick: Duration,
    /// Largest guest stack, in bytes.
    pub max_wasm_stack: usize,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            max_processes: 4096,
            limits: Limits::default(),
            app_memory: 256 << 20,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            tick: Duration::from_millis(1),
            max_wasm_stack: 256 << 10,
        }
    }
}

/// The machine cannot hold the density asked for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{wanted} processes need vm.max_map_count >= {needed}, but it is {max_map_count}; \
     raise it (sysctl -w vm.max_map_count={needed}) or ask for at most {reachable} processes"
)]
pub struct DensityError {
    /// Processes asked for.
    pub wanted: u32,
    /// Processes the current limit allows.
    pub reachable: u32,
    /// The current limit.
    pub max_map_count: u64,
    /// The limit needed.
    pub needed: u64,
}

/// Checks `wanted` processes against `max_map_count` (read from the system when `None`).
pub fn check_density(wanted: u32, max_map_count: Option<u64>) -> Result<(), DensityError> {
    let Some(max_map_count) = max_map_count.or_else(read_max_map_count) else { return Ok(()) };
    let needed = u64::from(wanted) * VMAS_PER_PROCESS + VMA_RESERVE;
    if needed <= max_map_count {
        return Ok(());
    }
    let reachable = (max_map_count.saturating_sub(VMA_RESERVE) / VMAS_PER_PROCESS).min(u64::from(u32::MAX)) as u32;
    Err(DensityError { wanted, reachable, max_map_count, needed })
}

/// Linux's per-process limit on memory maps, if readable.
pub fn read_max_map_count() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count").ok()?.trim().parse().ok()
}
