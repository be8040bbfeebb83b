//! Bad input and broken environments: locked, corrupt or mismatched data directories, a
//! remote server that is down.

use std::time::{Duration, Instant};

use rollcall_domain::{StudentId, TenantId};
use rollcall_gallery::{
    new_template_id, EmbeddedConfig, EmbeddedGallery, Gallery, GalleryError, RemoteConfig,
    RemoteGallery, SearchQuery, Template, TemplateMeta,
};

fn template(v: Vec<f32>) -> Template {
    Template {
        meta: TemplateMeta {
            template_id: new_template_id(),
            student: StudentId::new("s1").unwrap(),
            tenant: TenantId::new("t").unwrap(),
            campuses: vec![],
            model_id: "m".into(),
            model_version: "1".into(),
            quality: 1.0,
            created_at: chrono::Utc::now(),
        },
        vector: v,
    }
}

async fn filled(dir: &std::path::Path) -> Template {
    let g = EmbeddedGallery::open(EmbeddedConfig::new(dir, 8))
        .await
        .unwrap();
    let t = template(vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5]);
    g.upsert(vec![t.clone()]).await.unwrap();
    t
}

#[tokio::test]
async fn second_open_of_a_locked_directory_names_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("g");
    let g = EmbeddedGallery::open(EmbeddedConfig::new(&dir, 8))
        .await
        .unwrap();
    match EmbeddedGallery::open(EmbeddedConfig::new(&dir, 8)).await {
        Err(e @ GalleryError::Locked { .. }) => {
            assert!(e.to_string().contains(dir.to_str().unwrap()), "{e}");
        }
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("a locked directory was opened twice"),
    }
    drop(g);
    // Released on drop.
    EmbeddedGallery::open(EmbeddedConfig::new(&dir, 8))
        .await
        .unwrap();
}

#[tokio::test]
async fn corrupt_config_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("g");
    filled(&dir).await;
    std::fs::write(dir.join("shard/edge_config.json"), b"{ not json").unwrap();
    match EmbeddedGallery::open(EmbeddedConfig::new(&dir, 8)).await {
        Err(e @ GalleryError::Corrupt { .. }) => {
            assert!(e.to_string().contains(dir.to_str().unwrap()), "{e}")
        }
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("corrupt directory opened"),
    }
}

#[tokio::test]
async fn corrupt_segment_files_are_a_clear_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("g");
    filled(&dir).await;
    let mut n = 0;
    let mut stack = vec![dir.join("shard/segments")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                std::fs::write(&p, b"\x00garbage\xff").unwrap();
                n += 1;
            }
        }
    }
    assert!(n > 0, "no segment metadata found to corrupt");
    match EmbeddedGallery::open(EmbeddedConfig::new(&dir, 8)).await {
        Err(e @ GalleryError::Corrupt { .. }) => {
            assert!(e.to_string().contains(dir.to_str().unwrap()), "{e}")
        }
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("directory with garbage segment files opened"),
    }
}

#[tokio::test]
async fn other_dimension_is_refused_naming_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("g");
    filled(&dir).await;
    match EmbeddedGallery::open(EmbeddedConfig::new(&dir, 16)).await {
        Err(GalleryError::InvalidRequest(m)) => {
            assert!(
                m.contains(dir.to_str().unwrap()) && m.contains("8-d"),
                "{m}"
            )
        }
        Err(e) => panic!("expected InvalidRequest, got {e}"),
        Ok(_) => panic!("opened an 8-d gallery as 16-d"),
    }
}

#[tokio::test]
async fn data_dir_that_is_a_file_is_a_storage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    match EmbeddedGallery::open(EmbeddedConfig::new(&file, 8)).await {
        Err(e @ GalleryError::Storage { .. }) => {
            assert!(e.to_string().contains(file.to_str().unwrap()), "{e}")
        }
        Err(e) => panic!("expected Storage, got {e}"),
        Ok(_) => panic!("opened a file as a directory"),
    }
}

#[tokio::test]
async fn interrupted_purge_is_rolled_back_or_finished_on_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("g");
    let t = filled(&dir).await;
    // Crash while building the new shard: leftovers without the done marker are discarded.
    std::fs::create_dir_all(dir.join("shard.compact-tmp/segments")).unwrap();
    std::fs::write(dir.join("shard.compact-tmp/edge_config.json"), b"partial").unwrap();
    let g = EmbeddedGallery::open(EmbeddedConfig::new(&dir, 8))
        .await
        .unwrap();
    assert!(!dir.join("shard.compact-tmp").exists());
    assert!(g.get(t.meta.template_id).await.unwrap().is_some());
    drop(g);
    // Crash after the swap's first rename: the complete new shard is moved into place.
    std::fs::rename(dir.join("shard"), dir.join("shard.compact-tmp")).unwrap();
    std::fs::create_dir_all(dir.join("shard.compact-old")).unwrap();
    std::fs::write(dir.join("compact.done"), b"").unwrap();
    let g = EmbeddedGallery::open(EmbeddedConfig::new(&dir, 8))
        .await
        .unwrap();
    assert!(g.get(t.meta.template_id).await.unwrap().is_some());
    for leftover in ["shard.compact-tmp", "shard.compact-old", "compact.done"] {
        assert!(!dir.join(leftover).exists(), "{leftover} left behind");
    }
}

#[tokio::test]
async fn bad_vectors_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let g = EmbeddedGallery::open(EmbeddedConfig::new(tmp.path(), 8))
        .await
        .unwrap();
    let e = g
        .upsert(vec![template(vec![f32::NAN; 8])])
        .await
        .unwrap_err();
    assert_eq!(e, GalleryError::InvalidVector);
    let e = g
        .search(&SearchQuery::new(
            TenantId::new("t").unwrap(),
            vec![1.0; 3],
            1,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        GalleryError::WrongVectorSize {
            expected: 8,
            got: 3
        }
    );
}

#[tokio::test]
async fn remote_server_down_gives_a_typed_error_after_bounded_retries() {
    let mut cfg = RemoteConfig::new("http://127.0.0.1:1", "rollcall_test", 8);
    cfg.attempts = 3;
    cfg.backoff = Duration::from_millis(20);
    cfg.connect_timeout = Duration::from_millis(500);
    cfg.timeout = Duration::from_secs(2);
    let t = Instant::now();
    match RemoteGallery::connect(cfg).await {
        Err(e @ GalleryError::Unavailable { attempts: 3, .. }) => {
            assert!(e.is_transient());
            assert!(e.to_string().contains("127.0.0.1:1"), "{e}");
        }
        Err(e) => panic!("expected Unavailable after 3 attempts, got {e:?}"),
        Ok(_) => panic!("connected to a closed port"),
    }
    // Bounded: 3 refused connections and 20 + 40 ms of backoff, not an endless loop.
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
}
