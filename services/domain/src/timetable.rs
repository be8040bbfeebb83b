//! The timetable's rules: a weekly series of lessons (a weekday, a school-local start time, a
//! length, a first and a last day) expands to its lessons, skipping the school's holidays; a
//! lesson's times as UTC instants from the school's fixed offset. Pure: the caller passes the
//! holidays and the offset.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use std::collections::BTreeSet;

/// The longest a series may run (a school year and a bit): longer is a typo.
pub const MAX_SERIES_DAYS: i64 = 400;
/// A lesson's length in minutes: at least this…
pub const MIN_LESSON_MINUTES: u32 = 10;
/// …and at most this.
pub const MAX_LESSON_MINUTES: u32 = 600;

/// Why a series cannot be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeriesError {
    #[error("last_day: the last day {last} is before the first day {first}")]
    EndsBeforeStart { first: NaiveDate, last: NaiveDate },
    #[error("last_day: a series may run at most {MAX_SERIES_DAYS} days")]
    TooLong,
    #[error("minutes: a lesson lasts {MIN_LESSON_MINUTES} to {MAX_LESSON_MINUTES} minutes")]
    BadLength,
}

impl SeriesError {
    /// The request field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            SeriesError::EndsBeforeStart { .. } | SeriesError::TooLong => "last_day",
            SeriesError::BadLength => "minutes",
        }
    }
}

/// A class's lessons on one weekday, every week from `first_day` to `last_day` (school-local
/// dates, both included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeeklySeries {
    pub weekday: Weekday,
    /// School-local start time.
    pub start: NaiveTime,
    pub minutes: u32,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
}

/// One lesson of a series: its local day and its instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesLesson {
    pub day: NaiveDate,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl WeeklySeries {
    /// Checks the series' shape.
    pub fn check(&self) -> Result<(), SeriesError> {
        if self.last_day < self.first_day {
            return Err(SeriesError::EndsBeforeStart {
                first: self.first_day,
                last: self.last_day,
            });
        }
        if (self.last_day - self.first_day).num_days() > MAX_SERIES_DAYS {
            return Err(SeriesError::TooLong);
        }
        if !(MIN_LESSON_MINUTES..=MAX_LESSON_MINUTES).contains(&self.minutes) {
            return Err(SeriesError::BadLength);
        }
        Ok(())
    }

    /// The series' days in order: every `weekday` in `[first_day, last_day]` that is not a
    /// holiday.
    pub fn days(&self, holidays: &BTreeSet<NaiveDate>) -> Result<Vec<NaiveDate>, SeriesError> {
        self.check()?;
        let ahead = (7 + self.weekday.num_days_from_monday() as i64
            - self.first_day.weekday().num_days_from_monday() as i64)
            % 7;
        let mut d = self.first_day + Duration::days(ahead);
        let mut out = Vec::new();
        while d <= self.last_day {
            if !holidays.contains(&d) {
                out.push(d);
            }
            d += Duration::days(7);
        }
        Ok(out)
    }

    /// The series' lessons: [`Self::days`] at the local start time, for a school `offset_minutes`
    /// east of UTC.
    pub fn lessons(
        &self,
        holidays: &BTreeSet<NaiveDate>,
        offset_minutes: i64,
    ) -> Result<Vec<SeriesLesson>, SeriesError> {
        Ok(self
            .days(holidays)?
            .into_iter()
            .map(|day| {
                let start = local_instant(day, self.start, offset_minutes);
                SeriesLesson {
                    day,
                    start,
                    end: start + Duration::minutes(i64::from(self.minutes)),
                }
            })
            .collect())
    }
}

/// The instant of school-local `day` at `time` for a school `offset_minutes` east of UTC.
pub fn local_instant(day: NaiveDate, time: NaiveTime, offset_minutes: i64) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_time(time)) - Duration::minutes(offset_minutes)
}

/// The school-local day of instant `t`.
pub fn local_day(t: DateTime<Utc>, offset_minutes: i64) -> NaiveDate {
    (t + Duration::minutes(offset_minutes)).date_naive()
}

/// Whether `[a_start, a_end)` and `[b_start, b_end)` overlap.
pub fn overlaps(
    a_start: DateTime<Utc>,
    a_end: DateTime<Utc>,
    b_start: DateTime<Utc>,
    b_end: DateTime<Utc>,
) -> bool {
    a_start < b_end && b_start < a_end
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn series(first: &str, last: &str) -> WeeklySeries {
        WeeklySeries {
            weekday: Weekday::Wed,
            start: NaiveTime::from_hms_opt(16, 0, 0).unwrap(),
            minutes: 90,
            first_day: d(first),
            last_day: d(last),
        }
    }

    #[test]
    fn a_term_of_wednesdays_skips_the_holiday_and_is_local_time() {
        // 2026-09-01 is a Tuesday: the first Wednesday is the 2nd; 2026-10-07 is a holiday
        let s = series("2026-09-01", "2026-10-14");
        let hol: BTreeSet<_> = [d("2026-10-07")].into();
        let days = s.days(&hol).unwrap();
        assert_eq!(
            days,
            [
                "2026-09-02",
                "2026-09-09",
                "2026-09-16",
                "2026-09-23",
                "2026-09-30",
                "2026-10-14"
            ]
            .map(d)
            .to_vec()
        );
        let ls = s.lessons(&hol, 480).unwrap();
        // 16:00 at +08:00 is 08:00 UTC
        assert_eq!(ls[0].start.to_rfc3339(), "2026-09-02T08:00:00+00:00");
        assert_eq!(ls[0].end.to_rfc3339(), "2026-09-02T09:30:00+00:00");
        assert_eq!(local_day(ls[0].start, 480), d("2026-09-02"));
    }

    #[test]
    fn bad_series_are_refused_with_their_field() {
        let e = series("2026-09-10", "2026-09-01").check().unwrap_err();
        assert_eq!(e.field(), "last_day");
        assert_eq!(
            series("2026-01-01", "2027-06-01").check().unwrap_err(),
            SeriesError::TooLong
        );
        let mut s = series("2026-09-01", "2026-09-30");
        s.minutes = 5;
        assert_eq!(s.check().unwrap_err().field(), "minutes");
        s.minutes = 601;
        assert_eq!(s.check().unwrap_err().field(), "minutes");
    }

    #[test]
    fn a_late_evening_lesson_west_of_utc_keeps_its_local_day() {
        // 20:00 at −05:00 is 01:00 UTC the next day; the lesson's local day stays the Wednesday
        let mut s = series("2026-09-02", "2026-09-02");
        s.start = NaiveTime::from_hms_opt(20, 0, 0).unwrap();
        let ls = s.lessons(&BTreeSet::new(), -300).unwrap();
        assert_eq!(ls.len(), 1);
        assert_eq!(ls[0].start.to_rfc3339(), "2026-09-03T01:00:00+00:00");
        assert_eq!(local_day(ls[0].start, -300), d("2026-09-02"));
    }

    proptest! {
        /// Every day of a series is its weekday, in range, not a holiday; every such day is in
        /// it; the days are a week apart or more, in order; each lesson starts at the local time.
        #[test]
        fn series_days_are_exactly_the_weekdays_not_on_holidays(
            first in 0i64..800,
            len in 0i64..=MAX_SERIES_DAYS,
            wd in 0u32..7,
            hol in proptest::collection::btree_set(0i64..1300, 0..30),
            h in 0u32..24, m in 0u32..60,
            minutes in MIN_LESSON_MINUTES..=MAX_LESSON_MINUTES,
            off in -720i64..=840,
        ) {
            let base = d("2026-01-01");
            let s = WeeklySeries {
                weekday: Weekday::try_from(wd as u8).unwrap(),
                start: NaiveTime::from_hms_opt(h, m, 0).unwrap(),
                minutes,
                first_day: base + Duration::days(first),
                last_day: base + Duration::days(first + len),
            };
            let hol: BTreeSet<NaiveDate> = hol.into_iter().map(|x| base + Duration::days(x)).collect();
            let days = s.days(&hol).unwrap();
            let mut want = Vec::new();
            let mut x = s.first_day;
            while x <= s.last_day {
                if x.weekday() == s.weekday && !hol.contains(&x) { want.push(x); }
                x += Duration::days(1);
            }
            prop_assert_eq!(&days, &want);
            let ls = s.lessons(&hol, off).unwrap();
            prop_assert_eq!(ls.len(), days.len());
            for (l, day) in ls.iter().zip(&days) {
                let local = l.start + Duration::minutes(off);
                prop_assert_eq!(local.date_naive(), *day);
                prop_assert_eq!(local.time(), s.start);
                prop_assert_eq!((l.end - l.start).num_minutes(), i64::from(minutes));
            }
        }

        #[test]
        fn overlap_is_symmetric_and_touching_is_not_overlap(a in 0i64..1000, la in 1i64..200, b in 0i64..1000, lb in 1i64..200) {
            let t = |x: i64| Utc.timestamp_opt(x * 60, 0).unwrap();
            let o = overlaps(t(a), t(a + la), t(b), t(b + lb));
            prop_assert_eq!(o, overlaps(t(b), t(b + lb), t(a), t(a + la)));
            prop_assert_eq!(o, a < b + lb && b < a + la);
            prop_assert!(!overlaps(t(a), t(a + la), t(a + la), t(a + la + lb)));
        }
    }
}
