//! One inbound SMTP session with the running daemon: replies by email.
//! The input's format is in `src/lib.rs`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| councild_fuzz::smtp(data));
