//! Benchmark of the embedded gallery against exact brute force, on clustered synthetic
//! templates (a few noisy templates around each synthetic student's centre).
//!
//! For each size: insert rate (upserts of 1000 + flush), index build time (optimiser: HNSW),
//! search latency p50/p99 through the gallery (tenant filter, top-5, engine call without the
//! async hop), brute-force latency p50/p99 (exact dot products over every template, same
//! queries, same run), recall@1 (the gallery's first template equals brute force's), and
//! memory: resident-set growth from `/proc/self/status` and bytes on disk.

use std::path::PathBuf;
use std::time::Instant;

use rollcall_domain::face::dot;
use rollcall_domain::gallery::{GalleryError, SearchQuery, Template, TemplateId, TemplateMeta};
use rollcall_domain::{StudentId, TenantId};
use serde::{Deserialize, Serialize};

use crate::embedded::{EmbeddedConfig, EmbeddedGallery, HnswParams};
use crate::synth::Synth;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchConfig {
    /// Numbers of templates, e.g. `[1_000, 10_000, 100_000]` (1M on request: slow to build).
    pub sizes: Vec<usize>,
    pub dim: usize,
    pub templates_per_student: usize,
    /// Timed queries per size.
    pub queries: usize,
    pub top_k: usize,
    pub hnsw: HnswParams,
    pub indexing_threshold_kb: usize,
    /// Noise per coordinate, see [`Synth::sigma`].
    pub sigma: f32,
    pub seed: u64,
    /// Where the temporary galleries go (default: the system temp dir).
    pub dir: Option<PathBuf>,
}

impl Default for BenchConfig {
    fn default() -> Self {
        let dim = 128;
        Self {
            sizes: vec![1_000, 10_000, 100_000],
            dim,
            templates_per_student: 4,
            queries: 1000,
            top_k: 5,
            hnsw: HnswParams::default(),
            indexing_threshold_kb: 1000,
            sigma: 0.6 / (dim as f32).sqrt(),
            seed: 42,
            dir: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
    pub max_us: f64,
}

impl Latency {
    fn of(mut us: Vec<f64>) -> Self {
        us.sort_by(|a, b| a.total_cmp(b));
        let pick = |p: f64| us[((p / 100.0) * (us.len() - 1) as f64).round() as usize];
        Latency {
            p50_us: pick(50.0),
            p99_us: pick(99.0),
            mean_us: us.iter().sum::<f64>() / us.len() as f64,
            max_us: *us.last().unwrap_or(&0.0),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SizeReport {
    pub templates: usize,
    pub students: usize,
    pub insert_seconds: f64,
    pub inserts_per_second: f64,
    pub index_build_seconds: f64,
    pub segments: usize,
    pub indexed_templates: usize,
    pub search: Latency,
    pub brute_force: Latency,
    pub recall_at_1: f64,
    /// Growth of the resident set while the gallery was loaded, indexed and searched.
    pub rss_delta_bytes: Option<i64>,
    pub disk_bytes: u64,
    pub rss_bytes_per_100k: Option<f64>,
    pub disk_bytes_per_100k: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub config: BenchConfig,
    pub cpus: usize,
    /// `debug` or `release` (numbers from `debug` builds are not meaningful).
    pub profile: String,
    pub sizes: Vec<SizeReport>,
}

/// Resident set size of this process, from `/proc/self/status` (Linux).
pub fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn bench_size(cfg: &BenchConfig, n: usize) -> Result<SizeReport, GalleryError> {
    let dim = cfg.dim;
    let per = cfg.templates_per_student.max(1);
    let students = n.div_ceil(per);
    let mut synth = Synth::new(cfg.seed ^ n as u64, dim, cfg.sigma);
    let centres: Vec<Vec<f32>> = (0..students).map(|_| synth.centre()).collect();
    let mut flat = Vec::with_capacity(n * dim);
    for i in 0..n {
        flat.extend(synth.sample(&centres[i / per]));
    }
    let probes: Vec<Vec<f32>> = (0..cfg.queries)
        .map(|_| {
            let s = synth.index(students);
            synth.sample(&centres[s])
        })
        .collect();
    let tenant = TenantId::new("bench").expect("valid");
    let student_ids: Vec<StudentId> = (0..students)
        .map(|s| StudentId::new(format!("s{s}")).expect("valid"))
        .collect();
    let created = chrono::Utc::now();

    let tmp = match &cfg.dir {
        Some(d) => tempfile::Builder::new()
            .prefix("rollcall-bench")
            .tempdir_in(d),
        None => tempfile::Builder::new().prefix("rollcall-bench").tempdir(),
    }
    .map_err(|e| GalleryError::Storage {
        path: cfg.dir.clone().unwrap_or_else(std::env::temp_dir),
        reason: e.to_string(),
    })?;
    let mut ecfg = EmbeddedConfig::new(tmp.path().join("gallery"), dim);
    ecfg.hnsw = cfg.hnsw;
    ecfg.indexing_threshold_kb = cfg.indexing_threshold_kb;
    ecfg.auto_optimize_unindexed = None;
    ecfg.wal_segment_bytes = 32 * 1024 * 1024;

    let rss0 = rss_bytes();
    let g = EmbeddedGallery::open_blocking(ecfg)?;
    let t0 = Instant::now();
    for start in (0..n).step_by(1000) {
        let end = (start + 1000).min(n);
        let batch: Vec<Template> = (start..end)
            .map(|i| Template {
                meta: TemplateMeta {
                    template_id: TemplateId::from_u128(i as u128 + 1),
                    student: student_ids[i / per].clone(),
                    tenant: tenant.clone(),
                    campuses: vec![],
                    model_id: "bench".into(),
                    model_version: "1".into(),
                    quality: 1.0,
                    created_at: created,
                },
                vector: flat[i * dim..(i + 1) * dim].to_vec(),
            })
            .collect();
        g.upsert_blocking_no_flush(&batch)?;
    }
    g.flush_blocking()?;
    let insert_seconds = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    g.optimize_blocking()?;
    let index_build_seconds = t1.elapsed().as_secs_f64();
    let (segments, _, indexed) = g.shard_info()?;

    // Warm-up, then timed gallery searches.
    for p in probes.iter().take(50) {
        g.search_blocking(&SearchQuery::new(tenant.clone(), p.clone(), cfg.top_k))?;
    }
    let mut lat = Vec::with_capacity(probes.len());
    let mut top1 = Vec::with_capacity(probes.len());
    for p in &probes {
        let q = SearchQuery::new(tenant.clone(), p.clone(), cfg.top_k);
        let t = Instant::now();
        let hits = g.search_blocking(&q)?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        top1.push(hits.first().map(|h| h.meta.template_id.as_u128()));
    }
    let rss1 = rss_bytes();
    let disk_bytes = g.disk_bytes();

    // Exact brute force over the same vectors (already unit-norm), same probes.
    let mut bf = Vec::with_capacity(probes.len());
    let mut hits_at_1 = 0usize;
    for (p, got) in probes.iter().zip(&top1) {
        let t = Instant::now();
        let pn = crate::normalized(p);
        let mut best = (f32::NEG_INFINITY, 0usize);
        for (i, v) in flat.chunks_exact(dim).enumerate() {
            let s = dot(&pn, v);
            if s > best.0 {
                best = (s, i);
            }
        }
        bf.push(t.elapsed().as_secs_f64() * 1e6);
        if *got == Some(best.1 as u128 + 1) {
            hits_at_1 += 1;
        }
    }
    drop(g);

    let rss_delta = match (rss0, rss1) {
        (Some(a), Some(b)) => Some(b as i64 - a as i64),
        _ => None,
    };
    let per100k = |b: f64| b * 100_000.0 / n as f64;
    Ok(SizeReport {
        templates: n,
        students,
        insert_seconds,
        inserts_per_second: n as f64 / insert_seconds,
        index_build_seconds,
        segments,
        indexed_templates: indexed,
        search: Latency::of(lat),
        brute_force: Latency::of(bf),
        recall_at_1: hits_at_1 as f64 / probes.len().max(1) as f64,
        rss_delta_bytes: rss_delta,
        disk_bytes,
        rss_bytes_per_100k: rss_delta.map(|d| per100k(d as f64)),
        disk_bytes_per_100k: per100k(disk_bytes as f64),
    })
}

/// Runs the benchmark for every size in `cfg.sizes`, smallest first.
pub fn bench_gallery(cfg: &BenchConfig) -> Result<BenchReport, GalleryError> {
    if cfg.queries == 0 || cfg.dim == 0 {
        return Err(GalleryError::InvalidRequest(
            "queries and dim must be positive".into(),
        ));
    }
    let mut sizes = cfg.sizes.clone();
    sizes.sort_unstable();
    let mut out = vec![];
    for n in sizes {
        tracing::info!(templates = n, "benchmarking embedded gallery");
        out.push(bench_size(cfg, n)?);
    }
    Ok(BenchReport {
        config: cfg.clone(),
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        profile: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
        .into(),
        sizes: out,
    })
}
