//! The integration tests, one binary (one link of the crate instead of one per file): each
//! module is one tool's or one concern's tests, run against the built binaries by absolute
//! path (`CARGO_BIN_EXE_<name>`, never PATH: Debian's mblaze has its own mdeliver).

#![allow(dead_code)]

#[macro_use]
mod common;

mod config_keys;
mod demo;
mod dkim;
mod dns;
mod docs;
mod examples;
mod imap_interop;
mod maccess;
mod maccess_interop;
mod mcompose;
mod mdeliver;
mod mdeliver_interop;
mod mdeliver_rules;
mod mdeliver_stress;
mod mdrop;
mod mfetch;
mod mfetch_imap;
mod mfetch_interop;
mod mreceive;
mod mreceive_fuzz;
mod mreceive_interop;
mod mreceive_load;
mod mreceive_tls;
mod mrelay;
mod mrelay_dane;
mod mrelay_interop;
mod msubmit;
mod msubmit_bs;
mod msubmit_hostile;
mod msubmit_info;
mod msubmit_postfix;
mod msubmit_route;
mod msubmit_tls;
mod pipeline;
mod private_files;
mod requiretls;
