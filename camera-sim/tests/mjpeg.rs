//! The MJPEG server serves valid multipart JPEG parts and stops cleanly.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::test_renderer;
use rollcall_camera_sim::{MjpegServer, ServeOptions, TruthFace, BOUNDARY};

fn get(addr: std::net::SocketAddr, path: &str) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    BufReader::new(s)
}

/// Reads header lines up to the blank line.
fn headers(r: &mut BufReader<TcpStream>) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            return out;
        }
        out.push(line);
    }
}

fn header<'a>(h: &'a [String], name: &str) -> Option<&'a str> {
    h.iter().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn serves_multipart_jpeg_parts_and_stops_cleanly() {
    let r = test_renderer(7);
    let first_times = r.frame_times("lobby", Default::default()).unwrap();
    let server = MjpegServer::start(
        r.clone(),
        "127.0.0.1:0",
        ServeOptions {
            realtime: false,
            loop_forever: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(server.urls().len(), 1);
    assert!(server.url("lobby").ends_with("/camera/lobby.mjpg"));

    let mut c = get(server.local_addr(), "/camera/lobby.mjpg");
    let status = headers(&mut c);
    assert!(status[0].starts_with("HTTP/1.1 200"), "{status:?}");
    let ctype = header(&status, "Content-Type").unwrap();
    assert_eq!(
        ctype,
        format!("multipart/x-mixed-replace; boundary={BOUNDARY}")
    );

    for (k, want_ts) in first_times.iter().take(2).enumerate() {
        let mut line = String::new();
        c.read_line(&mut line).unwrap();
        assert_eq!(line, format!("--{BOUNDARY}\r\n"));
        let h = headers(&mut c);
        assert_eq!(header(&h, "Content-Type"), Some("image/jpeg"));
        let len: usize = header(&h, "Content-Length").unwrap().parse().unwrap();
        let ts: i64 = header(&h, "X-Timestamp-Ms").unwrap().parse().unwrap();
        assert_eq!(ts, *want_ts);
        let idx: usize = header(&h, "X-Frame-Index").unwrap().parse().unwrap();
        assert_eq!(idx, k);
        let truth: Vec<TruthFace> =
            serde_json::from_str(header(&h, "X-Rollcall-Truth").unwrap()).unwrap();
        let (_, want) = r.render_frame("lobby", ts).unwrap();
        assert_eq!(truth, want);
        let mut body = vec![0u8; len];
        c.read_exact(&mut body).unwrap();
        let mut crlf = [0u8; 2];
        c.read_exact(&mut crlf).unwrap();
        assert_eq!(&crlf, b"\r\n");
        let img = image::load_from_memory_with_format(&body, image::ImageFormat::Jpeg).unwrap();
        assert_eq!((img.width(), img.height()), (640, 360));
    }

    // Unknown camera: 404. Index and truth are served.
    let mut nf = get(server.local_addr(), "/camera/nope.mjpg");
    assert!(headers(&mut nf)[0].starts_with("HTTP/1.1 404"));
    let mut idx = get(server.local_addr(), "/");
    let h = headers(&mut idx);
    let mut body = String::new();
    idx.read_to_string(&mut body).unwrap();
    assert!(h[0].starts_with("HTTP/1.1 200"));
    assert!(body.contains("/camera/lobby.mjpg"));
    let mut tj = get(server.local_addr(), "/truth.json");
    let _ = headers(&mut tj);
    let mut body = String::new();
    tj.read_to_string(&mut body).unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["arrivals"].as_array().unwrap().len(), 5);

    // Stopping ends the open (looping) stream and joins every thread promptly.
    let started = Instant::now();
    server.stop();
    assert!(started.elapsed() < Duration::from_secs(5));
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest); // EOF (or reset), not a hang
}

#[test]
fn realtime_paces_frames_at_the_camera_fps() {
    let r = test_renderer(7);
    let server = MjpegServer::start(r, "127.0.0.1:0", ServeOptions::default()).unwrap();
    let mut c = get(server.local_addr(), "/camera/lobby.mjpg");
    let _ = headers(&mut c);
    let started = Instant::now();
    for _ in 0..4 {
        let mut line = String::new();
        c.read_line(&mut line).unwrap();
        assert_eq!(line, format!("--{BOUNDARY}\r\n"));
        let h = headers(&mut c);
        let len: usize = header(&h, "Content-Length").unwrap().parse().unwrap();
        let mut body = vec![0u8; len + 2];
        c.read_exact(&mut body).unwrap();
    }
    // 4 frames at 5 fps: the 4th is due 0.6 s after the first.
    assert!(
        started.elapsed() >= Duration::from_millis(550),
        "{:?}",
        started.elapsed()
    );
    drop(server);
}
