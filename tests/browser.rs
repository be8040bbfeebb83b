//! The staff web app in a real browser: headless Chromium driven by chromedriver over the W3C
//! WebDriver protocol (plain HTTP + JSON). `rollcall serve` runs on a fresh SQLite data
//! directory seeded like the API tests (a lesson under way, a pending review item); the test
//! logs in through the login form, approves the item in the review queue, sees the student
//! checked in on today's attendance board, and keeps a screenshot of the board under
//! `$CARGO_TARGET_DIR/test-artifacts/` (else `target/test-artifacts/`). A second test walks the
//! front desk's day (issue 21): register a child, sell a discounted package, check in by card,
//! correct the attendance, approve a leave and book its make-up, ask for a refund that a manager
//! approves, and read the finance report against a hand computation (screenshot kept too).
//!
//! Needs `chromium` and `chromium-driver` (`WITH_BROWSER=1 bash scripts/setup.sh` installs
//! them; `ROLLCALL_CHROMIUM` / `ROLLCALL_CHROMEDRIVER` override the paths). Without them the
//! test fails, unless `ROLLCALL_SKIP_BROWSER=1`.

use chrono::{Duration, Utc};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rollcall_domain::ledger::{ClassPolicy, SchoolPolicy};
use rollcall_ledger::{
    CampusScope, NewClass, NewLesson, NewPackage, NewReviewItem, NewStaff, NewStudent,
    ReviewCandidate, Role, Store,
};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

const PASSWORD: &str = "correct horse battery";
/// The W3C WebDriver element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One HTTP/1.1 request with a JSON body (hyper's client on a fresh connection); (status,
/// body as JSON, or the text as a JSON string when it is not JSON).
async fn request(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("connect 127.0.0.1:{port}: {e}"));
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("HTTP handshake");
    tokio::spawn(conn);
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", format!("127.0.0.1:{port}"))
        .header("content-type", "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(bytes)))
        .expect("request");
    let resp = sender.send_request(req).await.expect("HTTP request");
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("response body")
        .to_bytes();
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    (status, v)
}

/// A blocking WebDriver client for one session.
struct Driver {
    rt: tokio::runtime::Runtime,
    port: u16,
    session: Option<String>,
}

impl Driver {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let full = match &self.session {
            Some(s) => format!("/session/{s}{path}"),
            None => path.to_string(),
        };
        let (status, v) = self
            .rt
            .block_on(request(self.port, method, &full, body.as_ref()));
        assert_eq!(status, 200, "WebDriver {method} {full}: {v}");
        v["value"].clone()
    }
    fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }
    fn current_url(&self) -> String {
        self.call("GET", "/url", None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }
    /// The first element matching a CSS selector (the protocol's "no such element" fails).
    fn find(&self, css: &str) -> String {
        let v = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css:?}: {v}"))
            .to_string()
    }
    fn count(&self, css: &str) -> usize {
        self.call(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )
        .as_array()
        .map_or(0, Vec::len)
    }
    fn type_into(&self, el: &str, text: &str) {
        self.call(
            "POST",
            &format!("/element/{el}/value"),
            Some(json!({ "text": text })),
        );
    }
    fn click(&self, el: &str) {
        self.call("POST", &format!("/element/{el}/click"), Some(json!({})));
    }
    fn attribute(&self, el: &str, name: &str) -> Option<String> {
        self.call("GET", &format!("/element/{el}/attribute/{name}"), None)
            .as_str()
            .map(str::to_string)
    }
    fn text(&self, el: &str) -> String {
        self.call("GET", &format!("/element/{el}/text"), None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }
    /// Waits (up to 10 s) until `f` holds, e.g. for a form post's redirect to load.
    fn wait_for(&self, what: &str, f: impl Fn(&Driver) -> bool) {
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while !f(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} (at {})",
                self.current_url()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    /// Empties a form field, then types `text` into it.
    fn fill(&self, css: &str, text: &str) {
        let el = self.find(css);
        self.call("POST", &format!("/element/{el}/clear"), Some(json!({})));
        self.type_into(&el, text);
    }
    /// Runs an asynchronous script in the page (its last argument is the callback); what it
    /// passed to the callback.
    fn execute_async(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/async",
            Some(json!({ "script": script, "args": args })),
        )
    }
    /// The visible text of the page (for failure messages).
    fn page_text(&self) -> String {
        self.text(&self.find("body"))
    }
    /// Waits until the URL contains `part`; on timeout, fails with the page's text.
    fn wait_url(&self, part: &str) {
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while !self.current_url().contains(part) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for a URL with {part:?} (at {}): {}",
                self.current_url(),
                self.page_text()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    /// Logs in through the login form; waits for the board.
    fn login(&self, base: &str, user: &str) {
        self.goto(&format!("{base}/app/login"));
        self.fill("#username", user);
        self.fill("#password", PASSWORD);
        self.click(&self.find("#login"));
        self.wait_for(&format!("the board after {user}'s login"), |d| {
            d.current_url() == format!("{base}/app")
        });
    }
    /// Logs out with the nav's button; waits for the login form.
    fn logout(&self) {
        self.click(&self.find("nav form[action='/app/logout'] button"));
        self.wait_url("/app/login");
    }
    fn screenshot_png(&self) -> Vec<u8> {
        use base64::Engine;
        let b64 = self.call("GET", "/screenshot", None);
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().expect("screenshot: base64 text"))
            .expect("screenshot: valid base64")
    }
}

/// Kills what the test started, whatever happens: the browser session (so that Chromium
/// exits), then chromedriver's process group (Chromium included, should it linger) and the
/// server.
struct Guard {
    driver: Option<Driver>,
    chromedriver: Option<Child>,
    server: Option<Child>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(d) = self.driver.as_mut() {
            if let Some(s) = d.session.take() {
                let _ = d.rt.block_on(async {
                    tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        request(d.port, "DELETE", &format!("/session/{s}"), None),
                    )
                    .await
                });
            }
        }
        if let Some(mut c) = self.chromedriver.take() {
            // spawned as the leader of its own process group
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", c.id())])
                .stderr(Stdio::null())
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}

fn artifacts_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("test-artifacts")
}

/// Campus north, class math with a lesson under way (started 5 minutes ago), student s1
/// enrolled with a 10-lesson package, a front-desk account, and a pending review item whose
/// top candidate is s1 (as the matcher would queue it). Returns the item's id.
async fn seed(dir: &Path) -> i64 {
    let store = Store::open_data_dir(dir).await.expect("open the data dir");
    let s = store
        .create_school("acme", "Acme", 0, &SchoolPolicy::default())
        .await
        .expect("school");
    s.create_campus("north", "North").await.unwrap();
    s.create_camera("cam-n", "north", "front").await.unwrap();
    let now = Utc::now();
    s.create_class(&NewClass {
        id: "math".into(),
        course: "math".into(),
        name: "Math".into(),
        campus_id: "north".into(),
        teacher: "t".into(),
        policy: ClassPolicy::default(),
        capacity: None,
        room_id: None,
        kind: Default::default(),
    })
    .await
    .unwrap();
    s.add_lesson(&NewLesson {
        id: "math-now".into(),
        class_id: "math".into(),
        room_id: None,
        teacher: None,
        start: now - Duration::minutes(5),
        end: now + Duration::minutes(55),
    })
    .await
    .unwrap();
    s.create_student(&NewStudent {
        id: "s1".into(),
        name: "Ada Lovelace".into(),
        home_campus_id: Some("north".into()),
    })
    .await
    .unwrap();
    s.enroll("math", "s1", now - Duration::days(1))
        .await
        .unwrap();
    s.purchase(&NewPackage {
        id: "p-s1".into(),
        student_id: "s1".into(),
        campus_id: None,
        lessons: 10,
        unit_price_cents: 1000,
        price_paid_cents: None,
        bought_at: now - Duration::days(1),
        expires_at: now + Duration::days(100),
    })
    .await
    .unwrap();
    let hash = rollcall_api::hash_password(PASSWORD).unwrap();
    s.create_staff(
        &NewStaff {
            username: "desk".into(),
            display_name: "Front desk".into(),
            role: Role::FrontDesk,
            campuses: CampusScope::All,
        },
        &hash,
    )
    .await
    .unwrap();
    let (item, created) = s
        .create_review_item(&NewReviewItem {
            campus_id: "north".into(),
            camera_id: Some("cam-n".into()),
            track_key: "face:cam-n:1:1".into(),
            seen_at: now - Duration::minutes(1),
            reason: "low_margin".into(),
            crop_path: None,
            candidates: vec![ReviewCandidate {
                student_id: "s1".into(),
                score: 0.61,
            }],
        })
        .await
        .unwrap();
    assert!(created);
    store.close().await;
    item
}

/// Chromium and chromedriver's paths; `None` (after saying so) when they are missing and
/// `ROLLCALL_SKIP_BROWSER=1`, a failure when they are missing otherwise.
fn browser_tools() -> Option<(String, String)> {
    let chromium =
        std::env::var("ROLLCALL_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let chromedriver =
        std::env::var("ROLLCALL_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let missing: Vec<&str> = [chromium.as_str(), chromedriver.as_str()]
        .into_iter()
        .filter(|p| !Path::new(p).is_file())
        .collect();
    if !missing.is_empty() {
        if std::env::var("ROLLCALL_SKIP_BROWSER").as_deref() == Ok("1") {
            println!(
                "SKIPPED: the browser test (ROLLCALL_SKIP_BROWSER=1; missing: {})",
                missing.join(", ")
            );
            return None;
        }
        panic!(
            "the browser test needs Chromium and chromedriver, missing: {}. Install them with \
             `WITH_BROWSER=1 bash scripts/setup.sh` (Debian packages chromium, chromium-driver), \
             point ROLLCALL_CHROMIUM / ROLLCALL_CHROMEDRIVER at them, or set \
             ROLLCALL_SKIP_BROWSER=1 to skip this test.",
            missing.join(", ")
        );
    }
    Some((chromium, chromedriver))
}

/// Starts `rollcall serve` on the seeded data dir `data` (config written under `tmp`),
/// chromedriver and a headless Chromium session; the guard (its driver set) and the server's
/// base URL.
fn launch(
    rt: tokio::runtime::Runtime,
    tmp: &Path,
    data: &Path,
    chromium: &str,
    chromedriver: &str,
) -> (Guard, String) {
    let mut guard = Guard {
        driver: None,
        chromedriver: None,
        server: None,
    };
    // the server
    let port = rollcall_testkit::http::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let cfg = tmp.join("rollcall.toml");
    std::fs::write(
        &cfg,
        format!(
            "data = \"{}\"\nlisten = \"127.0.0.1:{port}\"\n",
            data.display()
        ),
    )
    .unwrap();
    guard.server = Some(
        rollcall_testkit::rollcall!()
            .args(["serve", "--config", &cfg.display().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn rollcall serve"),
    );
    // chromedriver, in its own process group (the guard kills the group)
    let wd_port = rollcall_testkit::http::free_port();
    guard.chromedriver = Some({
        use std::os::unix::process::CommandExt;
        Command::new(chromedriver)
            .arg(format!("--port={wd_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {chromedriver}: {e}"))
    });
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let server_up = rt
            .block_on(async {
                tokio::time::timeout(
                    std::time::Duration::from_secs(2),
                    tokio::net::TcpStream::connect(("127.0.0.1", port)),
                )
                .await
            })
            .is_ok_and(|c| c.is_ok());
        let driver_up = server_up
            && rt
                .block_on(async {
                    match tokio::net::TcpStream::connect(("127.0.0.1", wd_port)).await {
                        Ok(_) => Some(request(wd_port, "GET", "/status", None).await),
                        Err(_) => None,
                    }
                })
                .is_some_and(|(st, v)| st == 200 && v["value"]["ready"] == true);
        if driver_up {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "serve (port {port}) or chromedriver (port {wd_port}) did not come up in 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let profile = tmp.join("chromium-profile");
    let mut d = Driver {
        rt,
        port: wd_port,
        session: None,
    };
    let s = d.call(
        "POST",
        "/session",
        Some(
            json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1024,768",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }}}}),
        ),
    );
    d.session = Some(
        s["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {s}"))
            .to_string(),
    );
    guard.driver = Some(d);
    (guard, base)
}

#[test]
fn staff_app_in_chromium_login_approve_review_board_updates() {
    let Some((chromium, chromedriver)) = browser_tools() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let item = rt.block_on(seed(&data));
    let (guard, base) = launch(rt, tmp.path(), &data, &chromium, &chromedriver);
    let d = guard.driver.as_ref().unwrap();

    // anonymous: the app sends the browser to the login form
    d.goto(&format!("{base}/app"));
    d.wait_for("the login page", |d| {
        d.current_url().ends_with("/app/login")
    });
    // a wrong password: back to the form with the error
    d.type_into(&d.find("#username"), "desk");
    d.type_into(&d.find("#password"), "not the password");
    d.click(&d.find("#login"));
    d.wait_for("the login error", |d| d.current_url().contains("error=1"));
    assert!(d
        .text(&d.find("p.err"))
        .contains("Wrong username or password"));
    // the right one: today's attendance board, s1 not checked in yet
    d.type_into(&d.find("#username"), "desk");
    d.type_into(&d.find("#password"), PASSWORD);
    d.click(&d.find("#login"));
    d.wait_for("the board after login", |d| {
        d.current_url() == format!("{base}/app")
    });
    let chip = d.find("[data-lesson='math-now'] [data-student='s1']");
    assert_eq!(
        d.attribute(&chip, "data-status").as_deref(),
        Some("not_yet")
    );

    // the review queue: the item with its candidate; one click approves it
    d.click(&d.find("nav a[href='/app/review']"));
    d.wait_for("the review queue", |d| {
        d.current_url().ends_with("/app/review")
    });
    let card = format!("#review-{item}");
    assert_eq!(d.count(&card), 1, "item {item} is in the queue");
    assert!(d.text(&d.find(&card)).contains("s1"));
    d.click(&d.find(&format!("{card} button.approve")));
    d.wait_for("the emptied queue", |d| d.count("#empty") == 1);
    assert_eq!(d.count(&card), 0);

    // the attendance board now shows s1 checked in (from review)
    d.click(&d.find("nav a[href='/app']"));
    d.wait_for("the board", |d| d.current_url() == format!("{base}/app"));
    let chip = d.find("[data-lesson='math-now'] [data-student='s1']");
    let status = d.attribute(&chip, "data-status").unwrap_or_default();
    assert!(
        status == "late" || status == "present",
        "s1 on the board after approval: {status:?}"
    );
    assert!(d.text(&chip).contains("Ada Lovelace"));

    // the screenshot of the board, kept as a test artefact
    let png = d.screenshot_png();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000,
        "a PNG screenshot"
    );
    let dir = artifacts_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("browser-attendance-board.png");
    std::fs::write(&path, &png).unwrap();
    println!("screenshot: {}", path.display());
    drop(guard);
}

/// Campus north, class piano with a lesson under way (started 5 minutes ago) and nobody in it,
/// a front-desk account (desk) and a manager (boss).
async fn seed_front_desk_day(dir: &Path) {
    let store = Store::open_data_dir(dir).await.expect("open the data dir");
    let s = store
        .create_school("acme", "Acme", 0, &SchoolPolicy::default())
        .await
        .expect("school");
    s.create_campus("north", "North").await.unwrap();
    let now = Utc::now();
    s.create_class(&NewClass {
        id: "piano".into(),
        course: "piano".into(),
        name: "Piano".into(),
        campus_id: "north".into(),
        teacher: "t".into(),
        policy: ClassPolicy::default(),
        capacity: None,
        room_id: None,
        kind: Default::default(),
    })
    .await
    .unwrap();
    s.add_lesson(&NewLesson {
        id: "piano-now".into(),
        class_id: "piano".into(),
        room_id: None,
        teacher: None,
        start: now - Duration::minutes(5),
        end: now + Duration::minutes(55),
    })
    .await
    .unwrap();
    // piano's next lesson (tomorrow), and another piano class with a lesson to make it up in
    s.add_lesson(&NewLesson {
        id: "piano-next".into(),
        class_id: "piano".into(),
        room_id: None,
        teacher: None,
        start: now + Duration::days(1),
        end: now + Duration::days(1) + Duration::hours(1),
    })
    .await
    .unwrap();
    s.create_class(&NewClass {
        id: "piano-b".into(),
        course: "piano".into(),
        name: "Piano B".into(),
        campus_id: "north".into(),
        teacher: "t".into(),
        policy: ClassPolicy::default(),
        capacity: None,
        room_id: None,
        kind: Default::default(),
    })
    .await
    .unwrap();
    s.add_lesson(&NewLesson {
        id: "piano-b-later".into(),
        class_id: "piano-b".into(),
        room_id: None,
        teacher: None,
        start: now + Duration::days(2),
        end: now + Duration::days(2) + Duration::hours(1),
    })
    .await
    .unwrap();
    let hash = rollcall_api::hash_password(PASSWORD).unwrap();
    for (username, display_name, role) in [
        ("desk", "Front desk", Role::FrontDesk),
        ("boss", "Manager", Role::Manager),
    ] {
        s.create_staff(
            &NewStaff {
                username: username.into(),
                display_name: display_name.into(),
                role,
                campuses: CampusScope::All,
            },
            &hash,
        )
        .await
        .unwrap();
    }
    store.close().await;
}

/// Cents as the pages write money ("2430.00").
fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// The text of the element `css`, trimmed.
fn text_of(d: &Driver, css: &str) -> String {
    d.text(&d.find(css)).trim().to_string()
}

/// The front desk's day (issue 21): register a child with a guardian and consent, sell a
/// discounted package paid by WeChat Pay, (a manager enrolls the child in the class under way),
/// check the child in by card, correct that attendance to excused, approve a leave and book its
/// make-up, ask for a refund, approve it
/// as a manager (a second person), and read the finance report against a hand computation.
#[test]
fn front_desk_day_register_sell_checkin_correct_refund_finance() {
    let Some((chromium, chromedriver)) = browser_tools() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(seed_front_desk_day(&data));
    let (guard, base) = launch(rt, tmp.path(), &data, &chromium, &chromedriver);
    let d = guard.driver.as_ref().unwrap();
    let student = "kid1";

    // 1. the front desk logs in
    d.login(&base, "desk");

    // 2. registers a child with a guardian and the face consent
    d.goto(&format!("{base}/app/students/new"));
    d.fill("#register input[name=name]", "Grace Hopper");
    d.fill("#register input[name=id]", student);
    d.fill("#register input[name=g1_name]", "Mary Hopper");
    d.fill("#register input[name=g1_phone]", "13800000000");
    d.click(&d.find("#register input[name=consent][value=granted]"));
    d.fill("#register input[name=document_ref]", "form-2026-001");
    d.click(&d.find("#register > button"));
    d.wait_url(&format!("/app/students/{student}?done=registered"));
    assert!(
        text_of(d, "#guardians").contains("Mary Hopper"),
        "the guardian on the student page"
    );
    assert_eq!(
        d.count("#consents tr"),
        1,
        "one consent on the student page"
    );

    // 3. sells 10 lessons listed at 3000.00, 10 % off, paid in full by WeChat Pay
    let (lessons, list_cents, percent_off) = (10i64, 300_000i64, 10i64);
    let due_cents = list_cents * (100 - percent_off) / 100;
    d.goto(&format!("{base}/app/students/{student}/sell"));
    d.fill("#sell input[name=order_id]", "o-1");
    d.fill("#sell input[name=lessons]", &lessons.to_string());
    d.fill("#sell input[name=gift_lessons]", "0");
    d.fill("#sell input[name=list_price]", &money(list_cents));
    d.click(&d.find("#sell select[name=discount_kind] option[value=percent]"));
    d.fill("#sell input[name=discount]", &percent_off.to_string());
    d.fill("#sell input[name=discount_reason]", "sibling discount");
    d.fill("#sell input[name=paid]", &money(due_cents));
    d.click(&d.find("#sell select[name=method] option[value=wechat_pay]"));
    d.fill("#sell input[name=reference]", "wx-4200001");
    d.click(&d.find("#sell > button"));
    d.wait_url("/app/orders/o-1");
    assert_eq!(
        text_of(d, "#due"),
        money(due_cents),
        "the receipt's total due"
    );
    assert_eq!(text_of(d, "#paid"), money(due_cents), "the receipt's paid");
    assert_eq!(text_of(d, "#outstanding"), "0.00", "nothing outstanding");

    // a manager puts the child into the class under way (enrolling is a manager's; the API
    // with the browser's session and the page's CSRF token)
    d.logout();
    d.login(&base, "boss");
    let status = d.execute_async(
        "const done = arguments[arguments.length - 1];\
         fetch('/api/v1/classes/piano/enrollments', {method: 'POST', headers: {\
           'Content-Type': 'application/json',\
           'X-CSRF-Token': document.querySelector('meta[name=csrf]').content},\
           body: JSON.stringify({student_id: arguments[0]})})\
         .then(r => done(r.status), e => done(String(e)));",
        json!([student]),
    );
    assert_eq!(status, json!(201), "the enrollment");
    d.logout();
    d.login(&base, "desk");

    // 4. checks the child in by card (the scanner types the card's code)
    d.goto(&format!("{base}/app/checkin"));
    d.fill("#who", &format!("rollcall:{student}"));
    d.click(&d.find("#checkin form button"));
    d.wait_url("done=checked_in");
    let url = d.current_url();
    assert!(
        url.contains(&format!("student={student}"))
            && url.contains("lesson=piano-now")
            && url.contains("source=qr"),
        "checked in by card into the lesson under way: {url}"
    );
    assert_eq!(d.count("#done"), 1);

    // 5. corrects that attendance: the child was excused (no leave: the default policy
    // charges nothing for it, so the lesson's charge is reversed)
    d.goto(&format!("{base}/app/students/{student}/attendance"));
    let charged = "#attendance tr:has(input[name=lesson_id][value='piano-now']) td:nth-child(3)";
    assert_eq!(
        text_of(d, charged),
        "1.00",
        "the check-in charged one lesson"
    );
    let form = "form.correct-form:has(input[name=lesson_id][value='piano-now'])";
    d.click(&d.find(&format!("{form} select[name=status] option[value=excused]")));
    d.fill(
        &format!("{form} input[name=reason]"),
        "was ill, mother called",
    );
    d.click(&d.find(&format!("{form} button")));
    d.wait_url("done=corrected");
    assert_eq!(
        text_of(d, charged),
        "0.00",
        "the correction reversed the charge"
    );
    let lessons_used = 0i64;

    // 6. enters a leave for tomorrow's lesson, approves it and books the make-up in piano B
    d.goto(&format!("{base}/app/leave?student={student}"));
    d.click(&d.find("#leave-form select[name=lesson_id] option[value='piano-next']"));
    d.fill("#leave-form input[name=reason]", "family trip");
    d.click(&d.find("#leave-form > button"));
    d.wait_url("done=");
    let pending = "#pending form:has(input[name=lesson_id][value='piano-next'])";
    d.fill(&format!("{pending} input[name=note]"), "ok");
    d.click(&d.find(&format!("{pending} button[value=approve]")));
    d.wait_for("the approved leave", |d| {
        d.count("#pending input[name=lesson_id][value='piano-next']") == 0
    });
    let makeup = "form.makeup-form:has(input[name=missed_lesson_id][value='piano-next'])";
    d.click(&d.find(&format!(
        "{makeup} select[name=lesson_id] option[value='piano-b-later']"
    )));
    d.click(&d.find(&format!("{makeup} button")));
    d.wait_url("done=booked");
    assert_eq!(
        d.count("form.makeup-form input[name=missed_lesson_id][value='piano-next']"),
        0,
        "the make-up is booked: {}",
        d.page_text()
    );

    // 7. asks for a refund of the package
    d.goto(&format!("{base}/app/students/{student}/refund/o-1"));
    d.fill("#ask-refund input[name=reason]", "moving away");
    d.click(&d.find("#ask-refund > button"));
    d.wait_url("/app/refunds/");
    let url = d.current_url();
    let refund_id: i64 = url
        .rsplit('/')
        .next()
        .and_then(|x| x.split('?').next())
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("a refund slip's URL: {url}"));
    // the default policy: before the first lesson it keeps 10 % of what was paid; after it,
    // it refunds the unearned part less 10 %
    let unearned = due_cents - due_cents * lessons_used / lessons;
    let refund_cents = unearned - unearned / 10;
    assert_eq!(
        text_of(d, "#refund-amount"),
        money(refund_cents),
        "the refund the policy computes"
    );

    // ... approved by a second person, a manager
    d.logout();
    d.login(&base, "boss");
    d.goto(&format!("{base}/app/refunds"));
    d.click(&d.find(&format!(
        "form[action='/app/refunds/{refund_id}'] button[value=approve]"
    )));
    d.wait_for("the approved refund's slip", |d| {
        d.current_url()
            .starts_with(&format!("{base}/app/refunds/{refund_id}"))
    });
    assert_eq!(text_of(d, "#refund-amount"), money(refund_cents));

    // 8. the finance report: what was received, refunded, and the difference
    d.goto(&format!("{base}/app/finance"));
    d.wait_url("/app/finance");
    assert_eq!(
        text_of(d, "#received-total"),
        money(due_cents),
        "received: {}",
        d.page_text()
    );
    assert_eq!(text_of(d, "#refunded-total"), money(refund_cents));
    assert_eq!(text_of(d, "#net"), money(due_cents - refund_cents));

    let png = d.screenshot_png();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000,
        "a PNG screenshot"
    );
    let dir = artifacts_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("browser-finance-report.png");
    std::fs::write(&path, &png).unwrap();
    println!("screenshot: {}", path.display());
    drop(guard);
}
