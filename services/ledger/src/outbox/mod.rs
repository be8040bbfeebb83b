//! Transactional outbox for parent and staff notifications (issue 8): the feature above the
//! store.
//!
//! Every notice is one row per (recipient, channel) in `outbox`, written inside the ledger
//! transaction that causes it (a check-in, an absence, an alert) through [`crate::notices`], the
//! layer below the store; see there for notice ids and delivery keys. This module is what
//! happens to the rows afterwards, for `rollcall-notify` (which renders and delivers them) and
//! the API: the school's settings ([`crate::Store::set_notify_settings`]; notifications are off for a
//! school until they enable them), notices caused outside a ledger transaction, claims with a
//! lease, marking sent, retries with backoff, dead letters, and counts.
//!
//! The notice types are re-exported here, where they have always been reachable
//! (`rollcall_ledger::outbox::NoticeDraft`, …).

mod causes;
mod dispatch;
mod rows;
mod settings;

pub use crate::notices::{
    absence, arrival, enqueue_at, GuardianPrefs, NoticeDraft, NoticeKind, NotifySettings,
    OutboxState, QuietHours, RecipientKind, StaffRecipient, CHANNELS,
};
pub use rows::{OutboxCounts, OutboxRow};
