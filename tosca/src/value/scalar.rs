//! `scalar-unit.size`, `.time`, `.frequency` and `.bitrate` (TOSCA 1.3 §3.3.6).
//!
//! A scalar-unit is a number and a unit, separated by optional whitespace (`4 GB`, `4GB`,
//! `2.5 GHz`, `-1 s`). Unit names are case-insensitive (`gb` is `GB`), except that for bitrates
//! `b` (bit) and `B` (byte) differ: `Kbps` is 1000 bits per second, `KBps` 8000. The unit is
//! stored in its canonical spelling and the value is normalized to the family's base unit.
//!
//! | family | base | units |
//! | --- | --- | --- |
//! | size | `B` | B, kB (10³), KiB (2¹⁰), MB, MiB, GB, GiB, TB, TiB |
//! | time | `s` | d, h, m, s, ms, us, ns |
//! | frequency | `Hz` | Hz, kHz, MHz, GHz |
//! | bitrate | `bps` | bps, Kbps, Kibps, Mbps, Mibps, Gbps, Gibps, Tbps, Tibps, and the byte forms Bps, KBps, KiBps, ..., TiBps (×8) |

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScalarKind {
    Size,
    Time,
    Frequency,
    Bitrate,
}

const SIZE: &[(&str, f64)] = &[
    ("B", 1.0),
    ("kB", 1e3),
    ("KiB", 1024.0),
    ("MB", 1e6),
    ("MiB", 1_048_576.0),
    ("GB", 1e9),
    ("GiB", 1_073_741_824.0),
    ("TB", 1e12),
    ("TiB", 1_099_511_627_776.0),
];

/// Sub-second units are negative: divide by the magnitude (exact powers of ten divide with
/// correct rounding, so `1000 ns` equals `1 us`; multiplying by 1e-9 would not).
const TIME: &[(&str, f64)] = &[("d", 86_400.0), ("h", 3_600.0), ("m", 60.0), ("s", 1.0), ("ms", -1e3), ("us", -1e6), ("ns", -1e9)];

const FREQUENCY: &[(&str, f64)] = &[("Hz", 1.0), ("kHz", 1e3), ("MHz", 1e6), ("GHz", 1e9)];

const BITRATE: &[(&str, f64)] = &[
    ("bps", 1.0),
    ("Kbps", 1e3),
    ("Kibps", 1024.0),
    ("Mbps", 1e6),
    ("Mibps", 1_048_576.0),
    ("Gbps", 1e9),
    ("Gibps", 1_073_741_824.0),
    ("Tbps", 1e12),
    ("Tibps", 1_099_511_627_776.0),
    ("Bps", 8.0),
    ("KBps", 8e3),
    ("KiBps", 8.0 * 1024.0),
    ("MBps", 8e6),
    ("MiBps", 8.0 * 1_048_576.0),
    ("GBps", 8e9),
    ("GiBps", 8.0 * 1_073_741_824.0),
    ("TBps", 8e12),
    ("TiBps", 8.0 * 1_099_511_627_776.0),
];

impl ScalarKind {
    pub fn units(self) -> &'static [(&'static str, f64)] {
        match self {
            ScalarKind::Size => SIZE,
            ScalarKind::Time => TIME,
            ScalarKind::Frequency => FREQUENCY,
            ScalarKind::Bitrate => BITRATE,
        }
    }

    pub fn base_unit(self) -> &'static str {
        self.units()[if self == ScalarKind::Time { 3 } else { 0 }].0
    }

    pub fn type_name(self) -> &'static str {
        match self {
            ScalarKind::Size => "scalar-unit.size",
            ScalarKind::Time => "scalar-unit.time",
            ScalarKind::Frequency => "scalar-unit.frequency",
            ScalarKind::Bitrate => "scalar-unit.bitrate",
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            ScalarKind::Size => "a size",
            ScalarKind::Time => "a time",
            ScalarKind::Frequency => "a frequency",
            ScalarKind::Bitrate => "a bitrate",
        }
    }

    /// A typical value, for help lines.
    pub fn example(self) -> &'static str {
        match self {
            ScalarKind::Size => "4 GB",
            ScalarKind::Time => "30 s",
            ScalarKind::Frequency => "2.4 GHz",
            ScalarKind::Bitrate => "100 Mbps",
        }
    }

    /// The canonical unit for a unit as written, and its factor to the base unit (negative: a
    /// divisor, see the time table).
    pub fn unit(self, written: &str) -> Option<(&'static str, f64)> {
        self.units().iter().copied().find(|(u, _)| unit_matches(self, u, written))
    }

    /// `value` in this unit, in the base unit.
    pub fn normalize(factor: f64, value: f64) -> f64 {
        if factor < 0.0 {
            value / -factor
        } else {
            value * factor
        }
    }

    /// All units of the family, for help lines.
    pub fn unit_list(self) -> String {
        self.units().iter().map(|(u, _)| *u).collect::<Vec<_>>().join(", ")
    }
}

fn unit_matches(kind: ScalarKind, canonical: &str, written: &str) -> bool {
    if kind != ScalarKind::Bitrate {
        return canonical.eq_ignore_ascii_case(written);
    }
    // Bitrates: case-insensitive except the b/B before "ps", which tells bits from bytes.
    let (Some(c), Some(w)) = (canonical.strip_suffix("ps"), written.get(..written.len().saturating_sub(2))) else {
        return false;
    };
    if !written.get(written.len().saturating_sub(2)..).is_some_and(|s| s.eq_ignore_ascii_case("ps")) {
        return false;
    }
    match (c.char_indices().last(), w.char_indices().last()) {
        (Some((ci, cb)), Some((wi, wb))) => cb == wb && c[..ci].eq_ignore_ascii_case(&w[..wi]),
        _ => false,
    }
}

/// A parsed scalar-unit.
#[derive(Clone, Debug, PartialEq)]
pub struct Scalar {
    pub value: f64,
    pub unit: &'static str,
    pub normalized: f64,
}

/// Why a text is not a scalar-unit of the family, as a message fragment.
#[derive(Clone, Debug, PartialEq)]
pub enum ScalarError {
    NoNumber,
    NoUnit,
    UnknownUnit(String),
    OutOfRange,
}

/// Parses `<number> <unit>`.
pub fn parse(text: &str, kind: ScalarKind) -> Result<Scalar, ScalarError> {
    let t = text.trim();
    let end = number_prefix_len(t);
    if end == 0 {
        return Err(ScalarError::NoNumber);
    }
    let (num, rest) = t.split_at(end);
    let value: f64 = num.parse().map_err(|_| ScalarError::NoNumber)?;
    let unit = rest.trim_start();
    if unit.is_empty() {
        return Err(ScalarError::NoUnit);
    }
    let (canonical, factor) = kind.unit(unit).ok_or_else(|| ScalarError::UnknownUnit(unit.to_string()))?;
    let normalized = ScalarKind::normalize(factor, value);
    if !value.is_finite() || !normalized.is_finite() {
        return Err(ScalarError::OutOfRange);
    }
    Ok(Scalar { value, unit: canonical, normalized })
}

/// Length of the leading decimal number: `[+-]? (digits [. digits?] | . digits) ([eE][+-]?digits)?`.
pub(crate) fn number_prefix_len(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i > int_start;
    if i < b.len() && b[i] == b'.' {
        let frac_start = i + 1;
        let mut j = frac_start;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if digits || j > frac_start {
            digits = true;
            i = j;
        }
    }
    if !digits {
        return 0;
    }
    // An exponent only when digits follow: `1e3 B` is 1000 B, but `1 ex` keeps `ex` as the unit.
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        let exp_start = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > exp_start {
            i = j;
        }
    }
    i
}
