//! The conformance suite against a Qdrant server, when `QDRANT_URL` (gRPC, e.g.
//! `http://localhost:6334`) is set; `QDRANT_API_KEY` is used when present. Each run uses a
//! fresh collection and deletes it afterwards.

use std::sync::Arc;

use async_trait::async_trait;
use rollcall_gallery::conformance::{assert_all_passed, run_conformance, GalleryFactory};
use rollcall_gallery::{Gallery, GalleryError, RemoteConfig, RemoteGallery};

struct Remote {
    cfg: RemoteConfig,
}

#[async_trait]
impl GalleryFactory for Remote {
    async fn open(&self) -> Result<Arc<dyn Gallery>, GalleryError> {
        Ok(Arc::new(RemoteGallery::connect(self.cfg.clone()).await?))
    }
    fn exclusive(&self) -> bool {
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_backend_passes_conformance() {
    let Ok(url) = std::env::var("QDRANT_URL") else {
        eprintln!("QDRANT_URL not set: skipping the remote conformance run (see services/gallery/README.md)");
        return;
    };
    let name = format!("rollcall_conformance_{}", uuid::Uuid::new_v4().simple());
    let mut cfg = RemoteConfig::new(url, name, 64);
    cfg.api_key = std::env::var("QDRANT_API_KEY").ok();
    let f = Remote { cfg: cfg.clone() };
    let results = run_conformance(&f).await;
    if let Ok(g) = RemoteGallery::connect(cfg).await {
        let _ = g.drop_collection().await;
    }
    assert_all_passed("remote", &results);
}
