//! Scenario files: the TOML description of a school, its cameras, people, timetable and of who
//! walks past which camera when. See `camera-sim/README.md` for the documented format.
//!
//! [`Scenario::load`] parses a file, resolves every photo path relative to the file's folder,
//! expands the timetable into dated [`Lesson`]s and validates all cross references. Every
//! validation error is a [`ScenarioError`] naming the offending field, e.g.
//! `arrivals[3].student`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};
use rollcall_domain::ledger::Charge;

pub use crate::error::ScenarioError;
pub use crate::photo_ref::PhotoRef;
use serde::{Deserialize, Serialize};

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// The whole scenario file as written (after [`Scenario::load`], photo paths are resolved).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Seed of every random choice (arrival seconds, trajectories, backgrounds, noise).
    pub seed: u64,
    pub school: School,
    #[serde(default)]
    pub simulation: SimulationSettings,
    pub campuses: Vec<Campus>,
    pub cameras: Vec<CameraSpec>,
    pub students: Vec<Student>,
    #[serde(default)]
    pub strangers: Vec<Stranger>,
    pub classes: Vec<Class>,
    pub timetable: Vec<TimetableEntry>,
    #[serde(default)]
    pub packages: Vec<Package>,
    #[serde(default)]
    pub arrivals: Vec<Arrival>,
}

/// The school.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct School {
    pub id: String,
    pub name: String,
    /// Offset of local time from UTC, `"+08:00"`, `"-05:30"` or `"Z"`. Timetable times are local.
    pub utc_offset: String,
}

/// Knobs of the simulation itself (all optional).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulationSettings {
    /// What happens to a rostered student without an `[[arrivals]]` entry for a lesson.
    pub default_arrival: ArrivalStatus,
    /// On-time arrivals come a random number of minutes before the start, in this range.
    pub early_minutes: [f64; 2],
    /// Duration of the approach to the camera, seconds (random in this range).
    pub approach_s: [f64; 2],
    /// Frames rendered before a person enters and after they leave, seconds.
    pub pre_roll_s: f64,
    pub post_roll_s: f64,
    /// Minimum time between two separate appearances on one camera, seconds. Appearances are
    /// shifted later (by seconds) so that separate arrivals never share a frame.
    pub min_gap_s: f64,
    /// Probability that an appearance without explicit effects gets mild random effects (light
    /// motion blur, gain 0.8–1.2, noise, JPEG quality ≥ 50). Never occlusion.
    pub random_effects: f64,
    /// Quality of the JPEG frames written or served.
    pub jpeg_quality: u8,
}

impl Default for SimulationSettings {
    fn default() -> Self {
        Self {
            default_arrival: ArrivalStatus::OnTime,
            early_minutes: [2.0, 10.0],
            approach_s: [2.0, 3.0],
            pre_roll_s: 1.0,
            post_roll_s: 1.0,
            min_gap_s: 1.0,
            random_effects: 0.0,
            jpeg_quality: 90,
        }
    }
}

/// A campus (site) of the school.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Campus {
    pub id: String,
    pub name: String,
}

fn default_width() -> u32 {
    1280
}
fn default_height() -> u32 {
    720
}
fn default_fps() -> u32 {
    10
}

/// A lobby camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraSpec {
    /// Letters, digits, `-`, `_` and `.` only (used in URLs and folder names).
    pub id: String,
    pub campus: String,
    /// Which door it watches (free text, e.g. "front").
    pub door: String,
    #[serde(default = "default_width")]
    pub width: u32,
    #[serde(default = "default_height")]
    pub height: u32,
    /// Frames per second, 1–60.
    #[serde(default = "default_fps")]
    pub fps: u32,
    /// Standard deviation of whole-frame sensor noise in grey levels (0 = none).
    #[serde(default)]
    pub noise: f32,
}

/// A student: enrolled from `enrollment_photos`, rendered from `appearance_photos`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Student {
    pub id: String,
    pub name: String,
    /// Photos the school enrolls (at least one).
    pub enrollment_photos: Vec<PhotoRef>,
    /// Photos the camera sees; when empty the enrollment photos are used.
    #[serde(default)]
    pub appearance_photos: Vec<PhotoRef>,
    #[serde(default)]
    pub guardians: Vec<Guardian>,
}

impl Student {
    /// The photos rendered for this student: appearance photos, else enrollment photos.
    pub fn render_photos(&self) -> &[PhotoRef] {
        if self.appearance_photos.is_empty() {
            &self.enrollment_photos
        } else {
            &self.appearance_photos
        }
    }
}

fn default_language() -> String {
    "en".into()
}

/// A guardian to notify.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guardian {
    pub name: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// Language of notifications (BCP 47 tag, default "en").
    #[serde(default = "default_language")]
    pub language: String,
}

/// A person who is not enrolled (must end up as an unknown track, never a check-in).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stranger {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    pub photos: Vec<PhotoRef>,
}

/// A class with its roster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Class {
    pub id: String,
    pub name: String,
    pub campus: String,
    pub room: String,
    pub teacher: String,
    /// What an unexcused absence costs: `free`, `half` or `full`.
    pub absence_policy: Charge,
    /// Student ids booked into every lesson of the class.
    pub students: Vec<String>,
}

/// One line of the timetable: a single dated lesson (`date`) or a weekly series (`weekly`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimetableEntry {
    /// Lesson id for a single lesson; prefix for a weekly series (`<id>-<YYYY-MM-DD>`).
    pub id: String,
    pub class: String,
    /// Local start and end, `"HH:MM"`.
    pub start: String,
    pub end: String,
    /// `"YYYY-MM-DD"` of a single lesson.
    #[serde(default)]
    pub date: Option<String>,
    #[serde(default)]
    pub weekly: Option<Weekly>,
}

/// A weekly series: `weeks` lessons, the first on `first`, then every 7 days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weekly {
    pub first: String,
    pub weeks: u32,
}

/// A lesson package bought by a student.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    pub id: String,
    pub student: String,
    /// Restricts the package to one campus (default: every campus).
    #[serde(default)]
    pub campus: Option<String>,
    /// Number of lessons bought.
    pub lessons: u32,
    /// Price of one lesson in minor units (cents).
    pub unit_price_cents: i64,
    /// Local dates `"YYYY-MM-DD"` (bought at 00:00, expires at 00:00 of `expires`).
    pub bought: String,
    pub expires: String,
}

/// What a student does for a lesson.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArrivalStatus {
    /// Arrives before the start (`early_minutes`).
    OnTime,
    /// Arrives `late_minutes` after the start.
    Late,
    /// Does not come.
    Absent,
    /// Does not come, with an approved leave requested `leave_notice_hours` before the start.
    Leave,
}

impl ArrivalStatus {
    /// The student walks past a camera.
    pub fn arrives(&self) -> bool {
        matches!(self, ArrivalStatus::OnTime | ArrivalStatus::Late)
    }
}

/// Side of the face covered by an occlusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Top,
    Bottom,
    Left,
    Right,
}

/// Per-appearance image effects (all optional; defaults mean "none").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Effects {
    /// Length of the motion blur in frame pixels, along the direction of motion (0 = none).
    pub motion_blur_px: f32,
    /// Lighting gain applied to the person (1 = unchanged, 0.6 = darker, 1.3 = brighter).
    pub gain: f32,
    /// Standard deviation of additive sensor noise on the person, grey levels.
    pub noise: f32,
    /// Re-encode the person's region as JPEG at this quality (1–100) for compression artefacts.
    pub jpeg_quality: Option<u8>,
    /// Fraction (0–0.6) of the face box covered by a solid rectangle.
    pub occlusion: f32,
    /// Side the occlusion covers (default: chosen by the seed).
    pub occlusion_side: Option<Side>,
}

impl Default for Effects {
    fn default() -> Self {
        Self {
            motion_blur_px: 0.0,
            gain: 1.0,
            noise: 0.0,
            jpeg_quality: None,
            occlusion: 0.0,
            occlusion_side: None,
        }
    }
}

/// What happens at one lesson for one student, a group, or a stranger.
///
/// Exactly one of `student`, `group` (2–3 student ids arriving together) or `stranger`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arrival {
    /// Lesson id (a single lesson's id, or `<series id>-<YYYY-MM-DD>` for a weekly series).
    pub lesson: String,
    #[serde(default)]
    pub student: Option<String>,
    #[serde(default)]
    pub group: Option<Vec<String>>,
    #[serde(default)]
    pub stranger: Option<String>,
    /// For students (default `on_time`). Not allowed for strangers.
    #[serde(default)]
    pub status: Option<ArrivalStatus>,
    /// Required for `late`: minutes after the start.
    #[serde(default)]
    pub late_minutes: Option<f64>,
    /// For `on_time`: minutes before the start (default random in `simulation.early_minutes`).
    #[serde(default)]
    pub early_minutes: Option<f64>,
    /// For strangers: minutes relative to the start (negative = before; default random −10..0).
    #[serde(default)]
    pub offset_minutes: Option<f64>,
    /// For `leave`: how many hours before the start the leave was requested (default 48).
    #[serde(default)]
    pub leave_notice_hours: Option<f64>,
    /// Camera to walk past (default: the first camera of the lesson's campus).
    #[serde(default)]
    pub camera: Option<String>,
    /// Seconds the person stays in view after the approach (lingering).
    #[serde(default)]
    pub linger_s: Option<f64>,
    /// Walk past the camera a second time (the second pass must not count twice).
    #[serde(default)]
    pub pass_twice: bool,
    /// Seconds between the two passes (default random 20–60).
    #[serde(default)]
    pub pass_again_after_s: Option<f64>,
    /// Photo to render instead of the person's appearance photos.
    #[serde(default)]
    pub photo: Option<PhotoRef>,
    /// Image effects; when absent, `simulation.random_effects` may pick mild ones.
    #[serde(default)]
    pub effects: Option<Effects>,
}

/// One dated lesson of the expanded timetable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lesson {
    pub id: String,
    pub class: String,
    pub campus: String,
    /// Local date.
    pub date: NaiveDate,
    /// Start and end, milliseconds since the Unix epoch (UTC).
    pub start_ms: i64,
    pub end_ms: i64,
    /// 1-based index in its weekly series (1 for a single lesson).
    pub week: u32,
    /// Index of the timetable entry it comes from.
    pub entry: usize,
}

/// A loaded, validated scenario with resolved paths and the expanded timetable.
/// Replacements for a scenario file's seed and camera streams (see
/// [`Scenario::load_overridden`]); `None` keeps the file's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    pub seed: Option<u64>,
    /// Every camera's width and height.
    pub size: Option<(u32, u32)>,
    /// Every camera's frames per second.
    pub fps: Option<u32>,
}

impl Overrides {
    fn apply(&self, file: &mut ScenarioFile) {
        if let Some(seed) = self.seed {
            file.seed = seed;
        }
        for c in &mut file.cameras {
            if let Some((w, h)) = self.size {
                c.width = w;
                c.height = h;
            }
            if let Some(fps) = self.fps {
                c.fps = fps;
            }
        }
    }

    /// Applies the replacements to a loaded scenario and validates it again.
    pub fn apply_to(&self, scenario: &mut Scenario) -> Result<(), ScenarioError> {
        self.apply(&mut scenario.file);
        scenario.validate()
    }
}

#[derive(Debug, Clone)]
pub struct Scenario {
    /// The file contents; every photo path is resolved (relative to the scenario file's folder).
    pub file: ScenarioFile,
    /// The scenario file (or the base folder given to [`Scenario::from_toml`]).
    pub source: PathBuf,
    /// Local time offset from UTC, minutes.
    pub utc_offset_minutes: i32,
    /// Lessons in chronological order (ties by id).
    pub lessons: Vec<Lesson>,
}

impl Scenario {
    /// Reads, parses and validates a scenario file. Photo paths are resolved relative to the
    /// file's folder and must exist.
    pub fn load(path: impl AsRef<Path>) -> Result<Scenario, ScenarioError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let base = if base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            base
        };
        Self::parse(&text, base, path)
    }

    /// Like [`Scenario::load`], with the file's seed and every camera's size and frame rate
    /// replaced where `over` says so (applied before validation, so the replaced values are
    /// checked like written ones). One scenario file then serves several seeds and stream sizes.
    pub fn load_overridden(
        path: impl AsRef<Path>,
        over: &Overrides,
    ) -> Result<Scenario, ScenarioError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = match path.parent() {
            Some(b) if !b.as_os_str().is_empty() => b,
            _ => Path::new("."),
        };
        Self::parse_with(&text, base, path, over)
    }

    /// Parses and validates scenario text; relative photo paths are resolved against `base_dir`.
    pub fn from_toml(text: &str, base_dir: impl AsRef<Path>) -> Result<Scenario, ScenarioError> {
        let base = base_dir.as_ref();
        Self::parse(text, base, base)
    }

    fn parse(text: &str, base: &Path, source: &Path) -> Result<Scenario, ScenarioError> {
        Self::parse_with(text, base, source, &Overrides::default())
    }

    fn parse_with(
        text: &str,
        base: &Path,
        source: &Path,
        over: &Overrides,
    ) -> Result<Scenario, ScenarioError> {
        let mut file: ScenarioFile = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            path: source.to_path_buf(),
            message: e.to_string(),
        })?;
        over.apply(&mut file);
        resolve_paths(&mut file, base);
        let utc_offset_minutes = parse_utc_offset(&file.school.utc_offset).ok_or_else(|| {
            invalid(
                "school.utc_offset",
                "expected \"+HH:MM\", \"-HH:MM\" or \"Z\"",
            )
        })?;
        let lessons = expand_timetable(&file, utc_offset_minutes)?;
        let scenario = Scenario {
            file,
            source: source.to_path_buf(),
            utc_offset_minutes,
            lessons,
        };
        scenario.validate()?;
        Ok(scenario)
    }

    /// Seed of the scenario.
    pub fn seed(&self) -> u64 {
        self.file.seed
    }

    /// The lesson with this id.
    pub fn lesson(&self, id: &str) -> Option<&Lesson> {
        self.lessons.iter().find(|l| l.id == id)
    }

    /// The class with this id.
    pub fn class(&self, id: &str) -> Option<&Class> {
        self.file.classes.iter().find(|c| c.id == id)
    }

    /// The camera with this id.
    pub fn camera(&self, id: &str) -> Option<&CameraSpec> {
        self.file.cameras.iter().find(|c| c.id == id)
    }

    /// Every photo that may be rendered (appearance photos, or enrollment photos of students
    /// without appearance photos, stranger photos, arrival `photo` overrides), deduplicated and
    /// sorted. The caller must supply face box and landmarks for each (see
    /// [`crate::PhotoLibrary`]).
    pub fn render_photos(&self) -> Vec<PhotoRef> {
        let mut set = BTreeSet::new();
        for s in &self.file.students {
            set.extend(s.render_photos().iter().cloned());
        }
        for s in &self.file.strangers {
            set.extend(s.photos.iter().cloned());
        }
        for a in &self.file.arrivals {
            if let Some(p) = &a.photo {
                set.insert(p.clone());
            }
        }
        set.into_iter().collect()
    }

    /// Every enrollment photo, per student id.
    pub fn enrollment_photos(&self) -> BTreeMap<String, Vec<PhotoRef>> {
        self.file
            .students
            .iter()
            .map(|s| (s.id.clone(), s.enrollment_photos.clone()))
            .collect()
    }

    /// Local time offset as a chrono offset.
    pub fn offset(&self) -> chrono::FixedOffset {
        chrono::FixedOffset::east_opt(self.utc_offset_minutes * 60)
            .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("zero offset"))
    }

    /// Local date (00:00) as milliseconds since the Unix epoch.
    pub fn local_midnight_ms(&self, date: NaiveDate) -> i64 {
        local_ms(date, NaiveTime::MIN, self.utc_offset_minutes)
    }

    fn validate(&self) -> Result<(), ScenarioError> {
        let f = &self.file;
        // Unique ids per kind; students and strangers share the person namespace.
        unique(f.campuses.iter().map(|c| &c.id), "campuses")?;
        unique(f.cameras.iter().map(|c| &c.id), "cameras")?;
        unique(f.classes.iter().map(|c| &c.id), "classes")?;
        unique(f.packages.iter().map(|c| &c.id), "packages")?;
        unique(
            f.students
                .iter()
                .map(|s| &s.id)
                .chain(f.strangers.iter().map(|s| &s.id)),
            "students",
        )
        .map_err(|e| rename_person_field(e, f.students.len()))?;
        let mut lesson_ids: BTreeMap<&str, usize> = BTreeMap::new();
        for l in &self.lessons {
            if let Some(other) = lesson_ids.insert(&l.id, l.entry) {
                return Err(ScenarioError::DuplicateId {
                    field: format!("timetable[{}].id", l.entry),
                    id: l.id.clone(),
                    other: format!("timetable[{other}]"),
                });
            }
        }

        check_id(&f.school.id, "school.id")?;
        for (i, c) in f.campuses.iter().enumerate() {
            check_id(&c.id, &format!("campuses[{i}].id"))?;
        }
        let campus_ids: BTreeSet<&str> = f.campuses.iter().map(|c| c.id.as_str()).collect();
        if f.cameras.is_empty() {
            return Err(invalid("cameras", "at least one camera is needed"));
        }
        for (i, c) in f.cameras.iter().enumerate() {
            let field = |n: &str| format!("cameras[{i}].{n}");
            check_id(&c.id, &field("id"))?;
            known(&campus_ids, &c.campus, &field("campus"), "campus")?;
            if !(64..=8192).contains(&c.width) {
                return Err(invalid(field("width"), "must be 64–8192"));
            }
            if !(64..=8192).contains(&c.height) {
                return Err(invalid(field("height"), "must be 64–8192"));
            }
            if !(1..=60).contains(&c.fps) {
                return Err(invalid(field("fps"), "must be 1–60"));
            }
            if !(0.0..=64.0).contains(&c.noise) {
                return Err(invalid(field("noise"), "must be 0–64"));
            }
        }
        for (i, s) in f.students.iter().enumerate() {
            check_id(&s.id, &format!("students[{i}].id"))?;
            if s.enrollment_photos.is_empty() {
                return Err(invalid(
                    format!("students[{i}].enrollment_photos"),
                    "at least one photo is needed",
                ));
            }
            photos_exist(
                &s.enrollment_photos,
                &format!("students[{i}].enrollment_photos"),
            )?;
            photos_exist(
                &s.appearance_photos,
                &format!("students[{i}].appearance_photos"),
            )?;
            for (g, gd) in s.guardians.iter().enumerate() {
                if gd.phone.is_none() && gd.email.is_none() {
                    return Err(invalid(
                        format!("students[{i}].guardians[{g}]"),
                        "needs a phone or an email",
                    ));
                }
            }
        }
        for (i, s) in f.strangers.iter().enumerate() {
            check_id(&s.id, &format!("strangers[{i}].id"))?;
            if s.photos.is_empty() {
                return Err(invalid(
                    format!("strangers[{i}].photos"),
                    "at least one photo is needed",
                ));
            }
            photos_exist(&s.photos, &format!("strangers[{i}].photos"))?;
        }
        let student_ids: BTreeSet<&str> = f.students.iter().map(|s| s.id.as_str()).collect();
        let stranger_ids: BTreeSet<&str> = f.strangers.iter().map(|s| s.id.as_str()).collect();
        for (i, c) in f.classes.iter().enumerate() {
            check_id(&c.id, &format!("classes[{i}].id"))?;
            known(
                &campus_ids,
                &c.campus,
                &format!("classes[{i}].campus"),
                "campus",
            )?;
            let mut seen = BTreeSet::new();
            for (j, s) in c.students.iter().enumerate() {
                let field = format!("classes[{i}].students[{j}]");
                known(&student_ids, s, &field, "student")?;
                if !seen.insert(s) {
                    return Err(invalid(field, format!("student {s:?} listed twice")));
                }
            }
        }
        for (i, p) in f.packages.iter().enumerate() {
            let field = |n: &str| format!("packages[{i}].{n}");
            check_id(&p.id, &field("id"))?;
            known(&student_ids, &p.student, &field("student"), "student")?;
            if let Some(c) = &p.campus {
                known(&campus_ids, c, &field("campus"), "campus")?;
            }
            if p.lessons == 0 {
                return Err(invalid(field("lessons"), "must be at least 1"));
            }
            if p.unit_price_cents < 0 {
                return Err(invalid(field("unit_price_cents"), "must not be negative"));
            }
            let bought = parse_date(&p.bought).ok_or_else(|| invalid(field("bought"), DATE_FMT))?;
            let expires =
                parse_date(&p.expires).ok_or_else(|| invalid(field("expires"), DATE_FMT))?;
            if expires <= bought {
                return Err(invalid(field("expires"), "must be after `bought`"));
            }
        }
        let s = &f.simulation;
        let range_ok = |r: [f64; 2], lo: f64, hi: f64| {
            r[0].is_finite() && r[1].is_finite() && lo <= r[0] && r[0] <= r[1] && r[1] <= hi
        };
        if !range_ok(s.early_minutes, 0.0, 120.0) {
            return Err(invalid(
                "simulation.early_minutes",
                "must be [min, max] within 0–120",
            ));
        }
        if !range_ok(s.approach_s, 0.5, 10.0) {
            return Err(invalid(
                "simulation.approach_s",
                "must be [min, max] within 0.5–10",
            ));
        }
        for (name, v, hi) in [
            ("pre_roll_s", s.pre_roll_s, 60.0),
            ("post_roll_s", s.post_roll_s, 60.0),
            ("min_gap_s", s.min_gap_s, 600.0),
            ("random_effects", s.random_effects, 1.0),
        ] {
            if !(v.is_finite() && (0.0..=hi).contains(&v)) {
                return Err(invalid(
                    format!("simulation.{name}"),
                    format!("must be 0–{hi}"),
                ));
            }
        }
        if !(1..=100).contains(&s.jpeg_quality) {
            return Err(invalid("simulation.jpeg_quality", "must be 1–100"));
        }
        self.validate_arrivals(&student_ids, &stranger_ids)
    }

    fn validate_arrivals(
        &self,
        student_ids: &BTreeSet<&str>,
        stranger_ids: &BTreeSet<&str>,
    ) -> Result<(), ScenarioError> {
        let f = &self.file;
        let camera_ids: BTreeSet<&str> = f.cameras.iter().map(|c| c.id.as_str()).collect();
        let mut booked: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for (i, a) in f.arrivals.iter().enumerate() {
            let field = |n: &str| format!("arrivals[{i}].{n}");
            let Some(lesson) = self.lesson(&a.lesson) else {
                return Err(ScenarioError::UnknownId {
                    field: field("lesson"),
                    kind: "lesson",
                    id: a.lesson.clone(),
                });
            };
            let class = self
                .class(&lesson.class)
                .ok_or_else(|| invalid(field("lesson"), "lesson of an unknown class"))?;
            let who = [a.student.is_some(), a.group.is_some(), a.stranger.is_some()];
            if who.iter().filter(|b| **b).count() != 1 {
                return Err(invalid(
                    format!("arrivals[{i}]"),
                    "needs exactly one of `student`, `group`, `stranger`",
                ));
            }
            let mut members: Vec<(String, &str)> = Vec::new();
            if let Some(s) = &a.student {
                members.push((field("student"), s));
            }
            if let Some(g) = &a.group {
                if !(2..=3).contains(&g.len()) {
                    return Err(invalid(field("group"), "a group has 2 or 3 students"));
                }
                for (j, s) in g.iter().enumerate() {
                    members.push((format!("arrivals[{i}].group[{j}]"), s));
                }
            }
            for (mfield, s) in &members {
                known(student_ids, s, mfield, "student")?;
                if !class.students.iter().any(|c| c == s) {
                    return Err(invalid(
                        mfield.clone(),
                        format!(
                            "student {s:?} is not on the roster of class {:?} (lesson {:?})",
                            class.id, lesson.id
                        ),
                    ));
                }
                if let Some(other) = booked.insert((&lesson.id, s), i) {
                    return Err(invalid(
                        mfield.clone(),
                        format!(
                            "student {s:?} already has an arrival for lesson {:?} (arrivals[{other}])",
                            lesson.id
                        ),
                    ));
                }
            }
            if let Some(s) = &a.stranger {
                known(stranger_ids, s, &field("stranger"), "stranger")?;
                if a.status.is_some() || a.late_minutes.is_some() || a.early_minutes.is_some() {
                    return Err(invalid(
                        field("status"),
                        "strangers take `offset_minutes`, not `status`/`late_minutes`/`early_minutes`",
                    ));
                }
            } else if a.offset_minutes.is_some() {
                return Err(invalid(
                    field("offset_minutes"),
                    "only for strangers (students use `status`, `late_minutes`, `early_minutes`)",
                ));
            }
            let status = a.status.unwrap_or(ArrivalStatus::OnTime);
            match (status, a.late_minutes) {
                (ArrivalStatus::Late, None) => {
                    return Err(invalid(field("late_minutes"), "required for status `late`"))
                }
                (ArrivalStatus::Late, Some(m)) if !(m.is_finite() && m > 0.0 && m <= 600.0) => {
                    return Err(invalid(field("late_minutes"), "must be in (0, 600]"))
                }
                (s, Some(_)) if s != ArrivalStatus::Late => {
                    return Err(invalid(field("late_minutes"), "only for status `late`"))
                }
                _ => {}
            }
            if let Some(m) = a.early_minutes {
                if status != ArrivalStatus::OnTime || a.stranger.is_some() {
                    return Err(invalid(field("early_minutes"), "only for status `on_time`"));
                }
                if !(m.is_finite() && (0.0..=120.0).contains(&m)) {
                    return Err(invalid(field("early_minutes"), "must be 0–120"));
                }
            }
            if let Some(m) = a.offset_minutes {
                if !(m.is_finite() && (-600.0..=600.0).contains(&m)) {
                    return Err(invalid(field("offset_minutes"), "must be −600–600"));
                }
            }
            if let Some(h) = a.leave_notice_hours {
                if status != ArrivalStatus::Leave {
                    return Err(invalid(
                        field("leave_notice_hours"),
                        "only for status `leave`",
                    ));
                }
                if !(h.is_finite() && (0.0..=24.0 * 365.0).contains(&h)) {
                    return Err(invalid(field("leave_notice_hours"), "must be 0–8760"));
                }
            }
            let walks = a.stranger.is_some() || status.arrives();
            if !walks
                && (a.linger_s.is_some()
                    || a.pass_twice
                    || a.photo.is_some()
                    || a.effects.is_some()
                    || a.camera.is_some())
            {
                return Err(invalid(
                    format!("arrivals[{i}]"),
                    "an absent student does not walk past a camera: remove camera/linger_s/pass_twice/photo/effects",
                ));
            }
            match &a.camera {
                Some(c) => known(&camera_ids, c, &field("camera"), "camera")?,
                None => {
                    if walks && !f.cameras.iter().any(|c| c.campus == lesson.campus) {
                        return Err(invalid(
                            field("camera"),
                            format!(
                                "campus {:?} of lesson {:?} has no camera; name one",
                                lesson.campus, lesson.id
                            ),
                        ));
                    }
                }
            }
            if let Some(l) = a.linger_s {
                if !(l.is_finite() && (0.0..=600.0).contains(&l)) {
                    return Err(invalid(field("linger_s"), "must be 0–600"));
                }
            }
            if let Some(p) = a.pass_again_after_s {
                if !a.pass_twice {
                    return Err(invalid(
                        field("pass_again_after_s"),
                        "only with `pass_twice = true`",
                    ));
                }
                if !(p.is_finite() && (5.0..=3600.0).contains(&p)) {
                    return Err(invalid(field("pass_again_after_s"), "must be 5–3600"));
                }
            }
            if let Some(p) = &a.photo {
                p.validate(&field("photo"))?;
            }
            if let Some(e) = &a.effects {
                validate_effects(e, &field("effects"))?;
            }
        }
        // Students of every lesson's class exist (checked with the classes); every class with a
        // lesson whose students default to arriving needs a camera on its campus.
        if f.simulation.default_arrival.arrives() {
            for l in &self.lessons {
                let has_roster = self.class(&l.class).is_some_and(|c| !c.students.is_empty());
                if has_roster && !f.cameras.iter().any(|c| c.campus == l.campus) {
                    return Err(invalid(
                        format!("timetable[{}].class", l.entry),
                        format!("campus {:?} has no camera for lesson {:?}", l.campus, l.id),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn validate_effects(e: &Effects, field: &str) -> Result<(), ScenarioError> {
    let checks = [
        ("motion_blur_px", e.motion_blur_px, 0.0, 40.0),
        ("gain", e.gain, 0.1, 3.0),
        ("noise", e.noise, 0.0, 64.0),
        ("occlusion", e.occlusion, 0.0, 0.6),
    ];
    for (name, v, lo, hi) in checks {
        if !(v.is_finite() && (lo..=hi).contains(&v)) {
            return Err(invalid(
                format!("{field}.{name}"),
                format!("must be {lo}–{hi}"),
            ));
        }
    }
    if let Some(q) = e.jpeg_quality {
        if !(1..=100).contains(&q) {
            return Err(invalid(format!("{field}.jpeg_quality"), "must be 1–100"));
        }
    }
    Ok(())
}

const DATE_FMT: &str = "expected a date \"YYYY-MM-DD\"";

fn rename_person_field(e: ScenarioError, n_students: usize) -> ScenarioError {
    // `unique` numbers the chained iterator; translate indices past the students to strangers.
    match e {
        ScenarioError::DuplicateId { field, id, other } => {
            let fix = |s: &str| -> String {
                let idx: Option<usize> = s
                    .strip_prefix("students[")
                    .and_then(|r| r.split(']').next())
                    .and_then(|n| n.parse().ok());
                match idx {
                    Some(i) if i >= n_students => s.replacen(
                        &format!("students[{i}]"),
                        &format!("strangers[{}]", i - n_students),
                        1,
                    ),
                    _ => s.to_string(),
                }
            };
            ScenarioError::DuplicateId {
                field: fix(&field),
                id,
                other: fix(&other),
            }
        }
        e => e,
    }
}

fn unique<'a>(ids: impl Iterator<Item = &'a String>, list: &str) -> Result<(), ScenarioError> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, id) in ids.enumerate() {
        if let Some(j) = seen.insert(id, i) {
            return Err(ScenarioError::DuplicateId {
                field: format!("{list}[{i}].id"),
                id: id.clone(),
                other: format!("{list}[{j}]"),
            });
        }
    }
    Ok(())
}

fn check_id(id: &str, field: &str) -> Result<(), ScenarioError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !id.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!(
                "id {id:?} must be 1–128 of letters, digits, '-', '_', '.' (not starting with '.')"
            ),
        ))
    }
}

fn known(
    set: &BTreeSet<&str>,
    id: &str,
    field: &str,
    kind: &'static str,
) -> Result<(), ScenarioError> {
    if set.contains(id) {
        Ok(())
    } else {
        Err(ScenarioError::UnknownId {
            field: field.to_string(),
            kind,
            id: id.to_string(),
        })
    }
}

fn photos_exist(photos: &[PhotoRef], field: &str) -> Result<(), ScenarioError> {
    for (i, p) in photos.iter().enumerate() {
        p.validate(&format!("{field}[{i}]"))?;
    }
    Ok(())
}

fn resolve_paths(f: &mut ScenarioFile, base: &Path) {
    let fix = |p: &mut PhotoRef| {
        if p.path.is_relative() {
            p.path = base.join(&p.path);
        }
    };
    for s in &mut f.students {
        s.enrollment_photos.iter_mut().for_each(fix);
        s.appearance_photos.iter_mut().for_each(fix);
    }
    for s in &mut f.strangers {
        s.photos.iter_mut().for_each(fix);
    }
    for a in &mut f.arrivals {
        if let Some(p) = &mut a.photo {
            fix(p);
        }
    }
}

/// Parses `"+08:00"`, `"-05:30"`, `"+0800"`, `"Z"` or `"UTC"` into minutes east of UTC.
pub fn parse_utc_offset(s: &str) -> Option<i32> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("z") || s.eq_ignore_ascii_case("utc") {
        return Some(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => rest.split_at(2),
        None if rest.len() <= 2 => (rest, "0"),
        None => return None,
    };
    let h: i32 = h.parse().ok()?;
    let m: i32 = m.parse().ok()?;
    if !(0..=14).contains(&h) || !(0..60).contains(&m) {
        return None;
    }
    Some(sign * (h * 60 + m))
}

/// Parses `"YYYY-MM-DD"`.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
}

/// Parses `"HH:MM"` or `"HH:MM:SS"`.
pub fn parse_time(s: &str) -> Option<NaiveTime> {
    let s = s.trim();
    NaiveTime::parse_from_str(s, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M:%S"))
        .ok()
}

/// Local date and time to milliseconds since the Unix epoch.
pub fn local_ms(date: NaiveDate, time: NaiveTime, utc_offset_minutes: i32) -> i64 {
    let local = NaiveDateTime::new(date, time);
    (local - Duration::minutes(i64::from(utc_offset_minutes)))
        .and_utc()
        .timestamp_millis()
}

fn expand_timetable(f: &ScenarioFile, offset: i32) -> Result<Vec<Lesson>, ScenarioError> {
    let mut out = Vec::new();
    for (i, e) in f.timetable.iter().enumerate() {
        let field = |n: &str| format!("timetable[{i}].{n}");
        check_id(&e.id, &field("id"))?;
        let class =
            f.classes
                .iter()
                .find(|c| c.id == e.class)
                .ok_or_else(|| ScenarioError::UnknownId {
                    field: field("class"),
                    kind: "class",
                    id: e.class.clone(),
                })?;
        let start = parse_time(&e.start)
            .ok_or_else(|| invalid(field("start"), "expected a time \"HH:MM\""))?;
        let end =
            parse_time(&e.end).ok_or_else(|| invalid(field("end"), "expected a time \"HH:MM\""))?;
        if end <= start {
            return Err(invalid(field("end"), "must be after `start` (same day)"));
        }
        let dates: Vec<(NaiveDate, u32, String)> = match (&e.date, &e.weekly) {
            (Some(d), None) => {
                let d = parse_date(d).ok_or_else(|| invalid(field("date"), DATE_FMT))?;
                vec![(d, 1, e.id.clone())]
            }
            (None, Some(w)) => {
                let first =
                    parse_date(&w.first).ok_or_else(|| invalid(field("weekly.first"), DATE_FMT))?;
                if !(1..=520).contains(&w.weeks) {
                    return Err(invalid(field("weekly.weeks"), "must be 1–520"));
                }
                (0..w.weeks)
                    .map(|k| {
                        let d = first + Duration::days(7 * i64::from(k));
                        (d, k + 1, format!("{}-{}", e.id, d.format("%Y-%m-%d")))
                    })
                    .collect()
            }
            _ => {
                return Err(invalid(
                    format!("timetable[{i}]"),
                    "needs exactly one of `date` or `weekly`",
                ))
            }
        };
        for (date, week, id) in dates {
            out.push(Lesson {
                id,
                class: class.id.clone(),
                campus: class.campus.clone(),
                date,
                start_ms: local_ms(date, start, offset),
                end_ms: local_ms(date, end, offset),
                week,
                entry: i,
            });
        }
    }
    out.sort_by(|a, b| (a.start_ms, &a.id).cmp(&(b.start_ms, &b.id)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets() {
        assert_eq!(parse_utc_offset("+08:00"), Some(480));
        assert_eq!(parse_utc_offset("-05:30"), Some(-330));
        assert_eq!(parse_utc_offset("Z"), Some(0));
        assert_eq!(parse_utc_offset("+0100"), Some(60));
        assert_eq!(parse_utc_offset("08:00"), None);
        assert_eq!(parse_utc_offset("+25:00"), None);
    }

    #[test]
    fn local_time_to_epoch() {
        let d = parse_date("2025-03-03").unwrap();
        let t = parse_time("16:00").unwrap();
        // 16:00 at +08:00 is 08:00 UTC.
        assert_eq!(local_ms(d, t, 480), 1_740_988_800_000);
    }
}
