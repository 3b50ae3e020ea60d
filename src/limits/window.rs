//! Window arithmetic: which count a moment belongs to, and when a window frees room.
//!
//! `minute` and `hour` slide: counts are kept in buckets (1 s for a minute, 60 s for an
//! hour) and a window is the last 60 buckets. `day`, `week` (from Monday), `month` and `year`
//! are UTC calendar periods, numbered; `lifetime` is one period forever.

use crate::config::limits::Window;
use chrono::{DateTime, Datelike, Duration as Days, NaiveDate, TimeZone, Utc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Buckets in a sliding window.
pub const SLIDING_BUCKETS: i64 = 60;

/// Whether a window slides (its count is the sum of its recent buckets).
pub fn slides(window: Window) -> bool {
    matches!(window, Window::Minute | Window::Hour)
}

/// The length of one bucket of a sliding window.
fn bucket_secs(window: Window) -> i64 {
    match window {
        Window::Hour => 60,
        _ => 1,
    }
}

/// The bucket (sliding windows) or period (calendar ones) `now` falls in.
pub fn bucket(window: Window, now: SystemTime) -> i64 {
    let secs = unix_secs(now);
    let day = secs.div_euclid(86_400);
    let date = utc(now).date_naive();
    match window {
        Window::Minute | Window::Hour => secs.div_euclid(bucket_secs(window)),
        Window::Day => day,
        // 1970-01-01 was a Thursday: days + 3 counts from a Monday.
        Window::Week => (day + 3).div_euclid(7),
        Window::Month => i64::from(date.year()) * 12 + i64::from(date.month0()),
        Window::Year => i64::from(date.year()),
        Window::Lifetime => 0,
    }
}

/// The oldest bucket still inside a sliding window at bucket `now` (or the period itself).
pub fn oldest_counted(window: Window, now_bucket: i64) -> i64 {
    if slides(window) {
        now_bucket - SLIDING_BUCKETS + 1
    } else {
        now_bucket
    }
}

/// When the count of bucket `oldest` (the oldest one holding anything) leaves the window:
/// the end of the calendar period, or when that bucket slides out; never for `lifetime`.
pub fn frees_at(window: Window, oldest: i64, now: SystemTime) -> Option<SystemTime> {
    let at = match window {
        Window::Minute | Window::Hour => {
            let secs = (oldest + SLIDING_BUCKETS) * bucket_secs(window);
            UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
        }
        Window::Day | Window::Week | Window::Month | Window::Year => next_period(window, now)?,
        Window::Lifetime => return None,
    };
    Some(at)
}

/// The start of the calendar period after the one `now` is in.
fn next_period(window: Window, now: SystemTime) -> Option<SystemTime> {
    let date = utc(now).date_naive();
    let next: NaiveDate = match window {
        Window::Day => date + Days::days(1),
        Window::Week => date + Days::days(7 - i64::from(date.weekday().num_days_from_monday())),
        Window::Month => {
            let (y, m) = if date.month() == 12 {
                (date.year() + 1, 1)
            } else {
                (date.year(), date.month() + 1)
            };
            NaiveDate::from_ymd_opt(y, m, 1)?
        }
        Window::Year => NaiveDate::from_ymd_opt(date.year() + 1, 1, 1)?,
        _ => return None,
    };
    let midnight = Utc.from_utc_datetime(&next.and_hms_opt(0, 0, 0)?);
    Some(SystemTime::from(midnight))
}

fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn utc(t: SystemTime) -> DateTime<Utc> {
    DateTime::<Utc>::from(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> SystemTime {
        SystemTime::from(DateTime::parse_from_rfc3339(text).unwrap())
    }

    #[test]
    fn calendar_periods_turn_at_utc_midnight_monday_and_the_first() {
        let sun = at("2026-12-06T23:59:59Z");
        let mon = at("2026-12-07T00:00:00Z");
        assert_eq!(bucket(Window::Day, sun) + 1, bucket(Window::Day, mon));
        assert_eq!(bucket(Window::Week, sun) + 1, bucket(Window::Week, mon));
        assert_eq!(
            bucket(Window::Week, mon),
            bucket(Window::Week, at("2026-12-13T23:00:00Z"))
        );
        assert_eq!(frees_at(Window::Day, 0, sun), Some(mon));
        assert_eq!(
            frees_at(Window::Week, 0, at("2026-12-02T10:00:00Z")),
            Some(mon)
        );
        assert_eq!(
            frees_at(Window::Week, 0, mon),
            Some(at("2026-12-14T00:00:00Z"))
        );
        let dec = at("2026-12-31T12:00:00Z");
        assert_eq!(
            frees_at(Window::Month, 0, dec),
            Some(at("2027-01-01T00:00:00Z"))
        );
        assert_eq!(
            frees_at(Window::Year, 0, dec),
            Some(at("2027-01-01T00:00:00Z"))
        );
        assert_eq!(
            bucket(Window::Month, dec) + 1,
            bucket(Window::Month, at("2027-01-01T00:00:00Z"))
        );
        assert_eq!(frees_at(Window::Lifetime, 0, dec), None);
    }

    #[test]
    fn sliding_windows_count_the_last_sixty_buckets() {
        let t = at("2026-12-06T10:00:30Z");
        let b = bucket(Window::Minute, t);
        assert_eq!(b, bucket(Window::Minute, at("2026-12-06T10:00:30.900Z")));
        assert_eq!(oldest_counted(Window::Minute, b), b - 59);
        // What was counted at 10:00:30 is gone at 10:01:30.
        assert_eq!(
            frees_at(Window::Minute, b, t),
            Some(at("2026-12-06T10:01:30Z"))
        );
        let h = bucket(Window::Hour, t);
        assert_eq!(
            frees_at(Window::Hour, h, t),
            Some(at("2026-12-06T11:00:00Z"))
        );
    }
}
