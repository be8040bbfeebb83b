//! Channels: where a rendered notice goes. `sms`, `wechat` and `webhook` rows go to the webhook
//! gateway, `email` rows to SMTP, `log` rows to the log. [`RecordingSink`] keeps what it is given
//! (tests, `rollcall run-scenario`).

use crate::templates::Rendered;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rollcall_ledger::{NoticeKind, OutboxRow, RecipientKind};
use serde::Serialize;
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// A notice ready to send: the outbox row rendered in the recipient's language. Serialised as
/// the webhook's JSON body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outgoing {
    /// Idempotency key: `{notice_id}/{recipient_kind}:{recipient}/{channel}`.
    pub delivery_key: String,
    pub notice_id: String,
    pub school: String,
    pub kind: NoticeKind,
    /// The channel the recipient asked for (`sms`, `wechat`, `webhook`, `email`, `log`).
    pub channel: String,
    pub recipient_kind: RecipientKind,
    pub recipient_id: String,
    /// Phone number, e-mail address or id, per channel.
    pub to: String,
    pub language: String,
    pub subject: String,
    pub text: String,
    pub student_id: Option<String>,
    pub params: Value,
    pub urgent: bool,
    /// When the cause was written (the outbox row's `created_at`).
    pub created_at: DateTime<Utc>,
}

impl Outgoing {
    pub fn new(school: &str, row: &OutboxRow, r: Rendered) -> Outgoing {
        Outgoing {
            delivery_key: row.delivery_key.clone(),
            notice_id: row.notice_id.clone(),
            school: school.to_string(),
            kind: row.kind,
            channel: row.channel.clone(),
            recipient_kind: row.recipient_kind,
            recipient_id: row.recipient_id.clone(),
            to: row.address.clone(),
            language: r.language.tag().to_string(),
            subject: r.subject,
            text: r.text,
            student_id: row.student_id.clone(),
            params: row.params.clone(),
            urgent: row.urgent,
            created_at: row.created_at,
        }
    }
}

/// Why a send failed: transient failures are retried with backoff, permanent ones dead-letter
/// the row at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("transient: {0}")]
    Transient(String),
    #[error("permanent: {0}")]
    Permanent(String),
}

/// A delivery channel. `send` must be safe to repeat with the same `delivery_key` (the provider
/// dedupes on it): delivery is at least once.
#[async_trait]
pub trait Channel: Send + Sync {
    fn name(&self) -> &'static str;
    async fn send(&self, n: &Outgoing) -> Result<(), SendError>;
}

/// Writes notices to the log (`tracing`, target `rollcall_notify`).
#[derive(Debug, Default, Clone)]
pub struct LogChannel;

#[async_trait]
impl Channel for LogChannel {
    fn name(&self) -> &'static str {
        "log"
    }
    async fn send(&self, n: &Outgoing) -> Result<(), SendError> {
        tracing::info!(target: "rollcall_notify", key = %n.delivery_key, to = %n.to, subject = %n.subject, text = %n.text, "notice");
        Ok(())
    }
}

/// Records every notice it is given, in order (re-deliveries included).
#[derive(Debug, Default, Clone)]
pub struct RecordingSink {
    inner: Arc<Mutex<Vec<Outgoing>>>,
}

impl RecordingSink {
    pub fn new() -> Self {
        Self::default()
    }
    /// Every delivery, in order (a re-delivered key appears again).
    pub fn deliveries(&self) -> Vec<Outgoing> {
        self.inner.lock().map(|v| v.clone()).unwrap_or_default()
    }
    /// One notice per delivery key (the first delivery), sorted by key.
    pub fn distinct(&self) -> Vec<Outgoing> {
        let mut seen = std::collections::BTreeMap::new();
        for o in self.deliveries() {
            seen.entry(o.delivery_key.clone()).or_insert(o);
        }
        seen.into_values().collect()
    }
}

#[async_trait]
impl Channel for RecordingSink {
    fn name(&self) -> &'static str {
        "recording"
    }
    async fn send(&self, n: &Outgoing) -> Result<(), SendError> {
        self.inner
            .lock()
            .map_err(|_| SendError::Transient("recording sink poisoned".into()))?
            .push(n.clone());
        Ok(())
    }
}

/// Which channel sends which row.
#[derive(Clone)]
pub struct Channels {
    pub webhook: Option<Arc<dyn Channel>>,
    pub email: Option<Arc<dyn Channel>>,
    pub log: Arc<dyn Channel>,
    /// When set, every row goes here whatever its channel (tests, run-scenario).
    pub all: Option<Arc<dyn Channel>>,
}

impl Default for Channels {
    fn default() -> Self {
        Self {
            webhook: None,
            email: None,
            log: Arc::new(LogChannel),
            all: None,
        }
    }
}

impl Channels {
    /// Every row to one channel.
    pub fn only(c: Arc<dyn Channel>) -> Channels {
        Channels {
            all: Some(c),
            ..Default::default()
        }
    }

    /// The channel for a row's channel name; an unconfigured channel is a permanent error
    /// (the row is dead-lettered and visible to staff).
    pub fn route(&self, channel: &str) -> Result<&Arc<dyn Channel>, SendError> {
        if let Some(a) = &self.all {
            return Ok(a);
        }
        let c = match channel {
            "sms" | "wechat" | "webhook" => self.webhook.as_ref(),
            "email" => self.email.as_ref(),
            "log" => Some(&self.log),
            other => {
                return Err(SendError::Permanent(format!("unknown channel {other:?}")));
            }
        };
        c.ok_or_else(|| SendError::Permanent(format!("channel {channel} is not configured")))
    }
}
