//! The webhook's HTTP client: hyper's HTTP/1.1 client over rustls (TLS 1.2 and 1.3, the `ring`
//! provider), trusting the system's certificate store (`rustls-native-certs`) plus any CA
//! certificates the school adds for a private gateway (`ROLLCALL_WEBHOOK_CA_FILE`).
//!
//! - **HTTPS by default.** A plain `http://` URL is accepted only for a loopback gateway
//!   (`127.0.0.0/8`, `::1`, `localhost`) or with the explicit setting
//!   `ROLLCALL_WEBHOOK_ALLOW_HTTP=1` (a gateway on a private network): children's names and
//!   their guardians' numbers are not sent in the clear by accident.
//! - **Redirects are refused**, never followed: a 3xx answer is a permanent failure naming
//!   where it pointed (a redirect could move signed children's data to another host).
//! - **Timeouts**: connecting (TCP and the TLS handshake) and the whole request are bounded;
//!   the caller ([`crate::WebhookChannel`]) bounds the whole exchange as well.

use crate::channel::SendError;
use crate::NotifyError;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// A webhook URL: `https://host[:port][/path]` (or `http://…` where allowed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    pub scheme: Scheme,
    /// Without brackets for an IPv6 address.
    pub host: String,
    pub port: u16,
    pub path: String,
}

/// `localhost` or a loopback address (IPv6 with or without brackets).
pub(crate) fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

impl WebhookUrl {
    /// Parses `url`; plain `http://` only to a loopback host unless `allow_plain_http`.
    pub fn parse(url: &str, allow_plain_http: bool) -> Result<WebhookUrl, NotifyError> {
        let bad = |m: &str| NotifyError::Config {
            field: "webhook url",
            message: format!("{url:?}: {m}"),
        };
        let (scheme, rest, default_port) = if let Some(r) = url.strip_prefix("https://") {
            (Scheme::Https, r, 443)
        } else if let Some(r) = url.strip_prefix("http://") {
            (Scheme::Http, r, 80)
        } else {
            return Err(bad(
                "must start with https:// (or http:// for a loopback gateway)",
            ));
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("needs a host (and no credentials in the URL)"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("bad IPv6 address"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse::<u16>().map_err(|_| bad("bad port"))?,
                None if after.is_empty() => default_port,
                None => return Err(bad("bad host")),
            };
            (h.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_string(),
                    p.parse::<u16>().map_err(|_| bad("bad port"))?,
                ),
                None => (authority.to_string(), default_port),
            }
        };
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        if host.is_empty()
            || host
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '/')
            || path.chars().any(|c| c.is_whitespace() || c.is_control())
            || port == 0
        {
            return Err(bad("bad host, port or path"));
        }
        if scheme == Scheme::Http && !allow_plain_http && !is_loopback(&host) {
            return Err(bad(
                "plain http:// is only used for a gateway on this machine (loopback); use \
                 https://, or set ROLLCALL_WEBHOOK_ALLOW_HTTP=1 for a gateway on a private network",
            ));
        }
        Ok(WebhookUrl {
            scheme,
            host,
            port,
            path,
        })
    }

    /// `host[:port]` as the `Host` header gives it.
    fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = match self.scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// What the gateway answered: the status, and where a redirect pointed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
}

/// The client: TLS settings built once, reused for every delivery.
#[derive(Clone)]
pub struct HttpClient {
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// Trusts the system's certificate store and the CA certificates in `extra_ca_pem` (PEM,
    /// one or more). An unreadable system store is not an error when extra CAs are given.
    pub fn new(
        extra_ca_pem: Option<&[u8]>,
        connect_timeout: Duration,
    ) -> Result<Self, NotifyError> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        let (added, _ignored) = roots.add_parsable_certificates(native.certs);
        if let Some(pem) = extra_ca_pem {
            let mut n = 0;
            for c in CertificateDer::pem_slice_iter(pem) {
                let c = c.map_err(|e| NotifyError::Config {
                    field: "webhook CA file",
                    message: format!("not PEM certificates: {e}"),
                })?;
                roots.add(c).map_err(|e| NotifyError::Config {
                    field: "webhook CA file",
                    message: format!("certificate refused: {e}"),
                })?;
                n += 1;
            }
            if n == 0 {
                return Err(NotifyError::Config {
                    field: "webhook CA file",
                    message: "holds no PEM certificate".into(),
                });
            }
        } else if added == 0 {
            tracing::warn!("no trusted CA certificates found on this system: https webhooks will fail (set ROLLCALL_WEBHOOK_CA_FILE)");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| NotifyError::Config {
                field: "webhook TLS",
                message: e.to_string(),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            tls: Arc::new(cfg),
            connect_timeout,
        })
    }

    /// [`HttpClient::new`] with the CA certificates of a PEM file.
    pub fn with_ca_file(
        path: Option<&Path>,
        connect_timeout: Duration,
    ) -> Result<Self, NotifyError> {
        let pem = match path {
            Some(p) => Some(std::fs::read(p).map_err(|e| NotifyError::Config {
                field: "webhook CA file",
                message: format!("{}: {e}", p.display()),
            })?),
            None => None,
        };
        Self::new(pem.as_deref(), connect_timeout)
    }

    /// `POST` of `body` with `headers` to `url`; the answer's status (the body is read and
    /// dropped). Network and TLS failures are transient (the dispatcher retries them).
    pub async fn post(
        &self,
        url: &WebhookUrl,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Answer, SendError> {
        let mut req = hyper::Request::post(url.path.as_str())
            .header(hyper::header::HOST, url.authority())
            .header(hyper::header::CONNECTION, "close");
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| SendError::Permanent(format!("request: {e}")))?;
        let tcp = tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect((url.host.as_str(), url.port)),
        )
        .await
        .map_err(|_| {
            SendError::Transient(format!(
                "connect to {}: timed out after {:?}",
                url.authority(),
                self.connect_timeout
            ))
        })?
        .map_err(|e| SendError::Transient(format!("connect to {}: {e}", url.authority())))?;
        let _ = tcp.set_nodelay(true);
        let resp = match url.scheme {
            Scheme::Http => send(hyper_util::rt::TokioIo::new(tcp), req).await?,
            Scheme::Https => {
                let name = ServerName::try_from(url.host.clone()).map_err(|e| {
                    SendError::Permanent(format!("TLS server name {}: {e}", url.host))
                })?;
                let tls = tokio::time::timeout(
                    self.connect_timeout,
                    tokio_rustls::TlsConnector::from(self.tls.clone()).connect(name, tcp),
                )
                .await
                .map_err(|_| {
                    SendError::Transient(format!(
                        "TLS handshake with {}: timed out after {:?}",
                        url.authority(),
                        self.connect_timeout
                    ))
                })?
                .map_err(|e| {
                    SendError::Transient(format!("TLS handshake with {}: {e}", url.authority()))
                })?;
                send(hyper_util::rt::TokioIo::new(tls), req).await?
            }
        };
        Ok(resp)
    }
}

async fn send<T>(io: T, req: hyper::Request<Full<Bytes>>) -> Result<Answer, SendError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| SendError::Transient(format!("HTTP: {e}")))?;
    let driver = tokio::spawn(conn);
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| SendError::Transient(format!("HTTP: {e}")))?;
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get(hyper::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(200).collect());
        // the body is not needed; read (bounded by the caller's timeout) so the exchange ends
        let _ = resp.into_body().collect().await;
        Ok(Answer { status, location })
    }
    .await;
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_https_by_default_plain_http_only_for_loopback_or_when_allowed() {
        let u = WebhookUrl::parse("https://gw.example.org/hooks/rollcall", false).unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port, u.path.as_str()),
            (Scheme::Https, "gw.example.org", 443, "/hooks/rollcall")
        );
        assert_eq!(u.authority(), "gw.example.org");
        let u = WebhookUrl::parse("http://127.0.0.1:8080/hook", false).unwrap();
        assert_eq!((u.scheme, u.port), (Scheme::Http, 8080));
        assert_eq!(u.authority(), "127.0.0.1:8080");
        assert!(WebhookUrl::parse("http://localhost/h", false).is_ok());
        let v6 = WebhookUrl::parse("http://[::1]:9/h", false).unwrap();
        assert_eq!(
            (v6.host.as_str(), v6.port, v6.authority().as_str()),
            ("::1", 9, "[::1]:9")
        );
        // a gateway elsewhere: https, or the explicit setting
        let e = WebhookUrl::parse("http://gw.example.org/h", false).unwrap_err();
        assert!(e.to_string().contains("ROLLCALL_WEBHOOK_ALLOW_HTTP"), "{e}");
        assert!(WebhookUrl::parse("http://10.0.0.5/h", false).is_err());
        assert!(WebhookUrl::parse("http://gw.example.org/h", true).is_ok());
        assert_eq!(
            WebhookUrl::parse("https://gw:8443", false).unwrap().path,
            "/"
        );
        for bad in [
            "ftp://x",
            "https://",
            "https://u:p@h/",
            "https://h:99999/",
            "https://h:0/",
            "https://h/a b",
            "https://[::1/",
            "gw.example.org/h",
        ] {
            assert!(WebhookUrl::parse(bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        assert!(HttpClient::new(Some(b"not pem"), Duration::from_secs(1)).is_err());
        assert!(HttpClient::new(None, Duration::from_secs(1)).is_ok());
    }
}
