//! Running the `rollcall` binary from a test.
//!
//! `env!("CARGO_BIN_EXE_rollcall")` exists only in the test binaries of the package that builds
//! it, so [`rollcall!`](crate::rollcall) expands there.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A `Command` for the `rollcall` binary of the calling test crate, isolated from the
/// developer's environment (`DATABASE_URL` and `QDRANT_URL` removed: the embedded defaults).
#[macro_export]
macro_rules! rollcall {
    () => {
        $crate::bin::command(env!("CARGO_BIN_EXE_rollcall"))
    };
}

/// `exe` without `DATABASE_URL` and `QDRANT_URL` in its environment.
pub fn command(exe: &str) -> Command {
    let mut c = Command::new(exe);
    c.env_remove("DATABASE_URL").env_remove("QDRANT_URL");
    c
}

/// A finished run: exit status, stdout and stderr as text.
#[derive(Debug, Clone)]
pub struct Run {
    pub ok: bool,
    pub code: Option<i32>,
    pub out: String,
    pub err: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            ok: o.status.success(),
            code: o.status.code(),
            out: String::from_utf8_lossy(&o.stdout).into_owned(),
            err: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl From<Run> for (bool, String, String) {
    fn from(r: Run) -> Self {
        (r.ok, r.out, r.err)
    }
}

impl Run {
    /// Fails the test (with both outputs) unless the run succeeded.
    pub fn success(self, what: &str) -> Run {
        assert!(
            self.ok,
            "{what} failed ({:?}):\nstdout: {}\nstderr: {}",
            self.code, self.out, self.err
        );
        self
    }

    /// Stdout parsed as JSON into `T` (a typed summary or a `serde_json::Value`); fails the
    /// test with the output when it does not parse.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_str(self.out.trim()).unwrap_or_else(|e| {
            panic!(
                "not the expected JSON ({e}):\nstdout: {}\nstderr: {}",
                self.out, self.err
            )
        })
    }
}

/// Running a `Command` to its end, output captured.
pub trait RunExt {
    /// Runs to the end; panics only when the binary cannot be started.
    fn run(&mut self) -> Run;
    /// Runs, killing it and failing the test when it takes longer than `limit`.
    fn run_within(&mut self, limit: Duration) -> Run;
}

impl RunExt for Command {
    fn run(&mut self) -> Run {
        self.output()
            .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", self.get_program()))
            .into()
    }

    fn run_within(&mut self, limit: Duration) -> Run {
        let mut child = self
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", self.get_program()));
        // drain the pipes while waiting, so a chatty child never blocks on a full pipe
        let drain = |r: Option<Box<dyn std::io::Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut r) = r {
                    let _ = r.read_to_end(&mut buf);
                }
                buf
            })
        };
        let out = drain(child.stdout.take().map(|s| Box::new(s) as _));
        let err = drain(child.stderr.take().map(|s| Box::new(s) as _));
        let deadline = Instant::now() + limit;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let err = err.join().unwrap_or_default();
                    panic!(
                        "{:?} still running after {limit:?}: killed\nstderr: {}",
                        self.get_program(),
                        String::from_utf8_lossy(&err)
                    );
                }
                Err(e) => panic!("waiting for {:?}: {e}", self.get_program()),
            }
        };
        Output {
            status,
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
        }
        .into()
    }
}

/// Kills a child process (SIGKILL) when dropped, so a failing test leaves none behind.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
