//! One HTTP request to the running daemon: ballot pages and votes, admin reads.
//! The input's format is in `src/lib.rs`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| councild_fuzz::request(data));
