//! councild runs the decision cycles of an executive council: agenda items, circulation of
//! drafts, email ballots, quorum and majority checks, adoption and numbering of acts.
//!
//! # Layout
//! A pure core and an I/O shell (see `ARCHITECTURE.md`):
//! - core, no I/O and no clock: [`yaml`] and [`definition`] (workflow files), [`roster`],
//!   [`rules`] (quorum and majority), [`engine`] (`apply`: event in, state and effects out);
//! - shell: [`store`] (every sled call), [`writer`] (single writer, group commit),
//!   [`timers`], [`mail`] (templates, outbox, transports), [`token`] (signed ballot links),
//!   [`http`] (ballot pages, admin API), [`observe`] (metrics, recent errors), [`config`],
//!   [`daemon`] (`serve`), [`cli`].

pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod definition;
pub mod engine;
pub mod http;
pub mod inbound;
pub mod mail;
pub mod observe;
pub mod roster;
pub mod rules;
pub mod simulate;
pub mod store;
pub mod templates;
pub mod timers;
pub mod token;
pub mod writer;
pub mod yaml;
