//! Enrollment, identification and erasure with the real models, the real photos in
//! ../shared/fixtures and the embedded qdrant-edge gallery.

use chrono::Utc;
use rollcall_domain::gallery::{Gallery, ModelRef, SearchQuery, Template, TemplateMeta};
use rollcall_domain::{StudentId, TenantId};
use rollcall_gallery::students::{erase, needing_reenrollment};
use rollcall_gallery::{EmbeddedConfig, EmbeddedGallery};
use rollcall_runtime::enrollment::{
    self as enroll, identify, DuplicatePolicy, EnrollConfig, EnrollRequest,
};
use rollcall_testkit::fixtures_dir as fixtures;
use rollcall_vision::decode::{decode_file, DecodeLimits};
use rollcall_vision::{FacePipeline, PipelineConfig};
use std::path::{Path, PathBuf};

/// The ledger of school-a (SQLite next to the gallery) with every student of these tests
/// registered with a guardian's valid consent, and a fresh template key: enrollment needs both.
struct Privacy {
    store: rollcall_ledger::Store,
    keys: rollcall_gallery::vault::Keyring,
}

impl Privacy {
    async fn new(dir: &Path, students: &[&str]) -> Privacy {
        let root = rollcall_ledger::Store::open_data_dir(dir).await.unwrap();
        let store = root
            .create_school("school-a", "School A", 0, &Default::default())
            .await
            .unwrap();
        for s in students {
            store
                .create_student(&rollcall_ledger::NewStudent {
                    id: s.to_string(),
                    name: s.to_string(),
                    home_campus_id: None,
                })
                .await
                .unwrap();
            store
                .add_guardian(&rollcall_ledger::NewGuardian {
                    id: format!("{s}-g"),
                    student_id: s.to_string(),
                    name: "Guardian".into(),
                    phone: None,
                    email: None,
                    language: "en".into(),
                    notify_prefs: String::new(),
                })
                .await
                .unwrap();
            store
                .record_consent_decision(
                    s,
                    &rollcall_domain::privacy::ConsentRecord {
                        kind: rollcall_domain::privacy::FACE_CONSENT.into(),
                        granted: true,
                        given_by: format!("{s}-g"),
                        at: Utc::now() - chrono::Duration::days(1),
                        document_ref: Some("form-1".into()),
                        expires_at: None,
                    },
                )
                .await
                .unwrap();
        }
        let keys = rollcall_gallery::vault::Keyring::parse(
            &rollcall_gallery::vault::Keyring::generate_entry("test"),
            None,
        )
        .unwrap();
        Privacy { store, keys }
    }

    fn guard(&self) -> enroll::Safeguards<'_> {
        enroll::Safeguards {
            store: &self.store,
            keys: &self.keys,
        }
    }
}

fn pipeline() -> FacePipeline {
    FacePipeline::open(&PipelineConfig {
        models_dir: Some(rollcall_testkit::models_dir()),
        ..Default::default()
    })
    .expect("open the default pipeline")
}

fn photo(rel: &str) -> (String, Vec<u8>) {
    let p = fixtures().join(rel);
    (rel.to_string(), std::fs::read(&p).unwrap())
}

fn req(student: &str, photos: Vec<(String, Vec<u8>)>) -> EnrollRequest {
    EnrollRequest {
        tenant: TenantId::new("school-a").unwrap(),
        student: StudentId::new(student).unwrap(),
        campuses: vec![],
        photos,
        now: Utc::now(),
    }
}

const PEOPLE: [&str; 6] = [
    "obama",
    "biden",
    "kit_harington",
    "rose_leslie",
    "alex_lacamoire",
    "lin_manuel_miranda",
];

fn first_photo(person: &str) -> String {
    let dir = fixtures().join("faces").join(person);
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    format!("faces/{person}/{}", v[0])
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_identify_reject_and_erase_on_the_fixtures() {
    let tmp = tempfile::tempdir().unwrap();
    let gdir = tmp.path().join("gallery");
    let crops = tmp.path().join("crops");
    let p = enroll::shared(pipeline());
    let t = p.lock().await.thresholds();
    let cfg = EnrollConfig::new(&crops, t);
    let tenant = TenantId::new("school-a").unwrap();
    let g = EmbeddedGallery::open(EmbeddedConfig::new(&gdir, 128))
        .await
        .unwrap();
    let mut students = PEOPLE.to_vec();
    students.push("newcomer");
    let privacy = Privacy::new(tmp.path(), &students).await;
    let guard = privacy.guard();

    // Enroll one photo per person.
    for who in PEOPLE {
        let r = enroll::enroll(
            &p,
            &g,
            &guard,
            &cfg,
            req(who, vec![photo(&first_photo(who))]),
        )
        .await
        .unwrap();
        assert_eq!(r.enrolled.len(), 1, "{who}: {:?}", r.rejected);
        assert!(r.enrolled[0].crop.is_file());
        assert_eq!(r.templates, 1);
    }

    // Every other photo of each person identifies them first, in the accept band.
    for who in PEOPLE {
        let dir = fixtures().join("faces").join(who);
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if format!(
                "faces/{who}/{}",
                path.file_name().unwrap().to_string_lossy()
            ) == first_photo(who)
            {
                continue;
            }
            let frame = decode_file(&path, &DecodeLimits::default()).unwrap();
            let faces = identify(&p, &g, &frame, &tenant, None, 3, &t)
                .await
                .unwrap();
            let best = faces
                .iter()
                .max_by(|a, b| (a.bbox[2] - a.bbox[0]).total_cmp(&(b.bbox[2] - b.bbox[0])))
                .unwrap();
            assert_eq!(
                best.candidates[0].student.as_str(),
                who,
                "{}: {:?}",
                path.display(),
                best.candidates
            );
            assert_eq!(best.decision, "accept", "{}: {best:?}", path.display());
        }
    }

    // Rejections with reasons: several faces, not an image, duplicate of another student.
    let r = enroll::enroll(
        &p,
        &g,
        &guard,
        &cfg,
        req(
            "newcomer",
            vec![
                photo("groups/two_people.jpg"),
                ("notes.jpg".into(), b"not an image at all".to_vec()),
                photo("faces/obama/2.jpg"),
            ],
        ),
    )
    .await
    .unwrap();
    let codes: Vec<&str> = r.rejected.iter().map(|x| x.code.as_str()).collect();
    assert_eq!(
        codes,
        ["several_faces", "not_an_image", "possible_duplicate"],
        "{r:?}"
    );
    assert_eq!(r.duplicates[0].other_student.as_str(), "obama");
    assert!(r.enrolled.is_empty());
    // With the flag policy the duplicate is enrolled and reported.
    let mut flag = cfg.clone();
    flag.duplicates = DuplicatePolicy::Flag;
    let r = enroll::enroll(
        &p,
        &g,
        &guard,
        &flag,
        req("newcomer", vec![photo("faces/obama/2.jpg")]),
    )
    .await
    .unwrap();
    assert_eq!(r.enrolled.len(), 1);
    assert!(!r.duplicates[0].refused);
    // The same student adding photos of themselves is not a duplicate.
    let r = enroll::enroll(
        &p,
        &g,
        &guard,
        &cfg,
        req("biden", vec![photo("faces/biden/2.jpg")]),
    )
    .await
    .unwrap();
    assert_eq!(r.enrolled.len(), 1, "{r:?}");
    assert_eq!(r.templates, 2);

    // The template cap keeps the best.
    let mut capped = cfg.clone();
    capped.max_templates = 2;
    let r = enroll::enroll(
        &p,
        &g,
        &guard,
        &capped,
        req(
            "kit_harington",
            vec![
                photo("faces/kit_harington/2.jpg"),
                photo("faces/kit_harington/3.jpg"),
            ],
        ),
    )
    .await
    .unwrap();
    assert_eq!(r.templates, 2, "{r:?}");

    // Erasure: nothing left, and still nothing after a reopen.
    let obama = StudentId::new("obama").unwrap();
    let before = g.student_templates(&tenant, &obama).await.unwrap();
    assert_eq!(before.len(), 1);
    let receipt = erase(&g, &crops, &tenant, &obama, Utc::now())
        .await
        .unwrap();
    assert_eq!(receipt.templates_removed.len(), 1);
    assert_eq!(receipt.crop_files_removed, 1);
    assert_eq!(receipt.templates_remaining, 0);
    drop(g);
    let g = EmbeddedGallery::open(EmbeddedConfig::new(&gdir, 128))
        .await
        .unwrap();
    assert!(g.get(before[0].template_id).await.unwrap().is_none());
    let frame = decode_file(
        &fixtures().join("faces/obama/3.jpg"),
        &DecodeLimits::default(),
    )
    .unwrap();
    let faces = identify(&p, &g, &frame, &tenant, None, 5, &t)
        .await
        .unwrap();
    assert!(faces
        .iter()
        .all(|f| f.candidates.iter().all(|c| c.student != obama)));
    assert!(files_under(&crops)
        .iter()
        .all(|f| !f.to_string_lossy().contains("/obama/")));
    // Erasing again is a no-op with a receipt.
    let again = erase(&g, &crops, &tenant, &obama, Utc::now())
        .await
        .unwrap();
    assert!(again.templates_removed.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_of_another_model_are_reported_and_never_searched() {
    let tmp = tempfile::tempdir().unwrap();
    let p = enroll::shared(pipeline());
    let t = p.lock().await.thresholds();
    let g = EmbeddedGallery::open(EmbeddedConfig::new(tmp.path().join("g"), 128))
        .await
        .unwrap();
    let tenant = TenantId::new("school-a").unwrap();
    // A template made by an older model version, with this model's vector of the same face.
    let frame = decode_file(
        &fixtures().join("faces/obama/1.jpg"),
        &DecodeLimits::default(),
    )
    .unwrap();
    let e = p
        .lock()
        .await
        .largest_face(&frame)
        .unwrap()
        .unwrap()
        .observation
        .embedding
        .unwrap();
    g.upsert(vec![Template {
        meta: TemplateMeta {
            template_id: rollcall_gallery::new_template_id(),
            student: StudentId::new("old").unwrap(),
            tenant: tenant.clone(),
            campuses: vec![],
            model_id: e.model_id.clone(),
            model_version: "0-old".into(),
            quality: 0.9,
            created_at: Utc::now(),
        },
        vector: e.vector.clone(),
    }])
    .await
    .unwrap();
    let model = ModelRef::of(&e);
    assert_eq!(
        needing_reenrollment(&g, &tenant, &model).await.unwrap(),
        vec![StudentId::new("old").unwrap()]
    );
    let faces = identify(&p, &g, &frame, &tenant, None, 3, &t)
        .await
        .unwrap();
    assert!(faces[0].candidates.is_empty());
    assert_eq!(faces[0].decision, "unknown");
    // Wrong vector size is a typed error.
    let q = SearchQuery::new(tenant, vec![0.1; 64], 3);
    assert!(matches!(
        g.search(&q).await,
        Err(rollcall_gallery::GalleryError::WrongVectorSize { .. })
    ));
}
