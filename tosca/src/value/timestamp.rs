//! `timestamp` (TOSCA 1.3 §3.3.4): the YAML 1.1 timestamp grammar, a profile of ISO 8601.
//!
//! ```text
//! YYYY-MM-DD                                           date alone: midnight UTC
//! YYYY-M?M-D?D(T|t|[ \t]+)H?H:MM:SS(.fraction)?(tz)?   tz: [ \t]*(Z | [+-]H?H(:MM)?), UTC when absent
//! ```
//! Examples: `2001-12-14`, `2001-12-14t21:59:43.10-05:00`, `2001-12-14 21:59:43.10 -5`,
//! `2001-12-15T02:59:43.1Z`. Calendar dates are checked (no February 30th); years are 0000–9999
//! before and after the shift to UTC.

use super::Timestamp;

/// Parses a timestamp; the error is a message fragment saying what is wrong.
pub fn parse(text: &str) -> Result<Timestamp, String> {
    let mut c = Cursor { s: text.as_bytes(), i: 0 };
    let year = c.digits(4, 4).ok_or("expected a four-digit year at the start")?;
    c.expect(b'-').ok_or("expected `-` after the year")?;
    let month_pos = c.i;
    let month = c.digits(1, 2).ok_or("expected the month after the year")?;
    let month_len = c.i - month_pos;
    c.expect(b'-').ok_or("expected `-` after the month")?;
    let day_pos = c.i;
    let day = c.digits(1, 2).ok_or("expected the day after the month")?;
    let day_len = c.i - day_pos;
    check_date(year, month, day)?;

    if c.at_end() {
        if month_len != 2 || day_len != 2 {
            return Err("a date alone is written YYYY-MM-DD, with two-digit month and day".into());
        }
        return finish(text, year, month, day, 0, 0, 0, 0, 0, String::new());
    }
    // Separator: T, t, or spaces/tabs.
    match c.peek() {
        Some(b'T' | b't') => c.i += 1,
        Some(b' ' | b'\t') => c.skip_blanks(),
        _ => return Err("expected `T` or a space between the date and the time".into()),
    }
    let hour = c.digits(1, 2).ok_or("expected the hour")?;
    c.expect(b':').ok_or("expected `:` after the hour")?;
    let minute = c.digits(2, 2).ok_or("expected two-digit minutes")?;
    c.expect(b':').ok_or("expected `:` after the minutes")?;
    let second = c.digits(2, 2).ok_or("expected two-digit seconds")?;
    if hour > 23 || minute > 59 || second > 59 {
        return Err(format!("time {hour:02}:{minute:02}:{second:02} is out of range"));
    }
    let mut fraction = String::new();
    if c.peek() == Some(b'.') {
        c.i += 1;
        while let Some(d) = c.peek().filter(u8::is_ascii_digit) {
            fraction.push(d as char);
            c.i += 1;
        }
    }
    let mut offset_minutes: i64 = 0;
    c.skip_blanks();
    match c.peek() {
        None => {}
        Some(b'Z' | b'z') => c.i += 1,
        Some(sign @ (b'+' | b'-')) => {
            c.i += 1;
            let h = c.digits(1, 2).ok_or("expected the time zone hours after the sign")?;
            let m = if c.peek() == Some(b':') {
                c.i += 1;
                c.digits(2, 2).ok_or("expected two-digit time zone minutes")?
            } else {
                0
            };
            if h > 23 || m > 59 {
                return Err("time zone offset is out of range".into());
            }
            offset_minutes = (h * 60 + m) as i64;
            if sign == b'-' {
                offset_minutes = -offset_minutes;
            }
        }
        Some(_) => return Err("unexpected text after the time".into()),
    }
    if !c.at_end() {
        return Err("unexpected text after the time zone".into());
    }
    let nanos = fraction_nanos(&fraction);
    let trimmed = fraction.trim_end_matches('0').to_string();
    finish(text, year, month, day, hour, minute, second, offset_minutes, nanos, trimmed)
}

#[allow(clippy::too_many_arguments)]
fn finish(
    text: &str,
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    offset_minutes: i64,
    nanos: u32,
    fraction: String,
) -> Result<Timestamp, String> {
    let days = days_from_civil(year as i64, month, day);
    let seconds = days * 86_400 + (hour as i64) * 3_600 + (minute as i64) * 60 + second as i64 - offset_minutes * 60;
    let (y, mo, d) = civil_from_days(seconds.div_euclid(86_400));
    if !(0..=9999).contains(&y) {
        return Err("the instant falls outside the years 0000-9999 in UTC".into());
    }
    let sod = seconds.rem_euclid(86_400);
    let frac = if fraction.is_empty() { String::new() } else { format!(".{fraction}") };
    let utc = format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}{frac}Z", sod / 3600, sod / 60 % 60, sod % 60);
    Ok(Timestamp { original: text.to_string(), utc, seconds, nanos })
}

fn fraction_nanos(fraction: &str) -> u32 {
    let mut n: u32 = 0;
    for i in 0..9 {
        let d = fraction.as_bytes().get(i).map(|b| (b - b'0') as u32).unwrap_or(0);
        n = n * 10 + d;
    }
    n
}

fn is_leap(y: u32) -> bool {
    // Remainders named, not `is_multiple_of`, which is newer than the crate's rust-version.
    let (r4, r100, r400) = (y % 4, y % 100, y % 400);
    (r4 == 0 && r100 != 0) || r400 == 0
}

fn check_date(year: u32, month: u32, day: u32) -> Result<(), String> {
    let max = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => return Err(format!("month {month} is out of range (1-12)")),
    };
    if day == 0 || day > max {
        return Err(format!("day {day} does not exist in {year:04}-{month:02}"));
    }
    Ok(())
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

struct Cursor<'s> {
    s: &'s [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }
    fn expect(&mut self, b: u8) -> Option<()> {
        (self.peek() == Some(b)).then(|| self.i += 1)
    }
    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }
    /// Between `min` and `max` ASCII digits (max <= 4, so no overflow).
    fn digits(&mut self, min: usize, max: usize) -> Option<u32> {
        let start = self.i;
        let mut n = 0u32;
        while self.i - start < max {
            match self.peek() {
                Some(d) if d.is_ascii_digit() => {
                    n = n * 10 + (d - b'0') as u32;
                    self.i += 1;
                }
                _ => break,
            }
        }
        if self.i - start < min {
            self.i = start;
            return None;
        }
        Some(n)
    }
}
