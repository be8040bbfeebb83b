//! `rollcall`: the one binary. Subcommands for the vision pipeline, the ledger, benchmarks and
//! the demo. Wire formats (JSON output, CLI flags) live here and in the API crate only.

mod bench;
mod bench_host;
mod cmd_admin;
mod cmd_bench;
mod cmd_bench_crash;
mod cmd_bench_pipeline;
mod cmd_bench_sightings;
mod cmd_bench_sizes;
mod cmd_demo;
mod cmd_gallery;
mod cmd_ledger;
mod cmd_notify;
mod cmd_privacy;
mod cmd_scenario;
mod cmd_serve;
mod cmd_sim;
mod cmd_vision;
mod cmd_watch;
#[cfg(test)]
mod deploy_check;
#[cfg(test)]
mod fuzz_config;
mod receiver;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "rollcall",
    version,
    about = "Face-recognition attendance and lesson deduction for schools"
)]
struct Cli {
    #[command(flatten)]
    vision: cmd_vision::VisionOpts,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Detect faces in an image: boxes, scores, landmarks and quality as JSON.
    Detect {
        image: PathBuf,
        /// Write a copy of the image with boxes (green: passes the quality gate) and landmarks.
        #[arg(long, value_name = "OUT.png")]
        annotate: Option<PathBuf>,
    },
    /// Print the embedding of every face of an image as JSON.
    Embed { image: PathBuf },
    /// Compare the largest faces of two images.
    Verify {
        a: PathBuf,
        b: PathBuf,
        /// Override the manifest's verification threshold.
        #[arg(long)]
        threshold: Option<f32>,
    },
    /// Accuracy on a labelled pair list (CSV with columns file_x, file_y, decision Yes/No).
    EvalPairs {
        pairs: PathBuf,
        /// Directory under which the files named in the CSV are found (by file name).
        #[arg(long)]
        root: PathBuf,
        /// Override the manifest's verification threshold.
        #[arg(long)]
        threshold: Option<f32>,
    },
    /// The demo: enroll one photo per person of the fixtures and say who is who on the others.
    Demo {
        #[arg(
            long,
            env = "ROLLCALL_FIXTURES_DIR",
            default_value = "../shared/fixtures"
        )]
        fixtures: PathBuf,
    },
    /// Enroll a student's face photos (each must give exactly one good face).
    Enroll {
        #[arg(long)]
        student: String,
        /// Student's name (registers the student in the ledger when new).
        #[arg(long)]
        name: Option<String>,
        /// Campus where the student may check in (repeatable; none = every campus).
        #[arg(long = "campus")]
        campuses: Vec<String>,
        /// Templates kept per student (the best by quality).
        #[arg(long, default_value_t = 5)]
        max_templates: usize,
        /// Enroll a photo that matches another student, flagging it, instead of refusing it.
        #[arg(long)]
        flag_duplicates: bool,
        #[command(flatten)]
        data: cmd_gallery::DataOpts,
        #[arg(required = true)]
        photos: Vec<PathBuf>,
    },
    /// Identify every face of a photo against the gallery.
    Identify {
        photo: PathBuf,
        #[arg(long)]
        campus: Option<String>,
        #[arg(long, default_value_t = 3)]
        top: usize,
        #[command(flatten)]
        data: cmd_gallery::DataOpts,
    },
    /// Erase a student's biometric data completely (templates purged from the index, encrypted
    /// copies, crops, review images) and print the audited receipt.
    Erase {
        #[arg(long)]
        student: String,
        /// Who asked (recorded in the audit trail).
        #[arg(long, default_value = "cli")]
        actor: String,
        #[command(flatten)]
        data: cmd_gallery::DataOpts,
    },
    /// Guardian consent to face recognition: grant, withdraw (erases at once), show.
    #[command(subcommand)]
    Consent(cmd_privacy::ConsentCmd),
    /// Privacy jobs: retention, template key rotation, key generation, status.
    #[command(subcommand)]
    Privacy(cmd_privacy::PrivacyCmd),
    /// Subject access export: everything held about a student (JSON) plus enrollment photos.
    Export {
        #[arg(long)]
        student: String,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        data: cmd_gallery::DataOpts,
    },
    /// Run the streaming pipeline on one source (file, folder, rtsp/http URL, device) against an
    /// existing data directory; one JSON line per track decision, then a summary line.
    Watch {
        source: String,
        #[arg(long, default_value = "watch")]
        camera: String,
        #[arg(long, default_value = "main")]
        campus: String,
        /// Frames per second of media time processed from a file or folder (0 = every frame).
        #[arg(long, default_value_t = 10.0)]
        fps: f64,
        /// Event time of the first frame of a file (RFC 3339; default now).
        #[arg(long)]
        start: Option<String>,
        /// JSON lines (the only format; accepted for scripts).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: cmd_gallery::DataOpts,
    },
    /// Run cameras, recognition, ledger jobs and /healthz + /metrics until SIGTERM.
    Serve {
        #[arg(long, default_value = "rollcall.toml")]
        config: PathBuf,
    },
    /// camera-sim: render or serve synthetic walk-through streams of a scenario.
    #[command(subcommand)]
    Sim(cmd_sim::SimCmd),
    /// Run a camera-sim scenario through the whole product (enroll, stream every camera through
    /// the real pipeline, ledger, finalise) in a fresh data directory, and score it against the
    /// scenario's ground truth. Exit status: errors only, never the score.
    RunScenario {
        scenario: PathBuf,
        /// Print the whole summary as JSON (default: a readable report).
        #[arg(long)]
        json: bool,
        /// Keep the run's data directory here (must not exist or be empty); default: a
        /// temporary one, removed at the end.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Replace the scenario's seed (arrival times, trajectories, effects, noise).
        #[arg(long)]
        seed: Option<u64>,
        /// Replace every camera's stream size, WIDTHxHEIGHT (faces scale with the height).
        #[arg(long, value_parser = cmd_sim::parse_size)]
        size: Option<(u32, u32)>,
        /// Replace every camera's frame rate.
        #[arg(long)]
        fps: Option<u32>,
        /// Two streams per camera: find faces in the scenario's stream and cut them from a main
        /// stream of this size (WIDTHxHEIGHT) showing the same scene.
        #[arg(long, value_parser = cmd_sim::parse_size)]
        main_size: Option<(u32, u32)>,
    },
    /// Gallery maintenance and reports.
    #[command(subcommand)]
    Gallery(cmd_gallery::GalleryCmd),
    /// Benchmarks printing measured figures as JSON.
    #[command(subcommand)]
    Bench(cmd_bench::BenchCmd),
    /// Staff accounts and API tokens for the API and web app.
    #[command(subcommand)]
    Admin(cmd_admin::AdminCmd),
    /// Notifications: dispatcher, outbox status, dead letters, settings, benchmark.
    #[command(subcommand)]
    Notify(cmd_notify::NotifyCmd),
    #[command(flatten)]
    Ledger(cmd_ledger::LedgerCmd),
}

fn print(v: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string(v).expect("JSON values serialise")
    );
}

/// stderr for the log, never failing: a line that cannot be written (stderr's file on a full
/// disk) is dropped. tracing-subscriber reports a failed write with `eprintln!`, which panics
/// when stderr itself fails, and that stopped `serve` (status 101) while its log's disk was
/// full.
struct LossyStderr;

impl std::io::Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ROLLCALL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(|| LossyStderr)
        .init();
    let cli = Cli::parse();
    let v = &cli.vision;
    match cli.cmd {
        Cmd::Detect { image, annotate } => {
            print(&cmd_vision::detect(v, &image, annotate.as_deref())?)
        }
        Cmd::Embed { image } => print(&cmd_vision::embed(v, &image)?),
        Cmd::Verify { a, b, threshold } => print(&cmd_vision::verify(v, &a, &b, threshold)?),
        Cmd::EvalPairs {
            pairs,
            root,
            threshold,
        } => print(&cmd_vision::eval_pairs(v, &pairs, &root, threshold)?),
        Cmd::Demo { fixtures } => cmd_demo::run(v, &fixtures)?,
        Cmd::Enroll {
            student,
            name,
            campuses,
            max_templates,
            flag_duplicates,
            data,
            photos,
        } => print(
            &cmd_gallery::enroll_cmd(
                v,
                &data,
                &student,
                name.as_deref(),
                &campuses,
                &photos,
                max_templates,
                flag_duplicates,
            )
            .await?,
        ),
        Cmd::Identify {
            photo,
            campus,
            top,
            data,
        } => print(&cmd_gallery::identify_cmd(v, &data, &photo, campus.as_deref(), top).await?),
        Cmd::Erase {
            student,
            actor,
            data,
        } => print(&cmd_gallery::erase_cmd(v, &data, &student, &actor).await?),
        Cmd::Consent(c) => print(&cmd_privacy::consent(v, c).await?),
        Cmd::Privacy(c) => print(&cmd_privacy::privacy(v, c).await?),
        Cmd::Export { student, out, data } => {
            print(&cmd_privacy::export(v, &data, &student, &out).await?)
        }
        Cmd::Watch {
            source,
            camera,
            campus,
            fps,
            start,
            json: _,
            data,
        } => {
            let summary = cmd_watch::run(
                v,
                &data,
                &source,
                &camera,
                &campus,
                fps,
                start.as_deref(),
                &mut |l| print(l),
            )
            .await?;
            print(&summary);
        }
        Cmd::Serve { config } => cmd_serve::run(v, &config).await?,
        Cmd::Sim(c) => print(&cmd_sim::run(v, c).await?),
        Cmd::RunScenario {
            scenario,
            json,
            data,
            seed,
            size,
            fps,
            main_size,
        } => {
            let overrides = rollcall_camera_sim::Overrides { seed, size, fps };
            let opts = cmd_scenario::RunOptions {
                data,
                overrides,
                main_size,
            };
            let summary = cmd_scenario::run(v, &scenario, &opts).await?;
            if json {
                print(&summary)
            } else {
                print!("{}", cmd_scenario::report(&summary));
            }
        }
        Cmd::Gallery(g) => print(&cmd_gallery::run(v, g).await?),
        Cmd::Bench(b) => {
            let crash = matches!(b, cmd_bench::BenchCmd::Crash { .. });
            let out = cmd_bench::run(v, b).await?;
            print(&out);
            if crash && out["ok"] != serde_json::Value::Bool(true) {
                // printed first: the figures say what was lost or doubled
                std::process::exit(1);
            }
        }
        Cmd::Admin(c) => print(&cmd_admin::run(c).await?),
        Cmd::Notify(c) => cmd_notify::run(c).await?,
        Cmd::Ledger(c) => cmd_ledger::run(c).await?,
    }
    Ok(())
}
