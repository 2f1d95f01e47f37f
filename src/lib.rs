//! councild runs the decision cycles of an executive council: agenda items, circulation of
//! drafts, email ballots, quorum and majority checks, adoption and numbering of acts.
//!
//! # Layout
//! A pure core and an I/O shell (see `ARCHITECTURE.md`):
//! - [`core`], no I/O and no clock: [`yaml`] and [`definition`] (workflow files), [`roster`],
//!   [`rules`] (quorum and majority, elections' rounds), [`engine`] (event in, state and
//!   effects out, and the one driver of it), [`simulate`], [`secret`] (the secret ballot's
//!   cryptography);
//! - [`shell`]: [`store`] (every sled call), [`writer`] (single writer, group commit),
//!   [`timers`], [`mail`] (templates, outbox, transports), [`token`] (signed ballot links),
//!   [`http`] (ballot pages, admin API), [`inbound`] (replies), [`listen`] (connection
//!   caps), [`observe`], [`clock`],
//!   [`durable`] (syncs that make writes survive a power cut);
//! - [`app`]: [`config`], [`setup`] (reading and checking the configuration folder),
//!   [`daemon`] (`serve`), [`cli`].
//!
//! Each module is also re-exported at the crate's root, so `councild::engine` names
//! `councild::core::engine`.

// Output goes through `cli`'s one writer, which ends quietly when its reader is gone.
#![deny(clippy::print_stdout)]

pub mod app;
pub mod core;
pub mod shell;

pub use app::{cli, config, daemon, setup};
pub use core::{audit, definition, engine, roster, rules, secret, simulate, yaml};
pub use shell::{
    accounts, clock, durable, http, inbound, limits, listen, locale, mail, observe, store,
    templates, timers, token, writer,
};
