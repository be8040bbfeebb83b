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
    // the test kit: the rule runs the other way (no crate may depend on it but as a
    // dev-dependency), checked by `testkit_is_only_a_dev_dependency`
    ("being known by production code", &[]),
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

/// `rollcall-testkit` is test code: every crate that uses it lists it under
/// `[dev-dependencies]`, none as a normal or build dependency (so no binary or library ships it).
#[test]
fn testkit_is_only_a_dev_dependency() {
    let packages = workspace_packages();
    assert!(
        packages.iter().any(|p| p.name == "rollcall-testkit"),
        "rollcall-testkit is not a workspace crate"
    );
    let users: Vec<&str> = packages
        .iter()
        .filter(|p| p.deps.iter().any(|(n, _)| n == "rollcall-testkit"))
        .map(|p| p.name.as_str())
        .collect();
    assert!(!users.is_empty(), "no crate uses the test kit");
    let wrong: Vec<String> = packages
        .iter()
        .flat_map(|p| {
            p.deps
                .iter()
                .filter(|(n, kind)| n == "rollcall-testkit" && kind.as_deref() != Some("dev"))
                .map(move |(_, kind)| {
                    format!(
                        "{} ({} dependency)",
                        p.name,
                        kind.as_deref().unwrap_or("normal")
                    )
                })
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "rollcall-testkit must only be a dev-dependency: {wrong:?}"
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

/// The `.rs` files under `dir`, recursively, sorted.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Where a production source file reads the wall clock directly (`file:line: text`); the text
/// from a file's first `#[cfg(test)]` on (its unit tests) is not production code.
fn direct_clock_reads(file: &Path, text: &str) -> Vec<String> {
    const READS: [&str; 3] = ["Utc::now()", "Local::now()", "SystemTime::now()"];
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let code = line.split("//").next().unwrap_or("");
        if READS.iter().any(|r| code.contains(r)) {
            found.push(format!("{}:{}: {}", file.display(), i + 1, line.trim()));
        }
    }
    found
}

/// Time comes from the clock port (`rollcall_domain::clock::Clock`), one way, everywhere: no
/// production code outside `SystemClock` reads the wall clock itself, so an injected clock (a
/// test's, the demo's shifted one) is what every recorded time comes from.
#[test]
fn time_comes_from_the_clock_port() {
    let root = root();
    let mut files = Vec::new();
    for dir in ["services", "camera-sim/src"] {
        let d = root.join(dir);
        if dir == "services" {
            for krate in std::fs::read_dir(&d).expect("services/") {
                let krate = krate.expect("entry").path();
                // the test kit is test code: its fixtures may stamp wall-clock times
                if krate.ends_with("testkit") {
                    continue;
                }
                let src = krate.join("src");
                if src.is_dir() {
                    rust_files(&src, &mut files);
                }
            }
        } else {
            rust_files(&d, &mut files);
        }
    }
    assert!(files.len() > 50, "found only {} source files", files.len());
    let port = root.join("services/domain/src/clock.rs");
    let mut reads = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("source file");
        let found = direct_clock_reads(f.strip_prefix(&root).unwrap_or(f), &text);
        if *f == port {
            assert_eq!(
                found.len(),
                1,
                "SystemClock reads Utc::now() once: {found:?}"
            );
        } else {
            reads.extend(found);
        }
    }
    assert!(
        reads.is_empty(),
        "read the time from the Clock port (a Store's `now()`/`clock()`, or an injected \
         `Arc<dyn Clock>`), not the wall clock:\n{}",
        reads.join("\n")
    );
    // the scan finds what it must
    let probe = "fn a() {\n    let t = chrono::Utc::now(); // x\n}\n// Utc::now() in a comment\n#[cfg(test)]\nmod tests { fn b() { Utc::now(); } }\n";
    let hits = direct_clock_reads(Path::new("probe.rs"), probe);
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert!(hits[0].starts_with("probe.rs:2:"), "{hits:?}");
}

// -------------------------------------------------------------------------------------------
// No module cycles inside a crate
// -------------------------------------------------------------------------------------------

/// The crates whose modules must not depend on each other in a cycle (`src` directories).
const ACYCLIC_CRATES: &[&str] = &["services/ledger/src", "services/cli/src", "camera-sim/src"];

/// A crate's graph of top-level modules: `from → to → where` (the first `file:line` that makes
/// `from` use `to`). The crate root (`lib.rs`/`main.rs`) is no node: it may use everything, and
/// a path to one of its own items is no edge (a name it re-exports counts as the module it
/// comes from).
type ModuleGraph = std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>;

/// `text` with comments, string literals and character literals blanked out (line breaks kept,
/// so line numbers hold): what is left is code.
fn code_of(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < c.len() {
        let next = c.get(i + 1).copied();
        // line comment
        if c[i] == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
                out.push(' ');
            }
            continue;
        }
        // block comment (nested)
        if c[i] == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
            continue;
        }
        let ident_before = i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_');
        // raw string: r"…", r#"…"#, br#"…"# (the prefix is not part of an identifier)
        if !ident_before && (c[i] == 'r' || (c[i] == 'b' && next == Some('r'))) {
            let mut j = if c[i] == 'b' { i + 2 } else { i + 1 };
            let mut hashes = 0;
            while c.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if c.get(j) == Some(&'"') {
                for &ch in &c[i..=j] {
                    blank(&mut out, ch);
                }
                i = j + 1;
                while i < c.len() {
                    if c[i] == '"' && (1..=hashes).all(|h| c.get(i + h) == Some(&'#')) {
                        for _ in 0..=hashes {
                            out.push(' ');
                        }
                        i += 1 + hashes;
                        break;
                    }
                    blank(&mut out, c[i]);
                    i += 1;
                }
                continue;
            }
        }
        // string (and byte string)
        if c[i] == '"' {
            out.push(' ');
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    blank(&mut out, c[i]);
                    i += 1;
                }
                if i < c.len() {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
            continue;
        }
        // character literal ('x', '\n', '\u{1F600}'); a lifetime ('a) is left alone
        if c[i] == '\'' {
            let end = if next == Some('\\') {
                (i + 2..c.len()).find(|&k| c[k] == '\'')
            } else if c.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            if let Some(end) = end {
                for &ch in &c[i..=end] {
                    blank(&mut out, ch);
                }
                i = end + 1;
                continue;
            }
        }
        out.push(c[i]);
        i += 1;
    }
    out
}

/// The tokens of code: identifiers (with their line), `::`, and single punctuation characters.
fn tokens(code: &str) -> Vec<(String, usize)> {
    let c: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < c.len() {
        if c[i] == '\n' {
            line += 1;
            i += 1;
        } else if c[i].is_whitespace() {
            i += 1;
        } else if c[i].is_alphanumeric() || c[i] == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push((c[start..i].iter().collect(), line));
        } else if c[i] == ':' && c.get(i + 1) == Some(&':') {
            out.push(("::".into(), line));
            i += 2;
        } else {
            out.push((c[i].to_string(), line));
            i += 1;
        }
    }
    out
}

/// The paths of a use tree starting at `toks[*at]` (`a::b`, `a::{b, c::d}`, `a::*`, `a as x`),
/// each with the name it binds (`None` for a glob or `self` of the tree's root); `*at` is
/// left after the tree.
fn use_tree(
    toks: &[(String, usize)],
    at: &mut usize,
    prefix: &[String],
) -> Vec<(Vec<String>, Option<String>)> {
    let mut path = prefix.to_vec();
    let mut out = Vec::new();
    loop {
        let Some((t, _)) = toks.get(*at) else {
            return out;
        };
        if t == "{" {
            *at += 1;
            loop {
                match toks.get(*at).map(|t| t.0.as_str()) {
                    None => return out,
                    Some("}") => {
                        *at += 1;
                        return out;
                    }
                    Some(",") => *at += 1,
                    Some(_) => {
                        let before = *at;
                        out.extend(use_tree(toks, at, &path));
                        if *at == before {
                            *at += 1; // not a path: skip it
                        }
                    }
                }
            }
        }
        if t == "*" {
            *at += 1;
            out.push((path, None));
            return out;
        }
        if !(t.starts_with(|c: char| c.is_alphabetic() || c == '_')) {
            return out;
        }
        if t == "self" && !path.is_empty() && toks.get(*at + 1).map(|t| t.0.as_str()) != Some("::")
        {
            *at += 1;
            let name = path.last().cloned();
            out.push((path, name));
            return out;
        }
        path.push(t.clone());
        *at += 1;
        match toks.get(*at).map(|t| t.0.as_str()) {
            Some("::") => *at += 1,
            Some("as") => {
                let alias = toks.get(*at + 1).map(|t| t.0.clone());
                *at += 2;
                out.push((path, alias));
                return out;
            }
            _ => {
                let name = path.last().cloned();
                out.push((path, name));
                return out;
            }
        }
    }
}

/// A path seen from module `module` (the crate root is `[]`), made absolute from the crate
/// root: `crate::a::b` → `[a, b]`, `self::x` → `module + [x]`, `super::y` → the parent's `y`;
/// `None` for a path that is not relative to the crate (another crate's, or above the root).
fn absolute(module: &[String], path: &[String]) -> Option<Vec<String>> {
    match path.first().map(String::as_str) {
        Some("crate") => Some(path[1..].to_vec()),
        Some("self") => Some([module, &path[1..]].concat()),
        Some("super") => {
            let ups = path.iter().take_while(|s| *s == "super").count();
            let base = module.len().checked_sub(ups)?;
            Some([&module[..base], &path[ups..]].concat())
        }
        _ => None,
    }
}

/// Every crate-relative path in `code` of a file of module `file_module`, with the name a `use`
/// binds and its line: `use` trees and paths in expressions and types, seen from the module
/// they are in (inline `mod x { … }` blocks nest). In the crate root a `use` path may also start
/// at one of its modules (`use store::Store`): `top` names them.
fn crate_paths(
    file_module: &[String],
    code: &str,
    top: &std::collections::BTreeSet<String>,
) -> Vec<(Vec<String>, Option<String>, usize)> {
    let toks = tokens(code);
    let mut out = Vec::new();
    // inline modules: (name, brace depth inside it)
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i].0.as_str();
        let module: Vec<String> = file_module
            .iter()
            .cloned()
            .chain(inline.iter().map(|(n, _)| n.clone()))
            .collect();
        match t {
            "{" => depth += 1,
            "}" => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth -= 1;
            }
            "mod" if toks.get(i + 2).is_some_and(|t| t.0 == "{") => {
                inline.push((toks[i + 1].0.clone(), depth + 1));
                i += 2;
                continue;
            }
            "use" => {
                let line = toks[i].1;
                let mut at = i + 1;
                if toks.get(at).is_some_and(|t| t.0 == "::") {
                    at += 1;
                }
                for (p, name) in use_tree(&toks, &mut at, &[]) {
                    if let Some(abs) = absolute(&module, &p) {
                        out.push((abs, name, line));
                    } else if module.is_empty() && p.first().is_some_and(|m| top.contains(m)) {
                        out.push((p, name, line));
                    }
                }
                i = at;
                continue;
            }
            "crate" | "self" | "super"
                if toks.get(i + 1).is_some_and(|t| t.0 == "::")
                    && !(i > 0 && (toks[i - 1].0 == "::" || toks[i - 1].0 == "$")) =>
            {
                let line = toks[i].1;
                let mut path = vec![t.to_string()];
                let mut at = i + 1;
                while toks.get(at).is_some_and(|t| t.0 == "::")
                    && toks
                        .get(at + 1)
                        .is_some_and(|t| t.0.starts_with(|c: char| c.is_alphabetic() || c == '_'))
                {
                    path.push(toks[at + 1].0.clone());
                    at += 2;
                }
                if let Some(abs) = absolute(&module, &path) {
                    out.push((abs, None, line));
                }
                i = at;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The module path of a source file relative to its crate's `src` (`lib.rs`/`main.rs`: `[]`;
/// `a.rs` and `a/mod.rs`: `[a]`; `a/b.rs`: `[a, b]`).
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main") {
        return Vec::new();
    }
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The graph of a crate's top-level modules from its source files (`(path under src, text)`).
fn module_graph(files: &[(PathBuf, String)]) -> ModuleGraph {
    let top: std::collections::BTreeSet<String> = files
        .iter()
        .filter_map(|(p, _)| module_of(p).first().cloned())
        .collect();
    // names the root binds with `use` (public or not: children see them): where they come from
    let mut root_names: BTreeMap<String, String> = BTreeMap::new();
    for (_, text) in files.iter().filter(|(p, _)| module_of(p).is_empty()) {
        for (abs, name, _) in crate_paths(&[], &code_of(text), &top) {
            if let (Some(name), Some(first)) = (name, abs.first()) {
                if top.contains(first) && abs.len() > 1 {
                    root_names.insert(name, first.clone());
                }
            }
        }
    }
    let mut graph = ModuleGraph::new();
    for (p, text) in files {
        let module = module_of(p);
        let Some(from) = module.first() else {
            continue; // the root may use everything
        };
        graph.entry(from.clone()).or_default();
        for (abs, _, line) in crate_paths(&module, &code_of(text), &top) {
            let Some(first) = abs.first() else { continue };
            let to = if top.contains(first) {
                first.clone()
            } else if let Some(m) = root_names.get(first) {
                m.clone()
            } else {
                continue; // an item of the root itself
            };
            if &to != from {
                graph
                    .entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_insert_with(|| format!("{}:{line}", p.display()));
            }
        }
    }
    graph
}

/// A cycle of `graph` (`[a, b, …, a]`), if it has one; depth first from each node in order.
fn find_cycle(graph: &ModuleGraph) -> Option<Vec<String>> {
    fn visit(
        graph: &ModuleGraph,
        node: &str,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1); // on the stack
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flat_map(|m| m.keys()) {
            match state.get(next.as_str()) {
                Some(1) => {
                    let start = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(graph, next, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2); // done
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if !state.contains_key(node) {
            if let Some(c) = visit(graph, node, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

/// The modules of `graph` that are on a cycle, in groups that reach each other (the strongly
/// connected components of more than one module), each with its edges.
fn cyclic_groups(graph: &ModuleGraph) -> Vec<Vec<(String, String, String)>> {
    let reach = |from: &str| -> std::collections::BTreeSet<String> {
        let mut seen = std::collections::BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(n) = todo.pop() {
            for next in graph.get(&n).into_iter().flat_map(|m| m.keys()) {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, std::collections::BTreeSet<String>> =
        graph.keys().map(|n| (n, reach(n))).collect();
    let mut done = std::collections::BTreeSet::new();
    let mut groups = Vec::new();
    for (n, r) in &reaches {
        if done.contains(*n) || !r.contains(*n) {
            continue;
        }
        let group: std::collections::BTreeSet<&String> = r
            .iter()
            .filter(|m| reaches.get(m).is_some_and(|back| back.contains(*n)))
            .collect();
        let mut edges = Vec::new();
        for a in &group {
            done.insert((*a).clone());
            for (b, at) in &graph[*a] {
                if group.contains(b) {
                    edges.push(((*a).clone(), b.clone(), at.clone()));
                }
            }
        }
        groups.push(edges);
    }
    groups
}

/// The source files of a crate's `src`: path under `src`, text.
fn crate_sources(src: &Path) -> Vec<(PathBuf, String)> {
    let mut paths = Vec::new();
    rust_files(src, &mut paths);
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("source file");
            (p.strip_prefix(src).expect("under src").to_path_buf(), text)
        })
        .collect()
}

/// The top-level modules of the ledger, the CLI and the camera simulator depend on each other
/// one way: a module's children count as the module, the crate root (`lib.rs`/`main.rs`) may
/// use everything, and any cycle fails with the file and line of each of its edges.
#[test]
fn no_module_cycles() {
    let root = root();
    let mut failures = Vec::new();
    for krate in ACYCLIC_CRATES {
        let files = crate_sources(&root.join(krate));
        assert!(files.len() > 5, "{krate}: only {} files found", files.len());
        let graph = module_graph(&files);
        assert!(
            graph.len() > 3,
            "{krate}: only {} modules found",
            graph.len()
        );
        if let Some(cycle) = find_cycle(&graph) {
            failures.push(format!("{krate}: {}", cycle.join(" → ")));
            for edges in cyclic_groups(&graph) {
                let modules: std::collections::BTreeSet<&str> =
                    edges.iter().map(|(a, _, _)| a.as_str()).collect();
                failures.push(format!(
                    "  modules on a cycle together: {}",
                    modules.into_iter().collect::<Vec<_>>().join(", ")
                ));
                for (a, b, at) in &edges {
                    failures.push(format!("    {a} → {b} ({krate}/{at})"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "module cycles (move what both sides need into a module below them):\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_cycle_check_finds_cycles_and_only_cycles() {
    let g = |edges: &[(&str, &str)]| -> ModuleGraph {
        let mut g = ModuleGraph::new();
        for (a, b) in edges {
            g.entry(a.to_string())
                .or_default()
                .insert(b.to_string(), "x".into());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    assert_eq!(find_cycle(&g(&[("a", "b"), ("b", "c"), ("a", "c")])), None);
    assert_eq!(
        find_cycle(&g(&[("a", "b"), ("b", "c"), ("c", "d"), ("d", "b")])),
        Some(vec!["b".into(), "c".into(), "d".into(), "b".into()])
    );
    assert_eq!(
        find_cycle(&g(&[("x", "y"), ("y", "x")])),
        Some(vec!["x".into(), "y".into(), "x".into()])
    );
    let groups = cyclic_groups(&g(&[
        ("a", "b"),
        ("b", "a"),
        ("b", "c"),
        ("c", "d"),
        ("d", "c"),
    ]));
    let names: Vec<Vec<(&str, &str)>> = groups
        .iter()
        .map(|e| e.iter().map(|(a, b, _)| (a.as_str(), b.as_str())).collect())
        .collect();
    assert_eq!(
        names,
        [vec![("a", "b"), ("b", "a")], vec![("c", "d"), ("d", "c")]]
    );
    assert!(cyclic_groups(&g(&[("a", "b"), ("b", "c")])).is_empty());

    // the graph from source text: comments and strings do not count, `use` trees, `super`
    // and inline modules resolve, children count as their top-level module, the root's
    // re-exports count as where they come from
    let files = |list: &[(&str, &str)]| -> Vec<(PathBuf, String)> {
        list.iter()
            .map(|(p, t)| (PathBuf::from(p), t.to_string()))
            .collect()
    };
    let base = [
        ("lib.rs", "mod a;\nmod b;\nmod c;\npub use c::{Thing as Renamed, Other};\npub type Result<T> = std::result::Result<T, ()>;\n"),
        ("a.rs", "//! uses [`crate::b`] in a comment only\nuse crate::{Result, c::x};\nfn f() -> Result<()> { let s = \"crate::b::y\"; let q = 'b'; crate::c::y(); Ok(()) }\n"),
        ("b/mod.rs", "mod inner;\nuse super::Renamed;\n"),
        ("b/inner.rs", "use super::super::c::{self, z};\nfn g() { super::helper(); }\n#[cfg(test)]\nmod tests { use super::*; }\n"),
        ("c.rs", "pub fn y() {}\n#[cfg(test)]\nmod tests {\n    use super::*;\n    fn t() { super::super::Result::<()>::Ok(()); }\n}\n"),
    ];
    let graph = module_graph(&files(&base));
    let edges = |g: &ModuleGraph| -> Vec<(String, String)> {
        g.iter()
            .flat_map(|(a, to)| to.keys().map(move |b| (a.clone(), b.clone())))
            .collect()
    };
    assert_eq!(
        edges(&graph),
        [("a".into(), "c".into()), ("b".into(), "c".into())],
        "{graph:?}"
    );
    assert_eq!(graph["a"]["c"], "a.rs:2");
    assert_eq!(find_cycle(&graph), None);
    // c uses b: through a `super` path of a test module, through the root's re-export of an
    // item of b, or through a grouped use; each closes the cycle c → b → c (found from a,
    // which uses c)
    for c_text in [
        "mod tests { fn t() { super::super::b::go(); } }\n",
        "use crate::Exported;\n",
        "use crate::{b::{self, inner::Deep}};\n",
    ] {
        let mut list = base.to_vec();
        list[0] = ("lib.rs", "mod a;\nmod b;\nmod c;\npub use b::Exported;\n");
        list[4] = ("c.rs", c_text);
        let graph = module_graph(&files(&list));
        assert_eq!(
            find_cycle(&graph),
            Some(vec!["c".into(), "b".into(), "c".into()]),
            "{c_text}: {graph:?}"
        );
    }
}
