//! Webhook channel: `POST` of the notice as JSON to a gateway (the integration point for SMS and
//! WeChat providers), over plain HTTP/1.1 on a tokio `TcpStream`. TLS is not spoken here: the
//! gateway URL is expected on a private network or behind a local TLS-terminating proxy
//! (`https://` URLs are refused with a clear error).
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
use sha2::Sha256;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// `http://host[:port][/path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl HttpUrl {
    pub fn parse(url: &str) -> Result<HttpUrl, NotifyError> {
        let bad = |m: &str| NotifyError::Config {
            field: "webhook url",
            message: format!("{url:?}: {m}"),
        };
        let rest = if let Some(r) = url.strip_prefix("http://") {
            r
        } else if url.starts_with("https://") {
            return Err(bad("https is not spoken here: put a TLS-terminating proxy or the gateway on a private network and give its http:// URL"));
        } else {
            return Err(bad("must start with http://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("needs a host (and no credentials)"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h.to_string(),
                p.parse::<u16>().map_err(|_| bad("bad port"))?,
            ),
            _ => (authority.to_string(), 80),
        };
        if host.is_empty() || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("bad host or path"));
        }
        Ok(HttpUrl {
            host,
            port,
            path: path.to_string(),
        })
    }
}

/// The webhook channel.
#[derive(Debug, Clone)]
pub struct WebhookChannel {
    url: HttpUrl,
    secret: Vec<u8>,
    timeout: Duration,
}

impl WebhookChannel {
    /// `timeout` bounds the whole request (connect, send, status line).
    pub fn new(url: &str, secret: &[u8], timeout: Duration) -> Result<Self, NotifyError> {
        if secret.len() < 16 {
            return Err(NotifyError::Config {
                field: "webhook secret",
                message: "at least 16 bytes".into(),
            });
        }
        Ok(Self {
            url: HttpUrl::parse(url)?,
            secret: secret.to_vec(),
            timeout,
        })
    }

    async fn post(&self, key: &str, body: &[u8]) -> Result<u16, SendError> {
        let t = chrono::Utc::now().timestamp();
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nIdempotency-Key: {}\r\nX-Rollcall-Signature: {}\r\nUser-Agent: rollcall-notify\r\nConnection: close\r\n\r\n",
            self.url.path,
            self.url.host,
            self.url.port,
            body.len(),
            key,
            sign(&self.secret, t, key, body)
        );
        let host = self.url.host.trim_start_matches('[').trim_end_matches(']');
        let mut s = TcpStream::connect((host, self.url.port))
            .await
            .map_err(|e| SendError::Transient(format!("connect: {e}")))?;
        let mut msg = head.into_bytes();
        msg.extend_from_slice(body);
        s.write_all(&msg)
            .await
            .map_err(|e| SendError::Transient(format!("write: {e}")))?;
        // the status line is all we need
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 256];
        loop {
            let n = s
                .read(&mut chunk)
                .await
                .map_err(|e| SendError::Transient(format!("read: {e}")))?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.windows(2).any(|w| w == b"\r\n") || buf.len() > 8192 {
                break;
            }
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.lines().next().unwrap_or("");
        let mut parts = line.split_whitespace();
        match (
            parts.next(),
            parts.next().and_then(|c| c.parse::<u16>().ok()),
        ) {
            (Some(v), Some(code)) if v.starts_with("HTTP/1.") => Ok(code),
            _ => Err(SendError::Transient(format!(
                "no HTTP status line in the answer ({} bytes)",
                buf.len()
            ))),
        }
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
        let code = tokio::time::timeout(self.timeout, self.post(&n.delivery_key, &body))
            .await
            .map_err(|_| SendError::Transient(format!("timed out after {:?}", self.timeout)))??;
        match code {
            200..=299 => Ok(()),
            408 | 425 | 429 | 500..=599 => Err(SendError::Transient(format!("HTTP {code}"))),
            _ => Err(SendError::Permanent(format!("HTTP {code}"))),
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
    fn urls_are_checked() {
        let u = HttpUrl::parse("http://127.0.0.1:8080/hooks/rollcall").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 8080, "/hooks/rollcall")
        );
        assert_eq!(HttpUrl::parse("http://gw.local").unwrap().port, 80);
        for bad in [
            "https://x",
            "ftp://x",
            "http://",
            "http://u:p@h/",
            "http://h:99999/",
            "http://h/a b",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(WebhookChannel::new("http://h/", b"short", Duration::from_secs(1)).is_err());
    }
}
