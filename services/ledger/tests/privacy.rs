//! Privacy rows (issue 9) on SQLite and PostgreSQL: consent decisions with guardian, document
//! and expiry; the consent gate; sealed template rows (opaque bytes, scoped to one school);
//! last activity; the subject-access record; a withdrawn student keeps the manual/QR check-in.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rollcall_domain::gallery::TemplateId;
use rollcall_domain::ledger::*;
use rollcall_domain::privacy::{
    ConsentGate, ConsentProof, ConsentRecord, ConsentStatus, PrivacyStore, SealedTemplate,
    FACE_CONSENT,
};
use rollcall_domain::{StudentId, TenantId};
use rollcall_ledger::*;

rollcall_testkit::two_backends! {
    consent_decisions_are_validated_and_gate_enrollment => SchoolPolicy::default(),
    sealed_rows_round_trip_and_stay_in_their_school => SchoolPolicy::default(),
    withdrawn_student_checks_in_manually_and_export_lists_everything => SchoolPolicy::default(),
}

/// A fixed time after the tests' real "now" (students' registration time), so that the
/// activity recorded here is the latest.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 3, 4, 9, 0, 0).unwrap()
}

fn grant(by: &str, at: DateTime<Utc>, exp: Option<DateTime<Utc>>) -> ConsentRecord {
    ConsentRecord {
        kind: FACE_CONSENT.into(),
        granted: true,
        given_by: by.into(),
        at,
        document_ref: Some("form-2026-017".into()),
        expires_at: exp,
    }
}

async fn student_with_guardian(s: &Store, id: &str) {
    s.create_student(&NewStudent {
        id: id.into(),
        name: format!("Student {id}"),
        home_campus_id: None,
    })
    .await
    .unwrap();
    s.add_guardian(&NewGuardian {
        id: format!("{id}-mum"),
        student_id: id.into(),
        name: "Mum".into(),
        phone: Some("+100".into()),
        email: None,
        language: "en".into(),
        notify_prefs: "sms".into(),
    })
    .await
    .unwrap();
}

fn tenant(s: &Store) -> TenantId {
    TenantId::new(s.school_id()).unwrap()
}

async fn consent_decisions_are_validated_and_gate_enrollment(s: &Store) {
    student_with_guardian(s, "s1").await;
    let sid = StudentId::new("s1").unwrap();
    let t = tenant(s);
    // no consent: refused
    let e = ConsentProof::check(s, &t, &sid, t0()).await.unwrap_err();
    assert!(e.to_string().contains("consent_missing"), "{e}");
    // a grant by someone who is not a guardian of the student: refused, nothing recorded
    let e = s
        .record_consent_decision("s1", &grant("stranger", t0(), None))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            LedgerError::Invalid {
                field: "given_by",
                ..
            }
        ),
        "{e}"
    );
    // without a document: refused
    let mut nodoc = grant("s1-mum", t0(), None);
    nodoc.document_ref = None;
    assert!(matches!(
        s.record_consent_decision("s1", &nodoc).await,
        Err(LedgerError::Invalid {
            field: "document_ref",
            ..
        })
    ));
    // expiring before it is given: refused
    assert!(matches!(
        s.record_consent_decision("s1", &grant("s1-mum", t0(), Some(t0() - Duration::days(1))))
            .await,
        Err(LedgerError::Invalid {
            field: "expires_at",
            ..
        })
    ));
    // unknown student
    assert!(s
        .record_consent_decision("ghost", &grant("s1-mum", t0(), None))
        .await
        .is_err());
    assert!(s.consent_history(&t, &sid).await.unwrap().is_empty());
    // a valid grant for a year
    s.record_consent_decision(
        "s1",
        &grant("s1-mum", t0(), Some(t0() + Duration::days(365))),
    )
    .await
    .unwrap();
    let p = ConsentProof::check(s, &t, &sid, t0() + Duration::days(1))
        .await
        .unwrap();
    assert_eq!(p.record().given_by, "s1-mum");
    assert_eq!(p.record().document_ref.as_deref(), Some("form-2026-017"));
    // expired a year later
    let e = ConsentProof::check(s, &t, &sid, t0() + Duration::days(366))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("consent_expired"), "{e}");
    // the legacy record_consent (no document) is recorded but never a valid consent
    student_with_guardian(s, "s2").await;
    s.record_consent("s2", FACE_CONSENT, true, "s2-mum", t0())
        .await
        .unwrap();
    let e = ConsentProof::check(s, &t, &StudentId::new("s2").unwrap(), t0())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("consent_incomplete"), "{e}");
    // withdrawal (by staff) ends it
    let mut w = grant("office:ms-lee", t0() + Duration::days(2), None);
    w.granted = false;
    w.document_ref = None;
    s.append_consent(&t, &sid, &w).await.unwrap();
    let e = ConsentProof::check(s, &t, &sid, t0() + Duration::days(3))
        .await
        .unwrap_err();
    match e {
        rollcall_domain::privacy::ConsentError::Refused { status, .. } => {
            assert_eq!(
                status,
                ConsentStatus::Withdrawn {
                    at: t0() + Duration::days(2),
                    by: "office:ms-lee".into()
                }
            )
        }
        e => panic!("{e}"),
    }
    // another school's id is refused by the port
    let other = TenantId::new("other-school").unwrap();
    assert!(s.consent_history(&other, &sid).await.is_err());
    // history in recording order, audited
    let h = s.consent_records("s1").await.unwrap();
    assert_eq!(
        h.iter().map(|r| r.granted).collect::<Vec<_>>(),
        vec![true, false]
    );
    let audit = s.student_audit("s1").await.unwrap();
    assert!(audit.iter().any(|a| a["action"] == "consent"));
    assert!(audit.iter().any(|a| a["action"] == "consent_withdrawn"));
}

fn sealed(t: &TenantId, student: &str, id: u128, key: &str, byte: u8) -> SealedTemplate {
    SealedTemplate {
        tenant: t.clone(),
        student: StudentId::new(student).unwrap(),
        template_id: TemplateId::from_u128(id),
        model_id: "mobilefacenet_128".into(),
        model_version: "1".into(),
        key_id: key.into(),
        nonce: vec![byte; 12],
        ciphertext: vec![0, byte, 255, 7, byte],
        created_at: t0(),
    }
}

async fn sealed_rows_round_trip_and_stay_in_their_school(s: &Store) {
    student_with_guardian(s, "s1").await;
    student_with_guardian(s, "s2").await;
    let t = tenant(s);
    let rows = vec![
        sealed(&t, "s1", 1, "k1", 1),
        sealed(&t, "s1", 2, "k1", 2),
        sealed(&t, "s2", 3, "k1", 3),
    ];
    s.put_sealed(&rows).await.unwrap();
    assert_eq!(s.sealed(&t, None).await.unwrap(), rows);
    let s1 = StudentId::new("s1").unwrap();
    assert_eq!(s.sealed(&t, Some(&s1)).await.unwrap(), rows[..2].to_vec());
    // replace by template id (key rotation)
    let rotated = sealed(&t, "s1", 2, "k2", 9);
    s.put_sealed(std::slice::from_ref(&rotated)).await.unwrap();
    assert_eq!(s.sealed(&t, Some(&s1)).await.unwrap()[1], rotated);
    // all or nothing: an unknown student refuses the batch
    let bad = vec![
        sealed(&t, "s2", 4, "k1", 4),
        sealed(&t, "ghost", 5, "k1", 5),
    ];
    assert!(s.put_sealed(&bad).await.is_err());
    assert_eq!(s.sealed(&t, None).await.unwrap().len(), 3);
    // another school's rows are refused, and its reads too
    let other = TenantId::new("other-school").unwrap();
    assert!(s
        .put_sealed(&[sealed(&other, "s1", 6, "k1", 6)])
        .await
        .is_err());
    assert!(s.sealed(&other, None).await.is_err());
    // deletions
    assert_eq!(
        s.delete_sealed_ids(&t, &[TemplateId::from_u128(3), TemplateId::from_u128(99)])
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.delete_sealed_student(&t, &s1).await.unwrap(), 2);
    assert_eq!(s.delete_sealed_student(&t, &s1).await.unwrap(), 0);
    assert!(s.sealed(&t, None).await.unwrap().is_empty());
    assert!(!s.compact().await.unwrap().is_empty());
}

async fn withdrawn_student_checks_in_manually_and_export_lists_everything(s: &Store) {
    s.create_campus("north", "North").await.unwrap();
    student_with_guardian(s, "s1").await;
    student_with_guardian(s, "s2").await;
    s.create_class(&NewClass {
        id: "math".into(),
        course: "Maths".into(),
        name: "Maths".into(),
        campus_id: "north".into(),
        teacher: "ms-lee".into(),
        policy: ClassPolicy::default(),
        capacity: None,
        room_id: None,
        kind: Default::default(),
    })
    .await
    .unwrap();
    let start = t0() + Duration::days(1) + Duration::hours(7);
    s.add_lesson(&NewLesson {
        id: "L1".into(),
        class_id: "math".into(),
        room_id: None,
        teacher: None,
        start,
        end: start + Duration::hours(1),
    })
    .await
    .unwrap();
    s.enroll("math", "s1", t0()).await.unwrap();
    s.purchase(&NewPackage {
        id: "p1".into(),
        student_id: "s1".into(),
        campus_id: None,
        lessons: 10,
        unit_price_cents: 2000,
        price_paid_cents: None,
        bought_at: t0(),
        expires_at: t0() + Duration::days(180),
    })
    .await
    .unwrap();
    let t = tenant(s);
    let sid = StudentId::new("s1").unwrap();
    s.record_consent_decision("s1", &grant("s1-mum", t0(), None))
        .await
        .unwrap();
    let mut w = grant("s1-mum", t0() + Duration::hours(1), None);
    w.granted = false;
    s.append_consent(&t, &sid, &w).await.unwrap();
    assert!(ConsentProof::check(s, &t, &sid, start).await.is_err());
    // the manual (and QR) check-in needs no consent and deducts one lesson
    let r = s
        .check_in(&CheckIn::new(
            "s1",
            start + Duration::minutes(2),
            AttendanceSource::Qr,
        ))
        .await
        .unwrap();
    assert_eq!(r.balance_units, 900, "{r:?}");
    let again = s
        .check_in(&CheckIn::new(
            "s1",
            start + Duration::minutes(3),
            AttendanceSource::Manual,
        ))
        .await
        .unwrap();
    assert_eq!(
        again.balance_units, 900,
        "same lesson deducts once: {again:?}"
    );
    // last activity: the check-in
    let act = s.last_activity(&t).await.unwrap();
    let s1 = act.iter().find(|(s, _)| s.as_str() == "s1").unwrap().1;
    assert_eq!(s1, start + Duration::minutes(3));
    let s2 = act.iter().find(|(s, _)| s.as_str() == "s2").unwrap().1;
    assert!(s2 < s1);
    // the audited erasure event lands in the student's trail
    s.audit_privacy(
        &t,
        "cli",
        "biometric_erasure",
        &sid,
        r#"{"templates_removed":[]}"#,
        start,
    )
    .await
    .unwrap();
    assert!(s
        .audit_privacy(&t, "cli", "x", &sid, "not json", start)
        .await
        .is_err());
    // subject access
    let v: serde_json::Value =
        serde_json::from_str(&s.subject_record(&t, &sid).await.unwrap()).unwrap();
    assert_eq!(v["profile"]["id"], "s1");
    assert_eq!(v["guardians"][0]["id"], "s1-mum");
    assert_eq!(v["consents"].as_array().unwrap().len(), 2);
    assert_eq!(v["attendance"][0]["lesson_id"], "L1");
    assert!(v["ledger"].as_array().unwrap().len() >= 2, "{v}");
    assert!(v["checkin_events"].as_array().unwrap().len() >= 2);
    assert!(v["audit"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["action"] == "biometric_erasure"));
    assert_eq!(v["sealed_biometric_templates"].as_array().unwrap().len(), 0);
    // nothing of another student
    assert!(!v.to_string().contains("s2-mum"));
    assert!(s
        .subject_record(&t, &StudentId::new("ghost").unwrap())
        .await
        .is_err());
}
