//! The pure core: no I/O, no clock, no async runtime. Everything here is a function of its
//! arguments, so the engine can be replayed, simulated and tested without a disk or a
//! network. `tests/core_is_pure.rs` fails if a file here reaches for the outside world.

pub mod audit;
pub mod definition;
pub mod engine;
pub mod roster;
pub mod rules;
pub mod secret;
pub mod simulate;
pub mod yaml;
