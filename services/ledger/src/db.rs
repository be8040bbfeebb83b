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

use crate::{LedgerError, Result};
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};
use std::future::Future;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A time as stored: milliseconds since the Unix epoch.
pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// A stored time (milliseconds since the Unix epoch) back as a time.
pub(crate) fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

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
    /// A row of a composed statement ([`Db::fetch_many`] on PostgreSQL): every column as text.
    Texts(Vec<Option<String>>),
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
            Row::Texts(v) => v.get(i).cloned().ok_or_else(|| column(i, "a column")),
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
            Row::Texts(v) => v
                .get(i)
                .and_then(|t| t.as_deref())
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| column(i, "integer")),
        }
    }
}

/// One statement of [`Db::fetch_many`]: its text (placeholders `$1…`), arguments, and the
/// number of columns it returns (0: none, e.g. an `INSERT` without `RETURNING`).
pub(crate) struct Stmt {
    pub sql: String,
    pub args: Vec<Arg>,
    pub cols: usize,
}

impl Stmt {
    pub(crate) fn new(sql: impl Into<String>, args: Vec<Arg>, cols: usize) -> Stmt {
        Stmt {
            sql: sql.into(),
            args,
            cols,
        }
    }
}

/// `sql` with every placeholder `$N` outside quotes renumbered `$N+by`.
pub(crate) fn shift_marks(sql: &str, by: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) => {
                let mut n = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    n.push(d);
                    chars.next();
                }
                let n: usize = n.parse().unwrap_or(0);
                out.push_str(&format!("${}", n + by));
            }
            None => out.push(c),
        }
    }
    out
}

/// Independent statements as one PostgreSQL statement: each becomes a `WITH` query
/// (`INSERT … RETURNING` and `SELECT … FOR UPDATE` included) and their rows come back
/// through one `UNION ALL`, column 0 telling which statement a row belongs to and the others
/// cast to text. All of them run on one snapshot, so none may need to see another's writes.
pub(crate) fn compose(stmts: Vec<Stmt>) -> (String, Vec<Arg>) {
    let width = stmts.iter().map(|s| s.cols).max().unwrap_or(0);
    let mut with = Vec::with_capacity(stmts.len());
    let mut selects = Vec::with_capacity(stmts.len());
    let mut args = Vec::new();
    for (k, s) in stmts.into_iter().enumerate() {
        let sql = shift_marks(&s.sql, args.len());
        args.extend(s.args);
        if s.cols == 0 {
            // a data-modifying WITH query runs whether or not it is read
            with.push(format!("q{k} AS ({sql})"));
            continue;
        }
        let names = (0..s.cols).map(|c| format!("c{c}")).collect::<Vec<_>>();
        with.push(format!("q{k} ({}) AS ({sql})", names.join(", ")));
        let cols = (0..width)
            .map(|c| {
                if c < s.cols {
                    format!("CAST(q{k}.c{c} AS TEXT)")
                } else {
                    "CAST(NULL AS TEXT)".into()
                }
            })
            .collect::<Vec<_>>();
        selects.push(format!(
            "SELECT CAST({k} AS BIGINT), {} FROM q{k}",
            cols.join(", ")
        ));
    }
    if selects.is_empty() {
        selects.push("SELECT CAST(0 AS BIGINT) WHERE FALSE".into());
    }
    (
        format!("WITH {} {}", with.join(", "), selects.join(" UNION ALL ")),
        args,
    )
}

/// Runs statements on one connection (inside the caller's transaction).
#[async_trait]
pub(crate) trait Db: Send {
    fn backend(&self) -> Backend;
    /// Runs `sql` and returns its rows.
    async fn fetch(&mut self, sql: &str, args: Vec<Arg>) -> Result<Vec<Row>>;
    /// Runs `sql`; returns the rows it changed.
    async fn execute(&mut self, sql: &str, args: Vec<Arg>) -> Result<u64>;
    /// Runs statements that do not depend on each other (none reads what another writes)
    /// and returns the rows of each. One after the other here; one round trip on PostgreSQL.
    async fn fetch_many(&mut self, stmts: Vec<Stmt>) -> Result<Vec<Vec<Row>>> {
        fetch_each(self, stmts).await
    }
}

/// [`Db::fetch_many`] one statement after the other.
async fn fetch_each<D: Db + ?Sized>(db: &mut D, stmts: Vec<Stmt>) -> Result<Vec<Vec<Row>>> {
    let mut out = Vec::with_capacity(stmts.len());
    for s in stmts {
        out.push(db.fetch(&s.sql, s.args).await?);
    }
    Ok(out)
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
    async fn fetch_many(&mut self, stmts: Vec<Stmt>) -> Result<Vec<Vec<Row>>> {
        let n = stmts.len();
        if self.backend() != Backend::Postgres || n < 2 {
            return fetch_each(self, stmts).await;
        }
        let width = stmts.iter().map(|s| s.cols).max().unwrap_or(0);
        let (sql, args) = compose(stmts);
        let mut out: Vec<Vec<Row>> = (0..n).map(|_| Vec::new()).collect();
        for r in self.fetch(&sql, args).await? {
            let k = usize::try_from(r.int(0)?)
                .ok()
                .filter(|&k| k < n)
                .ok_or_else(|| {
                    LedgerError::Corrupt("composed statement: row of no query".into())
                })?;
            let cols = (1..=width)
                .map(|c| r.opt_text(c))
                .collect::<Result<Vec<_>>>()?;
            out[k].push(Row::Texts(cols));
        }
        Ok(out)
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
    let code = match &e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.extended_code.to_string()),
        _ => None,
    };
    match crate::db_code_class(code.as_deref()) {
        crate::ErrorClass::Transient => LedgerError::Busy(e.to_string()),
        crate::ErrorClass::Unavailable => LedgerError::Unavailable(e.to_string()),
        crate::ErrorClass::Permanent => LedgerError::Sqlite(e.to_string()),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_marks_renumbers_placeholders_outside_quotes() {
        assert_eq!(
            shift_marks("SELECT $1, '$2', \"$3\", $10 FROM t WHERE a = $2", 5),
            "SELECT $6, '$2', \"$3\", $15 FROM t WHERE a = $7"
        );
        assert_eq!(
            shift_marks("a = 'it''s $1' AND b = $1 AND c = '$'", 1),
            "a = 'it''s $1' AND b = $2 AND c = '$'"
        );
    }

    #[test]
    fn compose_numbers_each_statement_after_the_ones_before() {
        let (sql, args) = compose(vec![
            Stmt::new("SELECT a FROM t WHERE x = $1", vec![1.into()], 1),
            Stmt::new("INSERT INTO u VALUES ($1, $2)", vec![2.into(), 3.into()], 0),
            Stmt::new("SELECT b, c FROM v WHERE y = $1", vec![4.into()], 2),
        ]);
        assert_eq!(
            args,
            vec![Arg::Int(1), Arg::Int(2), Arg::Int(3), Arg::Int(4)]
        );
        assert_eq!(
            sql,
            "WITH q0 (c0) AS (SELECT a FROM t WHERE x = $1), q1 AS (INSERT INTO u VALUES ($2, $3)), \
             q2 (c0, c1) AS (SELECT b, c FROM v WHERE y = $4) \
             SELECT CAST(0 AS BIGINT), CAST(q0.c0 AS TEXT), CAST(NULL AS TEXT) FROM q0 UNION ALL \
             SELECT CAST(2 AS BIGINT), CAST(q2.c0 AS TEXT), CAST(q2.c1 AS TEXT) FROM q2"
        );
    }
}
