//! The application: configuration, the start-up check, the daemon and the command line.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod setup;
