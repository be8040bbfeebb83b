//! The conformance suite against a real Qdrant server: `ROLLCALL_TEST_QDRANT_URL` (exported by
//! `scripts/test.sh`, which starts one), else `QDRANT_URL` (gRPC, e.g. `http://localhost:6334`;
//! `QDRANT_API_KEY` is used when present), else a node started for this test from
//! `../shared/tools/qdrant` (killed at the end). Without any of them the test fails: the remote
//! backend is never skipped. Each run uses a fresh collection and deletes it afterwards.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use rollcall_gallery::{Gallery, GalleryError, RemoteConfig, RemoteGallery};
use rollcall_testkit::gallery::conformance::{assert_all_passed, run_conformance, GalleryFactory};

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

async fn conformance_on(
    server: &rollcall_gallery::server::TestQdrant,
    tune: fn(&mut RemoteConfig),
) {
    let name = format!("rollcall_conformance_{}", uuid::Uuid::new_v4().simple());
    let mut cfg = RemoteConfig::new(server.url(), name, 64);
    cfg.api_key = server.api_key();
    tune(&mut cfg);
    let f = Remote { cfg: cfg.clone() };
    let results = run_conformance(&f).await;
    let existed = rollcall_gallery::remote::delete_collection(&cfg).await;
    assert_all_passed("remote", &results);
    assert!(
        matches!(existed, Ok(Some(_))),
        "the run's collection was not on the server: {existed:?}"
    );
    assert!(!rollcall_gallery::remote::collection_exists(&cfg)
        .await
        .unwrap());
}

fn server() -> rollcall_gallery::server::TestQdrant {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    rollcall_gallery::server::for_tests(&root)
        .unwrap_or_else(|e| panic!("the remote conformance suite needs a Qdrant server: {e}"))
}

/// The default collection settings (originals on disk, int8 copy in RAM, re-scored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_backend_passes_conformance() {
    let s = server();
    conformance_on(&s, |_| {}).await;
}

/// Vectors in RAM, no quantization: the other layout a deployment may choose.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_backend_passes_conformance_with_plain_in_memory_vectors() {
    let s = server();
    conformance_on(&s, |c| {
        c.on_disk_vectors = false;
        c.scalar_quantization = false;
    })
    .await;
}
