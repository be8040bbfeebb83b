//! The receiver's HTTP/1.1 wire: one request read, one empty response written. (The dev-only
//! `rollcall-testkit` compiles this file too, for the fake endpoints of the tests.)

use std::collections::HashMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A parsed HTTP/1.1 request: header map (lower-case names) and body.
pub async fn read_request(
    s: &mut TcpStream,
) -> std::io::Result<Option<(HashMap<String, String>, Vec<u8>)>> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 64 * 1024 {
            return Ok(None);
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut headers = HashMap::new();
    for line in head.lines().skip(1) {
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = match headers.get("content-length").map(|v| v.parse()) {
        Some(Ok(n)) if n <= 1 << 20 => n,
        _ => return Ok(None),
    };
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(len);
    Ok(Some((headers, body)))
}

/// Writes a minimal response.
pub async fn respond(s: &mut TcpStream, code: u16) -> std::io::Result<()> {
    let msg = format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    s.write_all(msg.as_bytes()).await?;
    s.shutdown().await
}
