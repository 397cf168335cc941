//! isocore-pow (being built).
#![warn(missing_docs)]
