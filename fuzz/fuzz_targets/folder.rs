//! A configuration folder (the sample's files, some replaced by the input) checked as
//! `validate` and `reload` check it.
//! The input's format is in `src/lib.rs`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| councild_fuzz::folder(data));
