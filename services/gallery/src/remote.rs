//! Remote gallery: a Qdrant server or cluster over gRPC (`qdrant-client`).
//!
//! One collection can hold many schools: every point carries its tenant, the `tenant` payload
//! index is created with `is_tenant = true` (Qdrant co-locates a tenant's points), and every
//! query is filtered by tenant. TLS is used when the URL is `https://`; an API key is optional.
//! The URL may name several nodes of a cluster, comma-separated: a call fails over to the next
//! node at once (see [`RemoteGallery`]). Collection creation takes the cluster's shard number,
//! replication factor and write consistency factor ([`RemoteConfig`]).
//! Network failures are retried a bounded number of times with exponential backoff and then
//! reported as [`GalleryError::Unavailable`] / [`GalleryError::Timeout`]; the caller (the
//! service) keeps running and can retry later.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use qdrant_client::qdrant::{
    vector_output, Condition, CountPointsBuilder, CreateCollectionBuilder,
    CreateFieldIndexCollectionBuilder, DeletePointsBuilder, Distance, FieldType, Filter,
    GetPointsBuilder, HnswConfigDiffBuilder, KeywordIndexParamsBuilder,
    OptimizersConfigDiffBuilder, PointId, PointStruct, QuantizationSearchParamsBuilder,
    QueryPointsBuilder, ScalarQuantizationBuilder, ScrollPointsBuilder, SearchParamsBuilder,
    UpdateCollectionBuilder, UpsertPointsBuilder, VectorParamsBuilder, VectorsOutput,
};
use qdrant_client::{Payload, Qdrant, QdrantError};
use rollcall_domain::gallery::{
    check_vector, CountScope, Gallery, GalleryError, GalleryHealth, GalleryHit, PurgeReport,
    SearchQuery, Template, TemplateId, TemplateMeta,
};
use rollcall_domain::{StudentId, TenantId};
use serde::{Deserialize, Serialize};

use crate::payload;

/// Configuration of a [`RemoteGallery`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteConfig {
    /// gRPC endpoint, e.g. `http://localhost:6334`; `https://` turns TLS on. Several nodes of
    /// one cluster, comma-separated, for fail-over: `http://q1:6334,http://q2:6334`.
    pub url: String,
    pub api_key: Option<String>,
    pub collection: String,
    pub dim: usize,
    /// Passed to collection creation (cluster sizing); `None` keeps the server default.
    pub shard_number: Option<u32>,
    pub replication_factor: Option<u32>,
    pub write_consistency_factor: Option<u32>,
    pub hnsw_m: u64,
    pub hnsw_ef_construct: u64,
    pub hnsw_ef_search: u64,
    /// Keep the original f32 vectors on disk (memory-mapped) instead of in RAM. Applies when
    /// the collection is created.
    #[serde(default = "yes")]
    pub on_disk_vectors: bool,
    /// Scalar int8 quantization (quantile 0.99) kept in RAM, the originals used to re-score
    /// the `oversampling` × top-k best candidates. Applies when the collection is created.
    #[serde(default = "yes")]
    pub scalar_quantization: bool,
    #[serde(default = "default_oversampling")]
    pub oversampling: f64,
    /// Per-request timeout.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Attempts per call (at least 1) for transient failures.
    pub attempts: u32,
    /// First backoff; doubled after each failed attempt.
    pub backoff: Duration,
}

fn yes() -> bool {
    true
}

fn default_oversampling() -> f64 {
    2.0
}

impl RemoteConfig {
    /// Defaults: HNSW m = 16, ef_construct = 128, ef = 64 at search (top-k is 1–5; ef ≥ 64
    /// kept recall@1 at 1.0 against brute force at 100k, BENCHMARKS.md); originals on disk and
    /// an int8 scalar copy in RAM, re-scored with the originals (2 × top-k candidates). This is
    /// Qdrant's documented "high-speed search, low memory" set-up ("Optimizing Qdrant
    /// Performance", <https://qdrant.tech/documentation/guides/optimize/>): a shared collection
    /// grows with every school of a chain, the int8 copy is a quarter of the f32 vectors
    /// (128 B instead of 512 B per 128-d template) and is what the HNSW walk reads, and
    /// re-scoring the few best candidates on the originals (a handful of page reads, cached)
    /// keeps the ranking exact at the top, which is what a face match needs. Binary
    /// quantization is not used: Qdrant recommends it for ≥ 1024 dimensions only.
    pub fn new(url: impl Into<String>, collection: impl Into<String>, dim: usize) -> Self {
        Self {
            url: url.into(),
            api_key: None,
            collection: collection.into(),
            dim,
            shard_number: None,
            replication_factor: None,
            write_consistency_factor: None,
            hnsw_m: 16,
            hnsw_ef_construct: 128,
            hnsw_ef_search: 64,
            on_disk_vectors: true,
            scalar_quantization: true,
            oversampling: default_oversampling(),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            attempts: 3,
            backoff: Duration::from_millis(200),
        }
    }
}

/// The remote gallery.
///
/// `url` may list several nodes of one cluster, comma-separated (`http://q1:6334,http://q2:6334`):
/// every node of a Qdrant cluster answers for the whole collection (it routes to the shards'
/// holders), so a call that cannot reach one node is tried on the next at once, and the node
/// that answered is asked first from then on. A node killed or cut off thus costs one failed
/// connection, not an outage, as long as the cluster itself still serves the collection.
pub struct RemoteGallery {
    nodes: Vec<Node>,
    /// Index into `nodes` of the node asked first.
    preferred: std::sync::atomic::AtomicUsize,
    cfg: RemoteConfig,
}

struct Node {
    url: String,
    client: Qdrant,
}

fn is_transient(e: &QdrantError) -> bool {
    match e {
        // gRPC codes: 1 cancelled, 2 unknown (transport), 4 deadline exceeded, 10 aborted,
        // 14 unavailable.
        // qdrant-client reports a failed connection as `internal` with "Failed to connect to".
        QdrantError::ResponseError { status } => {
            matches!(status.code() as i32, 1 | 2 | 4 | 10 | 14)
                || (status.code() as i32 == 13 && status.message().starts_with("Failed to connect"))
        }
        QdrantError::ResourceExhaustedError { .. } => true,
        QdrantError::Io(_) => true,
        _ => false,
    }
}

/// Pins a call's closure to the signature [`RemoteGallery::call`] takes (a closure kept in a
/// variable would otherwise be inferred for any lifetime of its argument, which the future it
/// returns cannot outlive).
fn op<'s, T, F, Fut>(f: F) -> F
where
    F: FnMut(&'s Qdrant) -> Fut,
    Fut: Future<Output = Result<T, QdrantError>>,
{
    f
}

fn is_timeout(e: &QdrantError) -> bool {
    matches!(e, QdrantError::ResponseError { status } if status.code() as i32 == 4)
}

fn key_cond(k: &str, v: &str) -> Condition {
    Condition::matches(k, v.to_string())
}

fn scope_filter(tenant: Option<&TenantId>, student: Option<&StudentId>) -> Option<Filter> {
    let mut must = vec![];
    if let Some(t) = tenant {
        must.push(key_cond(payload::TENANT, t.as_str()));
    }
    if let Some(s) = student {
        must.push(key_cond(payload::STUDENT, s.as_str()));
    }
    (!must.is_empty()).then(|| Filter::must(must))
}

fn search_filter(q: &SearchQuery) -> Filter {
    let mut must = vec![key_cond(payload::TENANT, q.tenant.as_str())];
    if let Some(c) = &q.campus {
        must.push(
            Filter::should([
                key_cond(payload::CAMPUSES, c.as_str()),
                Condition::is_empty(payload::CAMPUSES),
            ])
            .into(),
        );
    }
    if let Some(cands) = &q.candidates {
        let ids: Vec<String> = cands.iter().map(|s| s.as_str().to_string()).collect();
        must.push(Condition::matches(payload::STUDENT, ids));
    }
    if let Some(m) = &q.model {
        must.push(key_cond(payload::MODEL_ID, &m.model_id));
        must.push(key_cond(payload::MODEL_VERSION, &m.model_version));
    }
    Filter::must(must)
}

fn meta_of(
    p: std::collections::HashMap<String, qdrant_client::qdrant::Value>,
) -> Result<TemplateMeta, GalleryError> {
    let map: serde_json::Map<String, serde_json::Value> = Payload::from(p).into();
    payload::from_json(&map)
}

fn dense_of(v: Option<VectorsOutput>) -> Option<Vec<f32>> {
    match v?.get_vector()? {
        vector_output::Vector::Dense(d) => Some(d.data),
        _ => None,
    }
}

fn pid(id: TemplateId) -> PointId {
    uuid::Uuid::from_u128(id.as_u128()).to_string().into()
}

/// The node URLs of `cfg.url` (comma-separated, blanks ignored).
pub fn node_urls(url: &str) -> Vec<String> {
    url.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect()
}

fn client_for(cfg: &RemoteConfig, url: &str) -> Result<Qdrant, GalleryError> {
    Qdrant::from_url(url)
        .api_key(cfg.api_key.clone())
        .timeout(cfg.timeout)
        .connect_timeout(cfg.connect_timeout)
        .skip_compatibility_check()
        .build()
        .map_err(|e| GalleryError::InvalidRequest(format!("qdrant url {url}: {e}")))
}

/// A client of the first node of `cfg.url` (the one-shot administrative calls below).
fn client_of(cfg: &RemoteConfig) -> Result<Qdrant, GalleryError> {
    let urls = node_urls(&cfg.url);
    let first = urls
        .first()
        .ok_or_else(|| GalleryError::InvalidRequest("empty qdrant url".into()))?;
    client_for(cfg, first)
}

fn backend(cfg: &RemoteConfig, e: QdrantError) -> GalleryError {
    GalleryError::Backend(format!("qdrant at {}: {e}", cfg.url))
}

/// Whether `cfg.collection` exists on the server (no collection is created).
pub async fn collection_exists(cfg: &RemoteConfig) -> Result<bool, GalleryError> {
    client_of(cfg)?
        .collection_exists(cfg.collection.clone())
        .await
        .map_err(|e| backend(cfg, e))
}

/// Deletes `cfg.collection` when it exists (no collection is created): the number of points
/// it held, or `None` when there was no such collection.
pub async fn delete_collection(cfg: &RemoteConfig) -> Result<Option<u64>, GalleryError> {
    let client = client_of(cfg)?;
    let existed = client
        .collection_exists(cfg.collection.clone())
        .await
        .map_err(|e| backend(cfg, e))?;
    if !existed {
        return Ok(None);
    }
    let points = client
        .count(CountPointsBuilder::new(cfg.collection.clone()).exact(true))
        .await
        .map_err(|e| backend(cfg, e))?
        .result
        .map(|r| r.count)
        .unwrap_or(0);
    client
        .delete_collection(cfg.collection.clone())
        .await
        .map_err(|e| backend(cfg, e))?;
    Ok(Some(points))
}

/// Whether the server reports `cfg.collection` green (no optimisation running or pending).
pub async fn collection_green(cfg: &RemoteConfig) -> Result<bool, GalleryError> {
    let info = client_of(cfg)?
        .collection_info(cfg.collection.clone())
        .await
        .map_err(|e| backend(cfg, e))?;
    Ok(
        info.result.map(|r| r.status)
            == Some(qdrant_client::qdrant::CollectionStatus::Green as i32),
    )
}

impl RemoteGallery {
    /// Connects, creates the collection (cosine, `dim`, HNSW, shard/replication numbers) and the
    /// payload indexes when missing, and checks an existing collection's vector size.
    pub async fn connect(cfg: RemoteConfig) -> Result<Self, GalleryError> {
        if cfg.dim == 0 {
            return Err(GalleryError::InvalidRequest(
                "dimension must be positive".into(),
            ));
        }
        let urls = node_urls(&cfg.url);
        if urls.is_empty() {
            return Err(GalleryError::InvalidRequest("empty qdrant url".into()));
        }
        let nodes = urls
            .iter()
            .map(|u| {
                Ok(Node {
                    url: u.clone(),
                    client: client_for(&cfg, u)?,
                })
            })
            .collect::<Result<Vec<_>, GalleryError>>()?;
        let g = Self {
            nodes,
            preferred: std::sync::atomic::AtomicUsize::new(0),
            cfg,
        };
        g.ensure_collection().await?;
        Ok(g)
    }

    pub fn config(&self) -> &RemoteConfig {
        &self.cfg
    }

    /// Deletes the whole collection (tests, decommissioning).
    pub async fn drop_collection(&self) -> Result<(), GalleryError> {
        let name = self.cfg.collection.clone();
        self.call(|c| c.delete_collection(name.clone()))
            .await
            .map(|_| ())
    }

    /// The node asked first now (its URL).
    pub fn preferred_node(&self) -> &str {
        let i = self.preferred.load(std::sync::atomic::Ordering::Relaxed) % self.nodes.len();
        &self.nodes[i].url
    }

    /// Runs one call with bounded retries on transient failures. One attempt asks every node
    /// once, the preferred node first; a transient failure moves on to the next node at once,
    /// and the back-off is slept only after a whole round failed.
    async fn call<'s, T, F, Fut>(&'s self, mut f: F) -> Result<T, GalleryError>
    where
        F: FnMut(&'s Qdrant) -> Fut,
        Fut: Future<Output = Result<T, QdrantError>>,
    {
        use std::sync::atomic::Ordering;
        let attempts = self.cfg.attempts.max(1);
        let n = self.nodes.len();
        let mut backoff = self.cfg.backoff;
        let mut last = None;
        for attempt in 1..=attempts {
            let start = self.preferred.load(Ordering::Relaxed) % n;
            for k in 0..n {
                let i = (start + k) % n;
                let node = &self.nodes[i];
                match f(&node.client).await {
                    Ok(v) => {
                        if i != start {
                            tracing::warn!(from = %self.nodes[start].url, to = %node.url, "qdrant: now asking another node first");
                            self.preferred.store(i, Ordering::Relaxed);
                        }
                        return Ok(v);
                    }
                    Err(e) if is_transient(&e) => {
                        tracing::warn!(attempt, attempts, url = %node.url, error = %e, "qdrant call failed");
                        last = Some(e);
                    }
                    Err(e) => {
                        return Err(GalleryError::Backend(format!(
                            "qdrant at {}: {e}",
                            node.url
                        )))
                    }
                }
            }
            if attempt < attempts {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
        let e = last.expect("at least one attempt ran");
        if is_timeout(&e) {
            Err(GalleryError::Timeout {
                location: self.cfg.url.clone(),
                millis: self.cfg.timeout.as_millis() as u64,
            })
        } else {
            Err(GalleryError::Unavailable {
                location: self.cfg.url.clone(),
                attempts: attempts * n as u32,
                reason: e.to_string(),
            })
        }
    }

    async fn ensure_collection(&self) -> Result<(), GalleryError> {
        let c = &self.cfg;
        let name = c.collection.clone();
        let exists = self.call(|c| c.collection_exists(name.clone())).await?;
        // payload indexes the collection has already (a restart creates none again: that is
        // a write to every shard, refused while a replica's node is down)
        let mut indexed = std::collections::HashSet::new();
        if exists {
            let info = self.call(|c| c.collection_info(name.clone())).await?;
            if let Some(r) = &info.result {
                indexed.extend(r.payload_schema.keys().cloned());
            }
            let size = info
                .result
                .and_then(|i| i.config)
                .and_then(|c| c.params)
                .and_then(|p| p.vectors_config)
                .and_then(|v| match v.config {
                    Some(qdrant_client::qdrant::vectors_config::Config::Params(p)) => Some(p.size),
                    _ => None,
                });
            match size {
                Some(s) if s as usize == c.dim => {}
                Some(s) => {
                    return Err(GalleryError::InvalidRequest(format!(
                        "collection {} at {} holds {s}-d vectors but {}-d were configured",
                        c.collection, c.url, c.dim
                    )))
                }
                None => {
                    return Err(GalleryError::InvalidRequest(format!(
                        "collection {} at {} has no single unnamed dense vector",
                        c.collection, c.url
                    )))
                }
            }
        } else {
            let make = op(|cl| {
                let mut b = CreateCollectionBuilder::new(name.clone())
                    .vectors_config(
                        VectorParamsBuilder::new(c.dim as u64, Distance::Cosine)
                            .on_disk(c.on_disk_vectors),
                    )
                    .hnsw_config(
                        HnswConfigDiffBuilder::default()
                            .m(c.hnsw_m)
                            .ef_construct(c.hnsw_ef_construct),
                    )
                    .optimizers_config(
                        // Vacuum soon after deletions so erased templates do not linger.
                        OptimizersConfigDiffBuilder::default()
                            .deleted_threshold(0.01)
                            .vacuum_min_vector_number(100),
                    );
                if c.scalar_quantization {
                    // `always_ram` is deprecated in the 1.19+ API in favour of `memory`, which
                    // the 1.16 servers this is tested against do not know.
                    #[allow(deprecated)]
                    let q = ScalarQuantizationBuilder::default()
                        .quantile(0.99)
                        .always_ram(true);
                    b = b.quantization_config(q);
                }
                if let Some(n) = c.shard_number {
                    b = b.shard_number(n);
                }
                if let Some(n) = c.replication_factor {
                    b = b.replication_factor(n);
                }
                if let Some(n) = c.write_consistency_factor {
                    b = b.write_consistency_factor(n);
                }
                cl.create_collection(b)
            });
            match self.call(make).await {
                Ok(_) => {}
                // Another replica of the service created it first.
                Err(GalleryError::Backend(e)) if e.contains("already exists") => {}
                Err(e) => return Err(e),
            }
        }
        for (field, tenant) in [
            (payload::TENANT, true),
            (payload::STUDENT, false),
            (payload::CAMPUSES, false),
        ] {
            if indexed.contains(field) {
                continue;
            }
            let mk = op(|c| {
                c.create_field_index(
                    CreateFieldIndexCollectionBuilder::new(name.clone(), field, FieldType::Keyword)
                        .field_index_params(KeywordIndexParamsBuilder::default().is_tenant(tenant))
                        .wait(true),
                )
            });
            self.call(mk).await?;
        }
        Ok(())
    }

    async fn scroll(
        &self,
        filter: Filter,
        with_vectors: bool,
    ) -> Result<Vec<(TemplateMeta, Option<Vec<f32>>)>, GalleryError> {
        let name = self.cfg.collection.clone();
        let mut out = vec![];
        let mut offset: Option<PointId> = None;
        loop {
            let mk = op(|c| {
                let mut b = ScrollPointsBuilder::new(name.clone())
                    .filter(filter.clone())
                    .limit(256)
                    .with_payload(true)
                    .with_vectors(with_vectors);
                if let Some(o) = offset.clone() {
                    b = b.offset(o);
                }
                c.scroll(b)
            });
            let resp = self.call(mk).await?;
            for p in resp.result {
                out.push((meta_of(p.payload)?, dense_of(p.vectors)));
            }
            match resp.next_page_offset {
                Some(o) => offset = Some(o),
                None => return Ok(out),
            }
        }
    }

    async fn count_filter(&self, filter: Option<Filter>) -> Result<u64, GalleryError> {
        let name = self.cfg.collection.clone();
        let mk = op(|c| {
            let mut b = CountPointsBuilder::new(name.clone()).exact(true);
            if let Some(f) = filter.clone() {
                b = b.filter(f);
            }
            c.count(b)
        });
        Ok(self.call(mk).await?.result.map(|r| r.count).unwrap_or(0))
    }
}

#[async_trait]
impl Gallery for RemoteGallery {
    fn dim(&self) -> usize {
        self.cfg.dim
    }

    async fn upsert(&self, templates: Vec<Template>) -> Result<usize, GalleryError> {
        for t in &templates {
            check_vector(self.cfg.dim, &t.vector)?;
        }
        if templates.is_empty() {
            return Ok(0);
        }
        let points: Vec<PointStruct> = templates
            .iter()
            .map(|t| {
                PointStruct::new(
                    pid(t.meta.template_id),
                    t.vector.clone(),
                    Payload::from(payload::to_json(&t.meta)),
                )
            })
            .collect();
        let name = self.cfg.collection.clone();
        self.call(|c| {
            c.upsert_points(UpsertPointsBuilder::new(name.clone(), points.clone()).wait(true))
        })
        .await?;
        Ok(templates.len())
    }

    async fn search(&self, q: &SearchQuery) -> Result<Vec<GalleryHit>, GalleryError> {
        check_vector(self.cfg.dim, &q.vector)?;
        if q.top_k == 0 || matches!(&q.candidates, Some(c) if c.is_empty()) {
            return Ok(vec![]);
        }
        let name = self.cfg.collection.clone();
        let filter = search_filter(q);
        let ef = self.cfg.hnsw_ef_search.max(q.top_k as u64);
        let mut params = SearchParamsBuilder::default().hnsw_ef(ef);
        if self.cfg.scalar_quantization {
            params = params.quantization(
                QuantizationSearchParamsBuilder::default()
                    .rescore(true)
                    .oversampling(self.cfg.oversampling.max(1.0)),
            );
        }
        let params = params.build();
        let mk = op(|c| {
            c.query(
                QueryPointsBuilder::new(name.clone())
                    .query(q.vector.clone())
                    .filter(filter.clone())
                    .limit(q.top_k as u64)
                    .with_payload(true)
                    .params(params.clone()),
            )
        });
        let resp = self.call(mk).await?;
        resp.result
            .into_iter()
            .map(|p| {
                Ok(GalleryHit {
                    similarity: p.score,
                    meta: meta_of(p.payload)?,
                })
            })
            .collect()
    }

    async fn student_templates(
        &self,
        tenant: &TenantId,
        student: &StudentId,
    ) -> Result<Vec<TemplateMeta>, GalleryError> {
        let f = scope_filter(Some(tenant), Some(student)).expect("tenant given");
        Ok(self
            .scroll(f, false)
            .await?
            .into_iter()
            .map(|(m, _)| m)
            .collect())
    }

    async fn tenant_templates(&self, tenant: &TenantId) -> Result<Vec<Template>, GalleryError> {
        let f = scope_filter(Some(tenant), None).expect("tenant given");
        self.scroll(f, true)
            .await?
            .into_iter()
            .map(|(meta, v)| {
                let vector = v.ok_or_else(|| {
                    GalleryError::Backend(format!("template {} has no vector", meta.template_id))
                })?;
                Ok(Template { meta, vector })
            })
            .collect()
    }

    async fn get(&self, id: TemplateId) -> Result<Option<Template>, GalleryError> {
        let name = self.cfg.collection.clone();
        let mk = op(|c| {
            c.get_points(
                GetPointsBuilder::new(name.clone(), vec![pid(id)])
                    .with_payload(true)
                    .with_vectors(true),
            )
        });
        let resp = self.call(mk).await?;
        match resp.result.into_iter().next() {
            None => Ok(None),
            Some(p) => {
                let meta = meta_of(p.payload)?;
                let vector = dense_of(p.vectors)
                    .ok_or_else(|| GalleryError::Backend(format!("template {id} has no vector")))?;
                Ok(Some(Template { meta, vector }))
            }
        }
    }

    async fn delete_student(
        &self,
        tenant: &TenantId,
        student: &StudentId,
    ) -> Result<usize, GalleryError> {
        let f = scope_filter(Some(tenant), Some(student)).expect("tenant given");
        let n = self.count_filter(Some(f.clone())).await?;
        if n == 0 {
            return Err(GalleryError::UnknownStudent {
                tenant: tenant.clone(),
                student: student.clone(),
            });
        }
        let name = self.cfg.collection.clone();
        self.call(|c| {
            c.delete_points(
                DeletePointsBuilder::new(name.clone())
                    .points(f.clone())
                    .wait(true),
            )
        })
        .await?;
        Ok(n as usize)
    }

    async fn delete_templates(
        &self,
        tenant: &TenantId,
        ids: &[TemplateId],
    ) -> Result<usize, GalleryError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let point_ids: Vec<PointId> = ids.iter().map(|&i| pid(i)).collect();
        // Only the tenant's own points: filter by tenant and id together.
        let f = Filter::must([
            key_cond(payload::TENANT, tenant.as_str()),
            Condition::has_id(point_ids),
        ]);
        let n = self.count_filter(Some(f.clone())).await?;
        if n == 0 {
            return Ok(0);
        }
        let name = self.cfg.collection.clone();
        self.call(|c| {
            c.delete_points(
                DeletePointsBuilder::new(name.clone())
                    .points(f.clone())
                    .wait(true),
            )
        })
        .await?;
        Ok(n as usize)
    }

    /// Asks the server to vacuum now (deleted threshold lowered to 0 for the collection) and
    /// waits, bounded by 60 s, until the optimiser reports the collection green. Qdrant
    /// vacuums segments of at least `vacuum_min_vector_number` (100) points; smaller segments
    /// drop deleted points when they are next merged or rebuilt. The server's own WAL keeps
    /// operations until it is flushed and truncated, on the server's schedule.
    async fn purge(&self) -> Result<PurgeReport, GalleryError> {
        let name = self.cfg.collection.clone();
        let mk = op(|c| {
            c.update_collection(
                UpdateCollectionBuilder::new(name.clone()).optimizers_config(
                    OptimizersConfigDiffBuilder::default()
                        .deleted_threshold(0.0)
                        .vacuum_min_vector_number(100),
                ),
            )
        });
        self.call(mk).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let info = self.call(|c| c.collection_info(name.clone())).await?;
            let green = info.result.as_ref().map(|r| r.status)
                == Some(qdrant_client::qdrant::CollectionStatus::Green as i32);
            if green {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(GalleryError::Timeout {
                    location: self.cfg.url.clone(),
                    millis: 60_000,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(PurgeReport {
            live_templates: self.count_filter(None).await?,
            bytes_before: None,
            bytes_after: None,
            method: "qdrant server vacuum optimiser (deleted_threshold=0), waited for green status"
                .into(),
        })
    }

    async fn count(&self, scope: &CountScope) -> Result<u64, GalleryError> {
        if scope.student.is_some() && scope.tenant.is_none() {
            return Err(GalleryError::InvalidRequest(
                "counting a student needs its tenant".into(),
            ));
        }
        self.count_filter(scope_filter(scope.tenant.as_ref(), scope.student.as_ref()))
            .await
    }

    async fn health(&self) -> Result<GalleryHealth, GalleryError> {
        self.call(|c| c.health_check()).await?;
        let name = self.cfg.collection.clone();
        let info = self.call(|c| c.collection_info(name.clone())).await?;
        let r = info.result.unwrap_or_default();
        Ok(GalleryHealth {
            backend: "remote".into(),
            location: format!("{}/{}", self.cfg.url, self.cfg.collection),
            dim: self.cfg.dim,
            templates: self.count_filter(None).await?,
            indexed_templates: r.indexed_vectors_count,
        })
    }
}
