//! Test harness (as the ledger's): SQLite in a temporary directory always; PostgreSQL (a fresh
//! database per test, dropped afterwards) when `ROLLCALL_TEST_DATABASE_URL` is set.

#![allow(dead_code)]

use rollcall_domain::ledger::SchoolPolicy;
use rollcall_ledger::Store;
use sqlx::{Connection, Executor};

pub struct Harness {
    pub store: Store,
    /// Opens another handle on the same database (another "process").
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl Harness {
    pub async fn sqlite(policy: SchoolPolicy) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("rollcall.db").display());
        let store = Store::open(&url).await.expect("open sqlite");
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

    /// `None` when `ROLLCALL_TEST_DATABASE_URL` is not set.
    pub async fn postgres(policy: SchoolPolicy) -> Option<Harness> {
        let admin = std::env::var("ROLLCALL_TEST_DATABASE_URL").ok()?;
        sqlx::any::install_default_drivers();
        let db = format!("rn_{}", uuid::Uuid::new_v4().simple());
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
        Some(Harness {
            store,
            url,
            _dir: None,
            pg: Some((admin, db)),
        })
    }

    pub async fn another_handle(&self) -> Store {
        Store::open(&self.url)
            .await
            .expect("second handle")
            .school("acme")
            .await
            .expect("school")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some((admin, db)) = self.pg.take() {
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

/// Defines each test once per backend: `sqlite::NAME` always, `postgres::NAME` when
/// `ROLLCALL_TEST_DATABASE_URL` is set (else it says so and passes).
#[macro_export]
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let h = $crate::common::Harness::sqlite(Default::default()).await;
                    $crate::$name(&h).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    match $crate::common::Harness::postgres(Default::default()).await {
                        Some(h) => $crate::$name(&h).await,
                        None => eprintln!("ROLLCALL_TEST_DATABASE_URL not set: PostgreSQL run skipped"),
                    }
                }
            )*
        }
    };
}
