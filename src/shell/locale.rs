//! Dates and times as each of the council's languages writes them: ICU4X with the CLDR
//! data compiled in, in the Gregorian calendar (the council's), the weekday, day, month and
//! year written out and the time to the minute, then the council's offset from UTC, always
//! named (a delegate may read the mail in another zone).
//!
//! The offset is wrapped in Unicode isolates (LRI … PDI), so that in Arabic text it still
//! reads `UTC+03:00` and not `03:00+UTC`; a whole date placed in a sentence is wrapped in
//! FSI … PDI by [`isolate`] for the same reason. Both are invisible in every renderer that
//! knows them (mail clients and browsers do) and harmless in the others.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use chrono::{DateTime, Datelike, FixedOffset, Timelike};
use icu_calendar::Gregorian;
use icu_datetime::FixedCalendarDateTimeFormatter;
use icu_datetime::fieldsets::YMDET;
use icu_datetime::input::{Date, DateTime as IcuDateTime, Time};
use icu_datetime::options::TimePrecision;
use icu_locale_core::Locale;

type Formatter = FixedCalendarDateTimeFormatter<Gregorian, YMDET>;

/// First strong isolate, left-to-right isolate and pop directional isolate.
const FSI: char = '\u{2068}';
const LRI: char = '\u{2066}';
const PDI: char = '\u{2069}';

/// The locale a council language is written in: English as the organisation writes it
/// (day before month, 24-hour clock), the others as CLDR has them.
fn locale(language: &str) -> Locale {
    let tag = match language {
        "en" => "en-GB",
        other => other,
    };
    tag.parse().unwrap_or(Locale::UNKNOWN)
}

thread_local! {
    /// The formatters made so far on this thread (ICU4X's are not `Send`), by language.
    static KEPT: RefCell<HashMap<String, Rc<Formatter>>> = RefCell::default();
}

/// The formatter of a language, made once per thread and kept.
fn formatter(language: &str) -> Option<Rc<Formatter>> {
    if let Some(f) = KEPT.with_borrow(|kept| kept.get(language).cloned()) {
        return Some(f);
    }
    // A language CLDR lacks falls back to its root data rather than failing.
    let fields = YMDET::long().with_time_precision(TimePrecision::Minute);
    let made = Rc::new(Formatter::try_new(locale(language).into(), fields).ok()?);
    KEPT.with_borrow_mut(|kept| {
        // The languages of a roster are few; a bound anyway, against a hostile one.
        if kept.len() < 64 {
            kept.insert(language.to_string(), made.clone());
        }
    });
    Some(made)
}

/// `at` in `language`, with its UTC offset: "mardi 22 décembre 2026 à 17:00 (UTC+03:00)".
pub fn datetime(language: &str, at: DateTime<FixedOffset>) -> String {
    let offset = offset(at.offset());
    let date = Date::try_new_gregorian(at.year(), at.month() as u8, at.day() as u8);
    let time = Time::try_new(at.hour() as u8, at.minute() as u8, 0, 0);
    let written = match (formatter(language), date, time) {
        (Some(f), Ok(date), Ok(time)) => f.format(&IcuDateTime { date, time }).to_string(),
        // Out of ICU's range (not a date a council meets on): the plain ISO form.
        _ => at.format("%Y-%m-%d %H:%M").to_string(),
    };
    format!("{written} ({LRI}{offset}{PDI})")
}

/// `UTC`, or `UTC+03:00`, `UTC-04:30`.
fn offset(offset: &FixedOffset) -> String {
    let seconds = offset.local_minus_utc();
    if seconds == 0 {
        return "UTC".into();
    }
    let sign = if seconds < 0 { '-' } else { '+' };
    let minutes = seconds.unsigned_abs() / 60;
    format!("UTC{sign}{:02}:{:02}", minutes / 60, minutes % 60)
}

/// A language named in itself, as a list of versions names them for every reader.
pub fn language_name(code: &str) -> &str {
    match code {
        "ar" => "العربية",
        "en" => "English",
        "fr" => "Français",
        "es" => "Español",
        "ru" => "Русский",
        "zh" => "中文",
        "tr" => "Türkçe",
        "fa" => "فارسی",
        "ur" => "اردو",
        "ms" => "Bahasa Melayu",
        "id" => "Bahasa Indonesia",
        other => other,
    }
}

/// A value as it goes into a sentence of either direction: its own direction, from its
/// first strong letter, without turning the sentence's punctuation around it.
pub fn isolate(value: &str) -> String {
    format!("{FSI}{value}{PDI}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(text).unwrap()
    }

    /// Without the isolates: what a reader sees.
    fn seen(text: &str) -> String {
        text.replace([FSI, LRI, PDI], "")
    }

    #[test]
    fn each_language_writes_the_date_its_own_way_and_names_the_offset() {
        let t = at("2026-12-22T17:00:00+03:00");
        assert_eq!(
            seen(&datetime("en", t)),
            "Tuesday, 22 December 2026 at 17:00 (UTC+03:00)"
        );
        assert_eq!(
            seen(&datetime("fr", t)),
            "mardi 22 décembre 2026 à 17:00 (UTC+03:00)"
        );
        let ar = seen(&datetime("ar", t));
        assert!(ar.contains("ديسمبر") && ar.contains("الثلاثاء"), "{ar}");
        assert!(ar.ends_with("(UTC+03:00)"), "{ar}");
        assert!(!ar.contains("December"), "{ar}");
    }

    #[test]
    fn the_offset_is_isolated_and_written_in_full() {
        let t = at("2026-06-01T09:30:00-04:30");
        let written = datetime("ar", t);
        assert!(written.contains("\u{2066}UTC-04:30\u{2069}"), "{written:?}");
        assert!(seen(&datetime("en", at("2026-06-01T09:30:00Z"))).ends_with("(UTC)"));
        // A language CLDR does not know still gets a date.
        assert!(seen(&datetime("xx", t)).contains("2026"));
    }
}
