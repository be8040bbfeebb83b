//! Calibration report: what the enrolled templates say about the accept threshold.
//!
//! The accept threshold must sit above the similarity of the two most alike *different*
//! enrolled students (the "impostor floor"): otherwise one can be checked in as the other.
//! It should also stay below the similarity of a student's own templates (the "genuine"
//! scores), or that student will not be recognised.

use std::collections::BTreeMap;

use rollcall_domain::face::dot;
use rollcall_domain::gallery::{Template, TemplateId};
use rollcall_domain::StudentId;
use serde::{Deserialize, Serialize};

/// The closest pair of templates belonging to two different students.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImpostorPair {
    pub student_a: StudentId,
    pub template_a: TemplateId,
    pub student_b: StudentId,
    pub template_b: TemplateId,
    pub similarity: f32,
}

/// A student's weakest own pair (its two least alike templates).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeakGenuine {
    pub student: StudentId,
    pub similarity: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationReport {
    pub students: usize,
    pub templates: usize,
    /// Highest similarity between templates of two different students; `None` with fewer than
    /// two students.
    pub max_impostor: Option<ImpostorPair>,
    /// Students with fewer than 2 templates (no genuine pair: enroll more photos).
    pub under_enrolled: Vec<StudentId>,
    /// Lowest similarity between two templates of the same student, over all students.
    pub min_genuine: Option<WeakGenuine>,
    /// Genuine pairs (same student) that would be rejected at the suggested threshold.
    pub genuine_pairs_below_threshold: usize,
    pub genuine_pairs: usize,
    pub manifest_default: f32,
    pub margin: f32,
    /// See [`calibration_report`] for the rule.
    pub suggested_threshold: f32,
}

/// Builds the report from every template of one tenant (one model).
///
/// Rule for the suggested accept threshold:
/// `max(manifest_default, max_impostor + margin)`, capped at 0.99. The model manifest's
/// default (set from a public benchmark for that model) is the floor: a small gallery that
/// happens to hold no look-alikes must not lower it. When two enrolled students are closer
/// than the default minus the margin, the threshold is raised above their similarity by the
/// margin, so neither can be accepted as the other. The report also counts genuine pairs
/// (same student) that fall below the suggestion, which is the price in missed recognitions.
///
/// Cost is quadratic in the number of templates (exact, no index), fine for one school
/// (10k templates: 5·10⁷ dot products, well under a minute).
pub fn calibration_report(
    templates: &[Template],
    manifest_default: f32,
    margin: f32,
) -> CalibrationReport {
    let mut by_student: BTreeMap<&StudentId, Vec<&Template>> = BTreeMap::new();
    for t in templates {
        by_student.entry(&t.meta.student).or_default().push(t);
    }
    let unit: Vec<Vec<f32>> = templates
        .iter()
        .map(|t| crate::normalized(&t.vector))
        .collect();
    let mut max_impostor: Option<ImpostorPair> = None;
    let mut genuine: Vec<(usize, f32)> = vec![];
    let mut min_genuine: Option<WeakGenuine> = None;
    for i in 0..templates.len() {
        for j in (i + 1)..templates.len() {
            if unit[i].len() != unit[j].len() {
                continue;
            }
            let s = dot(&unit[i], &unit[j]);
            let (a, b) = (&templates[i].meta, &templates[j].meta);
            if a.student == b.student {
                genuine.push((i, s));
                if min_genuine.as_ref().is_none_or(|g| s < g.similarity) {
                    min_genuine = Some(WeakGenuine {
                        student: a.student.clone(),
                        similarity: s,
                    });
                }
            } else if max_impostor.as_ref().is_none_or(|p| s > p.similarity) {
                let (a, b) = if a.student <= b.student {
                    (a, b)
                } else {
                    (b, a)
                };
                max_impostor = Some(ImpostorPair {
                    student_a: a.student.clone(),
                    template_a: a.template_id,
                    student_b: b.student.clone(),
                    template_b: b.template_id,
                    similarity: s,
                });
            }
        }
    }
    let mut suggested = manifest_default;
    if let Some(p) = &max_impostor {
        suggested = suggested.max(p.similarity + margin);
    }
    let suggested = suggested.min(0.99);
    CalibrationReport {
        students: by_student.len(),
        templates: templates.len(),
        under_enrolled: by_student
            .iter()
            .filter(|(_, v)| v.len() < 2)
            .map(|(s, _)| (*s).clone())
            .collect(),
        max_impostor,
        min_genuine,
        genuine_pairs_below_threshold: genuine.iter().filter(|(_, s)| *s < suggested).count(),
        genuine_pairs: genuine.len(),
        manifest_default,
        margin,
        suggested_threshold: suggested,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall_domain::gallery::TemplateMeta;
    use rollcall_domain::TenantId;

    fn t(student: &str, id: u128, v: Vec<f32>) -> Template {
        Template {
            meta: TemplateMeta {
                template_id: TemplateId::from_u128(id),
                student: StudentId::new(student).unwrap(),
                tenant: TenantId::new("t").unwrap(),
                campuses: vec![],
                model_id: "m".into(),
                model_version: "1".into(),
                quality: 1.0,
                created_at: chrono::Utc::now(),
            },
            vector: v,
        }
    }

    #[test]
    fn finds_the_closest_different_students_and_raises_the_threshold() {
        // a and b are look-alikes (cos 0.8); c is far away and has one template.
        let ts = vec![
            t("a", 1, vec![1.0, 0.0, 0.0]),
            t("a", 2, vec![0.95, 0.3122499, 0.0]),
            t("b", 3, vec![0.8, 0.6, 0.0]),
            t("b", 4, vec![0.8, 0.6, 0.0]),
            t("c", 5, vec![0.0, 0.0, 1.0]),
        ];
        let r = calibration_report(&ts, 0.5, 0.02);
        let p = r.max_impostor.clone().unwrap();
        assert_eq!((p.student_a.as_str(), p.student_b.as_str()), ("a", "b"));
        assert_eq!((p.template_a.as_u128(), p.template_b.as_u128()), (2, 3));
        // 0.95*0.8 + 0.31225*0.6 = 0.9473
        assert!((p.similarity - 0.947_35).abs() < 1e-3, "{}", p.similarity);
        assert!((r.suggested_threshold - (p.similarity + 0.02)).abs() < 1e-6);
        assert_eq!(r.under_enrolled, vec![StudentId::new("c").unwrap()]);
        assert_eq!(r.genuine_pairs, 2);
        assert_eq!(r.min_genuine.as_ref().unwrap().student.as_str(), "a");
        assert_eq!(r.genuine_pairs_below_threshold, 1); // a's pair at 0.95 < 0.967
        assert_eq!((r.students, r.templates), (3, 5));
    }

    #[test]
    fn never_goes_below_the_manifest_default() {
        let ts = vec![t("a", 1, vec![1.0, 0.0]), t("b", 2, vec![0.0, 1.0])];
        let r = calibration_report(&ts, 0.42, 0.05);
        assert_eq!(r.suggested_threshold, 0.42);
        // Look-alikes at 0.97 + margin would exceed 0.99: capped.
        let ts = vec![t("a", 1, vec![1.0, 0.0]), t("b", 2, vec![0.97, 0.2431049])];
        assert_eq!(
            calibration_report(&ts, 0.42, 0.05).suggested_threshold,
            0.99
        );
        let r = calibration_report(&[], 0.42, 0.05);
        assert!(r.max_impostor.is_none());
        assert_eq!(r.suggested_threshold, 0.42);
    }
}
