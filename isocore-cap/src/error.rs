//! Why bytes were refused, and why a capability was.
//!
//! Every refusal names its place: which link (counted from 1, the link nearest the root) and,
//! for a scope that grew, which dimension. Nothing here carries secret material or says how
//! close a guess came, so errors can be logged and returned to peers without acting as an
//! oracle.

use core::fmt;

/// A dimension of authority in which a link may not exceed its parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dimension {
    /// The channel mode (Relay < Read < Write < Admin).
    Mode,
    /// Remaining re-delegations: each link must allow strictly fewer than its parent.
    Depth,
    /// The path prefix.
    Path,
    /// The key range.
    Range,
    /// The validity window.
    Window,
    /// The component an Invoke capability names.
    Component,
    /// The interface an Invoke capability names.
    Interface,
    /// The set of methods an Invoke capability allows.
    Methods,
    /// The fuel allowed per call.
    Fuel,
    /// The calls allowed per minute.
    Rate,
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dimension::Mode => "mode",
            Dimension::Depth => "delegation depth",
            Dimension::Path => "path",
            Dimension::Range => "key range",
            Dimension::Window => "validity window",
            Dimension::Component => "component",
            Dimension::Interface => "interface",
            Dimension::Methods => "method set",
            Dimension::Fuel => "fuel budget",
            Dimension::Rate => "call rate",
        })
    }
}

/// The bytes are not a canonical encoding (`spec/cap.md` §4). The fault is the sender's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Longer than the encoding allows; refused before reading anything.
    TooLong {
        /// The length given.
        len: usize,
        /// The most allowed.
        max: usize,
    },
    /// The input ended inside a field.
    Truncated,
    /// Bytes follow the end of the encoding.
    TrailingBytes,
    /// A varint with a redundant trailing zero group.
    NonCanonicalVarint,
    /// A varint beyond 64 bits.
    VarintOverflow,
    /// A version this implementation does not know.
    UnknownVersion(u8),
    /// A root kind that does not exist.
    UnknownRoot(u8),
    /// The link count is 0 or above [`MAX_LINKS`](crate::MAX_LINKS).
    LinkCount(u8),
    /// A reserved flag bit is set, or a field is present that this kind of chain cannot carry.
    BadFlags {
        /// The link, counted from 1.
        link: u8,
    },
    /// A path component is empty, too long, `.` or `..`, or contains `/` or NUL; or the path
    /// has too many components in total.
    BadPath {
        /// The link, counted from 1.
        link: u8,
    },
    /// A field holds a value outside its range (an invalid method index, a zero count).
    BadValue,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLong { len, max } => write!(f, "{len} bytes is more than the {max} allowed"),
            DecodeError::Truncated => f.write_str("input ends inside a field"),
            DecodeError::TrailingBytes => f.write_str("bytes after the end of the encoding"),
            DecodeError::NonCanonicalVarint => f.write_str("varint not in its shortest form"),
            DecodeError::VarintOverflow => f.write_str("varint beyond 64 bits"),
            DecodeError::UnknownVersion(v) => write!(f, "unknown version {v}"),
            DecodeError::UnknownRoot(k) => write!(f, "unknown root kind {k}"),
            DecodeError::LinkCount(n) => write!(f, "{n} links (1 to 8 allowed)"),
            DecodeError::BadFlags { link } => write!(f, "link {link}: reserved or inapplicable flags"),
            DecodeError::BadPath { link } => write!(f, "link {link}: invalid path"),
            DecodeError::BadValue => f.write_str("field value out of range"),
        }
    }
}

impl core::error::Error for DecodeError {}

/// Why a capability was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The bytes did not decode.
    Decode(DecodeError),
    /// The verifier does not know the root issuer (an unknown channel epoch).
    UnknownRoot,
    /// A link's issuer key is not a valid, non-weak Ed25519 point.
    BadKey {
        /// The link, counted from 1.
        link: u8,
    },
    /// A link's signature does not verify under its issuer's key.
    BadSignature {
        /// The link, counted from 1.
        link: u8,
    },
    /// A link is wider than its parent.
    Widened {
        /// The link, counted from 1.
        link: u8,
        /// Where it grew.
        dimension: Dimension,
    },
    /// The validity window is empty.
    EmptyWindow {
        /// The link whose window emptied it, counted from 1.
        link: u8,
    },
    /// The window has not started yet, even allowing for clock skew.
    NotYetValid,
    /// The window has ended, even allowing for clock skew.
    Expired,
    /// A link was revoked. Entries its holder wrote below `watermark` stay valid.
    Revoked {
        /// The link, counted from 1.
        link: u8,
        /// Entries of the revoked holder's feed below this position keep their validity.
        watermark: u64,
    },
    /// This chain failed before; it is not verified again.
    KnownBad,
    /// The peer has spent its budget of cold verifications; try again later.
    OverBudget,
    /// The proof of possession does not verify for this session and chain.
    BadProof,
    /// The capability is valid but does not cover what was asked.
    NotCovered(Dimension),
    /// A session handle that this table never issued, or that was released.
    UnknownHandle,
    /// A detached invocation was seen before, or its lifetime is longer than allowed.
    Replay,
    /// A detached invocation names another executor, component or interface.
    WrongTarget,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Decode(e) => write!(f, "malformed capability: {e}"),
            Refused::UnknownRoot => f.write_str("unknown root issuer"),
            Refused::BadKey { link } => write!(f, "link {link}: issuer key is invalid or weak"),
            Refused::BadSignature { link } => write!(f, "link {link}: bad signature"),
            Refused::Widened { link, dimension } => write!(f, "link {link}: wider {dimension} than its parent"),
            Refused::EmptyWindow { link } => write!(f, "link {link}: empty validity window"),
            Refused::NotYetValid => f.write_str("not valid yet"),
            Refused::Expired => f.write_str("expired"),
            Refused::Revoked { link, .. } => write!(f, "link {link} was revoked"),
            Refused::KnownBad => f.write_str("chain failed verification before"),
            Refused::OverBudget => f.write_str("too many cold verifications from this peer"),
            Refused::BadProof => f.write_str("bad proof of possession"),
            Refused::NotCovered(d) => write!(f, "request outside the capability's {d}"),
            Refused::UnknownHandle => f.write_str("unknown capability handle"),
            Refused::Replay => f.write_str("invocation replayed or too long-lived"),
            Refused::WrongTarget => f.write_str("invocation addressed to another target"),
        }
    }
}

impl core::error::Error for Refused {}

impl From<DecodeError> for Refused {
    fn from(e: DecodeError) -> Self {
        Refused::Decode(e)
    }
}
