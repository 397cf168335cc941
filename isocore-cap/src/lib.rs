//! isocore-cap (being built).
#![warn(missing_docs)]
