//! Hostile input, fuzzed (issue 19): property-based mutation fuzzing of the parsers that take
//! input from outside (see `tests/common/fuzzkit.rs` for how inputs are made and counted):
//!
//! - `image`: photo decoding (`rollcall_vision::decode::decode_bytes`: JPEG, PNG, WebP, and the
//!   HEIC/AVIF sniffing) from small real files and headers that claim huge sizes: never a panic;
//!   a decoded frame is within the limits and its buffer matches its size.
//! - `scenario`: camera-sim scenario TOML (`Scenario::from_toml`): never a panic.
//! - `csv`: the ledger's CSV importers, each kind, on a SQLite school: never a panic; an import
//!   is all or nothing (a refused file leaves the counts as they were).
//! - `webhook`: the reference webhook receiver's request reader (`services/cli/src/receiver/
//!   wire.rs`, compiled here through `rollcall_testkit::net`) and signature check on raw bytes
//!   over a socket: never a panic or a hang, and no mutated request verifies.
//!
//! The API's JSON bodies are fuzzed in `services/api/tests/api.rs`
//! (`api_json_bodies_fuzzed_never_fail_the_server`), serve's config file in
//! `services/cli/src/cmd_serve.rs` (`fuzz_serve_config`).

#[path = "common/fuzzkit.rs"]
mod fuzzkit;

use rollcall_vision::decode::{decode_bytes, DecodeLimits};
use std::time::Duration;

#[test]
fn fuzz_image() {
    let limits = DecodeLimits::default();
    let (mut decoded, mut refused) = (0u32, 0u32);
    fuzzkit::run("image", 10000, |b| match decode_bytes(b, &limits) {
        Ok(f) => {
            decoded += 1;
            let (w, h) = (f.width() as u64, f.height() as u64);
            if w * h > limits.max_pixels || w.max(h) > limits.max_side as u64 {
                return Err(format!("decoded {w}x{h}, past the limits"));
            }
            if f.rgb().len() as u64 != w * h * 3 {
                return Err(format!("{w}x{h} frame with {} bytes", f.rgb().len()));
            }
            Ok(())
        }
        Err(_) => {
            refused += 1;
            Ok(())
        }
    });
    // the mutations reach the decoders, not only the signature checks
    eprintln!("fuzz image: {decoded} decoded, {refused} refused");
    assert!(decoded > 100 && refused > 100, "{decoded} {refused}");
}

#[test]
fn fuzz_scenario() {
    let base = fuzzkit::at_root("camera-sim/scenarios");
    let mut parsed = 0u32;
    fuzzkit::run("scenario", 5000, |b| {
        if rollcall_camera_sim::Scenario::from_toml(&String::from_utf8_lossy(b), &base).is_ok() {
            parsed += 1;
        }
        Ok(())
    });
    eprintln!("fuzz scenario: {parsed} inputs parsed and validated");
}

#[test]
fn fuzz_csv() {
    use rollcall_ledger::{ImportKind, Store};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = rt.block_on(async {
        let root = Store::open_data_dir(dir.path()).await.unwrap();
        root.create_school("fuzz", "Fuzz", 480, &Default::default())
            .await
            .unwrap()
    });
    let kinds = [
        ImportKind::Campuses,
        ImportKind::Students,
        ImportKind::Guardians,
        ImportKind::Classes,
        ImportKind::Timetable,
        ImportKind::Packages,
        ImportKind::Enrollments,
    ];
    let mut accepted = 0u32;
    let mut refused = 0u32;
    fuzzkit::run("csv", 2000, |b| {
        // the kind follows from the input, so every kind sees every shape of file
        let kind = kinds[b.iter().map(|x| *x as usize).sum::<usize>() % kinds.len()];
        rt.block_on(async {
            let before = store.students().await.map_err(|e| e.to_string())?.len();
            match store.import_csv(kind, b).await {
                Ok(_) => accepted += 1,
                Err(_) => {
                    refused += 1;
                    let after = store.students().await.map_err(|e| e.to_string())?.len();
                    if after != before {
                        return Err(format!(
                            "a refused {kind:?} import changed the students ({before} -> {after})"
                        ));
                    }
                }
            }
            Ok(())
        })
    });
    eprintln!("fuzz csv: {accepted} imports accepted, {refused} refused");
    assert!(accepted > 0 && refused > 0, "{accepted} {refused}");
}

#[test]
fn fuzz_webhook() {
    use tokio::io::AsyncWriteExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let secret = b"fuzz-webhook-secret-0123456789";
    let now = chrono::Utc::now().timestamp();
    let mut verified = 0u32;
    fuzzkit::run("webhook", 3000, |b| {
        rt.block_on(async {
            let mut client = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| e.to_string())?;
            let (mut server, _) = listener.accept().await.map_err(|e| e.to_string())?;
            let _ = client.write_all(b).await;
            let _ = client.shutdown().await;
            let parsed = tokio::time::timeout(
                Duration::from_secs(5),
                rollcall_testkit::net::read_request(&mut server),
            )
            .await
            .map_err(|_| "the receiver hung on this request".to_string())?;
            if let Ok(Some((headers, body))) = parsed {
                let sig = headers
                    .get("x-rollcall-signature")
                    .cloned()
                    .unwrap_or_default();
                let key = headers.get("idempotency-key").cloned().unwrap_or_default();
                if rollcall_notify::verify(secret, &sig, &key, &body, now, 300).is_ok() {
                    verified += 1;
                }
            }
            Ok::<(), String>(())
        })
    });
    // the corpus requests are signed with another secret: nothing verifies
    assert_eq!(verified, 0);
}

/// The MJPEG reader (OpenCV's FFmpeg `mpjpeg` demuxer behind `rollcall_capture`'s HTTP source):
/// a camera of the test's own answers each connection with the input as its whole HTTP
/// response (status line, headers, `multipart/x-mixed-replace` parts with JPEG frames). Opening
/// and reading up to five frames ends with frames or an error, never a panic, a crash of the
/// process or a hang.
#[test]
fn fuzz_mjpeg() {
    use rollcall_capture::{FrameSource, OpenCvSource, SourceSpec};
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    let current: Arc<Mutex<Vec<u8>>> = Arc::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let serving = current.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let body = serving.lock().unwrap().clone();
            let mut s = s;
            let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
            // read (and drop) the request head, then answer with the input
            let mut buf = [0u8; 2048];
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            let _ = std::io::Read::read(&mut s, &mut buf);
            let _ = s.write_all(&body);
        }
    });
    let url = format!("http://127.0.0.1:{port}/camera.mjpg");
    let mut frames = 0u32;
    fuzzkit::run("mjpeg", 2000, |b| {
        *current.lock().unwrap() = b.to_vec();
        let mut src = OpenCvSource::new(
            SourceSpec::Http(url.clone()),
            Duration::from_secs(3),
            Duration::from_secs(3),
        );
        let t0 = std::time::Instant::now();
        if src.open().is_ok() {
            for _ in 0..5 {
                match src.read() {
                    Ok(Some(f)) => {
                        frames += 1;
                        let (w, h) = (f.frame.width() as usize, f.frame.height() as usize);
                        if f.frame.rgb().len() != w * h * 3 {
                            return Err(format!(
                                "{w}x{h} frame with {} bytes",
                                f.frame.rgb().len()
                            ));
                        }
                    }
                    _ => break,
                }
            }
        }
        src.close();
        if t0.elapsed() > Duration::from_secs(30) {
            return Err(format!("took {:?}", t0.elapsed()));
        }
        Ok(())
    });
    eprintln!("fuzz mjpeg: {frames} frames read in all");
    assert!(frames > 0, "the corpus streams give frames");
}
