//! The values a workflow file writes as text: durations (`14d`), cron schedules and
//! register numbers (`CPCC/REG/{{year}}/{{seq:03}}`).

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// A length of time written as `90s`, `30m`, `72h`, `14d`, `2w` or combined (`1d12h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub chrono::Duration);

impl FromStr for Duration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "bad duration `{text}`: write a number and a unit (s, m, h, d, w), e.g. `14d` or `1d12h`"
            )
        };
        let mut total: i64 = 0;
        let mut digits = String::new();
        for c in text.trim().chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3_600,
                'd' => 86_400,
                'w' => 604_800,
                _ => return Err(bad()),
            };
            let n: i64 = digits.parse().map_err(|_| bad())?;
            digits.clear();
            total = n
                .checked_mul(unit)
                .and_then(|s| total.checked_add(s))
                .ok_or_else(bad)?;
        }
        if !digits.is_empty() || total == 0 || total > 100 * 365 * 86_400 {
            return Err(bad());
        }
        Ok(Duration(chrono::Duration::seconds(total)))
    }
}

/// A 5-field crontab line: minute hour day-of-month month day-of-week (0 or 7 = Sunday,
/// Monday = 1), day-of-month OR day-of-week when both are restricted, in the council's zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub text: String,
    cron: croner::Cron,
}

impl FromStr for Schedule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        use croner::parser::{CronParser, Seconds, Year};
        let fields = text.split_whitespace().count();
        if fields != 5 && !text.trim_start().starts_with('@') {
            return Err(format!(
                "bad cron `{text}`: write 5 fields (minute hour day-of-month month day-of-week), found {fields}"
            ));
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        let cron = parser
            .parse(text)
            .map_err(|e| format!("bad cron `{text}`: {e}"))?;
        // A line like `0 9 30 2 *` parses but never comes.
        let reference = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default();
        if cron.find_next_occurrence(&reference, false).is_err() {
            return Err(format!("cron `{text}` never occurs"));
        }
        Ok(Schedule {
            text: text.to_string(),
            cron,
        })
    }
}

impl Schedule {
    /// The first occurrence strictly after `after`, in zone `tz`.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// Formats a register number: `{{year}}`, `{{seq}}` and `{{seq:03}}` (zero-padded).
pub fn format_number(pattern: &str, year: i32, seq: u64) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("`{{{{` without `}}}}` in number `{pattern}`"))?;
        let field = after[..close].trim();
        match field.split_once(':') {
            None if field == "year" => out.push_str(&year.to_string()),
            None if field == "seq" => out.push_str(&seq.to_string()),
            Some(("seq", width)) if width.starts_with('0') && width.len() <= 3 => {
                let w: usize = width
                    .parse()
                    .map_err(|_| format!("bad width `{width}` in number `{pattern}`"))?;
                out.push_str(&format!("{seq:0w$}"));
            }
            _ => {
                return Err(format!(
                    "unknown field `{field}` in number `{pattern}`: use {{{{year}}}}, {{{{seq}}}} or {{{{seq:03}}}}"
                ));
            }
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    let has_seq = pattern
        .split("{{")
        .skip(1)
        .any(|f| f.trim_start().starts_with("seq"));
    if !has_seq {
        return Err(format!(
            "number `{pattern}` needs {{{{seq}}}} so that each act gets its own number"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let s = |t: &str| t.parse::<Duration>().map(|d| d.0.num_seconds());
        assert_eq!(s("90s"), Ok(90));
        assert_eq!(s("14d"), Ok(14 * 86_400));
        assert_eq!(s("1d12h"), Ok(36 * 3_600));
        assert_eq!(s("2w"), Ok(14 * 86_400));
        for bad in ["", "14", "d", "3y", "0s", "-1d", "99999999999999999999d"] {
            assert!(s(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cron_is_crontab() {
        use chrono::TimeZone;
        let tz: Tz = "Europe/Istanbul".parse().unwrap();
        // Monday = 1: 2026-11-30 is a Monday.
        let s: Schedule = "0 9 * * 1".parse().unwrap();
        let from = Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap();
        let next = s.next_after(from, tz).unwrap();
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 11, 30, 6, 0, 0).unwrap());
        // Day-of-month OR day-of-week: the 13th or any Friday, whichever comes first.
        let s: Schedule = "0 9 13 * 5".parse().unwrap();
        let next = s.next_after(from, tz).unwrap();
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 11, 27, 6, 0, 0).unwrap());
        assert!(
            "0 0 9 * * 1".parse::<Schedule>().is_err(),
            "6 fields are refused"
        );
        assert!("61 * * * *".parse::<Schedule>().is_err());
        assert!(
            "0 9 30 2 *".parse::<Schedule>().is_err(),
            "30 February never comes"
        );
    }

    #[test]
    fn cron_keeps_daylight_saving_sane() {
        use chrono::TimeZone;
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let s: Schedule = "30 2 * * *".parse().unwrap();
        // Spring forward (02:30 does not exist on 2026-03-29): one run that day, not none.
        let from = Utc.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap();
        let first = s.next_after(from, tz).unwrap();
        assert_eq!(
            first.with_timezone(&tz).format("%F").to_string(),
            "2026-03-29"
        );
        // Fall back (02:30 happens twice on 2026-10-25): one run that day, not two.
        let from = Utc.with_ymd_and_hms(2026, 10, 24, 12, 0, 0).unwrap();
        let first = s.next_after(from, tz).unwrap();
        let second = s.next_after(first, tz).unwrap();
        assert_eq!(
            first.with_timezone(&tz).format("%F").to_string(),
            "2026-10-25"
        );
        assert_eq!(
            second.with_timezone(&tz).format("%F").to_string(),
            "2026-10-26"
        );
    }
}
