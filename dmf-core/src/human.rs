//! Figures printed for people: durations in the unit that reads best, never `Debug`'s
//! `968.7µs`.

use std::fmt;
use std::time::Duration;

/// A duration printed for people: `850 ms`, `12.4 s`, `3 min 07 s`, `2 h 05 min`.
///
/// ```
/// use std::time::Duration;
/// use dmf_core::HumanDuration;
///
/// assert_eq!(HumanDuration(Duration::from_micros(968_700)).to_string(), "969 ms");
/// assert_eq!(HumanDuration(Duration::from_millis(12_440)).to_string(), "12.4 s");
/// assert_eq!(HumanDuration(Duration::from_secs(187)).to_string(), "3 min 07 s");
/// assert_eq!(HumanDuration(Duration::from_secs(7_500)).to_string(), "2 h 05 min");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        let secs = d.as_secs();
        if d < Duration::from_millis(1) {
            write!(f, "{} µs", d.as_micros())
        } else if d < Duration::from_secs(1) {
            write!(f, "{} ms", (d.as_secs_f64() * 1000.0).round() as u64)
        } else if secs < 60 {
            write!(f, "{:.1} s", d.as_secs_f64())
        } else if secs < 3600 {
            write!(f, "{} min {:02} s", secs / 60, secs % 60)
        } else {
            write!(f, "{} h {:02} min", secs / 3600, (secs % 3600) / 60)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_unit_reads_as_people_write_it() {
        let shown = |d: Duration| HumanDuration(d).to_string();
        assert_eq!(shown(Duration::ZERO), "0 µs");
        assert_eq!(shown(Duration::from_micros(250)), "250 µs");
        assert_eq!(shown(Duration::from_millis(999)), "999 ms");
        assert_eq!(shown(Duration::from_secs(1)), "1.0 s");
        assert_eq!(shown(Duration::from_secs(59)), "59.0 s");
        assert_eq!(shown(Duration::from_secs(60)), "1 min 00 s");
        assert_eq!(shown(Duration::from_secs(3600)), "1 h 00 min");
    }
}
