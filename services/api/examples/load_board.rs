//! Load test of the attendance board endpoint while a simulated check-in stream runs.
//!
//! `cargo run --release -p rollcall-api --example load_board -- [SECONDS] [CONNECTIONS] [CHECKINS_PER_S]`
//!
//! A fresh SQLite ledger (temporary directory) with 2 campuses, 20 lessons today and 400
//! students; a bearer token for a front-desk account; `CONNECTIONS` keep-alive HTTP/1.1
//! clients request `GET /api/v1/attendance/board` back to back for `SECONDS` while a task
//! checks students in at `CHECKINS_PER_S` through the ledger (the write path the cameras use).
//! Prints one JSON line: requests/s, p50/p99/max latency in ms, errors, check-ins committed.

use chrono::{Duration, Utc};
use rollcall_api::{ApiConfig, AppState, NoOps};
use rollcall_domain::ledger::{AttendanceSource, ClassPolicy, SchoolPolicy};
use rollcall_ledger::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let conns: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(32);
    let rate: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(20);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_data_dir(dir.path()).await.expect("open");
    let s = store
        .create_school("acme", "Acme", 0, &SchoolPolicy::default())
        .await
        .expect("school");
    s.create_campus("north", "North").await.unwrap();
    s.create_campus("south", "South").await.unwrap();
    let now = Utc::now();
    let mut students = Vec::new();
    for k in 0..20 {
        let campus = if k % 2 == 0 { "north" } else { "south" };
        let class = format!("c{k}");
        s.create_class(&NewClass {
            id: class.clone(),
            course: "course".into(),
            name: format!("Class {k}"),
            campus_id: campus.into(),
            teacher: "t".into(),
            policy: ClassPolicy::default(),
            capacity: None,
            room_id: None,
            kind: Default::default(),
        })
        .await
        .unwrap();
        s.add_lesson(&NewLesson {
            id: format!("{class}-today"),
            class_id: class.clone(),
            room_id: None,
            teacher: None,
            start: now - Duration::minutes(5),
            end: now + Duration::minutes(85),
        })
        .await
        .unwrap();
        for j in 0..20 {
            let id = format!("s{k}-{j}");
            s.create_student(&NewStudent {
                id: id.clone(),
                name: format!("Student {k}-{j}"),
                home_campus_id: Some(campus.into()),
            })
            .await
            .unwrap();
            s.enroll(&class, &id, now - Duration::days(1))
                .await
                .unwrap();
            s.purchase(&NewPackage {
                id: format!("p-{id}"),
                student_id: id.clone(),
                campus_id: None,
                lessons: 20,
                unit_price_cents: 1000,
                price_paid_cents: None,
                bought_at: now - Duration::days(1),
                expires_at: now + Duration::days(90),
            })
            .await
            .unwrap();
            students.push(id);
        }
    }
    let hash = rollcall_api::hash_password("load test password").unwrap();
    s.create_staff(
        &NewStaff {
            username: "desk".into(),
            display_name: "desk".into(),
            role: Role::FrontDesk,
            campuses: CampusScope::All,
        },
        &hash,
    )
    .await
    .unwrap();
    let token = rollcall_api::auth::new_token("rc_");
    s.create_api_token(
        "desk",
        "load",
        "load",
        &rollcall_api::auth::token_hash(&token),
    )
    .await
    .unwrap();
    let app = rollcall_api::router(AppState::new(
        s.clone(),
        ApiConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        },
        Arc::new(NoOps),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await;
    });

    let stop = Arc::new(AtomicBool::new(false));
    // the simulated stream: check-ins at `rate` per second
    let committed = Arc::new(AtomicU64::new(0));
    let stream = {
        let (s, stop, committed) = (s.clone(), stop.clone(), committed.clone());
        tokio::spawn(async move {
            let mut t =
                tokio::time::interval(std::time::Duration::from_micros(1_000_000 / rate.max(1)));
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                t.tick().await;
                let mut ci = CheckIn::new(
                    &students[i % students.len()],
                    Utc::now(),
                    AttendanceSource::Face,
                );
                ci.event_key = Some(format!("load:{i}"));
                if s.check_in(&ci).await.is_ok() {
                    committed.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        })
    };

    let req = format!(
        "GET /api/v1/attendance/board HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\r\n"
    );
    let errors = Arc::new(AtomicU64::new(0));
    let started = std::time::Instant::now();
    let deadline = started + std::time::Duration::from_secs(secs);
    let mut clients = Vec::new();
    for _ in 0..conns {
        let (req, errors) = (req.clone(), errors.clone());
        clients.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let sock = tokio::net::TcpStream::connect(addr).await.unwrap();
            sock.set_nodelay(true).unwrap();
            let mut sock = BufReader::new(sock);
            let mut line = String::new();
            while std::time::Instant::now() < deadline {
                let t0 = std::time::Instant::now();
                sock.get_mut().write_all(req.as_bytes()).await.unwrap();
                // status line, headers, body (content-length)
                line.clear();
                sock.read_line(&mut line).await.unwrap();
                let ok = line.split_whitespace().nth(1) == Some("200");
                let mut len = 0usize;
                loop {
                    line.clear();
                    sock.read_line(&mut line).await.unwrap();
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; len];
                sock.read_exact(&mut body).await.unwrap();
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                lat.push(t0.elapsed().as_secs_f64() * 1e3);
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for c in clients {
        all.extend(c.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = stream.await;
    all.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "{}",
        serde_json::json!({
            "endpoint": "GET /api/v1/attendance/board",
            "lessons": 20, "students": 400, "connections": conns, "seconds": elapsed,
            "requests": all.len(), "requests_per_s": all.len() as f64 / elapsed,
            "p50_ms": q(0.5), "p99_ms": q(0.99), "max_ms": all.last().copied().unwrap_or(0.0),
            "errors": errors.load(Ordering::Relaxed),
            "check_ins_committed": committed.load(Ordering::Relaxed),
            "check_in_rate_target_per_s": rate,
        })
    );
}
