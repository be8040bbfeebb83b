//! `LocalQdrant` starts from a binary path relative to the caller's directory (as
//! `rollcall bench gallery --qdrant-bin ../shared/tools/qdrant` passes it), although the server
//! itself runs in a temporary directory of its own.

use rollcall_gallery::server::{http_get, LocalQdrant};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[test]
fn a_server_starts_from_a_relative_binary_path() {
    // the tests run in services/gallery; the binary is ../shared/tools/qdrant beside the
    // repository (or ROLLCALL_QDRANT_BIN), made relative to here
    let absolute = rollcall_gallery::server::default_binary(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."),
    );
    let absolute = absolute
        .canonicalize()
        .unwrap_or_else(|e| panic!("no Qdrant server binary at {}: {e}", absolute.display()));
    let here = std::env::current_dir().unwrap().canonicalize().unwrap();
    // up to the common ancestor, then down: valid from here only (not from the server's own
    // directory, where the old code resolved it)
    let common = here
        .components()
        .zip(absolute.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut relative = PathBuf::new();
    for _ in here.components().skip(common) {
        relative.push("..");
    }
    for c in absolute.components().skip(common) {
        relative.push(c);
    }
    assert!(
        relative.is_relative() && relative.starts_with(".."),
        "{relative:?}"
    );
    let node = LocalQdrant::start(&relative).expect("the node starts");
    assert!(matches!(
        http_get(node.http_port(), "/readyz", Duration::from_secs(5)),
        Some((200, _))
    ));
}
