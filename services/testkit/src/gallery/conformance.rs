//! The gallery conformance suite, written once and run against every backend: the embedded
//! one always (`rollcall-gallery`'s `tests/conformance_embedded.rs`), a Qdrant server when
//! `QDRANT_URL` is set (`tests/conformance_remote.rs`).
//!
//! All data of a run lives in tenants suffixed with a random run id, so the suite can run
//! against a collection shared with other data (counts are then checked per tenant; the
//! global count only when the backend says its storage is [`GalleryFactory::exclusive`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rollcall_domain::face::dot;
use rollcall_domain::gallery::{
    best_per_student, CountScope, Gallery, GalleryError, ModelRef, SearchQuery, Template,
    TemplateId, TemplateMeta,
};
use rollcall_domain::{CampusId, StudentId, TenantId};

use super::synth::Synth;
use rollcall_gallery::{new_template_id, normalized};

/// How the suite gets at a backend.
#[async_trait]
pub trait GalleryFactory: Send + Sync {
    /// Opens the gallery under test; called again to "restart" (the suite drops its previous
    /// handle first).
    async fn open(&self) -> Result<Arc<dyn Gallery>, GalleryError>;
    /// True when the storage holds only this run's data (then global counts are exact).
    fn exclusive(&self) -> bool;
    /// Whether any stored file contains `needle`; `None` when the backend's files cannot be
    /// inspected (remote server). Used to prove that purge physically removes erased data.
    async fn storage_contains(&self, _needle: &[u8]) -> Option<bool> {
        None
    }
}

/// Outcome of one conformance case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        // bound first: `!(a < b)` on floats is clippy's neg_cmp_op_on_partial_ord
        let holds: bool = $cond;
        if !holds {
            return Err(format!($($arg)+));
        }
    };
}

fn ids(s: &str) -> StudentId {
    StudentId::new(s).expect("valid test student id")
}

fn now_micros() -> DateTime<Utc> {
    DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).expect("now is representable")
}

fn approx_eq(a: &[f32], b: &[f32], eps: f32) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= eps)
}

const MODEL: &str = "conformance-model";

struct Ctx<'a> {
    f: &'a dyn GalleryFactory,
    g: Option<Arc<dyn Gallery>>,
    dim: usize,
    run: String,
    synth: Synth,
    /// Tenant A: 6 students x 3 templates, with campuses.
    a: TenantId,
    a_centres: Vec<Vec<f32>>,
    a_templates: Vec<Template>,
    b: TenantId,
    b_templates: Vec<Template>,
    m: TenantId,
    empty: TenantId,
    x: TenantId,
    expected: HashMap<TenantId, u64>,
}

impl<'a> Ctx<'a> {
    fn g(&self) -> &dyn Gallery {
        self.g.as_deref().expect("gallery open")
    }

    fn template(
        tenant: &TenantId,
        student: &StudentId,
        campuses: &[&str],
        v: Vec<f32>,
        version: &str,
    ) -> Template {
        Template {
            meta: TemplateMeta {
                template_id: new_template_id(),
                student: student.clone(),
                tenant: tenant.clone(),
                campuses: campuses
                    .iter()
                    .map(|c| CampusId::new(*c).expect("valid campus"))
                    .collect(),
                model_id: MODEL.into(),
                model_version: version.into(),
                quality: 0.875,
                created_at: now_micros(),
            },
            vector: v,
        }
    }

    async fn reopen(&mut self) -> Result<(), String> {
        self.g = None;
        self.g = Some(
            self.f
                .open()
                .await
                .map_err(|e| format!("reopen failed: {e}"))?,
        );
        Ok(())
    }

    async fn count(&self, scope: CountScope) -> Result<u64, String> {
        self.g()
            .count(&scope)
            .await
            .map_err(|e| format!("count {scope:?}: {e}"))
    }

    async fn search(
        &self,
        q: &SearchQuery,
    ) -> Result<Vec<rollcall_domain::gallery::GalleryHit>, String> {
        self.g().search(q).await.map_err(|e| format!("search: {e}"))
    }

    async fn check_counts(&self) -> Result<(), String> {
        for (t, n) in &self.expected {
            let got = self.count(CountScope::tenant(t)).await?;
            ensure!(got == *n, "count of tenant {t}: expected {n}, got {got}");
        }
        let total = self.count(CountScope::all()).await?;
        let sum: u64 = self.expected.values().sum();
        if self.f.exclusive() {
            ensure!(total == sum, "total count: expected {sum}, got {total}");
        } else {
            ensure!(total >= sum, "total count {total} below this run's {sum}");
        }
        Ok(())
    }

    // ---- cases ----

    async fn empty_gallery(&mut self) -> Result<(), String> {
        let q = SearchQuery::new(self.empty.clone(), self.synth.centre(), 5);
        let hits = self.search(&q).await?;
        ensure!(hits.is_empty(), "empty tenant returned {} hits", hits.len());
        ensure!(
            self.count(CountScope::tenant(&self.empty)).await? == 0,
            "empty tenant count not 0"
        );
        ensure!(
            self.g()
                .get(new_template_id())
                .await
                .map_err(|e| e.to_string())?
                .is_none(),
            "get of unknown id found a point"
        );
        let metas = self
            .g()
            .student_templates(&self.empty, &ids("s0"))
            .await
            .map_err(|e| e.to_string())?;
        ensure!(metas.is_empty(), "unknown student has templates");
        if self.f.exclusive() {
            ensure!(
                self.count(CountScope::all()).await? == 0,
                "fresh gallery not empty"
            );
        }
        Ok(())
    }

    async fn wrong_vector_size(&mut self) -> Result<(), String> {
        let dim = self.dim;
        let t = Self::template(&self.a.clone(), &ids("s0"), &[], vec![0.1; dim + 1], "1");
        let good = Self::template(&self.a.clone(), &ids("s0"), &[], self.synth.centre(), "1");
        match self.g().upsert(vec![good, t]).await {
            Err(GalleryError::WrongVectorSize { expected, got })
                if expected == dim && got == dim + 1 => {}
            other => {
                return Err(format!(
                    "upsert of a {}-d vector: expected WrongVectorSize, got {other:?}",
                    dim + 1
                ))
            }
        }
        ensure!(
            self.count(CountScope::tenant(&self.a)).await? == 0,
            "a refused batch was partly written"
        );
        let q = SearchQuery::new(self.a.clone(), vec![0.1; dim - 1], 3);
        match self.g().search(&q).await {
            Err(GalleryError::WrongVectorSize { expected, got })
                if expected == dim && got == dim - 1 => {}
            other => {
                return Err(format!(
                    "search with a {}-d vector: expected WrongVectorSize, got {other:?}",
                    dim - 1
                ))
            }
        }
        let zero = Self::template(&self.a.clone(), &ids("s0"), &[], vec![0.0; dim], "1");
        ensure!(
            matches!(
                self.g().upsert(vec![zero]).await,
                Err(GalleryError::InvalidVector)
            ),
            "all-zero vector accepted"
        );
        Ok(())
    }

    async fn upsert_search_ranking_top_k(&mut self) -> Result<(), String> {
        let campuses: [&[&str]; 3] = [&["north"], &["south", "east"], &[]];
        let mut all = vec![];
        for i in 0..6 {
            let c = self.synth.centre();
            let student = ids(&format!("s{i}"));
            for _ in 0..3 {
                let v = self.synth.sample(&c);
                all.push(Self::template(
                    &self.a.clone(),
                    &student,
                    campuses[i % 3],
                    v,
                    "1",
                ));
            }
            self.a_centres.push(c);
        }
        let n = self
            .g()
            .upsert(all.clone())
            .await
            .map_err(|e| format!("upsert: {e}"))?;
        ensure!(n == 18, "upsert reported {n}, expected 18");
        self.a_templates = all;
        self.expected.insert(self.a.clone(), 18);
        let by_id: HashMap<TemplateId, &Template> = self
            .a_templates
            .iter()
            .map(|t| (t.meta.template_id, t))
            .collect();
        for i in 0..6 {
            let probe = self.synth.sample(&self.a_centres[i].clone());
            let hits = self
                .search(&SearchQuery::new(self.a.clone(), probe.clone(), 4))
                .await?;
            ensure!(hits.len() == 4, "top_k=4 returned {}", hits.len());
            ensure!(
                hits[0].meta.student == ids(&format!("s{i}")),
                "probe of s{i} ranked {} first",
                hits[0].meta.student
            );
            ensure!(
                hits.windows(2).all(|w| w[0].similarity >= w[1].similarity),
                "hits not sorted best first"
            );
            let pn = normalized(&probe);
            for h in &hits {
                let t = by_id
                    .get(&h.meta.template_id)
                    .ok_or("hit with an unknown template id")?;
                ensure!(
                    h.meta == t.meta,
                    "hit payload differs from what was stored: {:?} vs {:?}",
                    h.meta,
                    t.meta
                );
                let exact = dot(&pn, &normalized(&t.vector));
                ensure!(
                    (h.similarity - exact).abs() < 1e-3,
                    "similarity {} but exact cosine {}",
                    h.similarity,
                    exact
                );
            }
            let students = best_per_student(&hits, 4);
            ensure!(
                students[0].student == hits[0].meta.student,
                "best_per_student disagrees with ranking"
            );
        }
        let hits = self
            .search(&SearchQuery::new(
                self.a.clone(),
                self.a_centres[0].clone(),
                100,
            ))
            .await?;
        ensure!(
            hits.len() == 18,
            "top_k=100 over 18 templates returned {}",
            hits.len()
        );
        Ok(())
    }

    async fn campus_filter(&mut self) -> Result<(), String> {
        for (campus, want) in [("north", [0, 2, 3, 5]), ("east", [1, 2, 4, 5])] {
            let mut q = SearchQuery::new(self.a.clone(), self.a_centres[1].clone(), 100);
            q.campus = Some(CampusId::new(campus).unwrap());
            let got: BTreeSet<String> = self
                .search(&q)
                .await?
                .iter()
                .map(|h| h.meta.student.to_string())
                .collect();
            let want: BTreeSet<String> = want.iter().map(|i| format!("s{i}")).collect();
            ensure!(
                got == want,
                "campus {campus}: expected {want:?}, got {got:?}"
            );
        }
        let mut q = SearchQuery::new(self.a.clone(), self.a_centres[1].clone(), 100);
        q.campus = Some(CampusId::new("nowhere").unwrap());
        let got: BTreeSet<String> = self
            .search(&q)
            .await?
            .iter()
            .map(|h| h.meta.student.to_string())
            .collect();
        ensure!(
            got == ["s2", "s5"].iter().map(|s| s.to_string()).collect(),
            "unknown campus should only match students allowed everywhere, got {got:?}"
        );
        Ok(())
    }

    async fn candidate_filter(&mut self) -> Result<(), String> {
        let mut q = SearchQuery::new(self.a.clone(), self.a_centres[0].clone(), 100);
        q.candidates = Some(vec![ids("s1"), ids("s4")]);
        let hits = self.search(&q).await?;
        let got: BTreeSet<String> = hits.iter().map(|h| h.meta.student.to_string()).collect();
        ensure!(
            hits.len() == 6 && got == ["s1", "s4"].iter().map(|s| s.to_string()).collect(),
            "candidates s1,s4: got {} hits of {got:?}",
            hits.len()
        );
        q.candidates = Some(vec![]);
        ensure!(
            self.search(&q).await?.is_empty(),
            "an empty candidate list matched someone"
        );
        q.candidates = Some(vec![ids("ghost")]);
        ensure!(
            self.search(&q).await?.is_empty(),
            "an unknown candidate matched someone"
        );
        Ok(())
    }

    async fn tenant_isolation(&mut self) -> Result<(), String> {
        // School B enrolls a student with the same id and the very same vectors as A's s0.
        let mut b = vec![];
        for t in self
            .a_templates
            .iter()
            .filter(|t| t.meta.student == ids("s0"))
        {
            b.push(Self::template(
                &self.b.clone(),
                &ids("s0"),
                &[],
                t.vector.clone(),
                "1",
            ));
        }
        self.g()
            .upsert(b.clone())
            .await
            .map_err(|e| e.to_string())?;
        self.b_templates = b;
        self.expected.insert(self.b.clone(), 3);
        let b_ids: BTreeSet<TemplateId> = self
            .b_templates
            .iter()
            .map(|t| t.meta.template_id)
            .collect();
        let probe = self.a_templates[0].vector.clone();
        let hits = self
            .search(&SearchQuery::new(self.b.clone(), probe.clone(), 100))
            .await?;
        ensure!(
            hits.len() == 3,
            "tenant B search returned {} hits, expected its 3",
            hits.len()
        );
        ensure!(
            hits.iter()
                .all(|h| h.meta.tenant == self.b && b_ids.contains(&h.meta.template_id)),
            "tenant B search returned another school's template"
        );
        let hits = self
            .search(&SearchQuery::new(self.a.clone(), probe, 100))
            .await?;
        ensure!(
            hits.iter()
                .all(|h| h.meta.tenant == self.a && !b_ids.contains(&h.meta.template_id)),
            "tenant A search returned B's template"
        );
        // B cannot delete A's templates by id, nor see them through student_templates.
        let n = self
            .g()
            .delete_templates(&self.b, &[self.a_templates[0].meta.template_id])
            .await
            .map_err(|e| e.to_string())?;
        ensure!(n == 0, "tenant B deleted {n} of A's templates");
        let metas = self
            .g()
            .student_templates(&self.b, &ids("s0"))
            .await
            .map_err(|e| e.to_string())?;
        ensure!(
            metas.len() == 3 && metas.iter().all(|m| m.tenant == self.b),
            "student_templates leaked across tenants"
        );
        self.check_counts().await
    }

    /// Issue 9: two schools in one collection, a student of school A and the very same face
    /// (identical vectors, identical student id) at school I, campus-scoped. A probe at one
    /// school never returns the other's student, whatever the campus, candidate or model
    /// filter; a campus filter never returns a student restricted to another campus.
    async fn school_and_campus_isolation(&mut self) -> Result<(), String> {
        let i = TenantId::new(format!("I-{}", self.run)).unwrap();
        let a_s0: Vec<&Template> = self
            .a_templates
            .iter()
            .filter(|t| t.meta.student == ids("s0"))
            .collect();
        ensure!(!a_s0.is_empty(), "tenant A has no s0 templates");
        // at school I, s0 may only check in at campus "south"
        let mine: Vec<Template> = a_s0
            .iter()
            .map(|t| Self::template(&i, &ids("s0"), &["south"], t.vector.clone(), "1"))
            .collect();
        self.g()
            .upsert(mine.clone())
            .await
            .map_err(|e| e.to_string())?;
        self.expected.insert(i.clone(), mine.len() as u64);
        let a_ids: BTreeSet<TemplateId> = self
            .a_templates
            .iter()
            .map(|t| t.meta.template_id)
            .collect();
        let i_ids: BTreeSet<TemplateId> = mine.iter().map(|t| t.meta.template_id).collect();
        let model = ModelRef {
            model_id: MODEL.into(),
            model_version: "1".into(),
        };
        for t in &a_s0 {
            for campus in [None, Some("north"), Some("east"), Some("south")] {
                for candidates in [None, Some(vec![ids("s0"), ids("s1")])] {
                    for (tenant, own, other) in
                        [(&i, &i_ids, &a_ids), (&self.a.clone(), &a_ids, &i_ids)]
                    {
                        let mut q = SearchQuery::new(tenant.clone(), t.vector.clone(), 100);
                        q.campus = campus.map(|c| CampusId::new(c).unwrap());
                        q.candidates = candidates.clone();
                        q.model = Some(model.clone());
                        let hits = self.search(&q).await?;
                        ensure!(
                            hits.iter().all(|h| &h.meta.tenant == tenant
                                && own.contains(&h.meta.template_id)
                                && !other.contains(&h.meta.template_id)),
                            "probe at {tenant} (campus {campus:?}) returned another school's template"
                        );
                        if let Some(c) = campus {
                            ensure!(
                                hits.iter().all(|h| h.meta.campuses.is_empty()
                                    || h.meta.campuses.iter().any(|x| x.as_str() == c)),
                                "campus {c} filter returned a student restricted elsewhere"
                            );
                        }
                    }
                }
            }
            // at school I the exact face is found at its campus, and nowhere else
            let mut q = SearchQuery::new(i.clone(), t.vector.clone(), 5);
            q.campus = Some(CampusId::new("south").unwrap());
            let hits = self.search(&q).await?;
            ensure!(
                hits.first().map(|h| h.similarity > 0.999).unwrap_or(false),
                "school I does not find its own student at its campus: {hits:?}"
            );
            q.campus = Some(CampusId::new("north").unwrap());
            ensure!(
                self.search(&q).await?.is_empty(),
                "school I found a south-only student at north"
            );
        }
        // an erasure at I leaves A's identical student alone
        let n = self
            .g()
            .delete_student(&i, &ids("s0"))
            .await
            .map_err(|e| e.to_string())?;
        ensure!(
            n == mine.len(),
            "deleted {n} of I's {} templates",
            mine.len()
        );
        self.expected.insert(i.clone(), 0);
        let hits = self
            .search(&SearchQuery::new(self.a.clone(), a_s0[0].vector.clone(), 3))
            .await?;
        ensure!(
            hits.first()
                .map(|h| h.meta.student == ids("s0"))
                .unwrap_or(false),
            "erasing I's student removed A's"
        );
        self.check_counts().await
    }

    async fn model_filter(&mut self) -> Result<(), String> {
        let c = self.synth.centre();
        let v1 = Self::template(&self.m.clone(), &ids("s0"), &[], self.synth.sample(&c), "1");
        let v2 = Self::template(&self.m.clone(), &ids("s0"), &[], self.synth.sample(&c), "2");
        self.g()
            .upsert(vec![v1.clone(), v2.clone()])
            .await
            .map_err(|e| e.to_string())?;
        self.expected.insert(self.m.clone(), 2);
        let mut q = SearchQuery::new(self.m.clone(), c, 10);
        ensure!(
            self.search(&q).await?.len() == 2,
            "no model filter should return both"
        );
        q.model = Some(ModelRef {
            model_id: MODEL.into(),
            model_version: "2".into(),
        });
        let hits = self.search(&q).await?;
        ensure!(
            hits.len() == 1 && hits[0].meta.template_id == v2.meta.template_id,
            "model filter v2 returned {hits:?}"
        );
        Ok(())
    }

    async fn listing(&mut self) -> Result<(), String> {
        let mut want: Vec<TemplateMeta> = self
            .a_templates
            .iter()
            .filter(|t| t.meta.student == ids("s3"))
            .map(|t| t.meta.clone())
            .collect();
        let mut got = self
            .g()
            .student_templates(&self.a, &ids("s3"))
            .await
            .map_err(|e| e.to_string())?;
        want.sort_by_key(|m| m.template_id);
        got.sort_by_key(|m| m.template_id);
        ensure!(got == want, "student_templates(s3) differs: {got:?}");
        let all = self
            .g()
            .tenant_templates(&self.b)
            .await
            .map_err(|e| e.to_string())?;
        ensure!(all.len() == 3, "tenant_templates(B) returned {}", all.len());
        for t in &all {
            let orig = self
                .b_templates
                .iter()
                .find(|o| o.meta.template_id == t.meta.template_id)
                .ok_or("unknown template listed")?;
            ensure!(
                t.meta == orig.meta && approx_eq(&t.vector, &normalized(&orig.vector), 1e-4),
                "tenant_templates content differs"
            );
        }
        Ok(())
    }

    async fn upsert_replaces(&mut self) -> Result<(), String> {
        let mut t = self.b_templates[0].clone();
        t.vector = self.synth.centre();
        t.meta.quality = 0.5;
        self.g()
            .upsert(vec![t.clone()])
            .await
            .map_err(|e| e.to_string())?;
        let got = self
            .g()
            .get(t.meta.template_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("replaced template missing")?;
        ensure!(
            got.meta == t.meta && approx_eq(&got.vector, &normalized(&t.vector), 1e-4),
            "upsert did not replace the template"
        );
        self.b_templates[0] = t;
        self.check_counts().await
    }

    async fn delete_some_templates(&mut self) -> Result<(), String> {
        let victim = self
            .a_templates
            .iter()
            .find(|t| t.meta.student == ids("s1"))
            .unwrap()
            .meta
            .template_id;
        let n = self
            .g()
            .delete_templates(&self.a, &[victim, victim, new_template_id()])
            .await
            .map_err(|e| e.to_string())?;
        ensure!(n == 1, "delete_templates reported {n}, expected 1");
        ensure!(
            self.g()
                .get(victim)
                .await
                .map_err(|e| e.to_string())?
                .is_none(),
            "deleted template still retrievable"
        );
        ensure!(
            self.count(CountScope::student(&self.a, &ids("s1"))).await? == 2,
            "s1 should have 2 templates left"
        );
        *self.expected.get_mut(&self.a).unwrap() -= 1;
        self.a_templates.retain(|t| t.meta.template_id != victim);
        self.check_counts().await
    }

    async fn count_scopes(&mut self) -> Result<(), String> {
        ensure!(
            self.count(CountScope::student(&self.a, &ids("s0"))).await? == 3,
            "count(A, s0) != 3"
        );
        ensure!(
            self.count(CountScope::student(&self.b, &ids("s0"))).await? == 3,
            "count(B, s0) != 3"
        );
        ensure!(
            self.count(CountScope::student(&self.a, &ids("ghost")))
                .await?
                == 0,
            "count of unknown student != 0"
        );
        let bad = CountScope {
            tenant: None,
            student: Some(ids("s0")),
        };
        ensure!(
            matches!(
                self.g().count(&bad).await,
                Err(GalleryError::InvalidRequest(_))
            ),
            "count of a student without tenant accepted"
        );
        self.check_counts().await
    }

    async fn unknown_student_delete(&mut self) -> Result<(), String> {
        match self.g().delete_student(&self.a, &ids("ghost")).await {
            Err(GalleryError::UnknownStudent { tenant, student })
                if tenant == self.a && student == ids("ghost") => {}
            other => return Err(format!("delete of unknown student: {other:?}")),
        }
        // s0 exists in A and B but not in the empty tenant.
        ensure!(
            matches!(
                self.g().delete_student(&self.empty, &ids("s0")).await,
                Err(GalleryError::UnknownStudent { .. })
            ),
            "delete in the wrong tenant did not fail"
        );
        self.check_counts().await
    }

    async fn restart_persistence(&mut self) -> Result<(), String> {
        self.reopen().await?;
        for t in self
            .a_templates
            .iter()
            .step_by(4)
            .chain(self.b_templates.iter())
        {
            let got = self
                .g()
                .get(t.meta.template_id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("template {} lost on restart", t.meta.template_id))?;
            ensure!(got.meta == t.meta, "metadata changed across restart");
            ensure!(
                approx_eq(&got.vector, &normalized(&t.vector), 1e-4),
                "vector changed across restart"
            );
        }
        let probe = self.synth.sample(&self.a_centres[4].clone());
        let hits = self
            .search(&SearchQuery::new(self.a.clone(), probe, 3))
            .await?;
        ensure!(
            hits.first().map(|h| h.meta.student == ids("s4")) == Some(true),
            "search after restart ranks wrong: {hits:?}"
        );
        self.check_counts().await
    }

    async fn delete_purge_reopen(&mut self) -> Result<(), String> {
        let dim = self.dim;
        let victim = ids(&format!("erase-me-{}", self.run));
        // A distinctive, exactly unit-norm vector: its f32 bytes can be looked for on disk.
        let mut v = vec![0.0f32; dim];
        v[..4].copy_from_slice(&[0.5, -0.5, 0.5, 0.5]);
        let mut erase = vec![Self::template(
            &self.x.clone(),
            &victim,
            &["north"],
            v.clone(),
            "1",
        )];
        let c = self.synth.centre();
        erase.push(Self::template(
            &self.x.clone(),
            &victim,
            &["north"],
            self.synth.sample(&c),
            "1",
        ));
        let keep_c = self.synth.centre();
        let keep = Self::template(
            &self.x.clone(),
            &ids("keep"),
            &[],
            self.synth.sample(&keep_c),
            "1",
        );
        let mut batch = erase.clone();
        batch.push(keep.clone());
        self.g().upsert(batch).await.map_err(|e| e.to_string())?;
        self.expected.insert(self.x.clone(), 3);
        let vec_needle: Vec<u8> = v[..4].iter().flat_map(|x| x.to_le_bytes()).collect();
        let id_needle = victim.as_str().as_bytes().to_vec();
        for (what, needle) in [("vector bytes", &vec_needle), ("student id", &id_needle)] {
            if let Some(found) = self.f.storage_contains(needle).await {
                ensure!(found, "sanity: the {what} of the student to erase are not found in storage before erasure, so the purge check would prove nothing");
            }
        }
        let n = self
            .g()
            .delete_student(&self.x, &victim)
            .await
            .map_err(|e| format!("delete_student: {e}"))?;
        ensure!(n == 2, "delete_student reported {n}, expected 2");
        *self.expected.get_mut(&self.x).unwrap() = 1;
        let check_gone = |hits: &[rollcall_domain::gallery::GalleryHit]| {
            hits.iter().all(|h| h.meta.student != victim)
        };
        let hits = self
            .search(&SearchQuery::new(self.x.clone(), v.clone(), 10))
            .await?;
        ensure!(check_gone(&hits), "deleted student still found by search");
        ensure!(
            hits.len() == 1 && hits[0].meta.template_id == keep.meta.template_id,
            "the other student should remain: {hits:?}"
        );
        for t in &erase {
            ensure!(
                self.g()
                    .get(t.meta.template_id)
                    .await
                    .map_err(|e| e.to_string())?
                    .is_none(),
                "deleted template retrievable by id"
            );
        }
        let report = self.g().purge().await.map_err(|e| format!("purge: {e}"))?;
        if self.f.exclusive() {
            let sum: u64 = self.expected.values().sum();
            ensure!(
                report.live_templates == sum,
                "purge reports {} live templates, expected {sum}",
                report.live_templates
            );
        }
        self.reopen().await?;
        let hits = self
            .search(&SearchQuery::new(self.x.clone(), v.clone(), 10))
            .await?;
        ensure!(
            check_gone(&hits) && hits.len() == 1,
            "after purge+reopen: {hits:?}"
        );
        for t in &erase {
            ensure!(
                self.g()
                    .get(t.meta.template_id)
                    .await
                    .map_err(|e| e.to_string())?
                    .is_none(),
                "erased template retrievable after purge+reopen"
            );
        }
        ensure!(
            self.count(CountScope::student(&self.x, &victim)).await? == 0,
            "erased student still counted"
        );
        ensure!(
            self.g()
                .get(keep.meta.template_id)
                .await
                .map_err(|e| e.to_string())?
                .is_some(),
            "purge lost a live template"
        );
        for (what, needle) in [("vector bytes", &vec_needle), ("student id", &id_needle)] {
            if let Some(found) = self.f.storage_contains(needle).await {
                ensure!(
                    !found,
                    "the erased student's {what} are still in storage after purge"
                );
            }
        }
        // Everyone else survived the purge.
        let probe = self.synth.sample(&self.a_centres[2].clone());
        let hits = self
            .search(&SearchQuery::new(self.a.clone(), probe, 1))
            .await?;
        ensure!(
            hits.first().map(|h| h.meta.student == ids("s2")) == Some(true),
            "search after purge ranks wrong"
        );
        self.check_counts().await
    }

    async fn health(&mut self) -> Result<(), String> {
        let h = self.g().health().await.map_err(|e| e.to_string())?;
        ensure!(h.dim == self.dim, "health dim {}", h.dim);
        let sum: u64 = self.expected.values().sum();
        ensure!(
            if self.f.exclusive() {
                h.templates == sum
            } else {
                h.templates >= sum
            },
            "health counts {} templates, expected {sum}",
            h.templates
        );
        Ok(())
    }
}

/// Runs every case in order against the backend; cases share state (later cases build on the
/// data of earlier ones), so the first failure is the one to read.
pub async fn run_conformance(f: &dyn GalleryFactory) -> Vec<CaseResult> {
    let g = match f.open().await {
        Ok(g) => g,
        Err(e) => {
            return vec![CaseResult {
                name: "open",
                passed: false,
                detail: e.to_string(),
            }]
        }
    };
    let dim = g.dim();
    assert!(dim >= 4, "the conformance suite needs dim >= 4");
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let mut ctx = Ctx {
        f,
        g: Some(g),
        dim,
        synth: Synth::new(0x5eed, dim, 0.6 / (dim as f32).sqrt()),
        a: TenantId::new(format!("A-{run}")).unwrap(),
        a_centres: vec![],
        a_templates: vec![],
        b: TenantId::new(format!("B-{run}")).unwrap(),
        b_templates: vec![],
        m: TenantId::new(format!("M-{run}")).unwrap(),
        empty: TenantId::new(format!("E-{run}")).unwrap(),
        x: TenantId::new(format!("X-{run}")).unwrap(),
        expected: HashMap::new(),
        run,
    };
    let mut out = vec![];
    macro_rules! case {
        ($name:literal, $m:ident) => {{
            let r = ctx.$m().await;
            out.push(CaseResult {
                name: $name,
                passed: r.is_ok(),
                detail: r.err().unwrap_or_default(),
            });
        }};
    }
    case!("empty_gallery_search", empty_gallery);
    case!("wrong_vector_size", wrong_vector_size);
    case!("upsert_search_ranking_top_k", upsert_search_ranking_top_k);
    case!("campus_filter", campus_filter);
    case!("candidate_list_filter", candidate_filter);
    case!("tenant_isolation", tenant_isolation);
    case!("school_and_campus_isolation", school_and_campus_isolation);
    case!("model_filter", model_filter);
    case!("student_and_tenant_listing", listing);
    case!("upsert_replaces_by_template_id", upsert_replaces);
    case!("delete_some_templates", delete_some_templates);
    case!("count_scopes", count_scopes);
    case!("unknown_student_delete", unknown_student_delete);
    case!("restart_persistence", restart_persistence);
    case!("delete_purge_reopen_erasure", delete_purge_reopen);
    case!("health", health);
    out
}

/// Prints the results and panics with the failures (for `#[test]`s).
pub fn assert_all_passed(backend: &str, results: &[CaseResult]) {
    for r in results {
        println!(
            "[{backend}] {:<34} {}",
            r.name,
            if r.passed {
                "ok".to_string()
            } else {
                format!("FAILED: {}", r.detail)
            }
        );
    }
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| format!("{}: {}", r.name, r.detail))
        .collect();
    assert!(
        failed.is_empty(),
        "{backend} conformance failures:\n{}",
        failed.join("\n")
    );
}
