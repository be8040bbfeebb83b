//! `deploy/` checked against what `rollcall serve` accepts (no container engine runs here):
//! every serve config the compose file mounts, and the single-box example, load with
//! [`ServeConfig::load`] (unknown keys refused); every `ROLLCALL_*`, `QDRANT_*` and
//! `DATABASE_URL` variable that the compose file, the systemd unit and the environment
//! example set for serve is one serve reads ([`SERVE_ENV`]), and each name of that list occurs
//! in the sources that read it. The compose file is read line by line (no YAML crate): the
//! layout of `deploy/docker-compose.yml` (two-space indents, one key per line).

use crate::cmd_serve::{ServeConfig, SERVE_ENV};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// One service of the compose file: its command line, environment, volumes and ports.
#[derive(Debug, Default)]
struct Service {
    command: String,
    env: BTreeMap<String, String>,
    volumes: Vec<String>,
    ports: Vec<String>,
    healthcheck: String,
}

fn indent(l: &str) -> usize {
    l.len() - l.trim_start().len()
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches('"').trim_matches('\'').to_string()
}

/// The `services:` section of a compose file, parsed line by line.
fn services(text: &str) -> BTreeMap<String, Service> {
    let mut out: BTreeMap<String, Service> = BTreeMap::new();
    let mut in_services = false;
    let mut current: Option<String> = None;
    let mut section = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        match indent(line) {
            0 => {
                in_services = t == "services:";
                current = None;
            }
            2 if in_services => {
                let name = t.trim_end_matches(':').to_string();
                out.entry(name.clone()).or_default();
                current = Some(name);
                section.clear();
            }
            4 if current.is_some() => {
                let svc = out.get_mut(current.as_ref().unwrap()).unwrap();
                let (k, v) = t.split_once(':').unwrap_or((t, ""));
                section = k.to_string();
                if k == "command" {
                    svc.command = v.trim().to_string();
                }
            }
            n if n >= 6 && current.is_some() => {
                let svc = out.get_mut(current.as_ref().unwrap()).unwrap();
                match section.as_str() {
                    "environment" => {
                        let item = t.strip_prefix("- ").unwrap_or(t);
                        let (k, v) = item
                            .split_once('=')
                            .filter(|_| t.starts_with("- "))
                            .or_else(|| item.split_once(':'))
                            .unwrap_or((item, ""));
                        svc.env.insert(unquote(k), unquote(v));
                    }
                    "volumes" => svc.volumes.push(unquote(t.strip_prefix("- ").unwrap_or(t))),
                    "ports" => svc.ports.push(unquote(t.strip_prefix("- ").unwrap_or(t))),
                    "healthcheck" => svc.healthcheck += t,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    out
}

fn serve_services(all: &BTreeMap<String, Service>) -> Vec<(&String, &Service)> {
    all.iter()
        .filter(|(_, s)| s.command.contains("\"serve\""))
        .collect()
}

/// The variables of `names` that serve would not read (the ones this check is about).
fn unknown_to_serve<'a>(names: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    names
        .into_iter()
        .filter(|k| k.starts_with("ROLLCALL_") || k.starts_with("QDRANT_") || *k == "DATABASE_URL")
        .filter(|k| !SERVE_ENV.contains(&k.as_str()))
        .cloned()
        .collect()
}

fn compose() -> BTreeMap<String, Service> {
    services(&std::fs::read_to_string(deploy().join("docker-compose.yml")).unwrap())
}

#[test]
fn deploy_compose_has_two_serves_postgres_a_three_node_qdrant_cluster_and_a_webhook() {
    let all = compose();
    let serves = serve_services(&all);
    assert_eq!(serves.len(), 2, "{:?}", all.keys());
    let qdrant: Vec<_> = all.keys().filter(|k| k.starts_with("qdrant-")).collect();
    assert_eq!(qdrant.len(), 3, "{qdrant:?}");
    for q in &qdrant {
        assert_eq!(all[*q].env["QDRANT__CLUSTER__ENABLED"], "true");
    }
    assert!(all.contains_key("postgres") && all.contains_key("webhook"));
    for (name, s) in &serves {
        // the ledger on the compose's PostgreSQL, the gallery on one of its Qdrant nodes (gRPC),
        // notifications to its webhook receiver
        assert!(s.env["DATABASE_URL"].contains("@postgres:5432/"), "{name}");
        // every node of the cluster, each once (the client fails over between them)
        let q = &s.env["QDRANT_URL"];
        let mut nodes: Vec<&str> = q.split(',').collect();
        nodes.sort();
        let mut want: Vec<String> = qdrant.iter().map(|n| format!("http://{n}:6334")).collect();
        want.sort();
        assert_eq!(nodes, want, "{name}: QDRANT_URL {q}");
        // the tested cluster layout (ARCHITECTURE.md, "Scale-out")
        assert_eq!(s.env["QDRANT_SHARDS"], "3", "{name}");
        assert_eq!(s.env["QDRANT_REPLICATION_FACTOR"], "2", "{name}");
        assert_eq!(s.env["QDRANT_WRITE_CONSISTENCY_FACTOR"], "1", "{name}");
        assert!(s.env["ROLLCALL_WEBHOOK_URL"].starts_with("http://webhook:8080/"));
        // serve listens on the port the compose publishes and health-checks
        let listen_port = s.env["ROLLCALL_LISTEN"]
            .rsplit(':')
            .next()
            .unwrap()
            .to_string();
        assert!(
            s.ports
                .iter()
                .any(|p| p.ends_with(&format!(":{listen_port}"))),
            "{name}: {:?} vs {listen_port}",
            s.ports
        );
        assert!(
            s.healthcheck.contains(&format!(":{listen_port}/healthz")),
            "{name}"
        );
    }
}

#[test]
fn deploy_serve_configs_load_with_serve_config_load() {
    let all = compose();
    let mut cameras = BTreeSet::new();
    let mut loaded = 0;
    for (name, s) in serve_services(&all) {
        let target = s
            .command
            .split(',')
            .map(unquote)
            .map(|a| {
                a.trim_matches(|c| c == '[' || c == ']')
                    .trim()
                    .trim_matches('"')
                    .to_string()
            })
            .skip_while(|a| a != "--config")
            .nth(1)
            .unwrap_or_else(|| panic!("{name}: no --config in {}", s.command));
        let mount = s
            .volumes
            .iter()
            .find_map(|v| {
                let mut parts = v.split(':');
                let (src, dst) = (parts.next()?, parts.next()?);
                (dst == target).then(|| src.to_string())
            })
            .unwrap_or_else(|| panic!("{name}: nothing mounted at {target}"));
        let path = deploy().join(&mount);
        let cfg = ServeConfig::load(&path)
            .unwrap_or_else(|e| panic!("{name}: {}: {e:#}", path.display()));
        assert!(!cfg.cameras.is_empty(), "{name}");
        for c in &cfg.cameras {
            // two replicas must not both run a camera
            assert!(
                cameras.insert(c.id.to_string()),
                "camera {} in two serves",
                c.id
            );
        }
        loaded += 1;
    }
    assert_eq!(loaded, 2);
    // the single-box example the systemd unit uses
    let unit = std::fs::read_to_string(deploy().join("rollcall.service")).unwrap();
    assert!(unit
        .contains("ExecStart=/usr/local/bin/rollcall serve --config /etc/rollcall/rollcall.toml"));
    let cfg = ServeConfig::load(&deploy().join("rollcall.toml")).unwrap();
    assert_eq!(cfg.cameras.len(), 1);
}

#[test]
fn deploy_environment_is_what_serve_reads() {
    let all = compose();
    let mut seen = BTreeSet::new();
    for (name, s) in serve_services(&all) {
        let bad = unknown_to_serve(s.env.keys());
        assert!(
            bad.is_empty(),
            "{name} sets {bad:?}, which serve never reads"
        );
        seen.extend(s.env.keys().cloned());
    }
    for must in [
        "DATABASE_URL",
        "QDRANT_URL",
        "ROLLCALL_LISTEN",
        "ROLLCALL_DATA",
    ] {
        assert!(seen.contains(must), "{must} not set for serve");
    }
    // the environment file (systemd EnvironmentFile, compose env_file) and the unit's own
    let example = std::fs::read_to_string(deploy().join("rollcall.env.example")).unwrap();
    let keys: Vec<String> = example
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains('='))
        .map(|l| l.split('=').next().unwrap().trim().to_string())
        .collect();
    assert!(keys.contains(&"ROLLCALL_TEMPLATE_KEYS".to_string()));
    assert_eq!(unknown_to_serve(&keys), Vec::<String>::new());
    let unit = std::fs::read_to_string(deploy().join("rollcall.service")).unwrap();
    let keys: Vec<String> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .map(|l| l.split('=').next().unwrap().to_string())
        .collect();
    assert!(!keys.is_empty());
    assert_eq!(unknown_to_serve(&keys), Vec::<String>::new());
}

#[test]
fn the_check_itself_catches_a_variable_serve_does_not_read() {
    let text = "services:\n  app:\n    command: [\"serve\", \"--config\", \"/c.toml\"]\n    \
                environment:\n      QDRANT_URL: http://q:6334\n      - ROLLCALL_GALERY_LEAN=1\n      \
                ROLLCALL_LISTEN: 0.0.0.0:1\n  qdrant:\n    environment:\n      QDRANT__CLUSTER__ENABLED: \"true\"\n";
    let all = services(text);
    let serves = serve_services(&all);
    assert_eq!(serves.len(), 1);
    assert_eq!(
        unknown_to_serve(serves[0].1.env.keys()),
        vec!["ROLLCALL_GALERY_LEAN".to_string()]
    );
}

/// Each name in [`SERVE_ENV`] is a string the code reads (not a made-up list).
#[test]
fn serve_env_names_occur_in_the_sources_that_read_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut text = String::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "tests" && n != "target") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("deploy_check.rs") {
                // the list itself is not evidence
                let t = std::fs::read_to_string(&p).unwrap();
                let t = match t.find("pub const SERVE_ENV") {
                    Some(i) => t[..i].to_string() + &t[i + t[i..].find("];").unwrap()..],
                    None => t,
                };
                text += &t;
            }
        }
    }
    for name in SERVE_ENV {
        let quoted = format!("\"{name}\"");
        assert!(text.contains(&quoted), "{name} is read nowhere");
    }
}
