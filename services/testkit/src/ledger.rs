//! The two-backend ledger harness: a school (`acme`, "Acme Tutoring", UTC+1) in a fresh store on
//! SQLite (a temporary directory) or on PostgreSQL (a [`ScratchDb`]), and [`two_backends!`]
//! (crate::two_backends), which defines each test once per backend.

use crate::pg::ScratchDb;
use rollcall_domain::ledger::SchoolPolicy;
use rollcall_ledger::Store;

/// The backends a ledger test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A school's store on a database of its own, removed when the harness is dropped. Derefs to
/// the [`Store`], so a test written against `&Store` takes `&harness`.
pub struct Harness {
    pub store: Store,
    /// The store's database, to open another handle ("another process") or to write behind the
    /// store's back.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<ScratchDb>,
}

impl std::ops::Deref for Harness {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

impl Harness {
    /// A school with `policy` on `backend`.
    pub async fn new(backend: Backend, policy: SchoolPolicy) -> Harness {
        match backend {
            Backend::Sqlite => Self::sqlite(policy).await,
            Backend::Postgres => Self::postgres(policy).await,
        }
    }

    /// SQLite in a temporary directory.
    pub async fn sqlite(policy: SchoolPolicy) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("rollcall.db").display());
        let store = Store::open_data_dir(dir.path()).await.expect("open sqlite");
        Harness {
            store: school(store, &policy).await,
            url,
            _dir: Some(dir),
            _pg: None,
        }
    }

    /// A scratch PostgreSQL database (`ROLLCALL_TEST_DATABASE_URL`; see [`crate::pg`]).
    pub async fn postgres(policy: SchoolPolicy) -> Harness {
        let db = ScratchDb::create("rl").await;
        let url = db.url().to_string();
        let store = Store::open(&url).await.expect("open postgres");
        Harness {
            store: school(store, &policy).await,
            url,
            _dir: None,
            _pg: Some(db),
        }
    }

    /// Another handle on the same school (another "process").
    pub async fn another_handle(&self) -> Store {
        Store::open(&self.url)
            .await
            .expect("second handle")
            .school("acme")
            .await
            .expect("school")
    }

    /// Runs `sql` on a connection of its own, outside the store.
    pub async fn raw(&self, sql: &str) {
        crate::pg::execute(&self.url, sql).await
    }
}

async fn school(store: Store, policy: &SchoolPolicy) -> Store {
    store
        .create_school("acme", "Acme Tutoring", 60, policy)
        .await
        .expect("school")
}

/// Defines each test once per backend, `sqlite::NAME` and `postgres::NAME`: each builds a
/// [`Harness`] (with the policy given after `=>`, else the default one) and calls
/// `NAME(&harness)`, an `async fn` at the test crate's root taking `&Harness` or `&Store`.
#[macro_export]
macro_rules! two_backends {
    ($($name:ident $(=> $policy:expr)?),* $(,)?) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let h = $crate::ledger::Harness::new(
                        $crate::ledger::Backend::Sqlite,
                        $crate::__policy!($($policy)?),
                    )
                    .await;
                    super::$name(&h).await;
                }
            )*
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let h = $crate::ledger::Harness::new(
                        $crate::ledger::Backend::Postgres,
                        $crate::__policy!($($policy)?),
                    )
                    .await;
                    super::$name(&h).await;
                }
            )*
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __policy {
    () => {
        ::core::default::Default::default()
    };
    ($policy:expr) => {
        $policy
    };
}

/// Defines each test once per backend, `sqlite::NAME` and `postgres::NAME`, each calling
/// `NAME(Backend::…)`: for suites that build their own fixture on the backend they are given
/// (the API's server harness).
#[macro_export]
macro_rules! per_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::ledger::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::ledger::Backend::Postgres).await
                }
            )*
        }
    };
}
