//! Notices to guardians and staff, the bottom layer of notifications: what a notice is
//! ([`NoticeKind`], [`NoticeDraft`]), the settings that route it ([`NotifySettings`],
//! [`GuardianPrefs`]), the drafts of the ledger's causes, and the statements writing its outbox
//! rows inside the transaction of the change that causes it, so a notice exists if and only if
//! its cause committed.
//!
//! The store (alerts, finalisation), the check-in path and the review queue write notices
//! through here; this module uses none of them (only [`crate::db`]). The outbox *feature*
//! ([`crate::outbox`]: settings, claims, delivery bookkeeping, retries, counts) sits above it
//! and the store.
//!
//! A notice has a deterministic id naming its cause (`arrival:{student}:{lesson}`,
//! `absence:{student}:{lesson}`, `alert:{dedup_key}`, `review:{item}`); each of its rows (one
//! per recipient and channel) has the `delivery_key` `{notice_id}/{recipient_kind}:{recipient}/{channel}`
//! with a UNIQUE constraint, so a replayed cause inserts nothing, and the key is the provider's
//! idempotency key. The ledger stores the event kind and JSON parameters; `rollcall-notify`
//! renders them per language and delivers them.

mod compose;
mod drafts;
mod enqueue;
mod kinds;
mod settings;

pub use drafts::{absence, arrival, fee_due, lesson_changed, lesson_reminder, NoticeDraft};
pub use enqueue::enqueue_at;
pub use kinds::{NoticeKind, OutboxState, RecipientKind, CHANNELS};
pub use settings::{GuardianPrefs, NotifySettings, QuietHours, StaffRecipient};

pub(crate) use compose::{outbox_stmts, recipients_stmt, NotifyCtx, Recipients};
pub(crate) use drafts::{alert_notice, needs_packages};
pub(crate) use enqueue::{enqueue_absence, enqueue_alert, enqueue_many, enqueue_with};
