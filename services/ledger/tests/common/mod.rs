//! Test harness: the same suite runs on SQLite (temporary directory) and PostgreSQL (a fresh
//! database per test, dropped afterwards). PostgreSQL comes from `ROLLCALL_TEST_DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`).

use rollcall_domain::ledger::SchoolPolicy;
use rollcall_ledger::Store;
use sqlx::{Connection, Executor};

pub struct Harness {
    pub store: Store,
    /// The store's database, for a test that must write behind the store's back.
    #[allow(dead_code)] // not every test binary does
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

fn admin_url() -> String {
    std::env::var("ROLLCALL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

impl Harness {
    pub async fn sqlite(policy: SchoolPolicy) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("rollcall.db").display());
        let store = Store::open_data_dir(dir.path()).await.expect("open sqlite");
        let store = store
            .create_school("acme", "Acme Tutoring", 60, &policy)
            .await
            .expect("school");
        Harness {
            store,
            url,
            _dir: Some(dir),
            pg: None,
        }
    }

    pub async fn postgres(policy: SchoolPolicy) -> Harness {
        sqlx::any::install_default_drivers();
        let admin = admin_url();
        let db = format!("rl_{}", uuid::Uuid::new_v4().simple());
        let mut c = sqlx::AnyConnection::connect(&admin)
            .await
            .expect("PostgreSQL for tests (ROLLCALL_TEST_DATABASE_URL)");
        c.execute(format!("CREATE DATABASE {db}").as_str())
            .await
            .expect("create database");
        c.close().await.ok();
        let (base, _) = admin
            .split('?')
            .next()
            .unwrap_or(&admin)
            .rsplit_once('/')
            .expect("database url with a path");
        let url = format!("{base}/{db}");
        let store = Store::open(&url).await.expect("open postgres");
        let store = store
            .create_school("acme", "Acme Tutoring", 60, &policy)
            .await
            .expect("school");
        Harness {
            store,
            url,
            _dir: None,
            pg: Some((admin, db)),
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some((admin, db)) = self.pg.take() {
            // Drop the database from a separate runtime (Drop cannot await).
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    if let Ok(mut c) = sqlx::AnyConnection::connect(&admin).await {
                        let _ = c
                            .execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str())
                            .await;
                        let _ = c.close().await;
                    }
                });
            })
            .join();
        }
    }
}

impl Harness {
    /// Runs `sql` on a connection of its own, outside the store.
    #[allow(dead_code)] // not every test binary does
    pub async fn raw(&self, sql: &str) {
        sqlx::any::install_default_drivers();
        let mut c = sqlx::AnyConnection::connect(&self.url)
            .await
            .expect("connect");
        c.execute(sql).await.expect("raw statement");
        c.close().await.ok();
    }
}

/// Defines each test once per backend: `sqlite::NAME` and `postgres::NAME`.
#[macro_export]
macro_rules! suite {
    ($($name:ident => $policy:expr),* $(,)?) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let h = $crate::common::Harness::sqlite($policy).await;
                    $crate::$name(&h.store).await;
                }
            )*
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let h = $crate::common::Harness::postgres($policy).await;
                    $crate::$name(&h.store).await;
                }
            )*
        }
    };
}
