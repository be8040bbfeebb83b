//! Issue 9 end to end through the `rollcall` binary: enrollment refused without consent or
//! without a template key, consent grant, export, index rebuild from the encrypted templates,
//! key rotation, retention, withdrawal (erasure at once) and the QR check-in that keeps
//! working afterwards. Keys never appear in any output.

use rollcall_testkit::bin::{Run, RunExt};
use serde_json::Value;
use std::path::Path;

fn face(rel: &str) -> String {
    rollcall_testkit::fixture(&format!("faces/{rel}"))
        .display()
        .to_string()
}

fn rollcall(keys: Option<(&str, Option<&str>)>, args: &[&str]) -> Run {
    let mut c = rollcall_testkit::rollcall!();
    c.args(args)
        .env_remove("ROLLCALL_TEMPLATE_KEYS")
        .env_remove("ROLLCALL_TEMPLATE_KEY_ID");
    if let Some((k, cur)) = keys {
        c.env("ROLLCALL_TEMPLATE_KEYS", k);
        if let Some(cur) = cur {
            c.env("ROLLCALL_TEMPLATE_KEY_ID", cur);
        }
    }
    c.run()
}

fn json(r: &Run, what: &str) -> Value {
    assert!(r.ok, "{what} failed: {}", r.err);
    serde_json::from_str(r.out.trim()).unwrap_or_else(|e| panic!("{what}: {e}: {}", r.out))
}

fn new_key(id: &str) -> String {
    let v = json(
        &rollcall(None, &["privacy", "new-key", "--id", id]),
        "new-key",
    );
    v["entry"].as_str().unwrap().to_string()
}

#[test]
fn consent_export_rebuild_rotate_withdraw_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data").display().to_string();
    let k1 = new_key("k1");
    let k2 = new_key("k2");
    let secret1 = k1.split_once(':').unwrap().1.to_string();
    let secret2 = k2.split_once(':').unwrap().1.to_string();
    let one = Some((k1.as_str(), None));
    let mut outputs = String::new();
    let mut run = |keys: Option<(&str, Option<&str>)>, args: &[&str]| {
        let r = rollcall(keys, args);
        outputs.push_str(&r.out);
        outputs.push_str(&r.err);
        r
    };
    let enroll = [
        "enroll",
        "--data",
        &data,
        "--student",
        "s-obama",
        "--name",
        "Barack",
        &face("obama/1.jpg"),
    ];

    // no consent: refused, nothing stored
    let r = run(one, &enroll);
    assert!(!r.ok && r.err.contains("consent_missing"), "{}", r.err);
    assert!(!Path::new(&data).join("crops/default/s-obama").exists());
    // consent without a document is not accepted by the CLI
    let r = run(
        None,
        &[
            "consent",
            "grant",
            "--data",
            &data,
            "--student",
            "s-obama",
            "--guardian",
            "g1",
        ],
    );
    assert!(!r.ok);
    let v = json(
        &run(
            None,
            &[
                "consent",
                "grant",
                "--data",
                &data,
                "--student",
                "s-obama",
                "--name",
                "Barack",
                "--guardian",
                "g-michelle",
                "--guardian-name",
                "Michelle",
                "--document",
                "paper-form-0042",
                "--expires",
                "2099-12-31",
            ],
        ),
        "consent grant",
    );
    assert_eq!(v["status"]["status"], "valid", "{v}");
    // a grant by someone who is not the student's guardian is refused
    let r = run(
        None,
        &[
            "consent",
            "grant",
            "--data",
            &data,
            "--student",
            "s-obama",
            "--guardian",
            "someone",
            "--document",
            "x",
        ],
    );
    assert!(!r.ok && r.err.contains("guardian"), "{}", r.err);
    // consent but no key: refused with a clear message
    let r = run(None, &enroll);
    assert!(
        !r.ok && r.err.contains("ROLLCALL_TEMPLATE_KEYS"),
        "{}",
        r.err
    );
    // consent and key: enrolled
    let v = json(&run(one, &enroll), "enroll");
    assert_eq!(v["enrolled"].as_array().unwrap().len(), 1, "{v}");
    let ident = json(
        &run(one, &["identify", "--data", &data, &face("obama/3.jpg")]),
        "identify",
    );
    assert_eq!(ident["faces"][0]["candidates"][0]["student"], "s-obama");

    // subject access export
    let out = tmp.path().join("export").display().to_string();
    let v = json(
        &run(
            None,
            &[
                "export",
                "--data",
                &data,
                "--student",
                "s-obama",
                "--out",
                &out,
            ],
        ),
        "export",
    );
    assert_eq!(v["biometric_data_held"], true);
    assert_eq!(v["photos"].as_array().unwrap().len(), 1);
    let doc: Value =
        serde_json::from_slice(&std::fs::read(v["json"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(doc["ledger"]["guardians"][0]["name"], "Michelle");
    assert_eq!(
        doc["ledger"]["consents"][0]["document_ref"],
        "paper-form-0042"
    );
    // a non-empty --out is refused
    assert!(
        !run(
            None,
            &[
                "export",
                "--data",
                &data,
                "--student",
                "s-obama",
                "--out",
                &out
            ]
        )
        .ok
    );

    // the index is rebuilt from the encrypted templates after losing it
    std::fs::remove_dir_all(Path::new(&data).join("gallery")).unwrap();
    let v = json(
        &run(one, &["gallery", "rebuild", "--data", &data]),
        "rebuild",
    );
    assert_eq!(v["restored"], 1);
    let again = json(
        &run(one, &["identify", "--data", &data, &face("obama/3.jpg")]),
        "identify",
    );
    assert_eq!(
        again["faces"][0]["candidates"],
        ident["faces"][0]["candidates"]
    );
    // rebuilding without the key is refused
    assert!(!run(None, &["gallery", "rebuild", "--data", &data]).ok);

    // rotation to k2, then k2 alone rebuilds
    let both = format!("{k1},{k2}");
    let v = json(
        &run(
            Some((&both, Some("k2"))),
            &["privacy", "rotate-key", "--data", &data],
        ),
        "rotate",
    );
    assert_eq!(
        (v["resealed"].as_u64(), v["current_key"].as_str()),
        (Some(1), Some("k2"))
    );
    let v = json(
        &run(Some((&k2, None)), &["gallery", "rebuild", "--data", &data]),
        "rebuild with k2",
    );
    assert_eq!(v["restored"], 1);
    let r = run(one, &["gallery", "rebuild", "--data", &data]);
    assert!(!r.ok && r.err.contains("k2"), "{}", r.err);

    // retention now: nothing to do (valid consent, recent activity)
    let v = json(
        &run(one, &["privacy", "retention", "--data", &data]),
        "retention",
    );
    assert_eq!(v["students_erased"].as_array().unwrap().len(), 0, "{v}");
    let v = json(&run(one, &["privacy", "status", "--data", &data]), "status");
    assert_eq!(v["retention"]["inactive_template_months"], 36);

    // withdrawal erases at once
    let v = json(
        &run(
            None,
            &[
                "consent",
                "withdraw",
                "--data",
                &data,
                "--student",
                "s-obama",
                "--by",
                "g-michelle",
            ],
        ),
        "withdraw",
    );
    assert_eq!(v["templates_removed"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["sealed_templates_removed"], 1);
    assert_eq!(v["reason"], "consent_withdrawn");
    let after = json(
        &run(one, &["identify", "--data", &data, &face("obama/3.jpg")]),
        "identify",
    );
    assert!(after["faces"][0]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["student"] != "s-obama"));
    let v = json(
        &run(
            None,
            &["consent", "show", "--data", &data, "--student", "s-obama"],
        ),
        "show",
    );
    assert_eq!(v["status"]["status"], "withdrawn");
    // enrollment refused again; the QR check-in still works
    let r = run(Some((&k2, None)), &enroll);
    assert!(!r.ok && r.err.contains("consent_withdrawn"), "{}", r.err);
    let v = json(
        &run(
            None,
            &["checkin", "s-obama", "--source", "qr", "--data", &data],
        ),
        "qr check-in",
    );
    assert_eq!(v["student_id"], "s-obama", "{v}");

    // the keys never appear in any output
    assert!(!outputs.contains(&secret1) && !outputs.contains(&secret2));
}
