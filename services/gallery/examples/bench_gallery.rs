//! `cargo run --release -p rollcall-gallery --example bench_gallery -- [--sizes 1000,10000,100000]
//! [--queries 1000] [--m 16] [--ef-construct 128] [--ef 64] [--dir PATH] [--lean]`
//! Prints the benchmark report as JSON.

use rollcall_gallery::bench::{bench_gallery, serving_footprint, BenchConfig};

fn main() {
    let mut cfg = BenchConfig::default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Child mode: memory needed to serve an existing gallery, in a fresh process.
    if args.first().map(String::as_str) == Some("--footprint") {
        let dir = std::path::PathBuf::from(&args[1]);
        let dim: usize = args[3].parse().expect("dim");
        let queries: usize = args[5].parse().expect("queries");
        let lean = args.iter().any(|a| a == "--lean");
        let f = serving_footprint(&dir, dim, queries, lean).expect("footprint");
        println!("{}", serde_json::to_string(&f).expect("serialisable"));
        return;
    }
    cfg.footprint_exe = std::env::current_exe().ok();
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--sizes" => {
                cfg.sizes = v
                    .split(',')
                    .map(|s| s.trim().parse().expect("size"))
                    .collect()
            }
            "--queries" => cfg.queries = v.parse().expect("queries"),
            "--m" => cfg.hnsw.m = v.parse().expect("m"),
            "--ef-construct" => cfg.hnsw.ef_construct = v.parse().expect("ef-construct"),
            "--ef" => cfg.hnsw.ef_search = v.parse().expect("ef"),
            "--per-student" => cfg.templates_per_student = v.parse().expect("per-student"),
            "--dir" => cfg.dir = Some(v.into()),
            "--lean" => {
                cfg.lean = true;
                i += 1;
                continue;
            }
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    match bench_gallery(&cfg) {
        Ok(r) => println!(
            "{}",
            serde_json::to_string_pretty(&r).expect("serialisable")
        ),
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            std::process::exit(1);
        }
    }
}
