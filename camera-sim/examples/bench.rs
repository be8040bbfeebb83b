//! Prints how long rendering a 60-second 1280×720 stream at 10 fps takes on one thread.
//!
//! `cargo run --release -p rollcall-camera-sim --example bench [SECONDS FPS WIDTH HEIGHT]`

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: f64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (seconds, fps, w, h) = (arg(0, 60.0), arg(1, 10.0), arg(2, 1280.0), arg(3, 720.0));
    let b = rollcall_camera_sim::bench_render(seconds, fps as u32, w as u32, h as u32);
    println!("{b}");
}
