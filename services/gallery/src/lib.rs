//! rollcall's face template gallery on Qdrant, behind the domain's [`Gallery`] port.
//!
//! * [`EmbeddedGallery`]: in-process, on `qdrant-edge` 0.7.2, stored under a data directory
//!   (the default for one school on one machine).
//! * [`RemoteGallery`]: a Qdrant server or cluster over gRPC (`qdrant-client`), for chains of
//!   campuses sharing one collection (tenant-partitioned).
//!
//! Both pass the same conformance suite (in the dev-only `rollcall-testkit`). [`calibration`]
//! turns the enrolled templates into a threshold report; [`server`] runs a local Qdrant server
//! process (tests, `rollcall bench gallery`, which measures both backends against exact brute
//! force).

pub mod calibration;
pub mod embedded;
mod payload;
pub mod privacy;
pub mod remote;
pub mod server;
pub mod students;
pub mod vault;

pub use embedded::{EmbeddedConfig, EmbeddedGallery, HnswParams};
pub use remote::{RemoteConfig, RemoteGallery};
pub use rollcall_domain::gallery::{
    best_per_student, CountScope, Gallery, GalleryError, GalleryHealth, GalleryHit, ModelRef,
    NewTemplate, PurgeReport, SearchQuery, StudentCandidate, Template, TemplateId, TemplateMeta,
};

/// A fresh random (v4) template id.
pub fn new_template_id() -> TemplateId {
    TemplateId::from_u128(uuid::Uuid::new_v4().as_u128())
}

/// L2-normalised copy of a vector (Qdrant stores cosine vectors normalised).
pub fn normalized(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n == 0.0 {
        v.to_vec()
    } else {
        v.iter().map(|x| x / n).collect()
    }
}
