//! Any text as a workflow file: diagnostics or a workflow, never a panic or a hang.
#![no_main]
use councild::definition::{self, Known};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let templates = ["ballot", "ballot-reminder", "vote-receipt", "draft-circulated"].map(String::from).into_iter().collect();
        let _ = definition::load(text, &Known { templates: Some(&templates), roster: None });
    }
});
