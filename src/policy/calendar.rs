//! Working-time calendars for SLA clocks: business hours in an IANA zone (the policy's
//! [`WorkingHours`], one or more windows a day), holidays (local dates) and
//! out-of-office windows; or "always" (24×7). Pure.
//!
//! The clock runs only inside working intervals. Intervals are built per local date
//! and converted to UTC with the zone's rules of that date, so a day that loses an
//! hour to DST has one working hour less when its hours cross the change, and a
//! window is never counted twice across midnight. A local time that does not exist
//! (the spring-forward gap) moves to the first instant after the gap; one that exists
//! twice (fall back) is its first occurrence.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::model::{Window, WindowBound, WorkingHours};

/// How far ahead `add_working` looks for working time before it gives up: a deadline
/// further than this is one no calendar hour can meet (`policy check` rejects it).
pub const HORIZON_DAYS: i64 = 3 * 366;

/// A calendar the SLA clock runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct Calendar {
    pub name: String,
    pub zone: Tz,
    /// Working windows per day; empty means every hour of every day ("always").
    pub hours: Vec<WorkingHours>,
    /// Whole local days off.
    pub holidays: BTreeSet<NaiveDate>,
    /// Out-of-office windows (dates are whole local days in `zone`).
    pub out_of_office: Vec<Window>,
}

impl Calendar {
    /// 24×7 with no holidays: the clock never pauses.
    pub fn always() -> Self {
        Calendar {
            name: "always".into(),
            zone: Tz::UTC,
            hours: Vec::new(),
            holidays: BTreeSet::new(),
            out_of_office: Vec::new(),
        }
    }

    pub fn is_always(&self) -> bool {
        self.hours.is_empty() && self.holidays.is_empty() && self.out_of_office.is_empty()
    }

    /// Working intervals (UTC, half-open, in order, not overlapping) of shifts that
    /// start on local date `day`, before out-of-office windows are taken out.
    fn shifts_of(&self, day: NaiveDate, out: &mut Vec<(DateTime<Utc>, DateTime<Utc>)>) {
        if self.holidays.contains(&day) {
            return;
        }
        if self.hours.is_empty() {
            let next = day.succ_opt().unwrap_or(day);
            out.push((
                local(self.zone, day.and_time(NaiveTime::MIN)),
                local(self.zone, next.and_time(NaiveTime::MIN)),
            ));
            return;
        }
        for h in &self.hours {
            if !h.days[day.weekday().num_days_from_monday() as usize] {
                continue;
            }
            let end_day = if h.end <= h.start {
                day.succ_opt().unwrap_or(day)
            } else {
                day
            };
            let a = local(self.zone, day.and_time(h.start));
            let b = local(self.zone, end_day.and_time(h.end));
            if a < b {
                out.push((a, b));
            }
        }
        out.sort();
    }

    /// Out-of-office windows as UTC intervals.
    fn away(&self) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let mut away: Vec<_> = self
            .out_of_office
            .iter()
            .map(|w| {
                let from = match w.from {
                    WindowBound::Date(d) => local(self.zone, d.and_time(NaiveTime::MIN)),
                    WindowBound::Instant(t) => t,
                };
                let to = match w.to {
                    WindowBound::Date(d) => local(
                        self.zone,
                        d.succ_opt().unwrap_or(d).and_time(NaiveTime::MIN),
                    ),
                    WindowBound::Instant(t) => t,
                };
                (from, to)
            })
            .filter(|(a, b)| a < b)
            .collect();
        away.sort();
        away
    }

    /// Calls `f` with each working interval overlapping `[from, ..)`, clipped to start
    /// at `from`, in order, until `f` returns false or the horizon is reached.
    fn each_interval(
        &self,
        from: DateTime<Utc>,
        mut f: impl FnMut(DateTime<Utc>, DateTime<Utc>) -> bool,
    ) {
        let away = self.away();
        // A night shift that started yesterday may still be running.
        let first = from.with_timezone(&self.zone).date_naive();
        let mut day = first.pred_opt().unwrap_or(first);
        let mut shifts = Vec::new();
        for _ in 0..=HORIZON_DAYS {
            shifts.clear();
            self.shifts_of(day, &mut shifts);
            for &(a, b) in &shifts {
                let a = a.max(from);
                if a >= b {
                    continue;
                }
                // Take out-of-office windows out of [a, b).
                let mut cursor = a;
                for &(x, y) in &away {
                    if y <= cursor || x >= b {
                        continue;
                    }
                    if x > cursor && !f(cursor, x) {
                        return;
                    }
                    cursor = cursor.max(y);
                    if cursor >= b {
                        break;
                    }
                }
                if cursor < b && !f(cursor, b) {
                    return;
                }
            }
            match day.succ_opt() {
                Some(next) => day = next,
                None => return,
            }
        }
    }

    /// Whether `at` is working time.
    pub fn is_working(&self, at: DateTime<Utc>) -> bool {
        let mut working = false;
        self.each_interval(at, |a, _| {
            working = a == at;
            false
        });
        working
    }
}

/// The instant of local wall-clock time `naive` in `zone`: the first occurrence of an
/// ambiguous time, the end of the gap for a time that does not exist.
fn local(zone: Tz, naive: NaiveDateTime) -> DateTime<Utc> {
    let mut probe = naive;
    // Gaps are at most a few hours; step by minutes to the first valid local time.
    for _ in 0..(6 * 60) {
        if let Some(t) = zone.from_local_datetime(&probe).earliest() {
            return t.with_timezone(&Utc);
        }
        probe += Duration::minutes(1);
    }
    Utc.from_utc_datetime(&naive)
}

/// The instant when `duration` of working time on `calendar` has passed since `start`
/// (the due time of an SLA started at `start`). `None` when the calendar does not
/// hold that much working time within [`HORIZON_DAYS`].
pub fn add_working(
    start: DateTime<Utc>,
    duration: Duration,
    calendar: &Calendar,
) -> Option<DateTime<Utc>> {
    if duration <= Duration::zero() {
        return Some(start);
    }
    if calendar.is_always() {
        return start.checked_add_signed(duration);
    }
    let mut left = duration;
    let mut due = None;
    calendar.each_interval(start, |a, b| {
        let len = b - a;
        if left <= len {
            due = Some(a + left);
            false
        } else {
            left -= len;
            true
        }
    });
    due
}

/// Working time on `calendar` between `a` and `b` (zero when `b <= a`).
pub fn working_between(a: DateTime<Utc>, b: DateTime<Utc>, calendar: &Calendar) -> Duration {
    if b <= a {
        return Duration::zero();
    }
    if calendar.is_always() {
        return b - a;
    }
    let mut total = Duration::zero();
    calendar.each_interval(a, |x, y| {
        if x >= b {
            return false;
        }
        total += y.min(b) - x;
        y < b
    });
    total
}

/// Working time in the calendar's week starting Monday `monday` (local), ignoring
/// out-of-office windows: zero means no deadline on this calendar can be met.
pub fn working_in_week(calendar: &Calendar, monday: NaiveDate) -> Duration {
    let mut shifts = Vec::new();
    let mut day = monday;
    for _ in 0..7 {
        if calendar.hours.is_empty() {
            return Duration::days(7);
        }
        let plain = Calendar {
            holidays: BTreeSet::new(),
            out_of_office: Vec::new(),
            ..calendar.clone()
        };
        plain.shifts_of(day, &mut shifts);
        day = day.succ_opt().unwrap_or(day);
    }
    shifts.iter().map(|(a, b)| *b - *a).sum()
}

/// Regional holiday sets by name (`holiday_sets = ["us"]`): public holidays of
/// 2026–2028 as dated lists. Moving feasts are listed by date, so a set needs a
/// yearly update; `policy check` warns when a set ends within 90 days.
pub fn holiday_set(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        "us" => &[
            "2026-01-01",
            "2026-01-19",
            "2026-02-16",
            "2026-05-25",
            "2026-06-19",
            "2026-07-03",
            "2026-09-07",
            "2026-10-12",
            "2026-11-11",
            "2026-11-26",
            "2026-12-25",
            "2027-01-01",
            "2027-01-18",
            "2027-02-15",
            "2027-05-31",
            "2027-06-18",
            "2027-07-05",
            "2027-09-06",
            "2027-10-11",
            "2027-11-11",
            "2027-11-25",
            "2027-12-24",
            "2027-12-31",
            "2028-01-17",
            "2028-02-21",
            "2028-05-29",
            "2028-06-19",
            "2028-07-04",
            "2028-09-04",
            "2028-10-09",
            "2028-11-10",
            "2028-11-23",
            "2028-12-25",
        ],
        "gb" => &[
            "2026-01-01",
            "2026-04-03",
            "2026-04-06",
            "2026-05-04",
            "2026-05-25",
            "2026-08-31",
            "2026-12-25",
            "2026-12-28",
            "2027-01-01",
            "2027-03-26",
            "2027-03-29",
            "2027-05-03",
            "2027-05-31",
            "2027-08-30",
            "2027-12-27",
            "2027-12-28",
            "2028-01-03",
            "2028-04-14",
            "2028-04-17",
            "2028-05-01",
            "2028-05-29",
            "2028-08-28",
            "2028-12-25",
            "2028-12-26",
        ],
        "de" => &[
            "2026-01-01",
            "2026-04-03",
            "2026-04-06",
            "2026-05-01",
            "2026-05-14",
            "2026-05-25",
            "2026-10-03",
            "2026-12-25",
            "2026-12-26",
            "2027-01-01",
            "2027-03-26",
            "2027-03-29",
            "2027-05-01",
            "2027-05-06",
            "2027-05-17",
            "2027-10-03",
            "2027-12-25",
            "2027-12-26",
            "2028-01-01",
            "2028-04-14",
            "2028-04-17",
            "2028-05-01",
            "2028-05-25",
            "2028-06-05",
            "2028-10-03",
            "2028-12-25",
            "2028-12-26",
        ],
        "fr" => &[
            "2026-01-01",
            "2026-04-06",
            "2026-05-01",
            "2026-05-08",
            "2026-05-14",
            "2026-05-25",
            "2026-07-14",
            "2026-08-15",
            "2026-11-01",
            "2026-11-11",
            "2026-12-25",
            "2027-01-01",
            "2027-03-29",
            "2027-05-01",
            "2027-05-08",
            "2027-05-06",
            "2027-05-17",
            "2027-07-14",
            "2027-08-15",
            "2027-11-01",
            "2027-11-11",
            "2027-12-25",
            "2028-01-01",
            "2028-04-17",
            "2028-05-01",
            "2028-05-08",
            "2028-05-25",
            "2028-06-05",
            "2028-07-14",
            "2028-08-15",
            "2028-11-01",
            "2028-11-11",
            "2028-12-25",
        ],
        _ => return None,
    })
}

/// The names [`holiday_set`] knows, for "did you mean" fixes.
pub const HOLIDAY_SETS: &[&str] = &["us", "gb", "de", "fr"];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn hours(start: &str, end: &str, days: [bool; 7]) -> WorkingHours {
        WorkingHours {
            start: NaiveTime::parse_from_str(start, "%H:%M").unwrap(),
            end: NaiveTime::parse_from_str(end, "%H:%M").unwrap(),
            days,
        }
    }

    const WEEKDAYS: [bool; 7] = [true, true, true, true, true, false, false];
    const EVERY_DAY: [bool; 7] = [true; 7];

    fn office(zone: &str) -> Calendar {
        Calendar {
            name: "office".into(),
            zone: zone.parse().unwrap(),
            hours: vec![hours("09:00", "17:00", WEEKDAYS)],
            holidays: BTreeSet::new(),
            out_of_office: Vec::new(),
        }
    }

    #[test]
    fn always_adds_wall_time() {
        let start = utc("2026-03-08T01:30:00Z");
        let due = add_working(start, Duration::minutes(15), &Calendar::always()).unwrap();
        assert_eq!(due, utc("2026-03-08T01:45:00Z"));
    }

    #[test]
    fn the_clock_pauses_overnight_and_over_the_weekend() {
        let cal = office("Europe/Berlin");
        // Friday 16:50 Berlin (15:50 UTC in winter) + 15 working minutes: Monday 09:05.
        let due = add_working(utc("2026-01-09T15:50:00Z"), Duration::minutes(15), &cal).unwrap();
        assert_eq!(due, utc("2026-01-12T08:05:00Z"));
        // Started on Saturday: the clock starts Monday 09:00.
        let due = add_working(utc("2026-01-10T12:00:00Z"), Duration::minutes(15), &cal).unwrap();
        assert_eq!(due, utc("2026-01-12T08:15:00Z"));
    }

    #[test]
    fn holidays_are_skipped_whole() {
        let mut cal = office("America/New_York");
        cal.holidays
            .insert(NaiveDate::from_ymd_opt(2026, 12, 25).unwrap());
        // Thursday 24 Dec 16:30 New York + 1 h: 30 min on the 24th, 30 on Monday 28th.
        let due = add_working(utc("2026-12-24T21:30:00Z"), Duration::hours(1), &cal).unwrap();
        assert_eq!(due, utc("2026-12-28T14:30:00Z"));
    }

    #[test]
    fn out_of_office_pauses_the_clock() {
        let mut cal = office("UTC");
        cal.out_of_office.push(Window {
            from: WindowBound::Instant(utc("2026-01-12T10:00:00Z")),
            to: WindowBound::Instant(utc("2026-01-12T12:00:00Z")),
            note: None,
        });
        let due = add_working(utc("2026-01-12T09:30:00Z"), Duration::hours(1), &cal).unwrap();
        assert_eq!(due, utc("2026-01-12T12:30:00Z"));
        assert_eq!(
            working_between(
                utc("2026-01-12T09:00:00Z"),
                utc("2026-01-12T17:00:00Z"),
                &cal
            ),
            Duration::hours(6)
        );
    }

    #[test]
    fn spring_forward_shortens_a_night_shift_by_an_hour() {
        // 22:00-06:00 every day in New York; the night of 7-8 March 2026 loses 02:00-03:00.
        let cal = Calendar {
            hours: vec![hours("22:00", "06:00", EVERY_DAY)],
            ..office("America/New_York")
        };
        let a = utc("2026-03-08T03:00:00Z"); // 22:00 EST on the 7th
        let b = utc("2026-03-08T10:00:00Z"); // 06:00 EDT on the 8th
        assert_eq!(working_between(a, b, &cal), Duration::hours(7));
        // A full-length shift on another night.
        let a = utc("2026-03-10T02:00:00Z");
        let b = utc("2026-03-10T10:00:00Z");
        assert_eq!(working_between(a, b, &cal), Duration::hours(8));
    }

    #[test]
    fn fall_back_lengthens_a_night_shift_by_an_hour_in_several_zones() {
        for (zone, start, end) in [
            // 25 October 2026 in Berlin: 22:00 CEST = 20:00 UTC, 06:00 CET = 05:00 UTC.
            (
                "Europe/Berlin",
                "2026-10-24T20:00:00Z",
                "2026-10-25T05:00:00Z",
            ),
            // 1 November 2026 in New York.
            (
                "America/New_York",
                "2026-11-01T02:00:00Z",
                "2026-11-01T11:00:00Z",
            ),
            // Sydney falls back on 5 April 2026: 22:00 AEDT = 11:00 UTC, 06:00 AEST = 20:00.
            (
                "Australia/Sydney",
                "2026-04-04T11:00:00Z",
                "2026-04-04T20:00:00Z",
            ),
        ] {
            let cal = Calendar {
                hours: vec![hours("22:00", "06:00", EVERY_DAY)],
                ..office(zone)
            };
            let (a, b) = (utc(start), utc(end));
            assert_eq!(working_between(a, b, &cal), Duration::hours(9), "{zone}");
            assert_eq!(add_working(a, Duration::hours(9), &cal), Some(b), "{zone}");
        }
    }

    #[test]
    fn a_day_shift_keeps_its_local_hours_across_dst() {
        let cal = office("Europe/London");
        // Friday 27 March 2026 16:00 GMT, 2 h: 1 h Friday, Monday 30th 09:00 BST = 08:00 UTC.
        let due = add_working(utc("2026-03-27T16:00:00Z"), Duration::hours(2), &cal).unwrap();
        assert_eq!(due, utc("2026-03-30T09:00:00Z"));
    }

    #[test]
    fn a_calendar_with_no_working_time_meets_no_deadline() {
        let mut cal = office("UTC");
        cal.out_of_office.push(Window {
            from: WindowBound::Date(NaiveDate::from_ymd_opt(2020, 1, 1).unwrap()),
            to: WindowBound::Date(NaiveDate::from_ymd_opt(2099, 1, 1).unwrap()),
            note: None,
        });
        assert_eq!(
            add_working(utc("2026-01-12T09:30:00Z"), Duration::minutes(1), &cal),
            None
        );
    }

    #[test]
    fn working_in_week_counts_the_hours() {
        let monday = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
        assert_eq!(working_in_week(&office("UTC"), monday), Duration::hours(40));
    }

    #[test]
    fn the_regional_sets_parse() {
        for name in HOLIDAY_SETS {
            for d in holiday_set(name).unwrap() {
                NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
            }
        }
    }

    const ZONES: [&str; 5] = [
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "Australia/Sydney",
        "Asia/Kolkata",
    ];

    fn arb_calendar() -> impl Strategy<Value = Calendar> {
        (
            0usize..ZONES.len(),
            0u32..24,
            1u32..24,
            prop::array::uniform7(any::<bool>()),
            any::<bool>(),
        )
            .prop_map(|(zone, start, len, mut days, always)| {
                if !days.iter().any(|d| *d) {
                    days[0] = true;
                }
                let start_t = NaiveTime::from_hms_opt(start, 0, 0).unwrap();
                let end_t = NaiveTime::from_hms_opt((start + len) % 24, 30, 0).unwrap();
                Calendar {
                    name: "p".into(),
                    zone: ZONES[zone].parse().unwrap(),
                    hours: if always {
                        Vec::new()
                    } else {
                        vec![WorkingHours {
                            start: start_t,
                            end: end_t,
                            days,
                        }]
                    },
                    holidays: [NaiveDate::from_ymd_opt(2026, 3, 9).unwrap()].into(),
                    out_of_office: Vec::new(),
                }
            })
    }

    proptest! {
        /// Around the DST changes of March and October/November 2026 in several zones.
        #[test]
        fn the_due_time_holds_exactly_the_working_duration(
            cal in arb_calendar(),
            offset_mins in 0i64..(60 * 24 * 240),
            mins in 1i64..(60 * 24 * 3),
        ) {
            let start = utc("2026-03-01T00:00:00Z") + Duration::minutes(offset_mins);
            let due = add_working(start, Duration::minutes(mins), &cal).unwrap();
            prop_assert!(due > start);
            prop_assert_eq!(working_between(start, due, &cal), Duration::minutes(mins));
            // Nothing earlier would do: one minute less of wall time is less working time.
            prop_assert!(working_between(start, due - Duration::minutes(1), &cal) < Duration::minutes(mins));
        }

        #[test]
        fn working_time_is_additive(
            cal in arb_calendar(),
            a in 0i64..(60 * 24 * 240),
            x in 0i64..(60 * 24 * 10),
            y in 0i64..(60 * 24 * 10),
        ) {
            let t0 = utc("2026-03-01T00:00:00Z") + Duration::minutes(a);
            let t1 = t0 + Duration::minutes(x);
            let t2 = t1 + Duration::minutes(y);
            prop_assert_eq!(
                working_between(t0, t1, &cal) + working_between(t1, t2, &cal),
                working_between(t0, t2, &cal)
            );
            prop_assert!(working_between(t0, t2, &cal) <= t2 - t0);
        }
    }
}
