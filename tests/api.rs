//! End to end: `rollcall admin create` makes the first admin; `rollcall serve` mounts the API
//! and the staff app on its listener next to /healthz and /metrics; the admin logs in, an
//! API token from `rollcall admin token` authenticates, anonymous requests are refused.

use serde_json::Value;
use std::io::{Read, Write};
use std::process::Stdio;

fn rollcall_stdin(args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = rollcall_testkit::rollcall!()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run rollcall");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// (status, headers, body) of one request.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String, String)> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    req += "\r\n";
    req += body;
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, head.to_string(), body.to_string()))
}

#[test]
fn admin_create_then_serve_api_login_token_and_denials() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data").display().to_string();
    // bad input first: unknown role, short password → clear errors, nothing created
    let (ok, _, err) = rollcall_stdin(
        &[
            "admin",
            "create",
            "--data",
            &d,
            "--username",
            "boss",
            "--role",
            "wizard",
            "--password-stdin",
        ],
        "long enough password\n",
    );
    assert!(!ok && err.contains("role"), "{err}");
    let (ok, _, err) = rollcall_stdin(
        &[
            "admin",
            "create",
            "--data",
            &d,
            "--username",
            "boss",
            "--role",
            "admin",
            "--password-stdin",
        ],
        "short\n",
    );
    assert!(!ok && err.contains("8 characters"), "{err}");
    let (ok, out, err) = rollcall_stdin(
        &[
            "admin",
            "create",
            "--data",
            &d,
            "--username",
            "boss",
            "--role",
            "admin",
            "--password-stdin",
        ],
        "long enough password\n",
    );
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["created"]["role"], "admin");
    assert!(!out.contains("long enough password"));
    // the same username twice is refused
    let (ok, _, err) = rollcall_stdin(
        &[
            "admin",
            "create",
            "--data",
            &d,
            "--username",
            "boss",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        "another password\n",
    );
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, out, err) =
        rollcall_stdin(&["admin", "token", "--data", &d, "--username", "boss"], "");
    assert!(ok, "{err}");
    let v = serde_json::from_str::<Value>(out.trim()).unwrap();
    let token = v["token"].as_str().unwrap().to_string();
    let token_id = v["id"].as_str().unwrap().to_string();
    // `admin tokens` lists it, without the secret
    let (ok, out, err) = rollcall_stdin(&["admin", "tokens", "--data", &d], "");
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["tokens"][0]["id"], token_id.as_str(), "{v}");
    assert!(v["tokens"][0]["revoked_at"].is_null(), "{v}");
    assert!(!out.contains(&token[3..]), "{out}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let cfg = tmp.path().join("rollcall.toml");
    std::fs::write(
        &cfg,
        format!("data = \"{d}\"\nlisten = \"{addr}\"\nmetrics_public = false\n"),
    )
    .unwrap();
    let mut child = rollcall_testkit::rollcall!()
        .args(["serve", "--config", &cfg.display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut health = None;
    while std::time::Instant::now() < deadline && health.is_none() {
        health = http(&addr, "GET", "/healthz", &[], "");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let result = std::panic::catch_unwind(|| {
        let (st, _, body) = health.expect("serve answers /healthz");
        assert_eq!(st, 200);
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["status"],
            "ok"
        );
        // metrics restricted by config: anonymous refused, the admin's token accepted
        assert_eq!(http(&addr, "GET", "/metrics", &[], "").unwrap().0, 401);
        let bearer = format!("Bearer {token}");
        let (st, _, body) =
            http(&addr, "GET", "/metrics", &[("authorization", &bearer)], "").unwrap();
        assert_eq!(st, 200);
        assert!(body.contains("rollcall_check_ins_committed_total"));
        assert_eq!(
            http(&addr, "GET", "/api/v1/students", &[], "").unwrap().0,
            401
        );
        let (st, head, body) = http(
            &addr,
            "POST",
            "/api/v1/auth/login",
            &[("content-type", "application/json")],
            r#"{"username":"boss","password":"long enough password"}"#,
        )
        .unwrap();
        assert_eq!(st, 200, "{body}");
        let cookie = head
            .lines()
            .find_map(|l| l.strip_prefix("set-cookie: "))
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let (st, _, body) =
            http(&addr, "GET", "/api/v1/auth/me", &[("cookie", &cookie)], "").unwrap();
        assert_eq!(st, 200);
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["account"]["username"],
            "boss"
        );
        let (st, _, body) = http(&addr, "GET", "/app", &[("cookie", &cookie)], "").unwrap();
        assert_eq!(st, 200);
        assert!(body.contains("<nav>"));
        let (st, _, _) = http(
            &addr,
            "GET",
            "/api/v1/review",
            &[("authorization", &bearer)],
            "",
        )
        .unwrap();
        assert_eq!(st, 200);
        // `rollcall admin revoke-token` on the running server's data: the token is refused
        // once serve's credential cache (2 s) has let go of it
        let (ok, out, err) =
            rollcall_stdin(&["admin", "revoke-token", &token_id, "--data", &d], "");
        assert!(ok, "{err}");
        let v: Value = serde_json::from_str(out.trim()).unwrap();
        assert!(v["revoked"]["revoked_at"].is_string(), "{v}");
        let revoked_at = std::time::Instant::now();
        loop {
            let (st, _, _) = http(
                &addr,
                "GET",
                "/api/v1/review",
                &[("authorization", &bearer)],
                "",
            )
            .unwrap();
            if st == 401 {
                break;
            }
            assert_eq!(st, 200);
            assert!(
                revoked_at.elapsed() < std::time::Duration::from_secs(4),
                "a revoked token still works after 4 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        // the revocation is in the audit log (read through the admin's session)
        let (st, _, body) = http(
            &addr,
            "GET",
            "/api/v1/audit?limit=20",
            &[("cookie", &cookie)],
            "",
        )
        .unwrap();
        assert_eq!(st, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(
            v["audit"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["action"] == "revoke"
                    && r["entity"] == "api_token"
                    && r["entity_id"] == token_id.as_str()),
            "{v}"
        );
        // twice: refused with the reason
        let (ok, _, err) = rollcall_stdin(&["admin", "revoke-token", &token_id, "--data", &d], "");
        assert!(!ok && err.contains("already revoked"), "{err}");
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// (status, body) of one request with a binary body.
fn http_bytes(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .ok()?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    )
    .into_bytes();
    for (k, v) in headers {
        req.extend(format!("{k}: {v}\r\n").bytes());
    }
    req.extend(b"\r\n");
    req.extend(body);
    s.write_all(&req).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let out = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = out.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// The newest audit rows of a running server (admin credentials).
fn audit_rows(addr: &str, auth: (&str, &str)) -> Vec<Value> {
    let (st, body) =
        http_bytes(addr, "GET", "/api/v1/audit?limit=1000", &[auth], b"").expect("audit answers");
    assert_eq!(st, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["audit"]
        .as_array()
        .unwrap()
        .clone()
}

/// Asserts that exactly the rows newer than `seq` include one `action` about `entity_id`,
/// and that every one of them names the admin `boss` with role and address.
fn assert_audited_by_boss(rows: &[Value], seq: i64, action: &str, entity_id: &str) {
    let new: Vec<&Value> = rows
        .iter()
        .filter(|r| r["seq"].as_i64().unwrap() > seq)
        .collect();
    assert!(
        new.iter()
            .any(|r| r["action"] == action && r["entity_id"] == entity_id),
        "no {action} row about {entity_id}: {new:?}"
    );
    for r in &new {
        assert_eq!(
            (&r["actor"], &r["actor_role"], &r["actor_ip"]),
            (
                &Value::from("boss"),
                &Value::from("admin"),
                &Value::from("127.0.0.1")
            ),
            "{r}"
        );
    }
}

fn newest_seq(rows: &[Value]) -> i64 {
    rows.first().map_or(0, |r| r["seq"].as_i64().unwrap())
}

/// Photo enrollment and complete erasure through the API of a running `serve`: the real face
/// pipeline behind `/api/v1/students/{id}/photos` (consent-gated, quality feedback) and
/// `/api/v1/students/{id}/erase` (the audited receipt).
#[test]
fn serve_enrolls_photos_and_erases_through_the_api() {
    let fixtures = rollcall_testkit::fixtures_dir();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data").display().to_string();
    let (ok, out, err) = rollcall_stdin(&["privacy", "new-key", "--id", "t"], "");
    assert!(ok, "{err}");
    let key = serde_json::from_str::<Value>(out.trim()).unwrap()["entry"]
        .as_str()
        .unwrap()
        .to_string();
    let (ok, _, err) = rollcall_stdin(
        &[
            "consent",
            "grant",
            "--data",
            &d,
            "--student",
            "kit",
            "--name",
            "Kit",
            "--guardian",
            "kit-g1",
            "--guardian-name",
            "Deborah",
            "--document",
            "form-7",
        ],
        "",
    );
    assert!(ok, "{err}");
    let (ok, _, err) = rollcall_stdin(
        &[
            "admin",
            "create",
            "--data",
            &d,
            "--username",
            "boss",
            "--password-stdin",
        ],
        "long enough password\n",
    );
    assert!(ok, "{err}");
    let (ok, out, err) =
        rollcall_stdin(&["admin", "token", "--data", &d, "--username", "boss"], "");
    assert!(ok, "{err}");
    let token = serde_json::from_str::<Value>(out.trim()).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let cfg = tmp.path().join("rollcall.toml");
    std::fs::write(&cfg, format!("data = \"{d}\"\nlisten = \"{addr}\"\n")).unwrap();
    let mut child = rollcall_testkit::rollcall!()
        .args(["serve", "--config", &cfg.display().to_string()])
        .env("ROLLCALL_TEMPLATE_KEYS", &key)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline && http(&addr, "GET", "/healthz", &[], "").is_none()
    {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let result = std::panic::catch_unwind(|| {
        let bearer = format!("Bearer {token}");
        let auth = [
            ("authorization", bearer.as_str()),
            ("content-type", "image/jpeg"),
        ];
        let photo = std::fs::read(fixtures.join("faces/kit_harington/1.jpg")).unwrap();
        let audit_auth = ("authorization", bearer.as_str());
        let mark = newest_seq(&audit_rows(&addr, audit_auth));
        let (st, body) = http_bytes(
            &addr,
            "POST",
            "/api/v1/students/kit/photos?filename=1.jpg",
            &auth,
            &photo,
        )
        .expect("enroll answers");
        assert_eq!(st, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["verdict"]["enrolled"].as_array().unwrap().len(), 1, "{v}");
        assert_eq!(v["verdict"]["templates"], 1, "{v}");
        // the sealed template is in the audit log, attributed to the staff member
        assert_audited_by_boss(
            &audit_rows(&addr, audit_auth),
            mark,
            "template_sealed",
            "kit",
        );
        // a group photo is refused with the reason (several faces), nothing enrolled
        let group = std::fs::read(fixtures.join("groups/two_people.jpg")).unwrap();
        let (st, body) =
            http_bytes(&addr, "POST", "/api/v1/students/kit/photos", &auth, &group).unwrap();
        assert_eq!(st, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["verdict"]["enrolled"].as_array().unwrap().len(), 0, "{v}");
        assert_eq!(v["verdict"]["rejected"].as_array().unwrap().len(), 1, "{v}");
        assert_eq!(v["verdict"]["templates"], 1, "{v}");
        // complete erasure: the receipt counts the template
        let mark = newest_seq(&audit_rows(&addr, audit_auth));
        let (st, body) = http_bytes(
            &addr,
            "POST",
            "/api/v1/students/kit/erase",
            &[("authorization", bearer.as_str())],
            b"",
        )
        .unwrap();
        assert_eq!(st, 200, "{body}");
        assert!(body.contains("receipt"), "{body}");
        assert_audited_by_boss(
            &audit_rows(&addr, audit_auth),
            mark,
            "biometric_erasure",
            "kit",
        );
        // after erasure, nothing of kit is left to match: a new photo enrolls as the only one
        let (st, body) =
            http_bytes(&addr, "POST", "/api/v1/students/kit/photos", &auth, &photo).unwrap();
        assert_eq!(st, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["verdict"]["templates"], 1, "{v}");
        let admin = [("authorization", bearer.as_str())];
        // subject-access export: a download, nothing left under the data directory; audited
        let mark = newest_seq(&audit_rows(&addr, audit_auth));
        let (st, body) =
            http_bytes(&addr, "POST", "/api/v1/students/kit/export", &admin, b"").unwrap();
        assert_eq!(st, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(v["export"].is_object(), "{v}");
        let exports = std::path::Path::new(&d).join("exports");
        assert!(
            std::fs::read_dir(&exports).map_or(true, |mut d| d.next().is_none()),
            "the export stayed on disk under {}",
            exports.display()
        );
        assert_audited_by_boss(
            &audit_rows(&addr, audit_auth),
            mark,
            "subject_access_export",
            "kit",
        );
        // the notification outbox, counted per state
        let (st, body) = http_bytes(&addr, "GET", "/api/v1/notifications", &admin, b"").unwrap();
        assert_eq!(st, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(
            v["counts"].is_object() && v["notifications"].is_array(),
            "{v}"
        );
        let (st, _) = http_bytes(
            &addr,
            "GET",
            "/api/v1/notifications?state=nonsense",
            &admin,
            b"",
        )
        .unwrap();
        assert_eq!(st, 422);
        // consent withdrawn: the biometric data goes at once and enrollment is refused
        let json_admin = [
            ("authorization", bearer.as_str()),
            ("content-type", "application/json"),
        ];
        let mark = newest_seq(&audit_rows(&addr, audit_auth));
        let (st, body) = http_bytes(
            &addr,
            "POST",
            "/api/v1/students/kit/consent/withdraw",
            &json_admin,
            br#"{"by":"kit-g1","document_ref":"withdrawal-1"}"#,
        )
        .unwrap();
        assert_eq!(st, 200, "{body}");
        assert!(body.contains("receipt"), "{body}");
        let rows = audit_rows(&addr, audit_auth);
        assert_audited_by_boss(&rows, mark, "consent_withdrawn", "kit");
        assert_audited_by_boss(&rows, mark, "biometric_erasure", "kit");
        let (st, body) =
            http_bytes(&addr, "POST", "/api/v1/students/kit/photos", &auth, &photo).unwrap();
        assert_eq!(st, 409, "{body}");
        assert!(body.contains("consent_required"), "{body}");
        // a new grant through the API is validated (unknown guardian refused), then enrollment
        // works again; a withdrawal recorded as a consent decision also erases at once
        let grant = |by: &str| {
            format!(
                r#"{{"kind":"face_recognition","granted":true,"given_by":"{by}","document_ref":"form-8"}}"#
            )
        };
        let (st, body) = http_bytes(
            &addr,
            "POST",
            "/api/v1/students/kit/consents",
            &json_admin,
            grant("nobody").as_bytes(),
        )
        .unwrap();
        assert!((400..500).contains(&st), "{st} {body}");
        let (st, body) = http_bytes(
            &addr,
            "POST",
            "/api/v1/students/kit/consents",
            &json_admin,
            grant("kit-g1").as_bytes(),
        )
        .unwrap();
        assert_eq!(st, 201, "{body}");
        let (st, body) =
            http_bytes(&addr, "POST", "/api/v1/students/kit/photos", &auth, &photo).unwrap();
        assert_eq!(st, 200, "{body}");
        let (st, body) = http_bytes(
            &addr,
            "POST",
            "/api/v1/students/kit/consents",
            &json_admin,
            br#"{"kind":"face_recognition","granted":false,"given_by":"kit-g1"}"#,
        )
        .unwrap();
        assert_eq!(st, 201, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(v["erasure"].is_object(), "{v}");
        // the staff app shows the retention periods the job enforces (defaults: 7 days, 36 months)
        let (st, head, body) = http(
            &addr,
            "POST",
            "/api/v1/auth/login",
            &[("content-type", "application/json")],
            r#"{"username":"boss","password":"long enough password"}"#,
        )
        .unwrap();
        assert_eq!(st, 200, "{body}");
        let cookie = head
            .lines()
            .find_map(|l| l.strip_prefix("set-cookie: "))
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let (st, _, body) = http(&addr, "GET", "/app/privacy", &[("cookie", &cookie)], "").unwrap();
        assert_eq!(st, 200, "{body}");
        assert!(
            body.contains("<b>7</b> days") && body.contains("<b>36</b> months"),
            "{body}"
        );
        // the notification outbox counts are in /metrics (refreshed every second)
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let (st, _, body) = http(&addr, "GET", "/metrics", &[], "").unwrap();
        assert_eq!(st, 200);
        assert!(body.contains("rollcall_notify_outbox"), "{body}");
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// `QDRANT_URL=… rollcall serve`: the API's enrollment writes the template into the Qdrant
/// server (read back here with a client of the test's own, nothing in an embedded gallery) and
/// the API's erasure removes it from the server. The server: `ROLLCALL_TEST_QDRANT_URL`
/// (scripts/test.sh), `QDRANT_URL`, or one started here from `../shared/tools/qdrant`.
#[test]
fn serve_with_qdrant_url_enrolls_into_the_server_and_erases_from_it() {
    use rollcall_gallery::{CountScope, Gallery, RemoteConfig, RemoteGallery};
    let server = rollcall_gallery::server::for_tests(&rollcall_testkit::workspace_root())
        .unwrap_or_else(|e| panic!("this test needs a Qdrant server: {e}"));
    let fixtures = rollcall_testkit::fixtures_dir();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data").display().to_string();
    let (ok, out, err) = rollcall_stdin(&["privacy", "new-key", "--id", "t"], "");
    assert!(ok, "{err}");
    let key = serde_json::from_str::<Value>(out.trim()).unwrap()["entry"]
        .as_str()
        .unwrap()
        .to_string();
    for args in [
        vec![
            "consent",
            "grant",
            "--data",
            &d,
            "--student",
            "kit",
            "--name",
            "Kit",
            "--guardian",
            "kit-g1",
            "--guardian-name",
            "Deborah",
            "--document",
            "form-7",
        ],
        vec![
            "admin",
            "create",
            "--data",
            &d,
            "--username",
            "boss",
            "--password-stdin",
        ],
    ] {
        let (ok, _, err) = rollcall_stdin(&args, "long enough password\n");
        assert!(ok, "{args:?}: {err}");
    }
    let (ok, out, err) =
        rollcall_stdin(&["admin", "token", "--data", &d, "--username", "boss"], "");
    assert!(ok, "{err}");
    let token = serde_json::from_str::<Value>(out.trim()).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let cfg = tmp.path().join("rollcall.toml");
    std::fs::write(&cfg, format!("data = \"{d}\"\nlisten = \"{addr}\"\n")).unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let collection = format!("rollcall_serve_test_{}_{nanos}", std::process::id());
    let mut remote = RemoteConfig::new(server.url(), collection.clone(), 128);
    remote.api_key = server.api_key();
    let mut child = rollcall_testkit::rollcall!()
        .args(["serve", "--config", &cfg.display().to_string()])
        .env("QDRANT_URL", server.url())
        .env("QDRANT_COLLECTION", &collection)
        .env("ROLLCALL_TEMPLATE_KEYS", &key)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline && http(&addr, "GET", "/healthz", &[], "").is_none()
    {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tenant = rollcall_domain::TenantId::new("default").unwrap();
    // what the server holds, read by a client of the test's own
    let held = |rt: &tokio::runtime::Runtime| {
        rt.block_on(async {
            let g = RemoteGallery::connect(remote.clone()).await.unwrap();
            let all = g.count(&CountScope::all()).await.unwrap();
            let kit: Vec<String> = g
                .tenant_templates(&tenant)
                .await
                .unwrap()
                .into_iter()
                .map(|t| t.meta.student.to_string())
                .collect();
            (all, kit)
        })
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let bearer = format!("Bearer {token}");
        let auth = [
            ("authorization", bearer.as_str()),
            ("content-type", "image/jpeg"),
        ];
        // serve created the collection on the server at start
        assert!(rt
            .block_on(rollcall_gallery::remote::collection_exists(&remote))
            .unwrap());
        assert_eq!(held(&rt), (0, vec![]));
        let photo = std::fs::read(fixtures.join("faces/kit_harington/1.jpg")).unwrap();
        let (st, body) = http_bytes(
            &addr,
            "POST",
            "/api/v1/students/kit/photos?filename=1.jpg",
            &auth,
            &photo,
        )
        .expect("enroll answers");
        assert_eq!(st, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["verdict"]["enrolled"].as_array().unwrap().len(), 1, "{v}");
        // the point is in the server, and no embedded gallery was made
        assert_eq!(held(&rt), (1, vec!["kit".to_string()]));
        assert!(!std::path::Path::new(&d).join("gallery").exists());
        // a second photo of kit is a second template in the server
        let photo2 = std::fs::read(fixtures.join("faces/kit_harington/3.jpg")).unwrap();
        let (st, body) =
            http_bytes(&addr, "POST", "/api/v1/students/kit/photos", &auth, &photo2).unwrap();
        assert_eq!(st, 200, "{body}");
        assert_eq!(held(&rt).1.len(), 2, "{body}");
        // erasure through the API: the points are gone from the server
        let (st, body) = http_bytes(
            &addr,
            "POST",
            "/api/v1/students/kit/erase",
            &[("authorization", bearer.as_str())],
            b"",
        )
        .unwrap();
        assert_eq!(st, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v["receipt"]["templates_removed"]
                .as_array()
                .map(|a| a.len()),
            Some(2),
            "{v}"
        );
        assert_eq!(held(&rt), (0, vec![]));
    }));
    let _ = child.kill();
    let _ = child.wait();
    let dropped = rt.block_on(rollcall_gallery::remote::delete_collection(&remote));
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    assert!(matches!(dropped, Ok(Some(0))), "{dropped:?}");
}
