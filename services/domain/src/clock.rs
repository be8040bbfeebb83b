//! The clock port. State machines take `now` as an argument; only the edges read a clock.

use chrono::{DateTime, Utc};

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// Wall-clock time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until told otherwise: tests (and a replay that must record the
/// times it replays) set or advance it. Shared across threads (`Arc<ManualClock>` is a
/// `Clock`); reads and writes are atomic (milliseconds since the Unix epoch).
#[derive(Debug)]
pub struct ManualClock {
    ms: std::sync::atomic::AtomicI64,
}

impl ManualClock {
    /// A clock standing at `t` (to the millisecond).
    pub fn new(t: DateTime<Utc>) -> ManualClock {
        ManualClock {
            ms: std::sync::atomic::AtomicI64::new(t.timestamp_millis()),
        }
    }

    /// Moves the clock to `t` (to the millisecond; backwards too).
    pub fn set(&self, t: DateTime<Utc>) {
        self.ms
            .store(t.timestamp_millis(), std::sync::atomic::Ordering::SeqCst);
    }

    /// Moves the clock forward by `d` (backwards when `d` is negative).
    pub fn advance(&self, d: chrono::Duration) {
        self.ms
            .fetch_add(d.num_milliseconds(), std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp_millis(self.ms.load(std::sync::atomic::Ordering::SeqCst))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::sync::Arc;

    #[test]
    fn manual_clock_stands_still_until_set_or_advanced() {
        let t = Utc.with_ymd_and_hms(2026, 3, 2, 8, 30, 0).unwrap();
        let clock = Arc::new(ManualClock::new(t));
        let port: Arc<dyn Clock> = clock.clone();
        assert_eq!(port.now(), t);
        assert_eq!(port.now(), t, "it does not move by itself");
        clock.advance(chrono::Duration::minutes(90));
        assert_eq!(port.now(), t + chrono::Duration::minutes(90));
        let later = Utc.with_ymd_and_hms(2026, 3, 3, 0, 0, 0).unwrap();
        clock.set(later);
        assert_eq!(port.now(), later);
        clock.advance(chrono::Duration::milliseconds(-1));
        assert_eq!(port.now(), later - chrono::Duration::milliseconds(1));
        // shared across threads: a write on one is what the other reads
        let c2 = clock.clone();
        std::thread::spawn(move || c2.set(t)).join().unwrap();
        assert_eq!(port.now(), t);
        // the system clock moves with the wall clock
        let before = Utc::now();
        let s = SystemClock.now();
        assert!(s >= before);
    }
}
