//! Dispatcher benchmark (same as `rollcall notify bench`), without building the whole binary:
//! `cargo run --release -p rollcall-notify --example bench_notify -- [BACKLOG PACED RATE BATCH POLL_MS [DATABASE_URL]]`
//! Default: a scratch SQLite file; with a PostgreSQL URL, a school `bench-<ms>` there.

use rollcall_ledger::Store;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: f64| -> f64 { a.get(i).and_then(|v| v.parse().ok()).unwrap_or(d) };
    let (backlog, paced, rate, batch, poll) = (
        num(0, 2000.0) as usize,
        num(1, 500.0) as usize,
        num(2, 100.0),
        num(3, 32.0) as i64,
        num(4, 20.0) as u64,
    );
    let dir = tempfile::tempdir()?;
    let store = match a.get(5) {
        Some(url) => Store::open(url).await?,
        None => Store::open_data_dir(dir.path()).await?,
    };
    let id = format!("bench-{}", chrono::Utc::now().timestamp_millis());
    let s = store
        .create_school(&id, "Bench", 0, &Default::default())
        .await?;
    let r = rollcall_notify::bench::bench_dispatch(&s, backlog, paced, rate, batch, poll).await?;
    println!("{}", serde_json::to_string_pretty(&r)?);
    store.close().await;
    Ok(())
}
