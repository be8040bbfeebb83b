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
        let id: CampusId = "north".parse().unwrap();
        assert_eq!(id.to_string(), "north");
    }
}
