//! Shared test helpers: the fixtures folder and a small scenario built from hand-annotated
//! fixture photos (approximate boxes and landmarks measured by hand on a pixel grid).
#![allow(dead_code)]

use rollcall_camera_sim::{plan, PhotoLibrary, Renderer, Scenario};

pub use rollcall_testkit::fixtures_dir;

/// Hand annotations: `{ path = ..., box = ..., landmarks = ... }` for fixture photos.
pub const OBAMA_1: &str = r#"{ path = "faces/obama/1.jpg", box = [375, 135, 610, 395], landmarks = [[440, 212], [545, 210], [490, 275], [443, 328], [540, 325]] }"#;
pub const BIDEN_2: &str = r#"{ path = "faces/biden/2.jpg", box = [401, 275, 879, 769], landmarks = [[564, 407], [751, 412], [659, 527], [571, 599], [720, 604]] }"#;
pub const KIT_1: &str = r#"{ path = "faces/kit_harington/1.jpg", box = [688, 100, 805, 240], landmarks = [[717, 137], [770, 137], [743, 165], [722, 200], [765, 200]] }"#;
pub const ROSE_1: &str = r#"{ path = "faces/rose_leslie/1.jpg", box = [640, 115, 885, 385], landmarks = [[680, 192], [800, 188], [742, 255], [712, 310], [785, 306]] }"#;

/// A one-lesson scenario: a group (obama + biden), kit late, lingering and passing twice, a
/// stranger (rose) with every effect. 640×360 at 5 fps to keep the tests fast.
pub fn test_scenario_text(seed: u64) -> String {
    format!(
        r#"
seed = {seed}

[school]
id = "test-school"
name = "Test School"
utc_offset = "+08:00"

[simulation]
early_minutes = [1.0, 2.0]

[[campuses]]
id = "main"
name = "Main"

[[cameras]]
id = "lobby"
campus = "main"
door = "front"
width = 640
height = 360
fps = 5

[[students]]
id = "obama"
name = "Barack Obama"
enrollment_photos = [{OBAMA_1}]
[[students.guardians]]
name = "Michelle"
phone = "+1 555 0100"
email = "m@example.org"
language = "en"

[[students]]
id = "biden"
name = "Joe Biden"
enrollment_photos = ["faces/biden/1.jpg"]
appearance_photos = [{BIDEN_2}]

[[students]]
id = "kit_harington"
name = "Kit Harington"
enrollment_photos = [{KIT_1}]

[[strangers]]
id = "rose-visitor"
photos = [{ROSE_1}]

[[classes]]
id = "math"
name = "Math"
campus = "main"
room = "101"
teacher = "Ms. Smith"
absence_policy = "half"
students = ["obama", "biden", "kit_harington"]

[[timetable]]
id = "math-mon"
class = "math"
start = "16:00"
end = "17:00"
date = "2025-03-03"

[[packages]]
id = "p-obama"
student = "obama"
lessons = 10
unit_price_cents = 2500
bought = "2025-02-01"
expires = "2025-08-01"

[[arrivals]]
lesson = "math-mon"
group = ["obama", "biden"]

[[arrivals]]
lesson = "math-mon"
student = "kit_harington"
status = "late"
late_minutes = 3
linger_s = 2.0
pass_twice = true
pass_again_after_s = 10

[[arrivals]]
lesson = "math-mon"
stranger = "rose-visitor"
offset_minutes = -0.5
effects = {{ occlusion = 0.3, occlusion_side = "bottom", noise = 4.0, jpeg_quality = 40, motion_blur_px = 4.0, gain = 0.8 }}
"#
    )
}

pub fn test_scenario(seed: u64) -> Scenario {
    Scenario::from_toml(&test_scenario_text(seed), fixtures_dir()).expect("test scenario is valid")
}

/// Renderer of the test scenario, with the hand annotations as face photos.
pub fn test_renderer(seed: u64) -> Renderer {
    let s = test_scenario(seed);
    let mut lib = PhotoLibrary::new();
    let missing = lib
        .load_annotated(s.render_photos().iter())
        .expect("photos decode");
    assert!(missing.is_empty(), "unannotated: {missing:?}");
    Renderer::new(plan(&s), &lib).expect("renderer")
}
