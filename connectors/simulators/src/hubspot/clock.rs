//! Time formatting shared by the HubSpot simulator: epoch milliseconds inside,
//! ISO-8601 with milliseconds on the wire (HubSpot never uses seconds precision).

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

/// Wall-clock now in epoch milliseconds.
pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// `2026-03-02T10:15:30.120Z`, the shape HubSpot uses for `createdAt`,
/// `updatedAt` and datetime property values.
pub(crate) fn iso(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses what HubSpot accepts for a datetime: epoch milliseconds (as text),
/// ISO-8601 with an offset, or a bare `YYYY-MM-DD` (midnight UTC).
pub(crate) fn parse_datetime(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Some(dt.timestamp_millis());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp_millis())
}

/// A random v4-shaped UUID for correlation and request ids.
pub(crate) fn uuid() -> String {
    let v: u128 = rand::random();
    let h = format!("{v:032x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_keeps_milliseconds_and_round_trips() {
        let ms = 1_767_225_600_123;
        assert_eq!(iso(ms), "2026-01-01T00:00:00.123Z");
        assert_eq!(parse_datetime(&iso(ms)), Some(ms));
        assert_eq!(parse_datetime("1767225600123"), Some(ms));
        assert_eq!(parse_datetime("2026-01-01"), Some(1_767_225_600_000));
    }
}
