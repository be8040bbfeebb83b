//! The benchmark machinery on a tiny gallery (the real figures come from the release example).

use rollcall_gallery::bench::{bench_gallery, BenchConfig};

#[test]
fn bench_reports_consistent_figures() {
    let cfg = BenchConfig {
        sizes: vec![2_500, 400],
        queries: 60,
        ..BenchConfig::default()
    };
    let r = bench_gallery(&cfg).unwrap();
    assert_eq!(
        r.sizes.iter().map(|s| s.templates).collect::<Vec<_>>(),
        vec![400, 2_500]
    );
    for s in &r.sizes {
        assert_eq!(s.students, s.templates / 4);
        assert!(s.inserts_per_second > 0.0 && s.disk_bytes > 0);
        assert!(s.search.p50_us > 0.0 && s.search.p50_us <= s.search.p99_us);
        assert!(s.brute_force.p50_us > 0.0);
        assert!(
            s.recall_at_1 >= 0.95,
            "recall@1 {} at {}",
            s.recall_at_1,
            s.templates
        );
    }
    // 2500 x 128-d = 1250 KiB > the 1000 KiB indexing threshold: HNSW was built.
    assert_eq!(r.sizes[1].indexed_templates, 2_500);
    assert_eq!(r.sizes[0].indexed_templates, 0);
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains("recall_at_1"));
}

/// The lean layout (16-bit vectors, memory-mapped, searched directly)
/// indexes and finds the same nearest templates.
#[test]
fn lean_layout_keeps_recall() {
    // 5000 x 128 16-bit floats = 1250 KiB > the 1000 KiB indexing threshold: HNSW is built
    let cfg = BenchConfig {
        sizes: vec![5_000],
        queries: 100,
        lean: true,
        ..BenchConfig::default()
    };
    let r = bench_gallery(&cfg).unwrap();
    let s = &r.sizes[0];
    assert_eq!(s.indexed_templates, 5_000);
    assert!(s.recall_at_1 >= 0.98, "recall@1 {}", s.recall_at_1);
}
