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

/// Child half of `second_process_gets_locked` (run only by it, through `--ignored`).
#[test]
#[ignore = "helper: run as a child process by second_process_gets_locked"]
fn lock_child() {
    let dir = std::env::var("ROLLCALL_LOCK_CHILD_DIR").expect("only run as a child");
    match EmbeddedGallery::open_blocking(EmbeddedConfig::new(&dir, 8)) {
        Err(e @ GalleryError::Locked { .. }) => println!("CHILD-LOCKED: {e}"),
        Err(e) => println!("CHILD-OTHER-ERROR: {e}"),
        Ok(_) => println!("CHILD-OPENED"),
    }
}

#[tokio::test]
async fn second_process_gets_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("g");
    let _g = EmbeddedGallery::open(EmbeddedConfig::new(&dir, 8))
        .await
        .unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["lock_child", "--exact", "--ignored", "--nocapture"])
        .env("ROLLCALL_LOCK_CHILD_DIR", &dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("CHILD-"))
        .unwrap_or_else(|| panic!("child printed nothing: {stdout}"));
    assert!(line.starts_with("CHILD-LOCKED:"), "{line}");
    assert!(line.contains(dir.to_str().unwrap()), "{line}");
}

/// Child half of `acknowledged_write_survives_a_crash`: upserts, then aborts without any
/// destructor running (no final flush).
#[tokio::test]
#[ignore = "helper: run as a child process by acknowledged_write_survives_a_crash"]
async fn crash_child() {
    let dir = std::env::var("ROLLCALL_CRASH_CHILD_DIR").expect("only run as a child");
    let id: rollcall_gallery::TemplateId = std::env::var("ROLLCALL_CRASH_CHILD_ID")
        .unwrap()
        .parse()
        .unwrap();
    let g = EmbeddedGallery::open(EmbeddedConfig::new(&dir, 8))
        .await
        .unwrap();
    let mut t = template(vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    t.meta.template_id = id;
    g.upsert(vec![t]).await.unwrap();
    println!("CHILD-UPSERTED");
    std::process::abort();
}

#[tokio::test]
async fn acknowledged_write_survives_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("g");
    let before = filled(&dir).await; // created and closed normally
    let id = new_template_id();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--ignored", "--nocapture"])
        .env("ROLLCALL_CRASH_CHILD_DIR", &dir)
        .env("ROLLCALL_CRASH_CHILD_ID", id.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("CHILD-UPSERTED"),
        "child did not upsert: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "child was meant to abort");
    let g = EmbeddedGallery::open(EmbeddedConfig::new(&dir, 8))
        .await
        .unwrap();
    let got = g
        .get(id)
        .await
        .unwrap()
        .expect("acknowledged write lost in the crash");
    assert_eq!(got.vector, vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    assert!(g.get(before.meta.template_id).await.unwrap().is_some());
    let hits = g
        .search(&SearchQuery::new(
            TenantId::new("t").unwrap(),
            vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            1,
        ))
        .await
        .unwrap();
    assert_eq!(hits[0].meta.template_id, id);
}
