//! A minimal HTTP/1.1 server side on tokio, for fake endpoints (a webhook endpoint that answers
//! what the test wants): `read_request` (header map with lower-case names, body) and `respond`
//! (an empty response with a status, then close).
//!
//! The same code as the reference webhook receiver of `rollcall notify receiver`: this module
//! compiles its file, so the tests' endpoint and the product's read requests alike.

#[path = "../../cli/src/receiver/wire.rs"]
mod wire;

pub use wire::{read_request, respond};
