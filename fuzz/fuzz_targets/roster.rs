//! Any text as a roster file: diagnostics or a roster, never a panic.
#![no_main]
use councild::roster::Roster;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(roster) = Roster::parse(text, councild::mail::is_address) {
            let _ = councild::engine::electorate(&roster);
        }
    }
});
