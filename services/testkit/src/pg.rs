//! PostgreSQL scratch databases: one per test, dropped when the handle is.
//!
//! The server comes from `ROLLCALL_TEST_DATABASE_URL` (an administrator's URL: it creates
//! databases), default `postgres://postgres@127.0.0.1:5432/test`. No server fails the test
//! with what to set: a PostgreSQL run is never skipped.

use sqlx::{Connection, Executor};

/// The default when `ROLLCALL_TEST_DATABASE_URL` is not set.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// `ROLLCALL_TEST_DATABASE_URL`, else [`DEFAULT_ADMIN_URL`].
pub fn admin_url() -> String {
    match std::env::var("ROLLCALL_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => DEFAULT_ADMIN_URL.into(),
    }
}

/// A database of its own on the test server (`<prefix>_<uuid>`), dropped (`WITH (FORCE)`)
/// when this is.
pub struct ScratchDb {
    admin: String,
    name: String,
    url: String,
}

impl ScratchDb {
    /// Creates the database; panics with what to set when the server cannot be reached.
    pub async fn create(prefix: &str) -> ScratchDb {
        sqlx::any::install_default_drivers();
        let admin = admin_url();
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut c = sqlx::AnyConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL for tests at {admin}: {e} (set ROLLCALL_TEST_DATABASE_URL to a server where this user may create databases)"
            )
        });
        c.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap_or_else(|e| panic!("create database {name} on {admin}: {e}"));
        c.close().await.ok();
        let (base, _) = admin
            .split('?')
            .next()
            .unwrap_or(&admin)
            .rsplit_once('/')
            .expect("ROLLCALL_TEST_DATABASE_URL: a database URL with a path");
        let url = format!("{base}/{name}");
        ScratchDb { admin, name, url }
    }

    /// The scratch database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let (admin, db) = (self.admin.clone(), self.name.clone());
        // Drop cannot await, and may run inside a runtime: a thread with a runtime of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
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

/// Runs `sql` on a connection of its own to `url` (behind a store's back).
pub async fn execute(url: &str, sql: &str) {
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    c.execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    c.close().await.ok();
}
