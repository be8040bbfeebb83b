//! The conformance suite against the embedded (qdrant-edge) backend. Always runs.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use rollcall_gallery::{EmbeddedConfig, EmbeddedGallery, Gallery, GalleryError};
use rollcall_testkit::gallery::conformance::{assert_all_passed, run_conformance, GalleryFactory};

struct Embedded {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

fn files_under(p: &std::path::Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(p).unwrap().flatten() {
        let path = e.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[async_trait]
impl GalleryFactory for Embedded {
    async fn open(&self) -> Result<Arc<dyn Gallery>, GalleryError> {
        Ok(Arc::new(
            EmbeddedGallery::open(EmbeddedConfig::new(&self.dir, 64)).await?,
        ))
    }
    fn exclusive(&self) -> bool {
        true
    }
    async fn storage_contains(&self, needle: &[u8]) -> Option<bool> {
        let mut files = vec![];
        files_under(&self.dir, &mut files);
        Some(files.iter().any(|f| {
            let data = std::fs::read(f).unwrap_or_default();
            data.windows(needle.len()).any(|w| w == needle)
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_backend_passes_conformance() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("gallery");
    let f = Embedded { _tmp: tmp, dir };
    let results = run_conformance(&f).await;
    assert!(results.len() > 10, "suite did not run: {results:?}");
    assert_all_passed("embedded", &results);
}

/// A deterministic unit vector per seed (the crate's synthetic-template generator).
fn unit(dim: usize, seed: u64) -> Vec<f32> {
    rollcall_testkit::gallery::synth::Synth::new(seed, dim, 0.0).centre()
}

fn template(i: u128, student: &str, vector: Vec<f32>) -> rollcall_gallery::Template {
    use rollcall_domain::{StudentId, TenantId};
    use rollcall_gallery::{TemplateId, TemplateMeta};
    rollcall_gallery::Template {
        meta: TemplateMeta {
            template_id: TemplateId::from_u128(i),
            student: StudentId::new(student).unwrap(),
            tenant: TenantId::new("school").unwrap(),
            campuses: vec![],
            model_id: "m".into(),
            model_version: "1".into(),
            quality: 0.9,
            created_at: chrono::Utc::now(),
        },
        vector,
    }
}

fn closed_wal_segments(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("shard/wal"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("closed-"))
        .count()
}

/// Opening the gallery deletes the WAL's closed segments but the newest, and nothing is lost
/// by it: every template is still there after each reopen, and updates and deletions made
/// after a trimmed open still win over what the older segments held (the operation numbers
/// continue from the kept segment, so segments never see a later change as stale).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_trimmed_on_open_keeps_every_template_and_later_changes_win() {
    use rollcall_domain::{StudentId, TenantId};
    use rollcall_gallery::SearchQuery;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("gallery");
    let dim = 64;
    let mut cfg = EmbeddedConfig::new(&dir, dim);
    cfg.wal_segment_bytes = 64 * 1024; // many small WAL segments
    let tenant = TenantId::new("school").unwrap();
    let open = || EmbeddedGallery::open(cfg.clone());
    {
        let g = open().await.unwrap();
        for b in 0..20u128 {
            let batch: Vec<_> = (0..50u128)
                .map(|i| {
                    let n = b * 50 + i + 1;
                    template(n, &format!("s{n}"), unit(dim, n as u64))
                })
                .collect();
            g.upsert(batch).await.unwrap();
        }
        assert_eq!(
            g.count(&rollcall_gallery::CountScope::all()).await.unwrap(),
            1000
        );
    }
    assert!(
        closed_wal_segments(&dir) > 3,
        "the test needs several closed WAL segments"
    );
    let moved = unit(dim, 999_999);
    {
        let g = open().await.unwrap();
        assert_eq!(
            closed_wal_segments(&dir),
            1,
            "closed segments but the newest deleted"
        );
        assert_eq!(
            g.count(&rollcall_gallery::CountScope::all()).await.unwrap(),
            1000
        );
        // every template is found as its own nearest neighbour
        for n in [1u64, 77, 500, 1000] {
            let hits = g
                .search(&SearchQuery::new(tenant.clone(), unit(dim, n), 1))
                .await
                .unwrap();
            assert_eq!(hits[0].meta.student.as_str(), format!("s{n}"));
        }
        // changes after the trimmed open: template 1 moves, student s2 is deleted
        g.upsert(vec![template(1, "s1", moved.clone())])
            .await
            .unwrap();
        g.delete_student(&tenant, &StudentId::new("s2").unwrap())
            .await
            .unwrap();
    }
    let g = open().await.unwrap();
    assert_eq!(
        g.count(&rollcall_gallery::CountScope::all()).await.unwrap(),
        999
    );
    let hits = g
        .search(&SearchQuery::new(tenant.clone(), moved, 1))
        .await
        .unwrap();
    assert_eq!(hits[0].meta.student.as_str(), "s1");
    assert!(hits[0].similarity > 0.999, "the update after the trim won");
    let hits = g
        .search(&SearchQuery::new(tenant.clone(), unit(dim, 2), 1))
        .await
        .unwrap();
    assert_ne!(
        hits[0].meta.student.as_str(),
        "s2",
        "the deletion after the trim won"
    );
}
