//! The compact school afternoon shared by the crash, fault and equivalence tests.

use rollcall_testkit::{fixtures_dir as fixtures, workspace_root as root};
use std::path::{Path, PathBuf};

/// Five students walk in within about a minute (one of them twice), one stays away, a
/// stranger passes: a compact afternoon, so that 20 kills fall on walk-throughs, commits,
/// finalisation and dispatch.
pub fn compact_scenario(dir: &Path) -> PathBuf {
    compact(dir, false)
}

/// The compact afternoon with a second door: a `side` camera on the same campus, through which
/// Biden, Rose and the visitor come in (for two serve processes, one per camera).
#[allow(dead_code)]
pub fn compact_two_doors_scenario(dir: &Path) -> PathBuf {
    compact(dir, true)
}

fn compact(dir: &Path, two_doors: bool) -> PathBuf {
    let f = fixtures();
    let face = |rel: &str| f.join("faces").join(rel).display().to_string();
    let stranger = root()
        .join("camera-sim/scenarios/assets/stranger_synthetic.jpg")
        .canonicalize()
        .unwrap();
    let student = |id: &str, name: &str, one: &str, two: &str, contact: &str| {
        format!(
            "[[students]]\nid = \"{id}\"\nname = \"{name}\"\nenrollment_photos = [\"{}\"]\nappearance_photos = [\"{}\"]\n[[students.guardians]]\nname = \"Parent of {name}\"\n{contact}\nlanguage = \"en\"\n\n",
            face(one),
            face(two)
        )
    };
    let mut text = String::from(
        r#"seed = 11

[school]
id = "compact"
name = "Compact Tutoring"
utc_offset = "+08:00"

[simulation]
early_minutes = [1.0, 2.0]
random_effects = 0.0

[[campuses]]
id = "main"
name = "Main campus"

[[cameras]]
id = "lobby"
campus = "main"
door = "front"
width = 960
height = 540
fps = 8

"#,
    );
    if two_doors {
        text += "[[cameras]]\nid = \"side\"\ncampus = \"main\"\ndoor = \"side\"\nwidth = 960\nheight = 540\nfps = 8\n\n";
    }
    let side = |s: &str| {
        if two_doors && matches!(s, "biden" | "rose" | "visitor") {
            "camera = \"side\"\n"
        } else {
            ""
        }
    };
    text += &student(
        "obama",
        "Barack",
        "obama/1.jpg",
        "obama/2.jpg",
        "phone = \"+1 202 555 0101\"",
    );
    text += &student(
        "biden",
        "Joe",
        "biden/1.jpg",
        "biden/2.jpg",
        "phone = \"+1 202 555 0102\"",
    );
    text += &student(
        "kit",
        "Kit",
        "kit_harington/1.jpg",
        "kit_harington/2.jpg",
        "phone = \"+44 20 5550 0103\"",
    );
    text += &student(
        "rose",
        "Rose",
        "rose_leslie/1.jpg",
        "rose_leslie/2.jpg",
        "phone = \"+44 131 555 0104\"",
    );
    text += &student(
        "alex",
        "Alex",
        "alex_lacamoire/1.png",
        "alex_lacamoire/2.jpg",
        "phone = \"+1 305 555 0105\"",
    );
    text += &student(
        "lin",
        "Lin",
        "lin_manuel_miranda/1.png",
        "lin_manuel_miranda/1.png",
        "phone = \"+1 212 555 0106\"",
    );
    text += &format!(
        r#"[[strangers]]
id = "visitor"
name = "Visitor"
photos = [{{ path = "{}", box = [85, 120, 235, 310], landmarks = [[127, 193], [193, 193], [160, 227], [133, 262], [187, 262]] }}]

[[classes]]
id = "math"
name = "Mathematics"
campus = "main"
room = "1"
teacher = "Ms. Lovelace"
absence_policy = "full"
students = ["obama", "biden", "kit", "rose", "alex", "lin"]

[[timetable]]
id = "math-1"
class = "math"
date = "2025-03-03"
start = "16:00"
end = "17:00"

"#,
        stranger.display()
    );
    for s in ["obama", "biden", "kit", "rose", "alex", "lin"] {
        text += &format!(
            "[[packages]]\nid = \"p-{s}\"\nstudent = \"{s}\"\nlessons = 10\nunit_price_cents = 3000\nbought = \"2025-02-01\"\nexpires = \"2025-12-31\"\n\n"
        );
    }
    for (s, early) in [
        ("obama", 1.9),
        ("biden", 1.65),
        ("rose", 1.4),
        ("alex", 1.15),
    ] {
        text += &format!(
            "[[arrivals]]\nlesson = \"math-1\"\nstudent = \"{s}\"\nstatus = \"on_time\"\nearly_minutes = {early}\n{}\n",
            side(s)
        );
    }
    text += "[[arrivals]]\nlesson = \"math-1\"\nstudent = \"kit\"\nstatus = \"on_time\"\nearly_minutes = 1.55\npass_twice = true\npass_again_after_s = 25\n\n";
    text += "[[arrivals]]\nlesson = \"math-1\"\nstudent = \"lin\"\nstatus = \"absent\"\n\n";
    text += &format!(
        "[[arrivals]]\nlesson = \"math-1\"\nstranger = \"visitor\"\noffset_minutes = -1.3\n{}",
        side("visitor")
    );
    let path = dir.join(if two_doors {
        "compact-two-doors.toml"
    } else {
        "compact.toml"
    });
    std::fs::write(&path, text).unwrap();
    path
}
