//! rollcall-gallery (in progress).
