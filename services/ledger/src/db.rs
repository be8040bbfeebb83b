//! One small statement interface ([`Db`]) over the two ways the ledger reaches its database:
//!
//! * [`AnyDb`]: sqlx's `AnyConnection` (PostgreSQL; SQLite everywhere but the check-in path);
//! * [`LiteDb`]: a rusqlite connection to the same SQLite file, used by the check-in path. sqlx
//!   runs SQLite on a worker thread of its own and hands every statement over to it and every
//!   row back, two thread wake-ups per statement; a check-in batch is about a dozen statements,
//!   and on a 2-vCPU machine those wake-ups, not SQLite, were most of its cost (a profile of
//!   `bench ledger` put 60% of the samples in the kernel's context switch and under 2% in
//!   SQLite's VM). Through [`LiteDb`] the whole batch runs on one thread.
//!
//! The check-in code is written once, as `async` code over `&mut dyn Db`. [`LiteDb`]'s methods
//! never wait, so on SQLite that code runs to completion in one poll ([`run_ready`]) inside
//! `spawn_blocking`.
//!
//! Placeholders are PostgreSQL-style `$N` in both (SQLite reads `$N` as a named parameter; both
//! adapters bind argument N to it). A NULL argument is bound as a NULL text value, so it may
//! only stand for a text column on PostgreSQL.

use crate::store::Backend;
use crate::{LedgerError, Result};
use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};
use std::future::Future;

/// `$first, $first+1, …` (`n` placeholders).
pub(crate) fn list_marks(n: usize, first: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `($first, …), (…)`: `rows` rows of `cols` placeholders.
pub(crate) fn values_marks(rows: usize, cols: usize, first: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", list_marks(cols, first + r * cols)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A statement argument.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Null,
    Int(i64),
    Text(String),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_string())
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(v.clone())
    }
}
impl<T: Into<Arg>> From<Option<T>> for Arg {
    fn from(v: Option<T>) -> Self {
        v.map_or(Arg::Null, Into::into)
    }
}
impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Self {
        v.as_deref().map_or(Arg::Null, Into::into)
    }
}

/// A result row.
pub(crate) enum Row {
    Any(AnyRow),
    Lite(Vec<rusqlite::types::Value>),
}

fn column(i: usize, what: &str) -> LedgerError {
    LedgerError::Corrupt(format!("column {i}: expected {what}"))
}

impl Row {
    pub(crate) fn opt_text(&self, i: usize) -> Result<Option<String>> {
        match self {
            Row::Any(r) => Ok(r.try_get::<Option<String>, _>(i)?),
            Row::Lite(v) => match v.get(i) {
                Some(rusqlite::types::Value::Text(s)) => Ok(Some(s.clone())),
                Some(rusqlite::types::Value::Null) => Ok(None),
                _ => Err(column(i, "text")),
            },
        }
    }
    pub(crate) fn text(&self, i: usize) -> Result<String> {
        self.opt_text(i)?.ok_or_else(|| column(i, "text, not NULL"))
    }
    pub(crate) fn int(&self, i: usize) -> Result<i64> {
        match self {
            Row::Any(r) => Ok(r.try_get::<i64, _>(i)?),
            Row::Lite(v) => match v.get(i) {
                Some(rusqlite::types::Value::Integer(n)) => Ok(*n),
                _ => Err(column(i, "integer")),
            },
        }
    }
}

/// Runs statements on one connection (inside the caller's transaction).
#[async_trait]
pub(crate) trait Db: Send {
    fn backend(&self) -> Backend;
    /// Runs `sql` and returns its rows.
    async fn fetch(&mut self, sql: &str, args: Vec<Arg>) -> Result<Vec<Row>>;
    /// Runs `sql`; returns the rows it changed.
    async fn execute(&mut self, sql: &str, args: Vec<Arg>) -> Result<u64>;
}

/// [`Db`] on a sqlx connection.
pub(crate) struct AnyDb<'c>(pub &'c mut AnyConnection);

fn bind_any<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    args: Vec<Arg>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for a in args {
        q = match a {
            Arg::Null => q.bind(None::<String>),
            Arg::Int(v) => q.bind(v),
            Arg::Text(s) => q.bind(s),
        };
    }
    q
}

#[async_trait]
impl Db for AnyDb<'_> {
    fn backend(&self) -> Backend {
        if self.0.backend_name() == "PostgreSQL" {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
    async fn fetch(&mut self, sql: &str, args: Vec<Arg>) -> Result<Vec<Row>> {
        let rows = bind_any(sqlx::query(sql), args)
            .fetch_all(&mut *self.0)
            .await?;
        Ok(rows.into_iter().map(Row::Any).collect())
    }
    async fn execute(&mut self, sql: &str, args: Vec<Arg>) -> Result<u64> {
        Ok(bind_any(sqlx::query(sql), args)
            .execute(&mut *self.0)
            .await?
            .rows_affected())
    }
}

/// [`Db`] on a rusqlite connection: every call completes without waiting.
pub(crate) struct LiteDb<'c>(pub &'c mut rusqlite::Connection);

impl LiteDb<'_> {
    fn prepared(&self, sql: &str, args: Vec<Arg>) -> Result<rusqlite::CachedStatement<'_>> {
        let mut st = self.0.prepare_cached(sql).map_err(lite)?;
        for i in 1..=st.parameter_count() {
            let n: usize = st
                .parameter_name(i)
                .and_then(|n| n.strip_prefix('$'))
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| LedgerError::Corrupt(format!("placeholder {i} of {sql:?}")))?;
            let a = args
                .get(n - 1)
                .ok_or_else(|| LedgerError::Corrupt(format!("no argument ${n} for {sql:?}")))?;
            match a {
                Arg::Null => st.raw_bind_parameter(i, rusqlite::types::Null),
                Arg::Int(v) => st.raw_bind_parameter(i, v),
                Arg::Text(s) => st.raw_bind_parameter(i, s),
            }
            .map_err(lite)?;
        }
        Ok(st)
    }
}

pub(crate) fn lite(e: rusqlite::Error) -> LedgerError {
    LedgerError::Sqlite(e.to_string())
}

#[async_trait]
impl Db for LiteDb<'_> {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }
    async fn fetch(&mut self, sql: &str, args: Vec<Arg>) -> Result<Vec<Row>> {
        let mut st = self.prepared(sql, args)?;
        let cols = st.column_count();
        let mut rows = st.raw_query();
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(lite)? {
            let mut v = Vec::with_capacity(cols);
            for i in 0..cols {
                v.push(r.get::<_, rusqlite::types::Value>(i).map_err(lite)?);
            }
            out.push(Row::Lite(v));
        }
        Ok(out)
    }
    async fn execute(&mut self, sql: &str, args: Vec<Arg>) -> Result<u64> {
        let mut st = self.prepared(sql, args)?;
        Ok(st.raw_execute().map_err(lite)? as u64)
    }
}

/// Runs a future that never waits (code over [`LiteDb`]) to completion on this thread.
pub(crate) fn run_ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        // LiteDb never returns Pending; code that awaited anything else here is a bug
        std::task::Poll::Pending => panic!("a SQLite check-in round waited on something"),
    }
}

/// Opens the check-in path's rusqlite connection to the SQLite file of `url`
/// (`sqlite://PATH[?…]`); `None` for an in-memory database (a second connection would see
/// another database), whose check-ins then go through sqlx.
pub(crate) fn open_lite(url: &str) -> Result<Option<rusqlite::Connection>> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path == ":memory:" || url.contains("mode=memory") {
        return Ok(None);
    }
    let c = rusqlite::Connection::open(path).map_err(lite)?;
    c.set_prepared_statement_cache_capacity(512);
    // as the sqlx writer connection: WAL checkpoints are the background checkpointer's job
    c.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
        .map_err(lite)?;
    c.execute_batch(
        "PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON; \
         PRAGMA wal_autocheckpoint=0;",
    )
    .map_err(lite)?;
    Ok(Some(c))
}
