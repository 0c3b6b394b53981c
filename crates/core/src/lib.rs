//! The model shared by the `pmdaemon` CLI and its daemon.
//!
//! Everything that crosses the control socket is defined here once: the
//! configuration of an app ([`config::AppConfig`]), each endpoint of the
//! HTTP/JSON API with its request and reply ([`api::endpoints`]), and the
//! small value types both sides parse from user input (durations and sizes
//! in [`units`], command lines in [`command`]); and what both sides must
//! agree on about the machine: the files of a home ([`home`], [`files`],
//! the web setting in [`web::settings`]), whether a home and its socket can
//! be trusted ([`trust`]) and facts read from `/proc` ([`procinfo`]).
//! Besides those files and `/proc`, the crate does no I/O and knows nothing
//! of tokio, so the CLI stays a thin client (it imports nothing of the
//! daemon but its entry point) and the daemon stays the only owner of
//! state.

pub mod api;
pub mod command;
pub mod config;
pub mod ecosystem;
pub mod error;
pub mod export;
pub mod files;
pub mod home;
pub mod limits;
pub mod openapi;
pub mod ports;
pub mod procinfo;
pub mod trust;
pub mod units;
pub mod web;

pub use error::Error;

/// The version both sides compare on every request, so that a CLI never
/// talks to a daemon built from another version without saying so.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
