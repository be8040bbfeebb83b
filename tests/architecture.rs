//! The crate table of ARCHITECTURE.md ("what it must NOT know") checked against the real
//! dependency graph (`cargo metadata --format-version 1 --no-deps`).
//!
//! The table is read, not copied: every row is checked, so a new crate's row is picked up (and a
//! workspace crate without a row fails). The "must not know" column is prose; each phrase of it
//! (split at commas and colons, explanations in parentheses left out, a leading "no " dropped)
//! must be in [`VOCABULARY`], which says which packages knowing it means. A phrase that is not
//! there fails the test until it is added, so the table cannot promise what nothing checks.
//!
//! A crate knows the workspace crates it reaches through normal and build dependencies (not
//! dev-dependencies: tests may wire anything), and the outside packages it depends on directly
//! (the API may call the ledger, which uses sqlx; the API itself must not).

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What each phrase of the "must not know" column means in packages. An empty list: a rule that
/// dependencies cannot show (it is kept by review), named here so that it is a decision.
const VOCABULARY: &[(&str, &[&str])] = &[
    ("any i/o", IO),
    ("tokio", &["tokio"]),
    ("sqlx", &["sqlx"]),
    ("ort", &["ort"]),
    ("opencv", &["opencv"]),
    ("http", HTTP),
    ("files", &[]),
    ("faces", &["rollcall-vision", "rollcall-gallery"]),
    ("students", &["rollcall-ledger", "rollcall-gallery"]),
    ("sql", SQL),
    (
        "wire formats",
        &["serde_json", "prost", "tonic", "axum", "rmp-serde"],
    ),
    (
        "the gallery",
        &["rollcall-gallery", "qdrant-edge", "qdrant-client"],
    ),
    ("the ledger", &["rollcall-ledger"]),
    ("cameras", &["rollcall-capture", "opencv"]),
    ("onnx", &["ort"]),
    ("images", &["rollcall-vision", "image", "opencv"]),
    ("the face pipeline", &["rollcall-vision"]),
    ("onnx models", &["ort"]),
    (
        "embeddings",
        &[
            "rollcall-vision",
            "rollcall-gallery",
            "qdrant-edge",
            "qdrant-client",
        ],
    ),
    (
        "cameras' pixels",
        &["rollcall-capture", "rollcall-camera-sim", "opencv"],
    ),
    (
        "qdrant",
        &["qdrant-edge", "qdrant-client", "rollcall-gallery"],
    ),
    // notify reads outbox rows; the rules that decide a cause are in the domain and ledger,
    // which it may use
    ("how a cause is decided", &[]),
];

const SQL: &[&str] = &["sqlx", "rusqlite", "postgres", "tokio-postgres", "diesel"];
const HTTP: &[&str] = &[
    "axum",
    "hyper",
    "hyper-util",
    "http-body-util",
    "reqwest",
    "ureq",
    "tonic",
];
const IO: &[&str] = &[
    "tokio",
    "sqlx",
    "rusqlite",
    "ort",
    "opencv",
    "axum",
    "hyper",
    "reqwest",
    "tonic",
    "lettre",
    "qdrant-edge",
    "qdrant-client",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One row of the crate table.
#[derive(Debug, Clone)]
struct Row {
    krate: String,
    path: String,
    must_not_know: String,
}

/// The rows of the table whose header has the columns `crate`, `path` and `must not know`.
fn crate_table(doc: &str) -> Result<Vec<Row>, String> {
    let cells = |line: &str| -> Vec<String> {
        let t = line.trim();
        let t = t.strip_prefix('|').unwrap_or(t);
        let t = t.strip_suffix('|').unwrap_or(t);
        t.split('|').map(|c| c.trim().to_string()).collect()
    };
    let mut lines = doc.lines().peekable();
    while let Some(line) = lines.next() {
        if !line.trim_start().starts_with('|') {
            continue;
        }
        let header: Vec<String> = cells(line).iter().map(|c| c.to_lowercase()).collect();
        let col = |name: &str| header.iter().position(|h| h == name);
        let (Some(c), Some(p), Some(m)) = (col("crate"), col("path"), col("must not know")) else {
            continue;
        };
        lines.next(); // |---|---|
        let mut rows = Vec::new();
        while let Some(l) = lines.next_if(|l| l.trim_start().starts_with('|')) {
            let r = cells(l);
            if r.len() != header.len() {
                return Err(format!("crate table row has {} cells: {l}", r.len()));
            }
            rows.push(Row {
                krate: r[c].trim_matches('`').to_string(),
                path: r[p].trim_matches('`').to_string(),
                must_not_know: r[m].clone(),
            });
        }
        return Ok(rows);
    }
    Err("no table with the columns crate | path | must not know".into())
}

/// The phrases of a "must not know" cell: parenthesised explanations dropped, split at commas
/// and colons, a leading "no " dropped, lower case.
fn phrases(cell: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut depth = 0u32;
    for ch in cell.chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => plain.push(ch),
            _ => {}
        }
    }
    plain
        .split([',', ':', ';'])
        .map(|p| p.trim().to_lowercase())
        .map(|p| p.strip_prefix("no ").map(str::to_string).unwrap_or(p))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// A workspace package: name, directory relative to the root, dependencies (name, kind).
#[derive(Debug, Clone)]
struct Package {
    name: String,
    dir: String,
    deps: Vec<(String, Option<String>)>,
}

fn workspace_packages() -> Vec<Package> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(&cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("run {cargo} metadata: {e}"));
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let root_dir = PathBuf::from(m["workspace_root"].as_str().expect("workspace_root"));
    m["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let manifest = PathBuf::from(p["manifest_path"].as_str().expect("manifest_path"));
            let dir = manifest
                .parent()
                .and_then(|d| d.strip_prefix(&root_dir).ok())
                .map(|d| d.to_string_lossy().into_owned())
                .unwrap_or_default();
            Package {
                name: p["name"].as_str().expect("name").to_string(),
                dir,
                deps: p["dependencies"]
                    .as_array()
                    .expect("dependencies")
                    .iter()
                    .map(|d| {
                        (
                            d["name"].as_str().expect("dependency name").to_string(),
                            d["kind"].as_str().map(str::to_string),
                        )
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Each phrase's packages, or the phrases the vocabulary does not know.
fn forbidden(row: &Row) -> Result<BTreeMap<String, Vec<&'static str>>, Vec<String>> {
    let mut known = BTreeMap::new();
    let mut unknown = Vec::new();
    for p in phrases(&row.must_not_know) {
        match VOCABULARY.iter().find(|(term, _)| *term == p) {
            Some((_, pkgs)) => {
                known.insert(p, pkgs.to_vec());
            }
            None => unknown.push(p),
        }
    }
    if unknown.is_empty() {
        Ok(known)
    } else {
        Err(unknown)
    }
}

/// Every way the packages break the table: "crate knows X (phrase): via …".
fn violations(rows: &[Row], packages: &[Package]) -> Vec<String> {
    let by_name: BTreeMap<&str, &Package> = packages.iter().map(|p| (p.name.as_str(), p)).collect();
    let runtime = |p: &Package| -> Vec<String> {
        p.deps
            .iter()
            .filter(|(_, kind)| kind.as_deref() != Some("dev"))
            .map(|(n, _)| n.clone())
            .collect()
    };
    let mut out = Vec::new();
    for row in rows {
        let Some(pkg) = by_name.get(row.krate.as_str()) else {
            continue;
        };
        let rules = match forbidden(row) {
            Ok(r) => r,
            Err(_) => continue, // reported by the vocabulary test
        };
        // workspace crates reached (with the path that reaches them), direct outside packages
        let mut reached: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut stack = vec![(pkg.name.clone(), vec![pkg.name.clone()])];
        while let Some((name, path)) = stack.pop() {
            let Some(p) = by_name.get(name.as_str()) else {
                continue;
            };
            for d in runtime(p) {
                if by_name.contains_key(d.as_str()) && !reached.contains_key(&d) {
                    let mut via = path.clone();
                    via.push(d.clone());
                    reached.insert(d.clone(), via.clone());
                    stack.push((d, via));
                }
            }
        }
        for d in runtime(pkg) {
            reached
                .entry(d.clone())
                .or_insert_with(|| vec![pkg.name.clone(), d]);
        }
        for (phrase, pkgs) in &rules {
            for f in pkgs {
                if *f == pkg.name {
                    continue;
                }
                if let Some(via) = reached.get(*f) {
                    out.push(format!(
                        "{} must not know {phrase:?} but depends on {f} ({})",
                        row.krate,
                        via.join(" → ")
                    ));
                }
            }
        }
    }
    out
}

fn doc() -> String {
    let p = root().join("ARCHITECTURE.md");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn every_must_not_know_phrase_means_packages() {
    let rows = crate_table(&doc()).unwrap();
    assert!(rows.len() >= 9, "{rows:?}");
    let mut unknown = Vec::new();
    for row in &rows {
        if let Err(u) = forbidden(row) {
            unknown.push(format!("{}: {u:?}", row.krate));
        }
    }
    assert!(
        unknown.is_empty(),
        "ARCHITECTURE.md's crate table names what tests/architecture.rs cannot check; add each \
         phrase to VOCABULARY (the packages that knowing it means, or none with a reason): {unknown:#?}"
    );
}

#[test]
fn every_workspace_crate_has_its_row_and_every_row_a_crate() {
    let rows = crate_table(&doc()).unwrap();
    let packages = workspace_packages();
    for p in &packages {
        let row = rows.iter().find(|r| r.krate == p.name).unwrap_or_else(|| {
            panic!(
                "workspace crate {} ({}) has no row in ARCHITECTURE.md's crate table",
                p.name, p.dir
            )
        });
        assert_eq!(row.path, p.dir, "{}: the table's path", p.name);
    }
    for r in &rows {
        assert!(
            packages.iter().any(|p| p.name == r.krate),
            "ARCHITECTURE.md lists {} ({}), which is not a workspace crate",
            r.krate,
            r.path
        );
    }
}

#[test]
fn no_crate_depends_on_what_architecture_md_says_it_must_not_know() {
    let rows = crate_table(&doc()).unwrap();
    let v = violations(&rows, &workspace_packages());
    assert!(
        v.is_empty(),
        "dependencies break ARCHITECTURE.md's crate table:\n{}",
        v.join("\n")
    );
}

/// The checker itself: a table like the real one, packages that break it directly, through
/// another workspace crate, and only in a dev-dependency (allowed).
#[test]
fn the_check_finds_direct_and_indirect_violations_and_allows_dev_dependencies() {
    let doc = "\
| crate | path | what it is | must not know |
|---|---|---|---|
| `a-domain` | a | pure | any I/O: no tokio, sqlx |
| `a-vision` | v | pixels | the ledger (it is told) |
| `a-api` | api | HTTP | SQL (it calls the ledger) |
| `a-ledger` | l | books | faces |
";
    let rows = crate_table(doc).unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(
        phrases(&rows[0].must_not_know),
        ["any i/o", "tokio", "sqlx"]
    );
    assert_eq!(phrases(&rows[2].must_not_know), ["sql"]);
    let pkg = |name: &str, deps: &[(&str, Option<&str>)]| Package {
        name: name.into(),
        dir: String::new(),
        deps: deps
            .iter()
            .map(|(n, k)| (n.to_string(), k.map(str::to_string)))
            .collect(),
    };
    // the rows name a-*, the vocabulary rollcall-*: map the test's crates onto the real names
    let rename = |r: &Row| Row {
        krate: r.krate.replace("a-", "rollcall-"),
        ..r.clone()
    };
    let rows: Vec<Row> = rows.iter().map(rename).collect();
    let clean = [
        pkg(
            "rollcall-domain",
            &[("serde", None), ("tokio", Some("dev"))],
        ),
        pkg(
            "rollcall-vision",
            &[("rollcall-domain", None), ("ort", None)],
        ),
        pkg(
            "rollcall-api",
            &[("rollcall-ledger", None), ("sqlx", Some("dev"))],
        ),
        pkg(
            "rollcall-ledger",
            &[("sqlx", None), ("rollcall-domain", None)],
        ),
    ];
    assert_eq!(violations(&rows, &clean), Vec::<String>::new());
    let mut broken = clean.to_vec();
    broken[0].deps.push(("tokio".into(), None)); // domain: direct
    broken[1].deps.push(("rollcall-api".into(), None)); // vision → api → ledger
    broken[2].deps.push(("sqlx".into(), None)); // api: direct SQL
    let v = violations(&rows, &broken);
    assert_eq!(v.len(), 4, "{v:#?}"); // tokio twice (any I/O, tokio), ledger, sqlx
    assert!(v
        .iter()
        .any(|l| l.contains("rollcall-domain must not know \"tokio\"")));
    assert!(v
        .iter()
        .any(|l| l.contains("rollcall-vision → rollcall-api → rollcall-ledger")));
    assert!(v
        .iter()
        .any(|l| l.starts_with("rollcall-api must not know \"sql\" but depends on sqlx")));
    // an unknown phrase is refused, not ignored
    let odd = Row {
        krate: "rollcall-x".into(),
        path: "x".into(),
        must_not_know: "the weather, tokio".into(),
    };
    assert_eq!(forbidden(&odd).unwrap_err(), ["the weather"]);
}
