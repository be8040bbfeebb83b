//! rollcall-notify: delivers the notices the ledger writes to its outbox (see ARCHITECTURE.md,
//! "Notifications").
//!
//! The ledger (`rollcall_ledger::outbox`) writes one outbox row per recipient and channel in the
//! same transaction as the cause (check-in, absence, alert); this crate renders the rows in the
//! recipient's language ([`templates`]), sends them through a [`Channel`] (webhook gateway for
//! SMS/WeChat, SMTP, log) and records the outcome ([`Dispatcher`]).

pub mod bench;
pub mod channel;
pub mod dispatcher;
pub mod receiver;
pub mod smtp;
pub mod templates;
pub mod webhook;

pub use channel::{Channel, Channels, LogChannel, Outgoing, RecordingSink, SendError};
pub use dispatcher::{
    spawn_dispatcher, Dispatcher, DispatcherConfig, DispatcherHandle, TickReport,
};
pub use smtp::SmtpChannel;
pub use templates::{render, Lang, Rendered};
pub use webhook::{sign, verify, SignatureError, WebhookChannel};

use rollcall_ledger::{NoticeKind, OutboxCounts};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Errors at the crate boundary.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("ledger: {0}")]
    Ledger(#[from] rollcall_ledger::LedgerError),
    #[error("invalid {field}: {message}")]
    Config {
        field: &'static str,
        message: String,
    },
    #[error("template {kind}: missing parameter {missing:?}")]
    Template {
        kind: NoticeKind,
        missing: &'static str,
    },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("task: {0}")]
    Task(String),
}

/// Channel settings of a dispatcher process (e.g. the `[notify]` table of `rollcall serve`'s
/// TOML, or `rollcall notify run` flags). Unset channels are not configured: rows for them are
/// dead-lettered with "channel … is not configured".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChannelConfig {
    /// `http://host:port/path` of the SMS/WeChat gateway.
    pub webhook_url: Option<String>,
    /// HMAC key of `X-Rollcall-Signature` (at least 16 bytes); env `ROLLCALL_WEBHOOK_SECRET`.
    #[serde(skip_serializing)]
    pub webhook_secret: Option<String>,
    pub webhook_timeout_ms: Option<u64>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<u16>,
    /// `Rollcall <noreply@school.example>`.
    pub smtp_from: Option<String>,
    pub smtp_timeout_ms: Option<u64>,
}

impl ChannelConfig {
    /// `ROLLCALL_WEBHOOK_URL`, `ROLLCALL_WEBHOOK_SECRET`, `ROLLCALL_SMTP_HOST`,
    /// `ROLLCALL_SMTP_PORT`, `ROLLCALL_SMTP_FROM` override the fields they name.
    pub fn with_env(mut self) -> Result<Self, NotifyError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let Some(v) = var("ROLLCALL_WEBHOOK_URL") {
            self.webhook_url = Some(v);
        }
        if let Some(v) = var("ROLLCALL_WEBHOOK_SECRET") {
            self.webhook_secret = Some(v);
        }
        if let Some(v) = var("ROLLCALL_SMTP_HOST") {
            self.smtp_host = Some(v);
        }
        if let Some(v) = var("ROLLCALL_SMTP_PORT") {
            self.smtp_port = Some(v.parse().map_err(|_| NotifyError::Config {
                field: "ROLLCALL_SMTP_PORT",
                message: format!("{v:?} is not a port"),
            })?);
        }
        if let Some(v) = var("ROLLCALL_SMTP_FROM") {
            self.smtp_from = Some(v);
        }
        Ok(self)
    }

    /// Builds the channels (the log channel is always there).
    pub fn build(&self) -> Result<Channels, NotifyError> {
        let mut c = Channels::default();
        if let Some(url) = &self.webhook_url {
            webhook::HttpUrl::parse(url)?;
            let secret = self.webhook_secret.as_deref().ok_or(NotifyError::Config {
                field: "webhook_secret",
                message: "a webhook needs a secret (ROLLCALL_WEBHOOK_SECRET)".into(),
            })?;
            c.webhook = Some(Arc::new(WebhookChannel::new(
                url,
                secret.as_bytes(),
                Duration::from_millis(self.webhook_timeout_ms.unwrap_or(10_000)),
            )?));
        }
        if let Some(host) = &self.smtp_host {
            let from = self.smtp_from.as_deref().ok_or(NotifyError::Config {
                field: "smtp_from",
                message: "e-mail needs a sender address".into(),
            })?;
            c.email = Some(Arc::new(SmtpChannel::new(
                host,
                self.smtp_port.unwrap_or(25),
                from,
                Duration::from_millis(self.smtp_timeout_ms.unwrap_or(30_000)),
            )?));
        }
        Ok(c)
    }
}

/// Prometheus text lines for the outbox counts (for `/metrics`).
pub fn metrics_text(school: &str, c: &OutboxCounts) -> String {
    let mut s = String::from("# TYPE rollcall_notify_outbox gauge\n");
    for (state, v) in [
        ("pending", c.pending),
        ("due", c.due),
        ("in_flight", c.in_flight),
        ("sent", c.sent),
        ("dead", c.dead),
    ] {
        s.push_str(&format!(
            "rollcall_notify_outbox{{school=\"{school}\",state=\"{state}\"}} {v}\n"
        ));
    }
    s
}
