//! A reference webhook receiver: verifies `X-Rollcall-Signature` (over the timestamp, the
//! `Idempotency-Key` and the body), keeps one notice per
//! `Idempotency-Key` and answers 200 (401 on a bad signature, 400 on a malformed request). It is
//! what a gateway must do, what `rollcall notify receiver` runs and what `rollcall notify bench`
//! delivers to.

use chrono::{DateTime, Utc};
use rollcall_domain::clock::{Clock, SystemClock};
use rollcall_notify::verify;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

mod wire;
pub use wire::{read_request, respond};

/// One received notice.
#[derive(Debug, Clone)]
pub struct Received {
    pub body: Value,
    pub received_at: DateTime<Utc>,
    /// Times this key was delivered (1 = never re-delivered).
    pub deliveries: u32,
}

#[derive(Default)]
struct State {
    by_key: HashMap<String, Received>,
    raw: u64,
    refused: u64,
}

/// A running receiver (stops when dropped).
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Listens on `127.0.0.1:0`.
    pub async fn start(secret: &[u8], tolerance_s: i64) -> std::io::Result<Receiver> {
        Self::start_journaled(secret, tolerance_s, "127.0.0.1:0", None).await
    }

    /// Listens on `listen`; with a journal, every accepted delivery is also appended to it as
    /// one JSON line `{"key", "at"}` (written before the 200 goes out), so another process
    /// can count deliveries per key, whatever happens to this one afterwards.
    pub async fn start_journaled(
        secret: &[u8],
        tolerance_s: i64,
        listen: &str,
        journal: Option<std::path::PathBuf>,
    ) -> std::io::Result<Receiver> {
        let journal = match journal {
            Some(p) => Some(Arc::new(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            ))),
            None => None,
        };
        let l = TcpListener::bind(listen).await?;
        let addr = l.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let (st, secret) = (state.clone(), secret.to_vec());
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let (st, secret, journal) = (st.clone(), secret.clone(), journal.clone());
                tokio::spawn(async move {
                    let Ok(Some((h, body))) = read_request(&mut s).await else {
                        let _ = respond(&mut s, 400).await;
                        return;
                    };
                    let now = SystemClock.now();
                    let sig = h.get("x-rollcall-signature").cloned().unwrap_or_default();
                    let key = h.get("idempotency-key").cloned().unwrap_or_default();
                    let ok =
                        verify(&secret, &sig, &key, &body, now.timestamp(), tolerance_s).is_ok();
                    let code = {
                        let Ok(mut g) = st.lock() else { return };
                        let journaled = match (&journal, ok) {
                            (Some(j), true) => {
                                use std::io::Write;
                                let line = serde_json::json!({"key": key, "at": now});
                                j.lock()
                                    .map(|mut f| writeln!(f, "{line}").and_then(|_| f.flush()))
                                    .is_ok_and(|r| r.is_ok())
                            }
                            _ => true,
                        };
                        if !journaled {
                            503
                        } else if ok {
                            g.raw += 1;
                            g.by_key
                                .entry(key)
                                .and_modify(|r| r.deliveries += 1)
                                .or_insert_with(|| Received {
                                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                                    received_at: now,
                                    deliveries: 1,
                                });
                            200
                        } else {
                            g.refused += 1;
                            401
                        }
                    };
                    let _ = respond(&mut s, code).await;
                });
            }
        });
        Ok(Receiver { addr, state, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// One entry per key.
    pub fn received(&self) -> Vec<Received> {
        self.state
            .lock()
            .map(|g| g.by_key.values().cloned().collect())
            .unwrap_or_default()
    }

    /// `(accepted requests, distinct keys, refused requests)`.
    pub fn counts(&self) -> (u64, usize, u64) {
        self.state
            .lock()
            .map(|g| (g.raw, g.by_key.len(), g.refused))
            .unwrap_or((0, 0, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall_notify::sign;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    const SECRET: &[u8] = b"0123456789abcdef-secret";

    async fn post(addr: SocketAddr, key: &str, sig: &str, body: &[u8]) -> u16 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nIdempotency-Key: {key}\r\nX-Rollcall-Signature: {sig}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(body).await.unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out)
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    /// A captured delivery replayed under a new `Idempotency-Key` (to get a second SMS sent)
    /// is refused: the key is under the signature.
    #[tokio::test]
    async fn a_replay_under_a_new_idempotency_key_is_refused() {
        let r = Receiver::start(SECRET, 300).await.unwrap();
        let body = br#"{"delivery_key":"arrival:s1:M0/guardian:g1/sms","text":"arrived"}"#;
        let key = "arrival:s1:M0/guardian:g1/sms";
        let sig = sign(SECRET, SystemClock.now().timestamp(), key, body);
        assert_eq!(post(r.addr, key, &sig, body).await, 200);
        // the same delivery again: accepted, deduplicated
        assert_eq!(post(r.addr, key, &sig, body).await, 200);
        // captured and replayed with another key
        assert_eq!(post(r.addr, "replay-1", &sig, body).await, 401);
        assert_eq!(r.counts(), (2, 1, 1));
        assert_eq!(r.received()[0].deliveries, 2);
    }
}
