//! The imperative shell: every part that touches a disk, a socket or the clock. It feeds
//! the core events and carries out the effects the core asks for.

pub mod accounts;
pub mod clock;
pub mod durable;
pub mod http;
pub mod inbound;
pub mod limits;
pub mod listen;
pub mod locale;
pub mod mail;
pub mod observe;
pub mod store;
pub mod templates;
pub mod timers;
pub mod token;
pub mod trustee;
pub mod writer;
