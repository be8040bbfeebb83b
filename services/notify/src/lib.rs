//! rollcall-notify: delivers the notices the ledger writes to its outbox (see ARCHITECTURE.md,
//! "Notifications").
//!
//! The ledger (`rollcall_ledger::outbox`) writes one outbox row per recipient and channel in the
//! same transaction as the cause (check-in, absence, alert); this crate renders the rows in the
//! recipient's language ([`templates`]), sends them through a [`Channel`] (webhook gateway for
//! SMS/WeChat, SMTP, log) and records the outcome ([`Dispatcher`]).

pub mod channel;
pub mod dispatcher;
pub mod http;
pub mod smtp;
pub mod templates;
pub mod webhook;

pub use channel::{Channel, Channels, LogChannel, Outgoing, RecordingSink, SendError};
pub use dispatcher::{
    spawn_dispatcher, Dispatcher, DispatcherConfig, DispatcherHandle, TickReport,
};
pub use smtp::{SmtpChannel, SmtpSecurity, SmtpTls};
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
    /// `https://host[:port]/path` of the SMS/WeChat gateway (`http://` for a loopback one).
    pub webhook_url: Option<String>,
    /// HMAC key of `X-Rollcall-Signature` (at least 16 bytes); env `ROLLCALL_WEBHOOK_SECRET`.
    #[serde(skip_serializing)]
    pub webhook_secret: Option<String>,
    pub webhook_timeout_ms: Option<u64>,
    /// Plain `http://` to a gateway that is not on this machine (a private network); env
    /// `ROLLCALL_WEBHOOK_ALLOW_HTTP`.
    pub webhook_allow_http: bool,
    /// PEM CA certificates trusted for the gateway besides the system's; env
    /// `ROLLCALL_WEBHOOK_CA_FILE`.
    pub webhook_ca_file: Option<std::path::PathBuf>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<u16>,
    /// `Rollcall <noreply@school.example>`.
    pub smtp_from: Option<String>,
    pub smtp_timeout_ms: Option<u64>,
    /// `starttls`, `tls` or `none` (default: tls on port 465, none to this machine, starttls
    /// otherwise); env `ROLLCALL_SMTP_TLS`.
    pub smtp_tls: Option<String>,
    /// env `ROLLCALL_SMTP_USERNAME`, `ROLLCALL_SMTP_PASSWORD`.
    pub smtp_username: Option<String>,
    #[serde(skip_serializing)]
    pub smtp_password: Option<String>,
    /// PEM CA certificates trusted for the relay besides the system's; env
    /// `ROLLCALL_SMTP_CA_FILE`.
    pub smtp_ca_file: Option<std::path::PathBuf>,
}

fn read_ca(field: &'static str, p: &std::path::Path) -> Result<Vec<u8>, NotifyError> {
    std::fs::read(p).map_err(|e| NotifyError::Config {
        field,
        message: format!("{}: {e}", p.display()),
    })
}

impl ChannelConfig {
    /// `ROLLCALL_WEBHOOK_URL`, `ROLLCALL_WEBHOOK_SECRET`, `ROLLCALL_WEBHOOK_ALLOW_HTTP`,
    /// `ROLLCALL_WEBHOOK_CA_FILE`, `ROLLCALL_SMTP_HOST`, `ROLLCALL_SMTP_PORT`,
    /// `ROLLCALL_SMTP_FROM`, `ROLLCALL_SMTP_TLS`, `ROLLCALL_SMTP_USERNAME`,
    /// `ROLLCALL_SMTP_PASSWORD`, `ROLLCALL_SMTP_CA_FILE` override the fields they name.
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
        if let Some(v) = var("ROLLCALL_SMTP_TLS") {
            self.smtp_tls = Some(v);
        }
        if let Some(v) = var("ROLLCALL_SMTP_USERNAME") {
            self.smtp_username = Some(v);
        }
        if let Some(v) = var("ROLLCALL_SMTP_PASSWORD") {
            self.smtp_password = Some(v);
        }
        if let Some(v) = var("ROLLCALL_SMTP_CA_FILE") {
            self.smtp_ca_file = Some(v.into());
        }
        if let Some(v) = var("ROLLCALL_WEBHOOK_CA_FILE") {
            self.webhook_ca_file = Some(v.into());
        }
        if let Some(v) = var("ROLLCALL_WEBHOOK_ALLOW_HTTP") {
            self.webhook_allow_http = match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => {
                    return Err(NotifyError::Config {
                        field: "ROLLCALL_WEBHOOK_ALLOW_HTTP",
                        message: format!("{v:?}: expected 1 or 0"),
                    })
                }
            };
        }
        Ok(self)
    }

    /// Builds the channels (the log channel is always there); webhook signatures are timestamped
    /// on `clock` (the store's).
    pub fn build(
        &self,
        clock: Arc<dyn rollcall_domain::clock::Clock>,
    ) -> Result<Channels, NotifyError> {
        let mut c = Channels::default();
        if let Some(url) = &self.webhook_url {
            http::WebhookUrl::parse(url, self.webhook_allow_http)?;
            let secret = self.webhook_secret.as_deref().ok_or(NotifyError::Config {
                field: "webhook_secret",
                message: "a webhook needs a secret (ROLLCALL_WEBHOOK_SECRET)".into(),
            })?;
            let timeout = Duration::from_millis(self.webhook_timeout_ms.unwrap_or(10_000));
            let ca = match &self.webhook_ca_file {
                Some(p) => Some(read_ca("webhook CA file", p)?),
                None => None,
            };
            c.webhook = Some(Arc::new(
                WebhookChannel::with_client(
                    url,
                    secret.as_bytes(),
                    timeout,
                    self.webhook_allow_http,
                    http::HttpClient::new(ca.as_deref(), timeout)?,
                )?
                .with_clock(clock),
            ));
        }
        if let Some(host) = &self.smtp_host {
            let from = self.smtp_from.as_deref().ok_or(NotifyError::Config {
                field: "smtp_from",
                message: "e-mail needs a sender address".into(),
            })?;
            let credentials = match (&self.smtp_username, &self.smtp_password) {
                (Some(u), Some(p)) => Some((u.clone(), p.clone())),
                (None, None) => None,
                _ => {
                    return Err(NotifyError::Config {
                        field: "smtp credentials",
                        message: "a username needs a password and the other way round".into(),
                    })
                }
            };
            let sec = SmtpSecurity {
                tls: self.smtp_tls.as_deref().map(SmtpTls::parse).transpose()?,
                credentials,
                extra_ca_pem: match &self.smtp_ca_file {
                    Some(p) => Some(read_ca("smtp CA file", p)?),
                    None => None,
                },
            };
            c.email = Some(Arc::new(SmtpChannel::with_security(
                host,
                self.smtp_port.unwrap_or(25),
                from,
                Duration::from_millis(self.smtp_timeout_ms.unwrap_or(30_000)),
                &sec,
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
