//! Benchmark of the embedded gallery against exact brute force, on clustered synthetic
//! templates (a few noisy templates around each synthetic student's centre).
//!
//! For each size: insert rate (upserts of 1000 + flush), index build time (optimiser: HNSW),
//! search latency p50/p99 through the gallery (tenant filter, top-5, engine call without the
//! async hop), brute-force latency p50/p99 (exact dot products over every template, same
//! queries, same run), recall@1 (the gallery's first template equals brute force's), and
//! memory: resident-set growth from `/proc/self/status` and bytes on disk.

use rollcall_domain::clock::{Clock, SystemClock};
use std::path::PathBuf;
use std::time::Instant;

use rollcall_domain::face::dot;
use rollcall_domain::gallery::{GalleryError, SearchQuery, Template, TemplateId, TemplateMeta};
use rollcall_domain::{StudentId, TenantId};
use serde::{Deserialize, Serialize};

use super::synth::Synth;
use rollcall_gallery::embedded::{EmbeddedConfig, EmbeddedGallery, HnswParams};

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
    /// Measures [`Footprint`] by running this program (`rollcall`) as
    /// `bench gallery --footprint DIR --dim D --queries Q [--lean]`: it calls
    /// [`serving_footprint`] and prints the result as JSON on stdout. `None`: no fresh-process
    /// measurement.
    #[serde(skip)]
    pub footprint_exe: Option<PathBuf>,
    /// Benchmark [`EmbeddedConfig::lean`] (16-bit vectors, memory-mapped, searched directly).
    #[serde(default)]
    pub lean: bool,
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
            footprint_exe: None,
            lean: false,
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
    /// Growth of the resident set of the benchmark process while the gallery was loaded,
    /// indexed and searched (includes build-time buffers kept by the allocator).
    pub build_rss_delta_bytes: Option<i64>,
    /// Memory to serve the gallery, measured in a fresh process.
    pub serving: Option<Footprint>,
    pub serving_bytes_per_100k: Option<f64>,
    /// Disk usage (allocated blocks) of the data directory.
    pub disk_bytes: u64,
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

fn status_kb(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resident set size of this process, from `/proc/self/status` (Linux).
pub fn rss_bytes() -> Option<u64> {
    status_kb("VmRSS:")
}

/// Memory a process needs to serve an existing gallery: measured in a fresh process (the
/// benchmark spawns one per size: `rollcall bench gallery` runs itself with `--footprint`), so that allocator caches
/// and temporary buffers of the build do not count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Footprint {
    /// Growth of the resident set from before opening to after `queries` searches.
    pub rss_delta_bytes: i64,
    /// Of which anonymous memory (heap: graph, id tracker, in-RAM vectors) ...
    pub anon_delta_bytes: i64,
    /// ... and file-backed pages (mmapped segment files read by the searches).
    pub file_delta_bytes: i64,
    /// Resident pages of the gallery's own mapped files after the searches, by file (path
    /// relative to the data directory, largest first; from `/proc/self/smaps`).
    #[serde(default)]
    pub mapped_by_file: Vec<(String, u64)>,
}

/// Resident bytes of each file mapped by this process under `dir` (Linux `/proc/self/smaps`).
fn mapped_rss_under(dir: &std::path::Path) -> Vec<(String, u64)> {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return Vec::new();
    };
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut by: std::collections::BTreeMap<String, u64> = Default::default();
    let mut current: Option<String> = None;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            // a mapping header: "start-end perms offset dev inode [path]"
            current = line
                .split_whitespace()
                .nth(5)
                .and_then(|p| std::path::Path::new(p).strip_prefix(&dir).ok())
                .map(|p| p.display().to_string());
        } else if let (Some(path), Some(kb)) = (&current, line.strip_prefix("Rss:")) {
            let kb: u64 = kb.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
            *by.entry(path.clone()).or_default() += kb * 1024;
        }
    }
    let mut v: Vec<(String, u64)> = by.into_iter().filter(|(_, b)| *b > 0).collect();
    v.sort_by_key(|b| std::cmp::Reverse(b.1));
    v
}

/// Opens the gallery in `dir`, runs `queries` random searches, reports the memory growth.
pub fn serving_footprint(
    dir: &std::path::Path,
    dim: usize,
    queries: usize,
    lean: bool,
) -> Result<Footprint, GalleryError> {
    // Warm-up on a throwaway gallery, so that the program's own code pages (file-backed RSS)
    // and one-off runtime allocations are resident before measuring.
    {
        let tmp = tempfile::tempdir().map_err(|e| GalleryError::Backend(e.to_string()))?;
        let g = EmbeddedGallery::open_blocking(EmbeddedConfig::new(tmp.path().join("warm"), dim))?;
        let mut synth = Synth::new(1, dim, 0.0);
        let tenant = TenantId::new("bench").expect("valid");
        let batch: Vec<Template> = (0..100u128)
            .map(|i| Template {
                meta: TemplateMeta {
                    template_id: TemplateId::from_u128(i + 1),
                    student: StudentId::new(format!("w{i}")).expect("valid"),
                    tenant: tenant.clone(),
                    campuses: vec![],
                    model_id: "bench".into(),
                    model_version: "1".into(),
                    quality: 1.0,
                    created_at: SystemClock.now(),
                },
                vector: synth.centre(),
            })
            .collect();
        g.upsert_blocking_no_flush(&batch)?;
        g.optimize_blocking()?;
        for _ in 0..100 {
            g.search_blocking(&SearchQuery::new(tenant.clone(), synth.centre(), 5))?;
        }
    }
    let (r0, a0, f0) = (rss_bytes(), status_kb("RssAnon:"), status_kb("RssFile:"));
    let mut cfg = EmbeddedConfig::new(dir, dim);
    if lean {
        cfg = cfg.lean();
    }
    cfg.auto_optimize_unindexed = None;
    let g = EmbeddedGallery::open_blocking(cfg)?;
    let mut synth = Synth::new(7, dim, 0.0);
    let tenant = TenantId::new("bench").expect("valid");
    for _ in 0..queries {
        g.search_blocking(&SearchQuery::new(tenant.clone(), synth.centre(), 5))?;
    }
    let (r1, a1, f1) = (rss_bytes(), status_kb("RssAnon:"), status_kb("RssFile:"));
    let d = |a: Option<u64>, b: Option<u64>| b.unwrap_or(0) as i64 - a.unwrap_or(0) as i64;
    Ok(Footprint {
        rss_delta_bytes: d(r0, r1),
        anon_delta_bytes: d(a0, a1),
        file_delta_bytes: d(f0, f1),
        mapped_by_file: mapped_rss_under(dir),
    })
}

/// The synthetic data of one size: every template's vector (flat, unit-norm), the probes and
/// the student ids; the same for both backends (seeded by `cfg.seed` and the size).
struct Dataset {
    flat: Vec<f32>,
    probes: Vec<Vec<f32>>,
    student_ids: Vec<StudentId>,
    per: usize,
    students: usize,
}

fn dataset(cfg: &BenchConfig, n: usize) -> Dataset {
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
    let student_ids: Vec<StudentId> = (0..students)
        .map(|s| StudentId::new(format!("s{s}")).expect("valid"))
        .collect();
    Dataset {
        flat,
        probes,
        student_ids,
        per,
        students,
    }
}

impl Dataset {
    /// Templates `start..end` (template id = index + 1) of tenant `bench`.
    fn batch(
        &self,
        dim: usize,
        start: usize,
        end: usize,
        created: chrono::DateTime<chrono::Utc>,
    ) -> Vec<Template> {
        let tenant = TenantId::new("bench").expect("valid");
        (start..end)
            .map(|i| Template {
                meta: TemplateMeta {
                    template_id: TemplateId::from_u128(i as u128 + 1),
                    student: self.student_ids[i / self.per].clone(),
                    tenant: tenant.clone(),
                    campuses: vec![],
                    model_id: "bench".into(),
                    model_version: "1".into(),
                    quality: 1.0,
                    created_at: created,
                },
                vector: self.flat[i * dim..(i + 1) * dim].to_vec(),
            })
            .collect()
    }

    /// Exact brute force over every template for each probe: (index of the best template,
    /// microseconds it took).
    fn brute_force(&self, dim: usize) -> Vec<(usize, f64)> {
        self.probes
            .iter()
            .map(|p| {
                let t = Instant::now();
                let pn = rollcall_gallery::normalized(p);
                let mut best = (f32::NEG_INFINITY, 0usize);
                for (i, v) in self.flat.chunks_exact(dim).enumerate() {
                    let s = dot(&pn, v);
                    if s > best.0 {
                        best = (s, i);
                    }
                }
                (best.1, t.elapsed().as_secs_f64() * 1e6)
            })
            .collect()
    }
}

fn bench_size(cfg: &BenchConfig, n: usize) -> Result<SizeReport, GalleryError> {
    let dim = cfg.dim;
    let ds = dataset(cfg, n);
    let (students, probes) = (ds.students, &ds.probes);
    let tenant = TenantId::new("bench").expect("valid");
    let created = SystemClock.now();

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
    if cfg.lean {
        ecfg = ecfg.lean();
    }

    let rss0 = rss_bytes();
    let g = EmbeddedGallery::open_blocking(ecfg)?;
    let t0 = Instant::now();
    for start in (0..n).step_by(1000) {
        let batch = ds.batch(dim, start, (start + 1000).min(n), created);
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
    for p in probes {
        let q = SearchQuery::new(tenant.clone(), p.clone(), cfg.top_k);
        let t = Instant::now();
        let hits = g.search_blocking(&q)?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        top1.push(hits.first().map(|h| h.meta.template_id.as_u128()));
    }
    let rss1 = rss_bytes();

    // Exact brute force over the same vectors (already unit-norm), same probes.
    let mut bf = Vec::with_capacity(probes.len());
    let mut hits_at_1 = 0usize;
    for ((best, us), got) in ds.brute_force(dim).into_iter().zip(&top1) {
        bf.push(us);
        if *got == Some(best as u128 + 1) {
            hits_at_1 += 1;
        }
    }
    drop(g);
    let disk_bytes = rollcall_gallery::embedded::dir_size(&tmp.path().join("gallery"));
    let serving = match &cfg.footprint_exe {
        None => None,
        Some(exe) => {
            let out = std::process::Command::new(exe)
                .args(["bench", "gallery", "--footprint"])
                .arg(tmp.path().join("gallery"))
                .args([
                    "--dim",
                    &dim.to_string(),
                    "--queries",
                    &cfg.queries.to_string(),
                ])
                .args(cfg.lean.then_some("--lean"))
                .output()
                .map_err(|e| {
                    GalleryError::Backend(format!("footprint process {}: {e}", exe.display()))
                })?;
            let text = String::from_utf8_lossy(&out.stdout);
            Some(serde_json::from_str::<Footprint>(text.trim()).map_err(|e| {
                GalleryError::Backend(format!(
                    "footprint process said {text:?} ({e}); stderr: {}",
                    String::from_utf8_lossy(&out.stderr)
                ))
            })?)
        }
    };

    if std::env::var_os("ROLLCALL_BENCH_KEEP").is_some() {
        let kept = tmp.keep();
        eprintln!("kept the {n}-template gallery in {}", kept.display());
    }
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
        build_rss_delta_bytes: rss_delta,
        serving_bytes_per_100k: serving.as_ref().map(|f| per100k(f.rss_delta_bytes as f64)),
        serving,
        disk_bytes,
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

/// The Qdrant server the remote benchmark measures.
#[derive(Debug, Clone)]
pub struct RemoteTarget {
    /// gRPC URL.
    pub url: String,
    pub api_key: Option<String>,
    /// The server's process on this machine (its `VmRSS` is reported), when known.
    pub pid: Option<u32>,
}

/// One size against the Qdrant server: the same templates and probes as the embedded run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteSizeReport {
    pub templates: usize,
    pub students: usize,
    /// Upserts of 1000 (each waits for the server's acknowledgement).
    pub insert_seconds: f64,
    pub inserts_per_second: f64,
    /// From the last upsert until the optimiser reported the collection green and settled.
    pub index_build_seconds: f64,
    pub indexed_templates: u64,
    /// Through [`rollcall_gallery::RemoteGallery`] (gRPC on loopback included), tenant filter, top-k.
    pub search: Latency,
    pub recall_at_1: f64,
    /// The server's resident memory (`VmRSS`) before the collection was created and after the
    /// searches, when its pid is known.
    pub server_rss_before_bytes: Option<u64>,
    pub server_rss_after_bytes: Option<u64>,
    pub server_rss_delta_per_100k: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteBenchReport {
    pub url: String,
    pub server_pid: Option<u32>,
    /// The collection settings (the remote backend's defaults, see [`rollcall_gallery::RemoteConfig::new`]).
    pub collection: rollcall_gallery::RemoteConfig,
    pub sizes: Vec<RemoteSizeReport>,
}

/// The remote backend on a Qdrant server, each size in a fresh collection deleted afterwards.
pub async fn bench_remote(
    cfg: &BenchConfig,
    target: &RemoteTarget,
) -> Result<RemoteBenchReport, GalleryError> {
    use rollcall_domain::gallery::Gallery;
    if cfg.queries == 0 || cfg.dim == 0 {
        return Err(GalleryError::InvalidRequest(
            "queries and dim must be positive".into(),
        ));
    }
    let mut rcfg =
        rollcall_gallery::RemoteConfig::new(target.url.clone(), "rollcall_bench", cfg.dim);
    rcfg.api_key = target.api_key.clone();
    rcfg.hnsw_m = cfg.hnsw.m as u64;
    rcfg.hnsw_ef_construct = cfg.hnsw.ef_construct as u64;
    rcfg.hnsw_ef_search = cfg.hnsw.ef_search as u64;
    rcfg.timeout = std::time::Duration::from_secs(60);
    let mut sizes = cfg.sizes.clone();
    sizes.sort_unstable();
    let mut out = vec![];
    let rss = || target.pid.and_then(rollcall_gallery::server::rss_of_pid);
    for n in sizes {
        tracing::info!(templates = n, url = %target.url, "benchmarking the Qdrant server");
        let dim = cfg.dim;
        let ds = dataset(cfg, n);
        let mut c = rcfg.clone();
        c.collection = format!("rollcall_bench_{n}_{}", uuid::Uuid::new_v4().simple());
        let rss0 = rss();
        let g = rollcall_gallery::RemoteGallery::connect(c.clone()).await?;
        let created = SystemClock.now();
        let t0 = Instant::now();
        let result = async {
            for start in (0..n).step_by(1000) {
                g.upsert(ds.batch(dim, start, (start + 1000).min(n), created))
                    .await?;
            }
            let insert_seconds = t0.elapsed().as_secs_f64();
            let t1 = Instant::now();
            let indexed = wait_settled(&g, n as u64).await?;
            let index_build_seconds = t1.elapsed().as_secs_f64();
            let tenant = TenantId::new("bench").expect("valid");
            for p in ds.probes.iter().take(50) {
                g.search(&SearchQuery::new(tenant.clone(), p.clone(), cfg.top_k))
                    .await?;
            }
            let mut lat = Vec::with_capacity(ds.probes.len());
            let mut top1 = Vec::with_capacity(ds.probes.len());
            for p in &ds.probes {
                let q = SearchQuery::new(tenant.clone(), p.clone(), cfg.top_k);
                let t = Instant::now();
                let hits = g.search(&q).await?;
                lat.push(t.elapsed().as_secs_f64() * 1e6);
                top1.push(hits.first().map(|h| h.meta.template_id.as_u128()));
            }
            let rss1 = rss();
            let hits_at_1 = ds
                .brute_force(dim)
                .into_iter()
                .zip(&top1)
                .filter(|((best, _), got)| **got == Some(*best as u128 + 1))
                .count();
            Ok::<_, GalleryError>(RemoteSizeReport {
                templates: n,
                students: ds.students,
                insert_seconds,
                inserts_per_second: n as f64 / insert_seconds,
                index_build_seconds,
                indexed_templates: indexed,
                search: Latency::of(lat),
                recall_at_1: hits_at_1 as f64 / ds.probes.len().max(1) as f64,
                server_rss_before_bytes: rss0,
                server_rss_after_bytes: rss1,
                server_rss_delta_per_100k: match (rss0, rss1) {
                    (Some(a), Some(b)) => Some((b as f64 - a as f64) * 100_000.0 / n as f64),
                    _ => None,
                },
            })
        }
        .await;
        let dropped = g.drop_collection().await;
        out.push(result?);
        dropped?;
    }
    Ok(RemoteBenchReport {
        url: target.url.clone(),
        server_pid: target.pid,
        collection: rollcall_gallery::RemoteConfig {
            api_key: None,
            ..rcfg
        },
        sizes: out,
    })
}

/// Waits (up to 30 min) until the server's optimiser has finished with the collection: status
/// green and the indexed count unchanged for 2 s (or every template indexed). Returns the
/// indexed count. Segments below Qdrant's indexing threshold stay unindexed (searched
/// exhaustively), as on any server.
async fn wait_settled(g: &rollcall_gallery::RemoteGallery, n: u64) -> Result<u64, GalleryError> {
    use rollcall_domain::gallery::Gallery;
    let deadline = Instant::now() + std::time::Duration::from_secs(1800);
    let mut last: Option<(u64, Instant)> = None;
    loop {
        let green = rollcall_gallery::remote::collection_green(g.config()).await?;
        let indexed = g.health().await?.indexed_templates.unwrap_or(0);
        if green && indexed >= n {
            return Ok(indexed);
        }
        match last {
            Some((i, since)) if green && i == indexed => {
                if since.elapsed() >= std::time::Duration::from_secs(2) {
                    return Ok(indexed);
                }
            }
            _ => last = Some((indexed, Instant::now())),
        }
        if Instant::now() > deadline {
            return Err(GalleryError::Timeout {
                location: g.config().url.clone(),
                millis: 1_800_000,
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The benchmark machinery on a tiny gallery (the real figures: `rollcall bench gallery`).
#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn bench_reports_consistent_figures() {
        let cfg = BenchConfig {
            sizes: vec![2_500, 400],
            queries: 60,
            ..BenchConfig::default()
        };
        let r = bench_gallery(&cfg).unwrap();
        assert_eq!(
            r.sizes.iter().map(|s| s.templates).collect::<Vec<_>>(),
            vec![400, 2_500]
        );
        for s in &r.sizes {
            assert_eq!(s.students, s.templates / 4);
            assert!(s.inserts_per_second > 0.0 && s.disk_bytes > 0);
            assert!(s.search.p50_us > 0.0 && s.search.p50_us <= s.search.p99_us);
            assert!(s.brute_force.p50_us > 0.0);
            assert!(
                s.recall_at_1 >= 0.95,
                "recall@1 {} at {}",
                s.recall_at_1,
                s.templates
            );
        }
        // 2500 x 128-d = 1250 KiB > the 1000 KiB indexing threshold: HNSW was built.
        assert_eq!(r.sizes[1].indexed_templates, 2_500);
        assert_eq!(r.sizes[0].indexed_templates, 0);
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("recall_at_1"));
    }

    /// The lean layout (16-bit vectors, memory-mapped, searched directly)
    /// indexes and finds the same nearest templates.
    #[test]
    fn lean_layout_keeps_recall() {
        // 5000 x 128 16-bit floats = 1250 KiB > the 1000 KiB indexing threshold: HNSW is built
        let cfg = BenchConfig {
            sizes: vec![5_000],
            queries: 100,
            lean: true,
            ..BenchConfig::default()
        };
        let r = bench_gallery(&cfg).unwrap();
        let s = &r.sizes[0];
        assert_eq!(s.indexed_templates, 5_000);
        assert!(s.recall_at_1 >= 0.98, "recall@1 {}", s.recall_at_1);
    }
}
