//! E-mail over SMTP (`lettre`, rustls with the system's trust store plus
//! `ROLLCALL_SMTP_CA_FILE`). The connection is encrypted by default: STARTTLS, required (a
//! relay that does not offer it gets nothing), or TLS from the first byte on port 465
//! ([`SmtpTls`]); plain SMTP only to a relay on this machine or when set explicitly
//! (`ROLLCALL_SMTP_TLS=none`), and never with a password to another host. Authentication
//! (PLAIN or LOGIN, over the encrypted connection) when a username is configured. The delivery
//! key becomes the `Message-ID` (`<key@rollcall>`, characters outside the RFC 5322 atom set
//! replaced), so a receiving system can drop re-deliveries.

use crate::channel::{Channel, Outgoing, SendError};
use crate::http::is_loopback;
use crate::NotifyError;
use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::time::Duration;

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text: a relay on this machine only, or set explicitly.
    None,
    /// `STARTTLS`, required: a relay that does not offer it is not sent the message.
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
}

impl SmtpTls {
    /// `none`, `starttls` or `tls`.
    pub fn parse(v: &str) -> Result<Self, NotifyError> {
        match v.trim().to_ascii_lowercase().as_str() {
            "none" | "plain" => Ok(SmtpTls::None),
            "starttls" => Ok(SmtpTls::StartTls),
            "tls" | "smtps" | "implicit" => Ok(SmtpTls::Tls),
            other => Err(NotifyError::Config {
                field: "smtp tls",
                message: format!("{other:?}: expected starttls, tls or none"),
            }),
        }
    }

    /// The default for a relay: TLS on port 465, plain to this machine, STARTTLS otherwise.
    pub fn default_for(host: &str, port: u16) -> Self {
        if port == 465 {
            SmtpTls::Tls
        } else if is_loopback(host) {
            SmtpTls::None
        } else {
            SmtpTls::StartTls
        }
    }
}

/// Encryption, credentials and extra trusted CA certificates of an SMTP channel.
#[derive(Clone, Default)]
pub struct SmtpSecurity {
    /// `None`: [`SmtpTls::default_for`] the host and port.
    pub tls: Option<SmtpTls>,
    /// Username and password (AUTH PLAIN or LOGIN).
    pub credentials: Option<(String, String)>,
    /// PEM CA certificates trusted besides the system's (a relay with a private CA).
    pub extra_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for SmtpSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSecurity")
            .field("tls", &self.tls)
            .field("username", &self.credentials.as_ref().map(|c| &c.0))
            .field("extra_ca_pem", &self.extra_ca_pem.as_ref().map(Vec::len))
            .finish()
    }
}

/// The SMTP channel.
#[derive(Clone)]
pub struct SmtpChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    tls: SmtpTls,
}

/// `Message-ID` for a delivery key.
pub fn message_id(delivery_key: &str) -> String {
    let local: String = delivery_key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c) {
                c
            } else {
                '.'
            }
        })
        .collect();
    format!("<{}@rollcall>", local.trim_matches('.'))
}

impl SmtpChannel {
    /// With the default protection for the host and port and no authentication.
    pub fn new(host: &str, port: u16, from: &str, timeout: Duration) -> Result<Self, NotifyError> {
        Self::with_security(host, port, from, timeout, &SmtpSecurity::default())
    }

    pub fn with_security(
        host: &str,
        port: u16,
        from: &str,
        timeout: Duration,
        sec: &SmtpSecurity,
    ) -> Result<Self, NotifyError> {
        let cfg = |field: &'static str, message: String| NotifyError::Config { field, message };
        let from: Mailbox = from
            .parse()
            .map_err(|e| cfg("smtp from", format!("{from:?}: {e}")))?;
        if host.is_empty() {
            return Err(cfg("smtp host", "empty".into()));
        }
        let tls = sec.tls.unwrap_or(SmtpTls::default_for(host, port));
        if tls == SmtpTls::None && sec.credentials.is_some() && !is_loopback(host) {
            return Err(cfg(
                "smtp tls",
                format!("a password is never sent in plain text to {host}: use starttls or tls"),
            ));
        }
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(timeout));
        if tls != SmtpTls::None {
            let mut params = TlsParameters::builder(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
            );
            if let Some(pem) = &sec.extra_ca_pem {
                let mut n = 0;
                for c in CertificateDer::pem_slice_iter(pem) {
                    let c =
                        c.map_err(|e| cfg("smtp CA file", format!("not PEM certificates: {e}")))?;
                    let c = Certificate::from_der(c.to_vec())
                        .map_err(|e| cfg("smtp CA file", format!("certificate refused: {e}")))?;
                    params = params.add_root_certificate(c);
                    n += 1;
                }
                if n == 0 {
                    return Err(cfg("smtp CA file", "holds no PEM certificate".into()));
                }
            }
            let params = params
                .build()
                .map_err(|e| cfg("smtp tls", format!("TLS settings for {host}: {e}")))?;
            b = b.tls(match tls {
                SmtpTls::StartTls => Tls::Required(params),
                _ => Tls::Wrapper(params),
            });
        }
        if let Some((user, pass)) = &sec.credentials {
            b = b.credentials(Credentials::new(user.clone(), pass.clone()));
        }
        Ok(Self {
            transport: b.build(),
            from,
            tls,
        })
    }

    /// How this channel protects its connection.
    pub fn tls(&self) -> SmtpTls {
        self.tls
    }
}

#[async_trait]
impl Channel for SmtpChannel {
    fn name(&self) -> &'static str {
        "email"
    }

    async fn send(&self, n: &Outgoing) -> Result<(), SendError> {
        let to: Mailbox =
            n.to.parse()
                .map_err(|e| SendError::Permanent(format!("recipient {:?}: {e}", n.to)))?;
        let msg = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(n.subject.clone())
            .message_id(Some(message_id(&n.delivery_key)))
            .header(ContentType::TEXT_PLAIN)
            .body(n.text.clone())
            .map_err(|e| SendError::Permanent(format!("message: {e}")))?;
        match self.transport.send(msg).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(format!("smtp: {e}"))),
            Err(e) => Err(SendError::Transient(format!("smtp: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn message_ids_are_valid_atoms() {
        assert_eq!(
            super::message_id("arrival:s1:M0/guardian:g1/email"),
            "<arrival.s1.M0/guardian.g1/email@rollcall>"
        );
        assert!(super::SmtpChannel::new(
            "h",
            25,
            "not an address",
            std::time::Duration::from_secs(1)
        )
        .is_err());
    }

    #[test]
    fn encrypted_by_default_and_no_password_in_plain_text() {
        use super::*;
        let t = Duration::from_secs(1);
        let from = "Rollcall <noreply@school.example>";
        assert_eq!(
            SmtpTls::default_for("smtp.example.org", 587),
            SmtpTls::StartTls
        );
        assert_eq!(SmtpTls::default_for("smtp.example.org", 465), SmtpTls::Tls);
        assert_eq!(SmtpTls::default_for("127.0.0.1", 25), SmtpTls::None);
        assert_eq!(SmtpTls::default_for("localhost", 25), SmtpTls::None);
        assert_eq!(
            SmtpChannel::new("smtp.example.org", 25, from, t)
                .unwrap()
                .tls(),
            SmtpTls::StartTls
        );
        let pw = SmtpSecurity {
            tls: Some(SmtpTls::None),
            credentials: Some(("office".into(), "secret".into())),
            extra_ca_pem: None,
        };
        let e = SmtpChannel::with_security("smtp.example.org", 25, from, t, &pw)
            .err()
            .unwrap();
        assert!(e.to_string().contains("plain text"), "{e}");
        assert!(SmtpChannel::with_security("127.0.0.1", 25, from, t, &pw).is_ok());
        assert!(SmtpTls::parse("STARTTLS").is_ok() && SmtpTls::parse("ssl3").is_err());
        let bad_ca = SmtpSecurity {
            extra_ca_pem: Some(b"no certificate here".to_vec()),
            ..Default::default()
        };
        assert!(SmtpChannel::with_security("smtp.example.org", 587, from, t, &bad_ca).is_err());
    }
}
