//! End-to-end tests: the real `councild` binary on a temporary folder, spoken to over HTTP.

mod harness;
mod lazyfs;

mod abuse;
mod accounts;
mod admin;
mod browser;
mod cli;
mod crash;
mod cycle;
mod elections;
mod faults;
mod limits;
mod mail;
mod openapi;
mod readme;
mod secret;
mod session;
mod simulate;
mod smtp;
mod texts;
mod validate;
