//! Speed figure: renders a 60-second 1280×720 stream at 10 fps on one thread and prints the
//! time (no assertion on timing; the target is ≤ 10 s in release, see README.md).

#[test]
fn prints_render_speed_for_60_s_of_720p_at_10_fps() {
    let b = rollcall_camera_sim::bench_render(60.0, 10, 1280, 720);
    assert_eq!(b.frames, 600);
    assert!(b.faces > 0);
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("camera-sim speed ({profile} build): {b}");
    eprintln!("camera-sim speed ({profile} build): {b}");
}
