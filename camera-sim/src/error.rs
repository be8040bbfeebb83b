//! Why a scenario could not be loaded ([`ScenarioError`]): below both the scenario file and the
//! photo references it validates, so neither has to reach into the other for it.

use std::path::PathBuf;

/// Why a scenario file could not be loaded. Validation variants name the offending field with
/// its position, e.g. `students[2].appearance_photos[0]`.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed, a field has the wrong type, a required field is missing or an
    /// unknown field is present (the message names it).
    #[error("scenario {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A reference to an id that is not declared.
    #[error("{field}: unknown {kind} id {id:?}")]
    UnknownId {
        field: String,
        kind: &'static str,
        id: String,
    },
    /// A photo file does not exist.
    #[error("{field}: photo file {} not found", path.display())]
    MissingPhoto { field: String, path: PathBuf },
    /// Two entities share an id (students and strangers share one namespace of person ids).
    #[error("{field}: duplicate id {id:?} (already used by {other})")]
    DuplicateId {
        field: String,
        id: String,
        other: String,
    },
    /// Any other invalid value.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

impl ScenarioError {
    /// The field the error is about (`None` for read and parse errors).
    pub fn field(&self) -> Option<&str> {
        match self {
            ScenarioError::Read { .. } | ScenarioError::Parse { .. } => None,
            ScenarioError::UnknownId { field, .. }
            | ScenarioError::MissingPhoto { field, .. }
            | ScenarioError::DuplicateId { field, .. }
            | ScenarioError::Invalid { field, .. } => Some(field),
        }
    }
}
