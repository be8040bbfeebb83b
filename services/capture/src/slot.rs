//! Latest-frame-wins hand-off between a capture thread and its consumer.

use crate::CapturedFrame;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

struct State {
    frame: Option<CapturedFrame>,
    closed: bool,
}

struct Inner {
    state: Mutex<State>,
    ready: Condvar,
    dropped: AtomicU64,
    published: AtomicU64,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state inconsistent (it is a plain
        // overwrite), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Creates a single-frame slot: the producer end never blocks, a new frame replaces an untaken
/// one (counted as dropped), and the consumer always gets the newest frame.
pub fn frame_slot() -> (FrameSlotWriter, FrameReceiver) {
    let inner = Arc::new(Inner {
        state: Mutex::new(State {
            frame: None,
            closed: false,
        }),
        ready: Condvar::new(),
        dropped: AtomicU64::new(0),
        published: AtomicU64::new(0),
    });
    (
        FrameSlotWriter {
            inner: inner.clone(),
        },
        FrameReceiver { inner },
    )
}

/// Producer end of a frame slot. Dropping it closes the slot.
pub struct FrameSlotWriter {
    inner: Arc<Inner>,
}

impl FrameSlotWriter {
    /// Stores `frame`, replacing (and counting as dropped) any frame not yet taken. Never blocks
    /// on the consumer; returns whether a frame was overwritten.
    pub fn publish(&self, frame: CapturedFrame) -> bool {
        let overwritten = {
            let mut st = self.inner.lock();
            st.frame.replace(frame).is_some()
        };
        self.inner.published.fetch_add(1, Ordering::Relaxed);
        if overwritten {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.ready.notify_all();
        overwritten
    }

    /// Marks the end of the stream: once the last frame is taken, receivers get `None` from the
    /// blocking calls instead of waiting.
    pub fn close(&self) {
        self.inner.lock().closed = true;
        self.inner.ready.notify_all();
    }
}

impl Drop for FrameSlotWriter {
    fn drop(&mut self) {
        self.close();
    }
}

/// Consumer end of a frame slot. Cloning it gives another consumer of the same slot (each frame
/// is taken by exactly one of them).
#[derive(Clone)]
pub struct FrameReceiver {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FrameReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameReceiver")
            .field("dropped", &self.dropped())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl FrameReceiver {
    /// Takes the newest frame if there is one; never blocks.
    pub fn try_take(&self) -> Option<CapturedFrame> {
        self.inner.lock().frame.take()
    }

    /// Waits for a frame. `None` once the producer has closed the slot and it is empty.
    pub fn recv(&self) -> Option<CapturedFrame> {
        let mut st = self.inner.lock();
        loop {
            if let Some(f) = st.frame.take() {
                return Some(f);
            }
            if st.closed {
                return None;
            }
            st = self.inner.ready.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Waits up to `timeout` for a frame. `None` on timeout, or at once when the slot is closed
    /// and empty (check [`is_closed`](Self::is_closed) to tell them apart).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<CapturedFrame> {
        let deadline = Instant::now() + timeout;
        let mut st = self.inner.lock();
        loop {
            if let Some(f) = st.frame.take() {
                return Some(f);
            }
            if st.closed {
                return None;
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            st = self
                .inner
                .ready
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Whether the producer has finished (the slot may still hold one last frame).
    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }

    /// Frames overwritten before anyone took them.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Frames put into the slot.
    pub fn published(&self) -> u64 {
        self.inner.published.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall_domain::Frame;

    fn frame(seq: u64) -> CapturedFrame {
        let mut f = CapturedFrame::now(
            Frame::from_rgb(1, 1, vec![0, 0, 0]).unwrap(),
            None,
            &rollcall_domain::clock::SystemClock,
        );
        f.seq = seq;
        f
    }

    #[test]
    fn newest_wins_and_overwrites_are_counted() {
        let (w, r) = frame_slot();
        assert!(r.try_take().is_none());
        assert!(!w.publish(frame(1)));
        assert!(w.publish(frame(2)));
        assert!(w.publish(frame(3)));
        assert_eq!(r.try_take().unwrap().seq, 3);
        assert!(r.try_take().is_none());
        assert_eq!((r.published(), r.dropped()), (3, 2));
    }

    #[test]
    fn close_wakes_a_waiting_consumer_after_the_last_frame() {
        let (w, r) = frame_slot();
        let t = std::thread::spawn(move || {
            let mut got = Vec::new();
            while let Some(f) = r.recv() {
                got.push(f.seq);
            }
            got
        });
        std::thread::sleep(Duration::from_millis(20));
        w.publish(frame(7));
        std::thread::sleep(Duration::from_millis(20));
        drop(w);
        let got = t.join().unwrap();
        assert_eq!(got, vec![7]);
    }

    #[test]
    fn recv_timeout_times_out() {
        let (_w, r) = frame_slot();
        let t0 = Instant::now();
        assert!(r.recv_timeout(Duration::from_millis(30)).is_none());
        assert!(t0.elapsed() >= Duration::from_millis(30));
        assert!(!r.is_closed());
    }
}
