//! Any text as a ballot token: refused unless it was signed with the key.
#![no_main]
use councild::token::Key;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        assert!(Key::from_bytes([42; 32]).verify(text).is_none(), "a forged token verified: {text:?}");
    }
});
