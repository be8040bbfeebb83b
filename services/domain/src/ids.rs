//! Identifiers shared by every crate. They are opaque strings chosen by the school
//! (student numbers, campus codes), validated to be non-empty, short and printable.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("identifier is empty")]
    Empty,
    #[error("identifier is longer than 128 characters")]
    TooLong,
    #[error("identifier contains a control character or whitespace: {0:?}")]
    BadChar(String),
    /// A path separator (`/`, `\\`) or a whole `.`/`..`: ids name files and directories
    /// (a student's enrollment crops), so none may step out of its own directory.
    #[error("identifier contains a path separator or is a dot segment: {0:?}")]
    PathLike(String),
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps an identifier.
            pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                validate_id(&s)?;
                Ok(Self(s))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }
    };
}

fn validate_id(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.chars().count() > 128 {
        return Err(IdError::TooLong);
    }
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(IdError::BadChar(s.to_string()));
    }
    Ok(())
}

/// The check for an identifier being *created* (a new student, campus, class, …): valid as
/// above, and no path separator (`/`, `\\`) and not `.` or `..`. Identifiers read back from
/// storage are only checked as above, so records made before this rule keep working (every
/// path built from an id goes through [`path_component`] anyway).
pub fn check_new_id(s: &str) -> Result<(), IdError> {
    validate_id(s)?;
    if s.contains(['/', '\\']) || s == "." || s == ".." {
        return Err(IdError::PathLike(s.to_string()));
    }
    Ok(())
}

/// An identifier as one path component: ASCII letters, digits, `-` and `_` kept, every other
/// byte written `%XX`, so the result never holds a separator and is never `.` or `..`. Every
/// file or directory named after an id (a student's enrollment crops, a subject-access
/// export) is built through this one function, also for ids stored before ids were checked
/// for separators.
pub fn path_component(id: &str) -> String {
    let mut s = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// The directory holding a student's enrollment crops: `<crops>/<school>/<student>`, both
/// through [`path_component`]. (A path is only built here, nothing is read.)
pub fn student_crops_dir(
    crops: &std::path::Path,
    tenant: &str,
    student: &str,
) -> std::path::PathBuf {
    crops
        .join(path_component(tenant))
        .join(path_component(student))
}

string_id!(
    /// A school (tenant). Every query is scoped by it.
    TenantId
);
string_id!(
    /// A campus of a school.
    CampusId
);
string_id!(
    /// A student, as the school numbers them.
    StudentId
);
string_id!(
    /// A camera.
    CameraId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_validate() {
        assert!(StudentId::new("s-001").is_ok());
        assert_eq!(StudentId::new(""), Err(IdError::Empty));
        assert!(matches!(StudentId::new("a b"), Err(IdError::BadChar(_))));
        assert_eq!(StudentId::new("x".repeat(129)), Err(IdError::TooLong));
        // ids name directories: no separators, no dot segments (dots inside are fine)
        for bad in ["./S-017", "../review", "a/b", "a\\b", ".", ".."] {
            assert!(
                matches!(check_new_id(bad), Err(IdError::PathLike(_))),
                "{bad}"
            );
            // stored before the rule: still readable
            assert!(StudentId::new(bad).is_ok(), "{bad}");
        }
        assert!(check_new_id("S.017").is_ok());
        assert!(check_new_id("...").is_ok());
        assert!(matches!(check_new_id("a b"), Err(IdError::BadChar(_))));
        assert_eq!(path_component("../x"), "%2E%2E%2Fx");
        assert_eq!(path_component("."), "%2E");
        let id: CampusId = "north".parse().unwrap();
        assert_eq!(id.to_string(), "north");
    }
}
