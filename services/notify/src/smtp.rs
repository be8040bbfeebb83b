//! E-mail over SMTP (`lettre`). Plain SMTP without TLS or authentication: point it at a local
//! relay (postfix, a provider's smarthost agent) that handles TLS and credentials. The delivery
//! key becomes the `Message-ID` (`<key@rollcall>`, characters outside the RFC 5322 atom set
//! replaced), so a receiving system can drop re-deliveries.

use crate::channel::{Channel, Outgoing, SendError};
use crate::NotifyError;
use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// The SMTP channel.
#[derive(Clone)]
pub struct SmtpChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
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
    pub fn new(host: &str, port: u16, from: &str, timeout: Duration) -> Result<Self, NotifyError> {
        let from: Mailbox = from.parse().map_err(|e| NotifyError::Config {
            field: "smtp from",
            message: format!("{from:?}: {e}"),
        })?;
        if host.is_empty() {
            return Err(NotifyError::Config {
                field: "smtp host",
                message: "empty".into(),
            });
        }
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(timeout))
            .build();
        Ok(Self { transport, from })
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
}
