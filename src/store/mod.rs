//! Durable storage: where mail rests between steps, written so a crash never loses what we
//! said we kept (tmp file, fsync, rename, directory fsync).
//!
//! [`maildir`] stores into Maildirs (with group commit of the directory sync); [`queue`] holds
//! outgoing messages with the state of each recipient until their next hop took them, and
//! runs them through a sender its caller gives; [`dedupe`] remembers Message-IDs for
//! duplicate suppression.

pub mod dedupe;
pub mod maildir;
pub mod queue;
