//! The conformance suite against the embedded (qdrant-edge) backend. Always runs.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use rollcall_gallery::conformance::{assert_all_passed, run_conformance, GalleryFactory};
use rollcall_gallery::{EmbeddedConfig, EmbeddedGallery, Gallery, GalleryError};

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
