//! The notification channels on the wire (issue 19): the webhook over HTTPS to a TLS server of
//! the test's own (its certificate from a CA the channel is told to trust; a channel trusting
//! only the system's CAs refuses it), redirects refused and not followed, a gateway that never
//! answers timed out; e-mail over STARTTLS with authentication, and over TLS from the first byte,
//! to a small SMTP server of the test's own, and never in plain text to a relay that does not
//! offer STARTTLS. The certificates are in `tests/tls/` (README there).

use chrono::Utc;
use rollcall_ledger::{NoticeKind, RecipientKind};
use rollcall_notify::http::HttpClient;
use rollcall_notify::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const SECRET: &[u8] = b"tls-test-webhook-secret-0123456789";

fn tls_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls")
}

fn ca_pem() -> Vec<u8> {
    std::fs::read(tls_dir().join("ca.pem")).unwrap()
}

fn acceptor() -> TlsAcceptor {
    let certs = CertificateDer::pem_file_iter(tls_dir().join("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(tls_dir().join("server.key")).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    TlsAcceptor::from(Arc::new(cfg))
}

fn notice(key: &str, to: &str) -> Outgoing {
    Outgoing {
        delivery_key: key.into(),
        notice_id: "arrival:s1:M0".into(),
        school: "acme".into(),
        kind: NoticeKind::Arrival,
        channel: "sms".into(),
        recipient_kind: RecipientKind::Guardian,
        recipient_id: "g1".into(),
        to: to.into(),
        language: "en".into(),
        subject: "Arrived".into(),
        text: "Kit arrived at 15:58.".into(),
        student_id: Some("s1".into()),
        params: serde_json::json!({}),
        urgent: false,
        created_at: Utc::now(),
    }
}

/// Reads one HTTP/1.1 request: lower-case headers and the body (by Content-Length).
async fn read_request<S: AsyncRead + Unpin>(
    s: &mut S,
) -> Option<(HashMap<String, String>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let headers: HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = buf[end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((headers, body))
}

type Seen = Arc<Mutex<Vec<(HashMap<String, String>, Vec<u8>)>>>;

/// An HTTPS (or, without `tls`, plain HTTP) server answering every request with `answer`.
async fn server(tls: bool, answer: &'static str) -> (u16, Seen) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    let acc = acceptor();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let seen = s2.clone();
            let acc = acc.clone();
            tokio::spawn(async move {
                async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
                    mut s: S,
                    seen: Seen,
                    answer: &str,
                ) {
                    if let Some(r) = read_request(&mut s).await {
                        seen.lock().unwrap().push(r);
                        let _ = s.write_all(answer.as_bytes()).await;
                        let _ = s.shutdown().await;
                    }
                }
                if tls {
                    if let Ok(s) = acc.accept(tcp).await {
                        serve(s, seen, answer).await;
                    }
                } else {
                    serve(tcp, seen, answer).await;
                }
            });
        }
    });
    (port, seen)
}

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

#[tokio::test]
async fn webhook_goes_over_https_signed_and_trusts_only_known_cas() {
    let (port, seen) = server(true, OK).await;
    let t = Duration::from_secs(5);
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("https://{host}:{port}/hooks/rollcall");
        let ch = WebhookChannel::with_client(
            &url,
            SECRET,
            t,
            false,
            HttpClient::new(Some(&ca_pem()), t).unwrap(),
        )
        .unwrap();
        ch.send(&notice(&format!("k-{host}"), "+44 20 5550 0103"))
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
    }
    {
        let got = seen.lock().unwrap();
        assert_eq!(got.len(), 2);
        for (headers, body) in got.iter() {
            let key = &headers["idempotency-key"];
            verify(
                SECRET,
                &headers["x-rollcall-signature"],
                key,
                body,
                Utc::now().timestamp(),
                300,
            )
            .unwrap();
            let v: serde_json::Value = serde_json::from_slice(body).unwrap();
            assert_eq!(v["delivery_key"], key.as_str());
            assert_eq!(v["to"], "+44 20 5550 0103");
        }
    }
    // trusting the system's CAs only: the test CA's certificate is refused, nothing is sent
    let ch = WebhookChannel::new(&format!("https://127.0.0.1:{port}/h"), SECRET, t).unwrap();
    match ch.send(&notice("k-untrusted", "+1")).await {
        Err(SendError::Transient(m)) => assert!(m.contains("certificate"), "{m}"),
        other => panic!("an unknown CA was accepted: {other:?}"),
    }
    // a plain HTTP client against the TLS port gets no answer it can use
    let ch = WebhookChannel::new(&format!("http://127.0.0.1:{port}/h"), SECRET, t).unwrap();
    assert!(ch.send(&notice("k-plain", "+1")).await.is_err());
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "nothing reached the server unprotected"
    );
}

#[tokio::test]
async fn webhook_redirects_are_refused_not_followed() {
    let (target_port, target) = server(false, OK).await;
    let redirect: &'static str = Box::leak(
        format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{target_port}/elsewhere\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .into_boxed_str(),
    );
    let (port, seen) = server(false, redirect).await;
    let ch = WebhookChannel::new(
        &format!("http://127.0.0.1:{port}/h"),
        SECRET,
        Duration::from_secs(5),
    )
    .unwrap();
    match ch.send(&notice("k-redirect", "+1")).await {
        Err(SendError::Permanent(m)) => {
            assert!(m.contains("redirects are refused"), "{m}");
            assert!(m.contains(&format!("{target_port}/elsewhere")), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert!(
        target.lock().unwrap().is_empty(),
        "the redirect was followed"
    );
}

#[tokio::test]
async fn a_gateway_that_never_answers_times_out() {
    // accepts, reads, says nothing
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = vec![];
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    let ch = WebhookChannel::new(
        &format!("http://127.0.0.1:{port}/h"),
        SECRET,
        Duration::from_millis(500),
    )
    .unwrap();
    let t0 = std::time::Instant::now();
    match ch.send(&notice("k-silent", "+1")).await {
        Err(SendError::Transient(m)) => assert!(m.contains("timed out"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}

/// What the SMTP server saw.
#[derive(Debug, Default, Clone)]
struct Session {
    tls: bool,
    auth: Option<String>,
    rcpt: Vec<String>,
    data: String,
}

/// A small ESMTP server: `starttls` offers STARTTLS before the upgrade (and AUTH only after
/// it); `implicit` speaks TLS from the first byte; neither: plain, without STARTTLS.
async fn smtp_server(starttls: bool, implicit: bool) -> (u16, Arc<Mutex<Vec<Session>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let got: Arc<Mutex<Vec<Session>>> = Arc::default();
    let g = got.clone();
    let acc = acceptor();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let g = g.clone();
            let acc = acc.clone();
            tokio::spawn(async move {
                // returns true when the client asked for STARTTLS
                async fn talk<S: AsyncRead + AsyncWrite + Unpin>(
                    s: S,
                    sess: &mut Session,
                    offer_starttls: bool,
                    greet: bool,
                ) -> (bool, S) {
                    let mut s = BufReader::new(s);
                    if greet {
                        let _ = s.get_mut().write_all(b"220 test ESMTP\r\n").await;
                    }
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if s.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return (false, s.into_inner());
                        }
                        let l = line.trim_end().to_string();
                        let up = l.to_ascii_uppercase();
                        let reply = if up.starts_with("EHLO") {
                            if offer_starttls && !sess.tls {
                                "250-test\r\n250 STARTTLS\r\n".to_string()
                            } else if sess.tls {
                                "250-test\r\n250 AUTH PLAIN LOGIN\r\n".to_string()
                            } else {
                                "250 test\r\n".to_string()
                            }
                        } else if up == "STARTTLS" {
                            let _ = s.get_mut().write_all(b"220 go ahead\r\n").await;
                            return (true, s.into_inner());
                        } else if up.starts_with("AUTH PLAIN") {
                            sess.auth = l.split_whitespace().nth(2).map(str::to_string);
                            "235 ok\r\n".into()
                        } else if up.starts_with("RCPT TO:") {
                            sess.rcpt.push(l[8..].trim().to_string());
                            "250 ok\r\n".into()
                        } else if up == "DATA" {
                            let _ = s.get_mut().write_all(b"354 go ahead\r\n").await;
                            loop {
                                line.clear();
                                if s.read_line(&mut line).await.unwrap_or(0) == 0 {
                                    return (false, s.into_inner());
                                }
                                if line.trim_end() == "." {
                                    break;
                                }
                                sess.data.push_str(&line);
                            }
                            "250 queued\r\n".into()
                        } else if up == "QUIT" {
                            let _ = s.get_mut().write_all(b"221 bye\r\n").await;
                            return (false, s.into_inner());
                        } else {
                            "250 ok\r\n".into()
                        };
                        let _ = s.get_mut().write_all(reply.as_bytes()).await;
                    }
                }
                let mut sess = Session::default();
                if implicit {
                    if let Ok(t) = acc.accept(tcp).await {
                        sess.tls = true;
                        talk(t, &mut sess, false, true).await;
                    }
                } else {
                    let (upgrade, tcp) = talk(tcp, &mut sess, starttls, true).await;
                    if upgrade {
                        if let Ok(t) = acc.accept(tcp).await {
                            sess.tls = true;
                            talk(t, &mut sess, false, false).await;
                        }
                    }
                }
                g.lock().unwrap().push(sess);
            });
        }
    });
    (port, got)
}

/// An SMTP channel to the test's server at `host:port`.
fn smtp(host: &str, port: u16, sec: &SmtpSecurity) -> SmtpChannel {
    SmtpChannel::with_security(
        host,
        port,
        "Rollcall <noreply@acme.example>",
        Duration::from_secs(5),
        sec,
    )
    .unwrap()
}

fn email(key: &str) -> Outgoing {
    Outgoing {
        channel: "email".into(),
        ..notice(key, "mum@example.com")
    }
}

#[tokio::test]
async fn email_goes_over_starttls_with_authentication() {
    let (port, got) = smtp_server(true, false).await;
    let sec = SmtpSecurity {
        tls: Some(SmtpTls::StartTls),
        credentials: Some(("office".into(), "relay-password".into())),
        extra_ca_pem: Some(ca_pem()),
    };
    let ch = smtp("127.0.0.1", port, &sec);
    ch.send(&email("k-starttls")).await.unwrap();
    let sessions = got.lock().unwrap().clone();
    let s = sessions
        .iter()
        .find(|s| !s.rcpt.is_empty())
        .expect("a mail");
    assert!(s.tls, "the mail went over TLS: {s:?}");
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD
        .decode(s.auth.as_deref().expect("authenticated"))
        .unwrap();
    assert_eq!(auth, b"\0office\0relay-password");
    assert!(s.data.contains("Kit arrived"), "{}", s.data);
    assert_eq!(s.rcpt, vec!["<mum@example.com>".to_string()]);
}

#[tokio::test]
async fn email_goes_over_tls_from_the_first_byte() {
    let (port, got) = smtp_server(false, true).await;
    let sec = SmtpSecurity {
        tls: Some(SmtpTls::Tls),
        credentials: None,
        extra_ca_pem: Some(ca_pem()),
    };
    let ch = smtp("localhost", port, &sec);
    ch.send(&email("k-implicit")).await.unwrap();
    let sessions = got.lock().unwrap().clone();
    assert!(
        sessions.iter().any(|s| s.tls && !s.rcpt.is_empty()),
        "{sessions:?}"
    );
}

#[tokio::test]
async fn email_is_never_sent_in_plain_text_when_starttls_is_required() {
    // a relay that does not offer STARTTLS (or a man in the middle that strips it)
    let (port, got) = smtp_server(false, false).await;
    let sec = SmtpSecurity {
        tls: Some(SmtpTls::StartTls),
        credentials: Some(("office".into(), "relay-password".into())),
        extra_ca_pem: Some(ca_pem()),
    };
    let ch = smtp("127.0.0.1", port, &sec);
    assert!(ch.send(&email("k-stripped")).await.is_err());
    tokio::time::sleep(Duration::from_millis(100)).await;
    for s in got.lock().unwrap().iter() {
        assert!(
            s.rcpt.is_empty() && s.auth.is_none(),
            "sent in plain text: {s:?}"
        );
    }
    // and a relay whose certificate is from an unknown CA gets nothing either
    let (port, got) = smtp_server(true, false).await;
    let ch = smtp(
        "127.0.0.1",
        port,
        &SmtpSecurity {
            extra_ca_pem: None,
            ..sec
        },
    );
    assert!(ch.send(&email("k-unknown-ca")).await.is_err());
    tokio::time::sleep(Duration::from_millis(100)).await;
    for s in got.lock().unwrap().iter() {
        assert!(s.rcpt.is_empty() && s.auth.is_none(), "{s:?}");
    }
}
