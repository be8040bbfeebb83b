//! Issue 9's guarantees on the remote backend, against a real Qdrant server (the one
//! `scripts/test.sh` starts, `QDRANT_URL`, or a node started here from
//! `../shared/tools/qdrant`; without any the tests fail): the real models and fixture photos,
//! the SQLite ledger, enrollment and complete erasure through `rollcall_gallery::privacy`, and
//! the server's collection read back with a client of its own (every point, with vectors), not
//! through the gallery under test. The last test runs on a three-node cluster of its own.

use chrono::{Duration, Utc};
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::{vector_output, ScrollPointsBuilder};
use qdrant_client::Qdrant;
use rollcall_domain::gallery::{CountScope, Gallery, SearchQuery, TemplateId};
use rollcall_domain::privacy::{ConsentRecord, FACE_CONSENT};
use rollcall_domain::{StudentId, TenantId};
use rollcall_gallery::privacy::{erase_student, ErasureReason};
use rollcall_gallery::server::{LocalCluster, TestQdrant};
use rollcall_gallery::vault::Keyring;
use rollcall_gallery::{RemoteConfig, RemoteGallery};
use rollcall_ledger::{NewGuardian, NewStudent, Store};
use rollcall_runtime::enrollment::{
    self as enroll, identify, EnrollConfig, EnrollRequest, Safeguards,
};
use rollcall_testkit::fixtures_dir as fixtures;
use rollcall_vision::decode::{decode_file, DecodeLimits};
use rollcall_vision::{FacePipeline, PipelineConfig};
use std::path::PathBuf;

/// Every point of the collection, read with a client of its own: (point id, student payload
/// field, tenant payload field, vector).
type RawPoint = (String, String, String, Vec<f32>);

struct World {
    data: PathBuf,
    schools: Vec<Store>,
    gallery: RemoteGallery,
    cfg: RemoteConfig,
    keys: Keyring,
    p: enroll::SharedPipeline,
    _server: Option<TestQdrant>,
    cluster: Option<LocalCluster>,
    _tmp: tempfile::TempDir,
}

impl World {
    async fn new(schools: &[&str]) -> World {
        let server = rollcall_gallery::server::for_tests(&rollcall_testkit::workspace_root())
            .unwrap_or_else(|e| panic!("the remote privacy tests need a Qdrant server: {e}"));
        let mut cfg = RemoteConfig::new(server.url(), "", 128);
        cfg.api_key = server.api_key();
        Self::with(schools, cfg, Some(server), None).await
    }

    /// On a three-node Qdrant cluster of the test's own (distributed mode, loopback): the
    /// collection in 3 shards with 2 copies each, a write confirmed by 1 copy (the layout
    /// ARCHITECTURE.md's scale-out section chooses), the client given every node, node 0 first.
    async fn on_cluster(schools: &[&str]) -> World {
        let root = rollcall_testkit::workspace_root();
        let cluster = LocalCluster::start(&rollcall_gallery::server::default_binary(&root), 3)
            .unwrap_or_else(|e| panic!("the cluster test needs the Qdrant server binary: {e}"));
        let mut cfg = RemoteConfig::new(cluster.urls_from(0), "", 128);
        cfg.shard_number = Some(3);
        cfg.replication_factor = Some(2);
        cfg.write_consistency_factor = Some(1);
        Self::with(schools, cfg, None, Some(cluster)).await
    }

    async fn with(
        schools: &[&str],
        mut cfg: RemoteConfig,
        server: Option<TestQdrant>,
        cluster: Option<LocalCluster>,
    ) -> World {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let root = Store::open_data_dir(&data).await.unwrap();
        let mut stores = vec![];
        for s in schools {
            stores.push(
                root.create_school(s, s, 0, &Default::default())
                    .await
                    .unwrap(),
            );
        }
        cfg.collection = format!("rollcall_privacy_{}", uuid::Uuid::new_v4().simple());
        let gallery = RemoteGallery::connect(cfg.clone()).await.unwrap();
        let p = FacePipeline::open(&PipelineConfig {
            models_dir: Some(rollcall_testkit::models_dir()),
            ..Default::default()
        })
        .expect("open the default pipeline");
        World {
            data,
            schools: stores,
            gallery,
            cfg,
            keys: Keyring::parse(&Keyring::generate_entry("k1"), None).unwrap(),
            p: enroll::shared(p),
            _server: server,
            cluster,
            _tmp: tmp,
        }
    }

    fn tenant(&self, school: usize) -> TenantId {
        TenantId::new(self.schools[school].school_id()).unwrap()
    }

    /// The student `id` in `school`, with a guardian who consented to face recognition.
    async fn register(&self, school: usize, id: &str) {
        let store = &self.schools[school];
        store
            .create_student(&NewStudent {
                id: id.into(),
                name: id.into(),
                home_campus_id: None,
            })
            .await
            .unwrap();
        store
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
        store
            .record_consent_decision(
                id,
                &ConsentRecord {
                    kind: FACE_CONSENT.into(),
                    granted: true,
                    given_by: format!("{id}-g"),
                    at: Utc::now() - Duration::days(1),
                    document_ref: Some(format!("form-{id}")),
                    expires_at: None,
                },
            )
            .await
            .unwrap();
    }

    async fn enroll(&mut self, school: usize, id: &str, photos: &[&str]) -> Vec<TemplateId> {
        self.register(school, id).await;
        let store = &self.schools[school];
        let cfg = EnrollConfig::new(self.data.join("crops"), self.p.lock().await.thresholds());
        let photos = photos
            .iter()
            .map(|p| {
                (
                    p.to_string(),
                    std::fs::read(fixtures().join("faces").join(p)).unwrap(),
                )
            })
            .collect();
        let r = enroll::enroll(
            &self.p,
            &self.gallery,
            &Safeguards {
                store,
                keys: &self.keys,
            },
            &cfg,
            EnrollRequest {
                tenant: TenantId::new(store.school_id()).unwrap(),
                student: StudentId::new(id).unwrap(),
                campuses: vec![],
                photos,
                now: Utc::now(),
            },
        )
        .await
        .unwrap();
        assert!(!r.enrolled.is_empty(), "{r:?}");
        r.enrolled.iter().map(|e| e.template_id).collect()
    }

    /// Best candidate of the largest face of `photo`, searched in `school`'s gallery.
    async fn who(&mut self, school: usize, photo: &str) -> Option<String> {
        let t = self.p.lock().await.thresholds();
        let frame = decode_file(
            &fixtures().join("faces").join(photo),
            &DecodeLimits::default(),
        )
        .unwrap();
        let tenant = self.tenant(school);
        let faces = identify(&self.p, &self.gallery, &frame, &tenant, None, 3, &t)
            .await
            .unwrap();
        let best = faces
            .iter()
            .max_by(|a, b| (a.bbox[2] - a.bbox[0]).total_cmp(&(b.bbox[2] - b.bbox[0])))
            .unwrap();
        best.candidates.first().map(|c| c.student.to_string())
    }

    /// Every point in the server's collection, through a separate client (of the first node).
    async fn raw_points(&self) -> Vec<RawPoint> {
        self.raw_points_at(&rollcall_gallery::remote::node_urls(&self.cfg.url)[0])
            .await
    }

    /// Every point of the collection as the node at `url` answers.
    async fn raw_points_at(&self, url: &str) -> Vec<RawPoint> {
        let client = Qdrant::from_url(url)
            .api_key(self.cfg.api_key.clone())
            .skip_compatibility_check()
            .build()
            .unwrap();
        let resp = client
            .scroll(
                ScrollPointsBuilder::new(self.cfg.collection.clone())
                    .limit(10_000)
                    .with_payload(true)
                    .with_vectors(true),
            )
            .await
            .unwrap();
        assert!(resp.next_page_offset.is_none());
        resp.result
            .into_iter()
            .map(|p| {
                let id = match p.id.and_then(|i| i.point_id_options) {
                    Some(PointIdOptions::Uuid(u)) => u,
                    Some(PointIdOptions::Num(n)) => n.to_string(),
                    None => String::new(),
                };
                let field = |k: &str| {
                    p.payload
                        .get(k)
                        .and_then(|v| v.clone().into_json().as_str().map(|s| s.to_string()))
                        .unwrap_or_default()
                };
                let vector = match p.vectors.and_then(|v| v.get_vector()) {
                    Some(vector_output::Vector::Dense(d)) => d.data,
                    _ => vec![],
                };
                (id, field("student"), field("tenant"), vector)
            })
            .collect()
    }

    async fn vector_of(&self, id: TemplateId) -> Vec<f32> {
        self.gallery.get(id).await.unwrap().unwrap().vector
    }
}

fn point_id(id: TemplateId) -> String {
    uuid::Uuid::from_u128(id.as_u128()).to_string()
}

fn same_vector(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_leaves_no_point_of_the_student_in_the_qdrant_server() {
    let mut w = World::new(&["school-a"]).await;
    let obama = w.enroll(0, "obama", &["obama/1.jpg", "obama/2.jpg"]).await;
    let biden = w.enroll(0, "biden", &["biden/1.jpg"]).await;
    assert_eq!(obama.len(), 2);
    assert_eq!(w.who(0, "obama/3.jpg").await.as_deref(), Some("obama"));
    assert_eq!(w.who(0, "biden/2.jpg").await.as_deref(), Some("biden"));
    let mut obama_vectors = vec![];
    for id in &obama {
        obama_vectors.push(w.vector_of(*id).await);
    }
    // the raw read sees obama's points before the erasure (so it cannot pass vacuously)
    let before = w.raw_points().await;
    assert_eq!(before.len(), 3);
    for (id, v) in obama.iter().zip(&obama_vectors) {
        let p = before
            .iter()
            .find(|p| p.0 == point_id(*id))
            .expect("obama's point");
        assert_eq!(p.1, "obama");
        assert!(same_vector(&p.3, v));
    }

    let tenant = w.tenant(0);
    let receipt = erase_student(
        &w.gallery,
        &w.schools[0],
        &w.data,
        &tenant,
        &StudentId::new("obama").unwrap(),
        "office:ms-lee",
        ErasureReason::Request,
        Utc::now(),
    )
    .await
    .unwrap();
    assert!(receipt.complete(), "{receipt:?}");
    assert_eq!(receipt.gallery.templates_removed.len(), 2);
    assert_eq!(receipt.sealed_templates_removed, 2);

    // every point left in the server, read without the gallery: biden's only
    let after = w.raw_points().await;
    assert_eq!(
        after.len(),
        1,
        "{:?}",
        after.iter().map(|p| &p.1).collect::<Vec<_>>()
    );
    assert_eq!(after[0].0, point_id(biden[0]));
    assert_eq!(after[0].1, "biden");
    for p in &after {
        assert_ne!(p.1, "obama");
        for v in &obama_vectors {
            assert!(
                !same_vector(&p.3, v),
                "an erased vector is still in the server"
            );
        }
    }
    for id in &obama {
        assert!(w.gallery.get(*id).await.unwrap().is_none());
    }
    assert_eq!(w.gallery.count(&CountScope::all()).await.unwrap(), 1);
    assert_ne!(w.who(0, "obama/3.jpg").await.as_deref(), Some("obama"));
    assert_eq!(w.who(0, "biden/2.jpg").await.as_deref(), Some("biden"));
    rollcall_gallery::remote::delete_collection(&w.cfg)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schools_sharing_one_qdrant_collection_never_see_or_erase_each_other() {
    let mut w = World::new(&["school-a", "school-b"]).await;
    // the same student id in both schools, different photos
    let a = w.enroll(0, "obama", &["obama/1.jpg"]).await;
    let b = w.enroll(1, "obama", &["obama/2.jpg"]).await;
    let kit = w.enroll(1, "kit", &["kit_harington/1.jpg"]).await;
    let (ta, tb) = (w.tenant(0), w.tenant(1));
    let raw = w.raw_points().await;
    assert_eq!(raw.len(), 3);
    assert_eq!(
        raw.iter().filter(|p| p.2 == ta.as_str()).count(),
        1,
        "tenant field of the points"
    );
    // school A's search never returns school B's templates, and the other way round
    let va = w.vector_of(a[0]).await;
    let vk = w.vector_of(kit[0]).await;
    let hits = w
        .gallery
        .search(&SearchQuery::new(ta.clone(), vk.clone(), 5))
        .await
        .unwrap();
    assert!(hits.iter().all(|h| h.meta.tenant == ta), "{hits:?}");
    assert!(hits.iter().all(|h| h.meta.student.as_str() != "kit"));
    let hits = w
        .gallery
        .search(&SearchQuery::new(tb.clone(), va.clone(), 5))
        .await
        .unwrap();
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|h| h.meta.tenant == tb), "{hits:?}");
    assert!(hits.iter().all(|h| h.meta.template_id != a[0]));
    assert_ne!(
        w.who(0, "kit_harington/2.jpg").await.as_deref(),
        Some("kit")
    );
    assert_eq!(
        w.who(1, "kit_harington/2.jpg").await.as_deref(),
        Some("kit")
    );
    let other = TenantId::new("school-c").unwrap();
    assert!(w
        .gallery
        .search(&SearchQuery::new(other.clone(), va.clone(), 5))
        .await
        .unwrap()
        .is_empty());
    assert!(w.gallery.tenant_templates(&other).await.unwrap().is_empty());

    // school B erases its obama: school A's obama is untouched
    let receipt = erase_student(
        &w.gallery,
        &w.schools[1],
        &w.data,
        &tb,
        &StudentId::new("obama").unwrap(),
        "office-b",
        ErasureReason::Request,
        Utc::now(),
    )
    .await
    .unwrap();
    assert!(receipt.complete(), "{receipt:?}");
    assert_eq!(receipt.gallery.templates_removed, b);
    let raw = w.raw_points().await;
    let ids: Vec<&str> = raw.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(raw.len(), 2, "{ids:?}");
    assert!(ids.contains(&point_id(a[0]).as_str()));
    assert!(ids.contains(&point_id(kit[0]).as_str()));
    assert!(!ids.contains(&point_id(b[0]).as_str()));
    assert_eq!(w.who(0, "obama/3.jpg").await.as_deref(), Some("obama"));
    assert_ne!(w.who(1, "obama/3.jpg").await.as_deref(), Some("obama"));
    // a tenant cannot delete another tenant's templates by id
    assert_eq!(w.gallery.delete_templates(&tb, &[a[0]]).await.unwrap(), 0);
    assert!(w.gallery.get(a[0]).await.unwrap().is_some());
    rollcall_gallery::remote::delete_collection(&w.cfg)
        .await
        .unwrap();
}

/// The sealed (canonical) template ids of a tenant and the ids its index holds.
async fn sealed_and_indexed(w: &World, school: usize) -> (Vec<String>, Vec<String>) {
    let tenant = w.tenant(school);
    let mut sealed: Vec<String> =
        rollcall_domain::privacy::PrivacyStore::sealed(&w.schools[school], &tenant, None)
            .await
            .unwrap()
            .iter()
            .map(|s| point_id(s.template_id))
            .collect();
    let mut indexed: Vec<String> = w
        .gallery
        .tenant_templates(&tenant)
        .await
        .unwrap()
        .iter()
        .map(|t| point_id(t.meta.template_id))
        .collect();
    sealed.sort();
    indexed.sort();
    (sealed, indexed)
}

/// Issue 20: a three-node cluster (3 shards × 2 copies, write consistency 1) with the node the
/// client asks first killed by SIGKILL. Identification keeps answering (the client fails over
/// to the next node, the cluster serves every shard from its other copy); enrollment during
/// the outage succeeds, or fails with a clear error and leaves nothing half-written; an index
/// that lost a template meanwhile (a kill between sealing and indexing, simulated by deleting
/// the point) is repaired by the reconciliation pass once the node is back, and the restarted
/// node itself then answers for the whole collection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_node_cluster_with_a_node_killed_keeps_identifying_and_reconciles() {
    let mut w = World::on_cluster(&["school-a"]).await;
    let obama = w.enroll(0, "obama", &["obama/1.jpg", "obama/2.jpg"]).await;
    w.enroll(0, "biden", &["biden/1.jpg"]).await;
    assert_eq!(w.who(0, "obama/3.jpg").await.as_deref(), Some("obama"));
    let node0 = rollcall_gallery::remote::node_urls(&w.cfg.url)[0].clone();
    assert_eq!(w.gallery.preferred_node(), node0);

    // node 0, the one the client asks first, is killed
    w.cluster.as_mut().unwrap().node(0).kill();
    let t0 = std::time::Instant::now();
    assert_eq!(w.who(0, "obama/3.jpg").await.as_deref(), Some("obama"));
    assert_eq!(w.who(0, "biden/2.jpg").await.as_deref(), Some("biden"));
    eprintln!(
        "two identifications with node 0 down: {:?}; now asking {}",
        t0.elapsed(),
        w.gallery.preferred_node()
    );
    assert_ne!(w.gallery.preferred_node(), node0, "the client failed over");

    // enrollment during the outage: succeeds (a write needs one copy of its shard), or fails
    // with a clear error; either way the sealed copy and the index agree for the student
    w.register(0, "kit").await;
    let kit = {
        let store = &w.schools[0];
        let cfg = EnrollConfig::new(w.data.join("crops"), w.p.lock().await.thresholds());
        enroll::enroll(
            &w.p,
            &w.gallery,
            &Safeguards {
                store,
                keys: &w.keys,
            },
            &cfg,
            EnrollRequest {
                tenant: w.tenant(0),
                student: StudentId::new("kit").unwrap(),
                campuses: vec![],
                photos: vec![(
                    "kit/1.jpg".into(),
                    std::fs::read(fixtures().join("faces/kit_harington/1.jpg")).unwrap(),
                )],
                now: Utc::now(),
            },
        )
        .await
    };
    eprintln!(
        "enrollment with node 0 down: {}",
        match &kit {
            Ok(r) => format!("{} template(s)", r.enrolled.len()),
            Err(e) => e.to_string(),
        }
    );
    match &kit {
        Ok(r) => assert_eq!(r.enrolled.len(), 1, "{r:?}"),
        Err(e) => {
            let msg = e.to_string();
            let m = msg.to_lowercase();
            assert!(
                m.contains("gallery") || m.contains("qdrant"),
                "a clear error: {msg}"
            );
        }
    }
    let (sealed, indexed) = sealed_and_indexed(&w, 0).await;
    assert_eq!(sealed, indexed, "nothing half-written during the outage");
    assert_eq!(sealed.len(), if kit.is_ok() { 4 } else { 3 });

    // a template indexed nowhere (a kill between sealing and indexing)
    w.gallery
        .delete_templates(&w.tenant(0), &[obama[0]])
        .await
        .unwrap();
    let (sealed, indexed) = sealed_and_indexed(&w, 0).await;
    assert_eq!(sealed.len(), indexed.len() + 1);

    // node 0 comes back on its storage and rejoins; reconciliation repairs the index
    {
        let c = w.cluster.as_mut().unwrap();
        c.node(0).restart().expect("node 0 restarts");
        c.wait_peers(std::time::Duration::from_secs(60))
            .expect("node 0 rejoins the cluster");
    }
    let r =
        rollcall_gallery::vault::reconcile_index(&w.keys, &w.schools[0], &w.gallery, &w.tenant(0))
            .await
            .unwrap();
    assert_eq!((r.restored, r.removed_stale), (1, 0), "{r:?}");
    let (sealed, indexed) = sealed_and_indexed(&w, 0).await;
    assert_eq!(sealed, indexed);
    assert_eq!(
        w.who(0, "kit_harington/2.jpg").await.as_deref(),
        kit.as_ref().ok().map(|_| "kit")
    );
    // the restarted node answers for the whole collection once its copies are recovered
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let mut at0: Vec<String> = w
            .raw_points_at(&node0)
            .await
            .into_iter()
            .map(|p| p.0)
            .collect();
        at0.sort();
        if at0 == sealed {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node 0 answers with {at0:?}, sealed {sealed:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    rollcall_gallery::remote::delete_collection(&w.cfg)
        .await
        .unwrap();
}
