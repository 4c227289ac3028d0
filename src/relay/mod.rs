//! The relay: mail on its way from the queue to its next hop.
//!
//! - [`account`]: through an account's server (SMTP submission, msubmit's way).

pub mod account;
