//! The rollcall test kit: what every test binary of the workspace shares, written once.
//!
//! Dev-only: a crate lists it under `[dev-dependencies]` and nowhere else
//! (`tests/architecture.rs` fails when a crate depends on it otherwise).
//!
//! - [`paths`]: the workspace root, the fixtures and the models (one rule:
//!   `ROLLCALL_FIXTURES_DIR` / `ROLLCALL_MODELS_DIR`, else `<workspace>/../shared/…`; missing
//!   ones fail the test with what to set, they are never skipped);
//! - [`bin`]: the `rollcall` binary of the calling test crate ([`rollcall!`]), run with its
//!   output captured, with or without a timeout;
//! - [`http`]: a free local port, a blocking `GET`;
//! - [`stats`]: percentiles, a process's resident memory;
//! - [`scenario`]: typed summaries of what `rollcall run-scenario --json` and
//!   `rollcall bench crash --json` print (a field that is missing fails the parse);
//! - feature `pg`: [`pg::ScratchDb`], a PostgreSQL database per test, dropped afterwards
//!   (`ROLLCALL_TEST_DATABASE_URL`);
//! - feature `ledger`: [`ledger::Harness`] (a school on SQLite or on a scratch PostgreSQL
//!   database) and [`two_backends!`], which defines each test once per backend;
//! - feature `net`: [`net`], a minimal HTTP/1.1 request reader and responder (fake endpoints);
//! - feature `gallery`: [`gallery`], the conformance suite every gallery backend passes, and
//!   synthetic templates.

pub mod bin;
pub mod http;
pub mod paths;
pub mod scenario;
pub mod stats;

#[cfg(feature = "gallery")]
pub mod gallery;
#[cfg(feature = "ledger")]
pub mod ledger;
#[cfg(feature = "net")]
pub mod net;
#[cfg(feature = "pg")]
pub mod pg;

pub use paths::{fixture, fixtures_dir, models_dir, project_python, workspace_root};
