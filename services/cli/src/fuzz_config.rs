//! serve's config file, fuzzed (issue 19; tests/common/fuzzkit.rs): whatever the text,
//! parsing and checking it answers without a panic, and an accepted config has an instance that
//! is a plain file name and no camera id twice.

#[path = "../../../tests/common/fuzzkit.rs"]
mod fuzzkit;

use crate::cmd_serve::ServeConfig;

#[test]
fn fuzz_serve_config() {
    fuzzkit::run("serve", 5000, |b| {
        if let Ok(c) = ServeConfig::parse(&String::from_utf8_lossy(b), |_| None) {
            if c.instance.contains(['/', '.', '\\']) {
                return Err(format!("instance {:?} accepted", c.instance));
            }
            let mut ids: Vec<_> = c.cameras.iter().map(|c| c.id.as_str()).collect();
            ids.sort();
            ids.dedup();
            if ids.len() != c.cameras.len() {
                return Err("a camera id twice".into());
            }
        }
        Ok(())
    });
}
