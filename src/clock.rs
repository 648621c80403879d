//! Time as SparkQ keeps it: integer unix milliseconds inside, RFC 3339 UTC
//! with exactly three fractional digits at the edges (JSON, logs, tables).
//!
//! Store functions take `now` as an argument so that tests can set the time
//! instead of sleeping.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in milliseconds.
pub type Millis = i64;

/// The current time in unix milliseconds.
pub fn now() -> Millis {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as Millis,
        Err(_) => 0,
    }
}

/// Formats unix milliseconds as `2026-12-04T15:20:41.123Z`.
///
/// The width is fixed so that the strings sort as text in the same order as
/// the times they stand for.
pub fn format(ms: Millis) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    let t = match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => t,
        Err(_) => time::OffsetDateTime::UNIX_EPOCH,
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_fixed_width_milliseconds() {
        assert_eq!(format(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format(1_796_397_641_123), "2026-12-04T15:20:41.123Z");
        assert_eq!(format(1_796_397_641_005), "2026-12-04T15:20:41.005Z");
    }

    #[test]
    fn formatted_times_sort_as_text() {
        let a = format(1_796_484_041_999);
        let b = format(1_796_484_042_000);
        assert!(a < b);
    }
}
