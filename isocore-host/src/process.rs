//! Process identities, exit reasons and spawn options.

use std::fmt;

/// A process id: unique within a node for its lifetime. It names a process; it does not give
/// a way to reach it (guests hold handles, the host holds a [`Node`](crate::Node)).
pub type Pid = u64;

/// Why a process ended.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ExitReason {
    /// `init` returned an error, or the process was stopped in order.
    Normal,
    /// Killed by a holder of the kill right, its supervisor or the node.
    Killed,
    /// A trap, a panic in the guest or the host, or a limit; the text says which.
    Crashed(String),
    /// Ended because a linked process ended abnormally.
    Linked(Pid),
}

impl ExitReason {
    /// Whether linked processes are told to exit too.
    pub fn is_abnormal(&self) -> bool {
        !matches!(self, ExitReason::Normal)
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("normal"),
            ExitReason::Killed => f.write_str("killed"),
            ExitReason::Crashed(why) => write!(f, "crashed: {why}"),
            ExitReason::Linked(pid) => write!(f, "linked process {pid} exited"),
        }
    }
}

/// Limits of one process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest linear memory, in bytes.
    pub memory: usize,
    /// Messages queued in the mailbox at most.
    pub mailbox_messages: usize,
    /// Bytes of message bodies queued at most.
    pub mailbox_bytes: usize,
    /// Handles the process may hold at once.
    pub handles: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory: 4 << 20, mailbox_messages: 1024, mailbox_bytes: 1 << 20, handles: 1024 }
    }
}
