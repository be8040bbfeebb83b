//! Issue 9 with the real models, the fixture photos, the embedded qdrant-edge gallery and the
//! SQLite ledger in one data directory: consent gating, complete erasure proven on the bytes
//! of every file, rebuild from the encrypted templates, key rotation, retention with a fake
//! `now`, and the subject-access export.

use chrono::{DateTime, Duration, Utc};
use rollcall_domain::gallery::{Gallery, TemplateId};
use rollcall_domain::privacy::{
    ConsentError, ConsentRecord, PrivacyStore, PrivacyStoreError, FACE_CONSENT,
};
use rollcall_domain::{StudentId, TenantId};
use rollcall_gallery::privacy::{
    erase_student, export_student, run_retention, withdraw_consent, ErasureReason, RetentionConfig,
};
use rollcall_gallery::vault::{self, Keyring, VaultError};
use rollcall_gallery::{EmbeddedConfig, EmbeddedGallery};
use rollcall_ledger::{
    NewGuardian, NewReviewItem, NewStudent, ReviewCandidate, ReviewDecision, Store,
};
use rollcall_runtime::enrollment::{
    self as enroll, identify, EnrollConfig, EnrollError, EnrollRequest, Safeguards,
};
use rollcall_testkit::fixtures_dir as fixtures;
use rollcall_vision::decode::{decode_file, DecodeLimits};
use rollcall_vision::{FacePipeline, PipelineConfig};
use std::path::{Path, PathBuf};

fn pipeline() -> FacePipeline {
    FacePipeline::open(&PipelineConfig {
        models_dir: Some(rollcall_testkit::models_dir()),
        ..Default::default()
    })
    .expect("open the default pipeline")
}

fn photo(rel: &str) -> (String, Vec<u8>) {
    (
        rel.to_string(),
        std::fs::read(fixtures().join("faces").join(rel)).unwrap(),
    )
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// Files of `dir` containing `needle` anywhere.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|f| {
            std::fs::read(f)
                .unwrap_or_default()
                .windows(needle.len())
                .any(|w| w == needle)
        })
        .collect()
}

fn le(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Byte patterns of a template: the whole vector and three 4-component windows.
fn needles(v: &[f32]) -> Vec<Vec<u8>> {
    let n = v.len();
    vec![
        le(v),
        le(&v[..4]),
        le(&v[n / 2..n / 2 + 4]),
        le(&v[n - 4..]),
    ]
}

/// Fields drop in order: the stores before the temporary directory (declared last).
struct World {
    data: PathBuf,
    store: Store,
    gallery: Option<EmbeddedGallery>,
    keys: Keyring,
    /// The `k1:BASE64` entry `keys` was made from (generated per test, never stored).
    k1_entry: String,
    p: enroll::SharedPipeline,
    tenant: TenantId,
    _tmp: tempfile::TempDir,
}

impl World {
    async fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let root = Store::open_data_dir(&data).await.unwrap();
        let store = root
            .create_school("school-a", "School A", 0, &Default::default())
            .await
            .unwrap();
        let gallery = EmbeddedGallery::open(EmbeddedConfig::new(data.join("gallery"), 128))
            .await
            .unwrap();
        let k1_entry = Keyring::generate_entry("k1");
        World {
            _tmp: tmp,
            data,
            store,
            gallery: Some(gallery),
            keys: Keyring::parse(&k1_entry, None).unwrap(),
            k1_entry,
            p: enroll::shared(pipeline()),
            tenant: TenantId::new("school-a").unwrap(),
        }
    }

    fn g(&self) -> &EmbeddedGallery {
        self.gallery.as_ref().unwrap()
    }

    async fn reopen(&mut self) {
        self.gallery = None;
        self.store.close().await;
        let root = Store::open_data_dir(&self.data).await.unwrap();
        self.store = root.school("school-a").await.unwrap();
        self.gallery = Some(
            EmbeddedGallery::open(EmbeddedConfig::new(self.data.join("gallery"), 128))
                .await
                .unwrap(),
        );
    }

    async fn student(&self, id: &str) {
        self.store
            .create_student(&NewStudent {
                id: id.into(),
                name: id.into(),
                home_campus_id: None,
            })
            .await
            .unwrap();
        self.store
            .add_guardian(&NewGuardian {
                id: format!("{id}-g"),
                student_id: id.into(),
                name: "Guardian".into(),
                phone: None,
                email: None,
                language: "en".into(),
                notify_prefs: String::new(),
            })
            .await
            .unwrap();
    }

    async fn consent(&self, id: &str, at: DateTime<Utc>, expires: Option<DateTime<Utc>>) {
        self.store
            .record_consent_decision(
                id,
                &ConsentRecord {
                    kind: FACE_CONSENT.into(),
                    granted: true,
                    given_by: format!("{id}-g"),
                    at,
                    document_ref: Some(format!("form-{id}")),
                    expires_at: expires,
                },
            )
            .await
            .unwrap();
    }

    async fn enroll(
        &mut self,
        id: &str,
        photos: &[&str],
    ) -> Result<enroll::EnrollReport, EnrollError> {
        let cfg = EnrollConfig::new(self.data.join("crops"), self.p.lock().await.thresholds());
        let guard = Safeguards {
            store: &self.store,
            keys: &self.keys,
        };
        enroll::enroll(
            &self.p,
            self.gallery.as_ref().unwrap(),
            &guard,
            &cfg,
            EnrollRequest {
                tenant: self.tenant.clone(),
                student: StudentId::new(id).unwrap(),
                campuses: vec![],
                photos: photos.iter().map(|p| photo(p)).collect(),
                now: Utc::now(),
            },
        )
        .await
    }

    /// Best candidate (student, similarity) of the largest face of each photo.
    async fn who(&mut self, photos: &[&str]) -> Vec<Option<(String, f32)>> {
        let t = self.p.lock().await.thresholds();
        let mut out = vec![];
        for ph in photos {
            let frame =
                decode_file(&fixtures().join("faces").join(ph), &DecodeLimits::default()).unwrap();
            let faces = identify(
                &self.p,
                self.gallery.as_ref().unwrap(),
                &frame,
                &self.tenant,
                None,
                3,
                &t,
            )
            .await
            .unwrap();
            let best = faces
                .iter()
                .max_by(|a, b| (a.bbox[2] - a.bbox[0]).total_cmp(&(b.bbox[2] - b.bbox[0])))
                .unwrap();
            out.push(
                best.candidates
                    .first()
                    .map(|c| (c.student.to_string(), c.similarity)),
            );
        }
        out
    }

    async fn vectors_of(&self, id: &str) -> Vec<(TemplateId, Vec<f32>)> {
        let metas = self
            .g()
            .student_templates(&self.tenant, &StudentId::new(id).unwrap())
            .await
            .unwrap();
        let mut out = vec![];
        for m in metas {
            let t = self.g().get(m.template_id).await.unwrap().unwrap();
            out.push((m.template_id, t.vector));
        }
        out
    }
}

async fn assert_nothing_stored(w: &World) {
    assert_eq!(
        w.g()
            .count(&rollcall_domain::gallery::CountScope::all())
            .await
            .unwrap(),
        0
    );
    assert!(files_under(&w.data.join("crops")).is_empty());
    assert!(w.store.sealed(&w.tenant, None).await.unwrap().is_empty());
}

fn refused_code(r: Result<enroll::EnrollReport, EnrollError>) -> String {
    match r {
        Err(EnrollError::Consent(ConsentError::Refused { status, .. })) => {
            status.code().to_string()
        }
        other => panic!("expected a consent refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_needs_valid_guardian_consent_and_withdrawal_erases_at_once() {
    let mut w = World::new().await;
    w.student("obama").await;
    let sid = StudentId::new("obama").unwrap();
    // no consent at all
    assert_eq!(
        refused_code(w.enroll("obama", &["obama/1.jpg"]).await),
        "consent_missing"
    );
    assert_nothing_stored(&w).await;
    // a student the ledger does not know
    assert_eq!(
        refused_code(w.enroll("ghost", &["obama/1.jpg"]).await),
        "consent_missing"
    );
    // expired consent
    w.consent(
        "obama",
        Utc::now() - Duration::days(400),
        Some(Utc::now() - Duration::days(35)),
    )
    .await;
    assert_eq!(
        refused_code(w.enroll("obama", &["obama/1.jpg"]).await),
        "consent_expired"
    );
    assert_nothing_stored(&w).await;
    // valid consent: enrolled, and the canonical copy is sealed in the database
    w.consent(
        "obama",
        Utc::now() - Duration::days(1),
        Some(Utc::now() + Duration::days(365)),
    )
    .await;
    let r = w
        .enroll("obama", &["obama/1.jpg", "obama/2.jpg"])
        .await
        .unwrap();
    assert_eq!(r.enrolled.len(), 2, "{r:?}");
    let sealed = w.store.sealed(&w.tenant, Some(&sid)).await.unwrap();
    assert_eq!(sealed.len(), 2);
    for s in &sealed {
        let t = vault::open(&w.keys, s).unwrap();
        assert_eq!(
            w.g().get(s.template_id).await.unwrap().unwrap().vector,
            t.vector
        );
    }
    // withdrawal: recorded, everything biometric erased at once, audited
    let receipt = withdraw_consent(
        w.g(),
        &w.store,
        &w.data,
        &w.tenant,
        &sid,
        "obama-g",
        Some("withdrawal-letter-3".into()),
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(receipt.reason, ErasureReason::ConsentWithdrawn);
    assert_eq!(receipt.gallery.templates_removed.len(), 2);
    assert_eq!(receipt.sealed_templates_removed, 2);
    assert_eq!(receipt.gallery.crop_files_removed, 2);
    assert!(receipt.complete());
    assert_nothing_stored(&w).await;
    let audit = w.store.student_audit("obama").await.unwrap();
    assert!(audit.iter().any(|a| a["action"] == "consent_withdrawn"));
    assert!(audit.iter().any(
        |a| a["action"] == "biometric_erasure" && a["detail"]["sealed_templates_removed"] == 2
    ));
    // and enrollment is refused from now on
    assert_eq!(
        refused_code(w.enroll("obama", &["obama/3.jpg"]).await),
        "consent_withdrawn"
    );
    assert_nothing_stored(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_erasure_leaves_no_copy_of_the_templates_anywhere_in_the_data_directory() {
    let mut w = World::new().await;
    for id in ["obama", "biden"] {
        w.student(id).await;
        w.consent(id, Utc::now() - Duration::days(1), None).await;
    }
    w.enroll("obama", &["obama/1.jpg", "obama/2.jpg"])
        .await
        .unwrap();
    w.enroll("biden", &["biden/1.jpg"]).await.unwrap();
    // recognition runs
    let who = w.who(&["obama/3.jpg", "biden/2.jpg"]).await;
    assert_eq!(who[0].as_ref().unwrap().0, "obama");
    assert_eq!(who[1].as_ref().unwrap().0, "biden");
    // a review item whose crop may show obama
    w.store.create_campus("main", "Main").await.unwrap();
    let review_rel = "crops/review/2026/track-1.jpg";
    let enrolled_crop = files_under(&w.data.join("crops/school-a/obama"))[0].clone();
    std::fs::create_dir_all(w.data.join("crops/review/2026")).unwrap();
    std::fs::copy(&enrolled_crop, w.data.join(review_rel)).unwrap();
    let crop_bytes = std::fs::read(&enrolled_crop).unwrap();
    let crop_needle = crop_bytes[crop_bytes.len() / 2..crop_bytes.len() / 2 + 64].to_vec();
    let (item, _) = w
        .store
        .create_review_item(&NewReviewItem {
            campus_id: "main".into(),
            camera_id: None,
            track_key: "face:door:1:0".into(),
            seen_at: Utc::now(),
            reason: "low margin".into(),
            crop_path: Some(review_rel.into()),
            candidates: vec![ReviewCandidate {
                student_id: "obama".into(),
                score: 0.41,
            }],
        })
        .await
        .unwrap();

    let obama = w.vectors_of("obama").await;
    let biden = w.vectors_of("biden").await;
    assert_eq!(obama.len(), 2);
    // the scan can see them before the erasure (so it cannot pass vacuously)
    for (_, v) in &obama {
        assert!(
            !files_containing(&w.data, &le(v)).is_empty(),
            "vector not found before erasure"
        );
    }
    assert!(!files_containing(&w.data, &crop_needle).is_empty());

    let sid = StudentId::new("obama").unwrap();
    let receipt = erase_student(
        w.g(),
        &w.store,
        &w.data,
        &w.tenant,
        &sid,
        "office:ms-lee",
        ErasureReason::Request,
        Utc::now(),
    )
    .await
    .unwrap();
    assert!(receipt.complete(), "{receipt:?}");
    assert_eq!(receipt.gallery.templates_removed.len(), 2);
    assert_eq!(receipt.sealed_templates_removed, 2);
    assert_eq!(receipt.gallery.crop_files_removed, 2);
    assert_eq!(receipt.review_images_removed, vec![review_rel.to_string()]);
    assert!(receipt.database_compaction.contains("VACUUM"));

    // reopen every store, then scan every byte of every file of the data directory
    w.reopen().await;
    let files = files_under(&w.data);
    assert!(files.iter().any(|f| f.ends_with("rollcall.db")));
    assert!(files.iter().any(|f| f.starts_with(w.data.join("gallery"))));
    for (id, v) in &obama {
        for n in needles(v) {
            let hits = files_containing(&w.data, &n);
            assert!(
                hits.is_empty(),
                "template {id}: {} bytes found in {hits:?}",
                n.len()
            );
        }
        assert!(w.g().get(*id).await.unwrap().is_none());
    }
    assert!(files_containing(&w.data, &crop_needle).is_empty());
    assert!(!w.data.join(review_rel).exists());
    assert_eq!(w.store.review_item(item).await.unwrap().crop_path, None);
    // the other student is untouched and still recognised
    for (_, v) in &biden {
        assert!(!files_containing(&w.data, &le(v)).is_empty());
    }
    let who = w.who(&["obama/3.jpg", "biden/2.jpg"]).await;
    assert!(who[0].as_ref().map(|c| c.0 != "obama").unwrap_or(true));
    assert_eq!(who[1].as_ref().unwrap().0, "biden");
    // the ledger keeps the student, consent history and the audited receipt
    let v: serde_json::Value =
        serde_json::from_str(&w.store.subject_record(&w.tenant, &sid).await.unwrap()).unwrap();
    assert_eq!(v["consents"].as_array().unwrap().len(), 1);
    let erasure = v["audit"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "biometric_erasure")
        .expect("audited receipt");
    assert_eq!(erasure["actor"], "office:ms-lee");
    assert_eq!(
        erasure["detail"]["templates_removed"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // erasing again removes nothing and says so
    let again = erase_student(
        w.g(),
        &w.store,
        &w.data,
        &w.tenant,
        &sid,
        "office",
        ErasureReason::Request,
        Utc::now(),
    )
    .await
    .unwrap();
    assert!(again.gallery.templates_removed.is_empty() && again.sealed_templates_removed == 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_templates_rebuild_the_index_identically_and_rotate_keys() {
    let mut w = World::new().await;
    for id in ["obama", "biden", "kit_harington"] {
        w.student(id).await;
        w.consent(id, Utc::now() - Duration::days(1), None).await;
    }
    w.enroll("obama", &["obama/1.jpg"]).await.unwrap();
    w.enroll("biden", &["biden/1.jpg"]).await.unwrap();
    w.enroll(
        "kit_harington",
        &["kit_harington/2.jpg", "kit_harington/3.jpg"],
    )
    .await
    .unwrap();
    let probes = [
        "obama/2.jpg",
        "biden/2.jpg",
        "kit_harington/1.jpg",
        "obama/3.jpg",
    ];
    let before = w.who(&probes).await;
    assert!(before.iter().all(Option::is_some));
    let mut all = vec![];
    for id in ["obama", "biden", "kit_harington"] {
        all.extend(w.vectors_of(id).await);
    }
    let n = all.len();
    assert!(n >= 3, "{n} templates");
    // the database (file and WAL) holds no plaintext vector bytes
    w.store.compact_storage().await.unwrap();
    let db_files: Vec<PathBuf> = files_under(&w.data)
        .into_iter()
        .filter(|f| {
            f.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("rollcall.db")
        })
        .collect();
    assert!(!db_files.is_empty());
    let dump: Vec<u8> = db_files
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect();
    for (_, v) in &all {
        for n in needles(v) {
            assert!(
                !dump.windows(n.len()).any(|x| x == n.as_slice()),
                "plaintext vector bytes in the database"
            );
        }
    }
    // lose the index entirely, rebuild it from the database
    w.gallery = None;
    std::fs::remove_dir_all(w.data.join("gallery")).unwrap();
    w.gallery = Some(
        EmbeddedGallery::open(EmbeddedConfig::new(w.data.join("gallery"), 128))
            .await
            .unwrap(),
    );
    assert!(w.who(&probes).await.iter().all(Option::is_none));
    let r = vault::rebuild_index(&w.keys, &w.store, w.g(), &w.tenant)
        .await
        .unwrap();
    assert_eq!((r.restored, r.students, r.removed_stale), (n, 3, 0));
    let after = w.who(&probes).await;
    assert_eq!(before, after, "rebuild changed search results");
    for (id, v) in &all {
        assert_eq!(&w.g().get(*id).await.unwrap().unwrap().vector, v);
    }
    // a template in the index the database does not know is removed by a rebuild
    let sid = StudentId::new("biden").unwrap();
    w.store
        .delete_sealed_student(&w.tenant, &sid)
        .await
        .unwrap();
    let r = vault::rebuild_index(&w.keys, &w.store, w.g(), &w.tenant)
        .await
        .unwrap();
    assert_eq!((r.restored, r.removed_stale), (n - 1, 1));
    assert!(w
        .g()
        .student_templates(&w.tenant, &sid)
        .await
        .map(|m| m.is_empty())
        .unwrap_or(true));

    // after a crash, reconcile touches only the difference (serve runs it after an unclean
    // exit): in step, nothing; a sealed template missing from the index (killed between
    // sealing and indexing) is indexed from its sealed copy, vector and all; an indexed one
    // without a sealed copy (killed between the two deletions) is removed
    let r = vault::reconcile_index(&w.keys, &w.store, w.g(), &w.tenant)
        .await
        .unwrap();
    assert_eq!((r.restored, r.removed_stale), (0, 0));
    // one of obama's (biden's are gone)
    let obama = w
        .g()
        .student_templates(&w.tenant, &StudentId::new("obama").unwrap())
        .await
        .unwrap();
    let cut = obama[0].template_id;
    let v_cut = w.g().get(cut).await.unwrap().unwrap().vector;
    w.g().delete_templates(&w.tenant, &[cut]).await.unwrap();
    assert!(w.g().get(cut).await.unwrap().is_none());
    let r = vault::reconcile_index(&w.keys, &w.store, w.g(), &w.tenant)
        .await
        .unwrap();
    assert_eq!((r.restored, r.removed_stale, r.students), (1, 0, 1));
    assert_eq!(w.g().get(cut).await.unwrap().unwrap().vector, v_cut);
    let mut orphan = w.g().get(cut).await.unwrap().unwrap();
    orphan.meta.template_id = rollcall_gallery::new_template_id();
    let orphan_id = orphan.meta.template_id;
    w.g().upsert(vec![orphan]).await.unwrap();
    let r = vault::reconcile_index(&w.keys, &w.store, w.g(), &w.tenant)
        .await
        .unwrap();
    assert_eq!((r.restored, r.removed_stale), (0, 1));
    assert!(w.g().get(orphan_id).await.unwrap().is_none());
    assert!(w.g().get(cut).await.unwrap().is_some());

    // rotation: k1 -> k2 (k1 stays listed until every row is resealed)
    let k1 = w.keys.clone();
    let both = Keyring::parse(
        &format!("{},{}", w.k1_entry, Keyring::generate_entry("k2")),
        Some("k2"),
    )
    .unwrap();
    let r = vault::rotate(&both, &w.store, &w.tenant, Utc::now())
        .await
        .unwrap();
    assert_eq!((r.resealed, r.already_current), (n - 1, 0));
    assert!(w
        .store
        .sealed(&w.tenant, None)
        .await
        .unwrap()
        .iter()
        .all(|s| s.key_id == "k2"));
    let again = vault::rotate(&both, &w.store, &w.tenant, Utc::now())
        .await
        .unwrap();
    assert_eq!((again.resealed, again.already_current), (0, n - 1));
    // the old key alone no longer opens anything; the new one rebuilds the same index
    assert!(matches!(
        vault::rebuild_index(&k1, &w.store, w.g(), &w.tenant).await,
        Err(VaultError::UnknownKey(k)) if k == "k2"
    ));
    let r = vault::rebuild_index(&both, &w.store, w.g(), &w.tenant)
        .await
        .unwrap();
    assert_eq!(r.restored, n - 1);
    let after = w.who(&["obama/2.jpg", "kit_harington/1.jpg"]).await;
    assert_eq!(after[0], before[0]);
    assert_eq!(after[1], before[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_what_is_past_its_ttl_and_is_idempotent() {
    let mut w = World::new().await;
    let t0 = Utc::now();
    w.student("obama").await;
    w.consent("obama", t0 - Duration::days(1), None).await;
    w.student("biden").await;
    w.consent(
        "biden",
        t0 - Duration::days(1),
        Some(t0 + Duration::days(10)),
    )
    .await;
    w.enroll("obama", &["obama/1.jpg"]).await.unwrap();
    w.enroll("biden", &["biden/1.jpg"]).await.unwrap();
    w.store.create_campus("main", "Main").await.unwrap();
    let mk = |rel: &str, age_days: i64| {
        let p = w.data.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"jpeg bytes").unwrap();
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified((t0 - Duration::days(age_days)).into())
            .unwrap();
    };
    mk("crops/review/pending.jpg", 0);
    mk("crops/review/decided.jpg", 0);
    mk("crops/review/orphan.jpg", 8);
    mk("crops/unknown/cam1/old.jpg", 8);
    mk("crops/unknown/cam1/new.jpg", 0);
    let item = |key: &str, rel: &str| NewReviewItem {
        campus_id: "main".into(),
        camera_id: None,
        track_key: key.into(),
        seen_at: t0,
        reason: "low margin".into(),
        crop_path: Some(rel.into()),
        // a student without biometric data (biden's erasure below must not take these)
        candidates: vec![ReviewCandidate {
            student_id: "kit".into(),
            score: 0.3,
        }],
    };
    let (pending, _) = w
        .store
        .create_review_item(&item("t1", "crops/review/pending.jpg"))
        .await
        .unwrap();
    let (decided, _) = w
        .store
        .create_review_item(&item("t2", "crops/review/decided.jpg"))
        .await
        .unwrap();
    w.store
        .decide_review(decided, ReviewDecision::Reject, None, "ms-lee")
        .await
        .unwrap();
    let cfg = RetentionConfig::default();
    let run = |now: DateTime<Utc>| {
        let w = &w;
        let cfg = &cfg;
        async move {
            run_retention(w.g(), &w.store, &w.data, &w.tenant, now, cfg)
                .await
                .unwrap()
        }
    };
    let exists = |rel: &str| w.data.join(rel).exists();

    // now: only files older than 7 days
    let r = run(t0).await;
    assert_eq!(
        (
            r.pending_review_images_removed,
            r.decided_review_images_removed,
            r.unreferenced_review_crops_removed,
            r.unknown_crops_removed,
            r.students_erased.len()
        ),
        (0, 0, 1, 1, 0),
        "{r:?}"
    );
    assert!(!exists("crops/review/orphan.jpg") && !exists("crops/unknown/cam1/old.jpg"));
    assert!(exists("crops/review/pending.jpg") && exists("crops/unknown/cam1/new.jpg"));
    // +8 days: the pending review crop and the newer unknown crop
    let r = run(t0 + Duration::days(8)).await;
    assert_eq!(
        (
            r.pending_review_images_removed,
            r.decided_review_images_removed,
            r.unreferenced_review_crops_removed,
            r.unknown_crops_removed,
            r.students_erased.len()
        ),
        (1, 0, 0, 1, 0),
        "{r:?}"
    );
    assert!(!exists("crops/review/pending.jpg") && exists("crops/review/decided.jpg"));
    assert_eq!(w.store.review_item(pending).await.unwrap().crop_path, None);
    // +11 days: biden's consent expired: his biometric data goes
    let r = run(t0 + Duration::days(11)).await;
    assert_eq!(r.students_erased.len(), 1, "{r:?}");
    assert_eq!(r.students_erased[0].student.as_str(), "biden");
    assert_eq!(r.students_erased[0].reason, ErasureReason::NoValidConsent);
    assert_eq!(r.students_erased[0].sealed_templates_removed, 1);
    // +31 days: the decided item's image
    let r = run(t0 + Duration::days(31)).await;
    assert_eq!(
        (r.decided_review_images_removed, r.students_erased.len()),
        (1, 0),
        "{r:?}"
    );
    assert!(!exists("crops/review/decided.jpg"));
    // idempotent
    let again = run(t0 + Duration::days(31)).await;
    assert_eq!(
        (
            again.pending_review_images_removed,
            again.decided_review_images_removed,
            again.unreferenced_review_crops_removed,
            again.unknown_crops_removed,
            again.students_erased.len()
        ),
        (0, 0, 0, 0, 0)
    );
    assert_eq!(w.vectors_of("obama").await.len(), 1);
    // 37 months without attendance: obama's templates go too
    let r = run(t0 + Duration::days(37 * 31)).await;
    assert_eq!(r.students_erased.len(), 1);
    assert_eq!(r.students_erased[0].reason, ErasureReason::Inactive);
    assert!(w.vectors_of("obama").await.is_empty());
    assert!(w.store.sealed(&w.tenant, None).await.unwrap().is_empty());
    w.reopen().await;
    assert!(files_under(&w.data.join("crops"))
        .iter()
        .all(|f| !f.to_string_lossy().contains("/school-a/")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_access_export_has_everything_and_the_photos() {
    let mut w = World::new().await;
    w.student("obama").await;
    w.consent("obama", Utc::now() - Duration::days(1), None)
        .await;
    w.enroll("obama", &["obama/1.jpg", "obama/2.jpg"])
        .await
        .unwrap();
    let sid = StudentId::new("obama").unwrap();
    let out = w.data.parent().unwrap().join("export");
    let r = export_student(w.g(), &w.store, &w.data, &w.tenant, &sid, &out, Utc::now())
        .await
        .unwrap();
    assert!(r.biometric_data_held);
    assert_eq!(r.photos.len(), 2);
    for p in &r.photos {
        assert!(p.starts_with(out.join("photos")) && p.is_file());
    }
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&r.json).unwrap()).unwrap();
    assert_eq!(v["ledger"]["profile"]["id"], "obama");
    assert_eq!(v["ledger"]["guardians"][0]["id"], "obama-g");
    assert_eq!(v["ledger"]["consents"][0]["document_ref"], "form-obama");
    assert_eq!(v["face_recognition_consent"]["status"], "valid");
    assert_eq!(v["biometric"]["held"], true);
    assert_eq!(v["biometric"]["templates"].as_array().unwrap().len(), 2);
    assert_eq!(v["biometric"]["encrypted_copies_in_database"], 2);
    // no vector in the export
    for (_, vec) in w.vectors_of("obama").await {
        assert!(files_containing(&out, &le(&vec[..4])).is_empty());
        assert!(!v.to_string().contains(&format!("{}", vec[0])));
    }
    // after an erasure the export says no biometric data is held
    erase_student(
        w.g(),
        &w.store,
        &w.data,
        &w.tenant,
        &sid,
        "office",
        ErasureReason::Request,
        Utc::now(),
    )
    .await
    .unwrap();
    let out2 = w.data.parent().unwrap().join("export2");
    let r = export_student(w.g(), &w.store, &w.data, &w.tenant, &sid, &out2, Utc::now())
        .await
        .unwrap();
    assert!(!r.biometric_data_held && r.photos.is_empty());
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&r.json).unwrap()).unwrap();
    assert_eq!(v["biometric"]["held"], false);
}

/// Issue 19 item 4: subject-access exports left under `DATA/exports/` (older versions wrote
/// them there; an interrupted export may leave one) hold the enrollment photos: the
/// student's erasure deletes them and lists them on its receipt, another student's stay, and
/// the retention job deletes exports past their time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_and_retention_remove_leftover_exports() {
    let mut w = World::new().await;
    for s in ["obama", "obama-2"] {
        w.student(s).await;
        w.consent(s, Utc::now() - Duration::days(1), None).await;
    }
    w.enroll("obama", &["obama/1.jpg"]).await.unwrap();
    // what the API hands over: the record and the photo in one document, nothing left on disk
    let b = rollcall_gallery::privacy::export_student_bundle(
        w.g(),
        &w.store,
        &w.data,
        &w.tenant,
        &StudentId::new("obama").unwrap(),
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(b["record"]["ledger"]["profile"]["id"], "obama");
    assert_eq!(b["biometric_data_held"], true);
    let photos = b["photos"].as_array().unwrap();
    assert_eq!(photos.len(), 1);
    assert!(photos[0]["jpeg_base64"]
        .as_str()
        .unwrap()
        .starts_with("/9j/"));
    let exports = w.data.join("exports");
    assert!(files_under(&exports).is_empty());
    let mut dirs = Vec::new();
    for (s, t) in [
        ("obama", "20261201T101010.123Z"),
        ("obama", "20261202T101010.123Z"),
        ("obama-2", "20261201T101010.123Z"),
    ] {
        let d = exports.join(format!("{s}-{t}"));
        let sid = StudentId::new(s).unwrap();
        export_student(w.g(), &w.store, &w.data, &w.tenant, &sid, &d, Utc::now())
            .await
            .unwrap();
        dirs.push(d);
    }
    assert!(
        files_under(&dirs[0]).len() >= 2,
        "the export holds the photo"
    );
    let receipt = erase_student(
        w.g(),
        &w.store,
        &w.data,
        &w.tenant,
        &StudentId::new("obama").unwrap(),
        "office",
        ErasureReason::Request,
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(
        receipt.exports_removed,
        vec![
            "exports/obama-20261201T101010.123Z".to_string(),
            "exports/obama-20261202T101010.123Z".to_string()
        ]
    );
    assert!(receipt.complete());
    assert!(!dirs[0].exists() && !dirs[1].exists());
    // another student's export is not touched by this erasure
    assert!(dirs[2].is_dir());
    // retention: a day old at the next run (by its newest file), then gone
    let cfg = RetentionConfig::default();
    let r = run_retention(w.g(), &w.store, &w.data, &w.tenant, Utc::now(), &cfg)
        .await
        .unwrap();
    assert_eq!(r.exports_removed, 0);
    assert!(dirs[2].is_dir());
    let later = Utc::now() + Duration::days(i64::from(cfg.export_days)) + Duration::minutes(1);
    let r = run_retention(w.g(), &w.store, &w.data, &w.tenant, later, &cfg)
        .await
        .unwrap();
    assert_eq!(r.exports_removed, 1);
    assert!(!dirs[2].exists());
}

/// The ledger, with a guardian's withdrawal recorded right after enrollment's first consent
/// check (as if the office recorded it while the photos were being processed).
struct WithdrawsDuringEnrollment<'a> {
    inner: &'a Store,
    checks: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl rollcall_domain::privacy::ConsentGate for WithdrawsDuringEnrollment<'_> {
    async fn consent_history(
        &self,
        tenant: &TenantId,
        student: &StudentId,
    ) -> Result<Vec<ConsentRecord>, PrivacyStoreError> {
        let n = self
            .checks
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n == 1 {
            let w = ConsentRecord {
                kind: FACE_CONSENT.into(),
                granted: false,
                given_by: format!("{student}-g"),
                at: Utc::now(),
                document_ref: None,
                expires_at: None,
            };
            PrivacyStore::append_consent(self.inner, tenant, student, &w).await?;
        }
        rollcall_domain::privacy::ConsentGate::consent_history(self.inner, tenant, student).await
    }
}

/// Everything else goes to the ledger unchanged.
#[async_trait::async_trait]
impl PrivacyStore for WithdrawsDuringEnrollment<'_> {
    async fn append_consent(
        &self,
        tenant: &TenantId,
        student: &StudentId,
        record: &ConsentRecord,
    ) -> Result<(), PrivacyStoreError> {
        PrivacyStore::append_consent(self.inner, tenant, student, record).await
    }
    async fn put_sealed(
        &self,
        rows: &[rollcall_domain::privacy::SealedTemplate],
    ) -> Result<(), PrivacyStoreError> {
        PrivacyStore::put_sealed(self.inner, rows).await
    }
    async fn sealed(
        &self,
        tenant: &TenantId,
        student: Option<&StudentId>,
    ) -> Result<Vec<rollcall_domain::privacy::SealedTemplate>, PrivacyStoreError> {
        PrivacyStore::sealed(self.inner, tenant, student).await
    }
    async fn delete_sealed_student(
        &self,
        tenant: &TenantId,
        student: &StudentId,
    ) -> Result<usize, PrivacyStoreError> {
        PrivacyStore::delete_sealed_student(self.inner, tenant, student).await
    }
    async fn delete_sealed_ids(
        &self,
        tenant: &TenantId,
        ids: &[TemplateId],
    ) -> Result<usize, PrivacyStoreError> {
        PrivacyStore::delete_sealed_ids(self.inner, tenant, ids).await
    }
    async fn compact(&self) -> Result<String, PrivacyStoreError> {
        PrivacyStore::compact(self.inner).await
    }
    async fn last_activity(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<(StudentId, DateTime<Utc>)>, PrivacyStoreError> {
        PrivacyStore::last_activity(self.inner, tenant).await
    }
    async fn audit_privacy(
        &self,
        tenant: &TenantId,
        actor: &str,
        action: &str,
        student: &StudentId,
        detail: &str,
        at: DateTime<Utc>,
    ) -> Result<(), PrivacyStoreError> {
        PrivacyStore::audit_privacy(self.inner, tenant, actor, action, student, detail, at).await
    }
    async fn stored_images(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<rollcall_domain::privacy::StoredImage>, PrivacyStoreError> {
        PrivacyStore::stored_images(self.inner, tenant).await
    }
    async fn forget_images(
        &self,
        tenant: &TenantId,
        paths: &[String],
    ) -> Result<usize, PrivacyStoreError> {
        PrivacyStore::forget_images(self.inner, tenant, paths).await
    }
    async fn subject_record(
        &self,
        tenant: &TenantId,
        student: &StudentId,
    ) -> Result<String, PrivacyStoreError> {
        PrivacyStore::subject_record(self.inner, tenant, student).await
    }
}

/// Issue 19 item 8: a withdrawal recorded while an enrollment runs (after its first consent
/// check) leaves no template, sealed copy or crop: consent is checked again before sealing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_during_enrollment_leaves_no_template() {
    let w = World::new().await;
    w.student("obama").await;
    w.consent("obama", Utc::now() - Duration::days(1), None)
        .await;
    let store = WithdrawsDuringEnrollment {
        inner: &w.store,
        checks: Default::default(),
    };
    let cfg = EnrollConfig::new(w.data.join("crops"), w.p.lock().await.thresholds());
    let r = enroll::enroll(
        &w.p,
        w.gallery.as_ref().unwrap(),
        &Safeguards {
            store: &store,
            keys: &w.keys,
        },
        &cfg,
        EnrollRequest {
            tenant: w.tenant.clone(),
            student: StudentId::new("obama").unwrap(),
            campuses: vec![],
            photos: vec![photo("obama/1.jpg")],
            now: Utc::now(),
        },
    )
    .await;
    assert!(matches!(r, Err(EnrollError::Consent(_))), "{r:?}");
    assert!(store.checks.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    assert_nothing_stored(&w).await;
}
