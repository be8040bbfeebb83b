//! rollcall's pure domain core.
//!
//! Nothing in this crate performs I/O: no files, sockets, databases, model runtimes or async
//! executors. Time enters as an argument (`now`), so every state machine here is a deterministic
//! function of its inputs and can be property-tested. Adapters (vision, gallery, ledger, notify)
//! implement the ports declared here.

pub mod alert_data;
pub mod clock;
pub mod face;
pub mod frame;
pub mod gallery;
pub mod ids;
pub mod ledger;
pub mod matcher;
pub mod money;
pub mod photo;
pub mod privacy;
pub mod timetable;

pub use frame::Frame;
pub use ids::*;
