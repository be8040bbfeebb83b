//! Helpers shared by the capture integration tests.
#![allow(dead_code)]

use rollcall_capture::{CameraConfig, CameraHealth, HealthEvent};
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// The fixture clip (see `rollcall_testkit::fixtures_dir`).
pub fn clip_path() -> PathBuf {
    rollcall_testkit::fixture("video/short_hamilton_clip.mp4")
}

pub const CLIP_FRAMES: u64 = 275;

pub fn camera(id: &str, url: &str) -> CameraConfig {
    CameraConfig::new(id.parse().unwrap(), url, "north".parse().unwrap())
}

/// Collects events until `done` says so or `timeout` passes.
pub fn collect_events(
    rx: &Receiver<HealthEvent>,
    timeout: Duration,
    mut done: impl FnMut(&[HealthEvent]) -> bool,
) -> Vec<HealthEvent> {
    let deadline = Instant::now() + timeout;
    let mut events = Vec::new();
    while !done(&events) {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if let Ok(e) = rx.recv_timeout(deadline - now) {
            events.push(e);
        }
    }
    events
}

pub fn of_camera<'a>(events: &'a [HealthEvent], id: &str) -> Vec<&'a CameraHealth> {
    events
        .iter()
        .filter(|e| e.camera.as_str() == id)
        .map(|e| &e.health)
        .collect()
}

pub fn reconnect_delays(events: &[&CameraHealth]) -> Vec<(u32, Duration)> {
    events
        .iter()
        .filter_map(|h| match h {
            CameraHealth::Reconnecting { attempt, delay } => Some((*attempt, *delay)),
            _ => None,
        })
        .collect()
}

/// Rewrites an MP4 whose `moov` box follows `mdat` so that `moov` comes first ("faststart"),
/// shifting the chunk offsets in every `stco`/`co64`. A prefix of the result is then a playable
/// truncated video, like a recording cut off mid-write.
pub fn faststart(mp4: &[u8]) -> Vec<u8> {
    let boxes = top_level_boxes(mp4);
    let moov = *boxes.iter().find(|b| &b.1 == b"moov").expect("moov box");
    let mdat_pos = boxes
        .iter()
        .position(|b| &b.1 == b"mdat")
        .expect("mdat box");
    let moov_pos = boxes.iter().position(|b| &b.1 == b"moov").unwrap();
    assert!(moov_pos > mdat_pos, "already faststart");
    let mut moov_bytes = mp4[moov.0..moov.0 + moov.2].to_vec();
    patch_chunk_offsets(&mut moov_bytes, moov.2 as u64);
    let mut out = Vec::with_capacity(mp4.len());
    for (i, b) in boxes.iter().enumerate() {
        if i == mdat_pos {
            out.extend_from_slice(&moov_bytes);
        }
        if i != moov_pos {
            out.extend_from_slice(&mp4[b.0..b.0 + b.2]);
        }
    }
    out
}

/// (offset, type, size) of each top-level box.
fn top_level_boxes(data: &[u8]) -> Vec<(usize, [u8; 4], usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= data.len() {
        let size32 = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = data[pos + 4..pos + 8].try_into().unwrap();
        let size = match size32 {
            0 => data.len() - pos,
            1 => u64::from_be_bytes(data[pos + 8..pos + 16].try_into().unwrap()) as usize,
            n => n,
        };
        assert!(size >= 8 && pos + size <= data.len(), "bad box");
        out.push((pos, kind, size));
        pos += size;
    }
    out
}

fn patch_chunk_offsets(moov: &mut [u8], shift: u64) {
    // Walk container boxes down to stbl and patch stco/co64 tables.
    fn walk(buf: &mut [u8], shift: u64) {
        let mut pos = 0;
        while pos + 8 <= buf.len() {
            let size = u32::from_be_bytes(buf[pos..pos + 4].try_into().unwrap()) as usize;
            let kind: [u8; 4] = buf[pos + 4..pos + 8].try_into().unwrap();
            assert!(size >= 8 && pos + size <= buf.len(), "bad box in moov");
            let body = &mut buf[pos + 8..pos + size];
            match &kind {
                b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" => walk(body, shift),
                b"stco" => {
                    let n = u32::from_be_bytes(body[4..8].try_into().unwrap()) as usize;
                    for i in 0..n {
                        let at = 8 + 4 * i;
                        let v = u32::from_be_bytes(body[at..at + 4].try_into().unwrap());
                        let v = u32::try_from(u64::from(v) + shift).unwrap();
                        body[at..at + 4].copy_from_slice(&v.to_be_bytes());
                    }
                }
                b"co64" => {
                    let n = u32::from_be_bytes(body[4..8].try_into().unwrap()) as usize;
                    for i in 0..n {
                        let at = 8 + 8 * i;
                        let v = u64::from_be_bytes(body[at..at + 8].try_into().unwrap());
                        body[at..at + 8].copy_from_slice(&(v + shift).to_be_bytes());
                    }
                }
                _ => {}
            }
            pos += size;
        }
    }
    // `moov` itself is the outermost box of the slice.
    walk(moov, shift);
}
