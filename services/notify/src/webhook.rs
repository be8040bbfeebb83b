//! Webhook channel: `POST` of the notice as JSON to a gateway (the integration point for SMS and
//! WeChat providers) through [`crate::http::HttpClient`]: HTTPS (rustls, the system's trust
//! store plus `ROLLCALL_WEBHOOK_CA_FILE`) by default, plain HTTP only to a loopback gateway or
//! with `ROLLCALL_WEBHOOK_ALLOW_HTTP=1`, redirects refused, connect and request timeouts.
//!
//! Headers: `Idempotency-Key: <delivery key>` (the receiver dedupes on it; a notice may be
//! delivered more than once) and `X-Rollcall-Signature: t=<unix seconds>,v2=<hex>` where
//! `v2 = HMAC-SHA256(secret, "<t>\n<delivery key>\n<body>")`. The delivery key is under the
//! MAC, so a captured delivery replayed with a new `Idempotency-Key` (to make the gateway send
//! the message again) fails the check; the key never holds a control character, so the
//! message is unambiguous. A receiver checks the MAC with [`verify`] and refuses a timestamp
//! outside its tolerance (replay). The earlier `v1` signature (without the key) is refused.

use crate::channel::{Channel, Outgoing, SendError};
use crate::NotifyError;
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use rollcall_domain::clock::{Clock, SystemClock};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;

pub use crate::http::{HttpClient, Scheme, WebhookUrl};

type HmacSha256 = Hmac<Sha256>;

/// `t=<unix>,v2=<hex hmac-sha256(secret, "<t>\n<key>\n<body>")>`.
pub fn sign(secret: &[u8], t: i64, key: &str, body: &[u8]) -> String {
    format!(
        "t={t},v2={}",
        hex::encode(mac(secret, t, key, body).finalize().into_bytes())
    )
}

fn mac(secret: &[u8], t: i64, key: &str, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b"\n");
    mac.update(key.as_bytes());
    mac.update(b"\n");
    mac.update(body);
    mac
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("malformed signature header")]
    Malformed,
    #[error("signature timestamp {t} is {age_s} s from now (tolerance {tolerance_s} s)")]
    Stale {
        t: i64,
        age_s: i64,
        tolerance_s: i64,
    },
    #[error("signature does not match")]
    Mismatch,
}

/// Checks a `X-Rollcall-Signature` header against the delivery key (`Idempotency-Key`) and
/// the body (constant-time MAC comparison) and the timestamp against `now_unix ± tolerance_s`.
pub fn verify(
    secret: &[u8],
    header: &str,
    key: &str,
    body: &[u8],
    now_unix: i64,
    tolerance_s: i64,
) -> Result<(), SignatureError> {
    let mut t = None;
    let mut v2 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v2", v)) => v2 = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (t, v2) = (
        t.ok_or(SignatureError::Malformed)?,
        v2.ok_or(SignatureError::Malformed)?,
    );
    if key.is_empty() || key.chars().any(|c| c.is_control()) {
        return Err(SignatureError::Malformed);
    }
    let age_s = (now_unix - t).abs();
    if age_s > tolerance_s {
        return Err(SignatureError::Stale {
            t,
            age_s,
            tolerance_s,
        });
    }
    mac(secret, t, key, body)
        .verify_slice(&v2)
        .map_err(|_| SignatureError::Mismatch)
}

/// The webhook channel.
#[derive(Clone)]
pub struct WebhookChannel {
    url: WebhookUrl,
    secret: Vec<u8>,
    timeout: Duration,
    client: HttpClient,
    /// The signature's timestamp (the receiver rejects stale ones).
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for WebhookChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookChannel")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl WebhookChannel {
    /// `timeout` bounds the whole request (connect, TLS, send, answer). HTTPS with the
    /// system's trust store; plain HTTP to a loopback gateway only.
    pub fn new(url: &str, secret: &[u8], timeout: Duration) -> Result<Self, NotifyError> {
        Self::with_client(url, secret, timeout, false, HttpClient::new(None, timeout)?)
    }

    /// With a client of the caller's (extra CA certificates) and, with `allow_plain_http`,
    /// plain `http://` to any host (a gateway on a private network).
    pub fn with_client(
        url: &str,
        secret: &[u8],
        timeout: Duration,
        allow_plain_http: bool,
        client: HttpClient,
    ) -> Result<Self, NotifyError> {
        if secret.len() < 16 {
            return Err(NotifyError::Config {
                field: "webhook secret",
                message: "at least 16 bytes".into(),
            });
        }
        Ok(Self {
            url: WebhookUrl::parse(url, allow_plain_http)?,
            secret: secret.to_vec(),
            timeout,
            client,
            clock: Arc::new(SystemClock),
        })
    }

    /// Signatures are timestamped on `clock` (default: the system clock); the dispatcher gives
    /// its store's.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    async fn post(&self, key: &str, body: &[u8]) -> Result<crate::http::Answer, SendError> {
        let t = self.clock.now().timestamp();
        let headers = [
            ("content-type", "application/json".to_string()),
            ("idempotency-key", key.to_string()),
            ("x-rollcall-signature", sign(&self.secret, t, key, body)),
            ("user-agent", "rollcall-notify".to_string()),
        ];
        self.client.post(&self.url, &headers, body.to_vec()).await
    }
}

#[async_trait]
impl Channel for WebhookChannel {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn send(&self, n: &Outgoing) -> Result<(), SendError> {
        if n.delivery_key.chars().any(|c| c.is_control()) {
            return Err(SendError::Permanent(
                "delivery key has control characters".into(),
            ));
        }
        let body = serde_json::to_vec(n).map_err(|e| SendError::Permanent(e.to_string()))?;
        let answer = tokio::time::timeout(self.timeout, self.post(&n.delivery_key, &body))
            .await
            .map_err(|_| SendError::Transient(format!("timed out after {:?}", self.timeout)))??;
        match answer.status {
            200..=299 => Ok(()),
            // never followed: a redirect would carry the signed notice to another address
            code @ 300..=399 => Err(SendError::Permanent(format!(
                "HTTP {code}: redirects are refused (to {})",
                answer.location.as_deref().unwrap_or("no location")
            ))),
            code @ (408 | 425 | 429 | 500..=599) => {
                Err(SendError::Transient(format!("HTTP {code}")))
            }
            code => Err(SendError::Permanent(format!("HTTP {code}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_refuse_tampering_and_replay() {
        let secret = b"0123456789abcdef-secret";
        let key = "arrival:s1:M0/guardian:g1/sms";
        let body = br#"{"delivery_key":"arrival:s1:M0/guardian:g1/sms"}"#;
        let h = sign(secret, 1_700_000_000, key, body);
        assert!(h.starts_with("t=1700000000,v2="));
        assert_eq!(verify(secret, &h, key, body, 1_700_000_100, 300), Ok(()));
        assert_eq!(
            verify(secret, &h, key, b"{}", 1_700_000_000, 300),
            Err(SignatureError::Mismatch)
        );
        // the delivery key is under the MAC: another Idempotency-Key breaks the signature
        assert_eq!(
            verify(secret, &h, "replay-1", body, 1_700_000_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(secret, &h, "", body, 1_700_000_000, 300),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(b"another-secret-0123", &h, key, body, 1_700_000_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert!(matches!(
            verify(secret, &h, key, body, 1_700_000_000 + 301, 300),
            Err(SignatureError::Stale { age_s: 301, .. })
        ));
        // the timestamp is under the MAC: moving it forward breaks the signature
        let moved = h.replace("t=1700000000", "t=1700000500");
        assert_eq!(
            verify(secret, &moved, key, body, 1_700_000_500, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(secret, "v2=00", key, body, 0, 300),
            Err(SignatureError::Malformed)
        );
        // the old signature without the key is not accepted any more
        let v1 = h.replace("v2=", "v1=");
        assert_eq!(
            verify(secret, &v1, key, body, 1_700_000_000, 300),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn channels_need_a_long_secret_and_a_usable_url() {
        assert!(
            WebhookChannel::new("http://127.0.0.1/", b"short", Duration::from_secs(1)).is_err()
        );
        let secret = b"0123456789abcdef-secret";
        assert!(
            WebhookChannel::new("https://gw.example.org/h", secret, Duration::from_secs(1)).is_ok()
        );
        assert!(
            WebhookChannel::new("http://127.0.0.1:9/h", secret, Duration::from_secs(1)).is_ok()
        );
        // plain http to another host: only with the explicit setting
        assert!(
            WebhookChannel::new("http://gw.example.org/h", secret, Duration::from_secs(1)).is_err()
        );
        let client = HttpClient::new(None, Duration::from_secs(1)).unwrap();
        assert!(WebhookChannel::with_client(
            "http://gw.example.org/h",
            secret,
            Duration::from_secs(1),
            true,
            client
        )
        .is_ok());
    }
}
