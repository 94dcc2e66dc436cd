//! A deterministic generator of legacy-customer rows, a few of them dirty, as found in the
//! systems our users migrate from.

use dmf_core::Record;

/// A customer as a legacy system stores it: free text everywhere.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LegacyCustomer {
    /// The legacy id.
    pub id: i64,
    /// "First Last", sometimes with a middle name.
    pub full_name: String,
    /// An email address (or something that should have been one).
    pub email: String,
    /// A phone number in one of many formats.
    pub phone: String,
    /// `GOLD`, `SILVER`, `BRONZE`, `STANDARD` or empty, in varying case.
    pub level: String,
    /// "12 Elm Street, Springfield, 12345".
    pub address: String,
    /// `YYYY-MM-DD`.
    pub created: String,
}

impl Record for LegacyCustomer {
    fn key(&self) -> String {
        self.id.to_string()
    }
}

/// What is wrong with a dirty row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dirt {
    /// The email has no `@` or no domain.
    BadEmail,
    /// The email of an earlier customer, reused.
    DuplicateEmail,
    /// A phone number that cannot be normalised.
    BadPhone,
    /// A blank name.
    EmptyName,
}

const FIRST: [&str; 24] = [
    "Anna", "Ben", "Chloé", "David", "Emma", "Felix", "Grace", "Hugo", "Iris", "Jonas", "Kira", "Liam", "Maya", "Noah",
    "Olga", "Pablo", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera", "Wei", "Zoë",
];
const LAST: [&str; 20] = [
    "Smith", "Müller", "García", "Nguyen", "O'Brien", "Kowalski", "Rossi", "Jensen", "Dubois", "Silva", "Novak",
    "Khan", "Tanaka", "Olsen", "Moreau", "Fischer", "Costa", "Berg", "Ivanova", "Walsh",
];
const STREETS: [&str; 10] = ["Elm", "Oak", "Maple", "Main", "High", "Station", "Church", "Mill", "Park", "Bridge"];
const SUFFIXES: [&str; 4] = ["Street", "Road", "Avenue", "Lane"];
const CITIES: [&str; 8] =
    ["Springfield", "Riverton", "Lakeside", "Fairview", "Georgetown", "Ashford", "Brookfield", "Newport"];

/// Generates legacy customers; row `id` depends only on the seed and `id`, so any range of ids
/// can be generated on its own, in any order, with the same result.
///
/// ```
/// use dmf_testkit::LegacyGenerator;
/// let generator = LegacyGenerator::new(42);
/// let rows: Vec<_> = generator.rows(1..=1000).collect();
/// assert_eq!(rows.len(), 1000);
/// assert_eq!(rows[10], generator.row(11));
/// let dirty = (1..=1000).filter(|id| generator.dirt(*id).is_some()).count();
/// assert!((5..=40).contains(&dirty), "about 2 % dirty, got {dirty}");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct LegacyGenerator {
    seed: u64,
    dirty_ratio: f64,
}

impl LegacyGenerator {
    /// A generator with about 2 % dirty rows.
    pub fn new(seed: u64) -> Self {
        Self { seed, dirty_ratio: 0.02 }
    }

    /// Sets the share of dirty rows (0.0 to 1.0).
    pub fn dirty_ratio(mut self, ratio: f64) -> Self {
        self.dirty_ratio = ratio.clamp(0.0, 1.0);
        self
    }

    fn rng(&self, id: i64, salt: u64) -> fastrand::Rng {
        let mixed =
            self.seed ^ (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03);
        fastrand::Rng::with_seed(mixed)
    }

    /// What is wrong with row `id`, if anything.
    pub fn dirt(&self, id: i64) -> Option<Dirt> {
        let mut rng = self.rng(id, 1);
        if id < 2 || rng.f64() >= self.dirty_ratio {
            return None;
        }
        Some(match rng.u8(0..4) {
            0 => Dirt::BadEmail,
            1 => Dirt::DuplicateEmail,
            2 => Dirt::BadPhone,
            _ => Dirt::EmptyName,
        })
    }

    fn name_parts(&self, id: i64) -> (&'static str, &'static str) {
        let mut rng = self.rng(id, 2);
        (FIRST[rng.usize(..FIRST.len())], LAST[rng.usize(..LAST.len())])
    }

    fn clean_email(&self, id: i64) -> String {
        let (first, last) = self.name_parts(id);
        let ascii = |s: &str| s.chars().filter(char::is_ascii_alphabetic).collect::<String>().to_lowercase();
        format!("{}.{}{}@example.com", ascii(first), ascii(last), id)
    }

    /// Row `id`.
    pub fn row(&self, id: i64) -> LegacyCustomer {
        let mut rng = self.rng(id, 3);
        let (first, last) = self.name_parts(id);
        let dirt = self.dirt(id);
        let full_name = match dirt {
            Some(Dirt::EmptyName) => "   ".to_owned(),
            _ if rng.u8(0..10) == 0 => format!("{first} {} {last}", FIRST[rng.usize(..FIRST.len())]),
            _ => format!("{first} {last}"),
        };
        let email = match dirt {
            Some(Dirt::BadEmail) => match rng.u8(0..3) {
                0 => format!("{}.{}", first.to_lowercase(), last.to_lowercase()),
                1 => format!("{}@", first.to_lowercase()),
                _ => "n/a".to_owned(),
            },
            Some(Dirt::DuplicateEmail) => self.clean_email(rng.i64(1..id)),
            _ if rng.bool() => self.clean_email(id).to_uppercase(),
            _ => self.clean_email(id),
        };
        let (area, exchange, line) = (rng.u16(200..999), rng.u16(200..999), rng.u16(0..10_000));
        let phone = match dirt {
            Some(Dirt::BadPhone) => ["ask reception", "12", "n/a", "555-CALL-NOW"][rng.usize(..4)].to_owned(),
            _ => match rng.u8(0..4) {
                0 => format!("({area}) {exchange}-{line:04}"),
                1 => format!("{area}.{exchange}.{line:04}"),
                2 => format!("+1 {area} {exchange} {line:04}"),
                _ => format!("{area}{exchange}{line:04}"),
            },
        };
        let level = ["GOLD", "gold", "SILVER", "Silver", "BRONZE", "STANDARD", "", "bronze", "STANDARD", "SILVER"]
            [rng.usize(..10)]
        .to_owned();
        let address = format!(
            "{} {} {}, {}, {:05}",
            rng.u16(1..400),
            STREETS[rng.usize(..STREETS.len())],
            SUFFIXES[rng.usize(..SUFFIXES.len())],
            CITIES[rng.usize(..CITIES.len())],
            rng.u32(1000..99_999)
        );
        let created = format!("{}-{:02}-{:02}", rng.u16(2005..2024), rng.u8(1..13), rng.u8(1..29));
        LegacyCustomer { id, full_name, email, phone, level, address, created }
    }

    /// Rows for every id in `ids`, generated lazily.
    pub fn rows(self, ids: impl IntoIterator<Item = i64>) -> impl Iterator<Item = LegacyCustomer> {
        ids.into_iter().map(move |id| self.row(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_rows_and_dirt_is_what_it_says() {
        let generator = LegacyGenerator::new(7).dirty_ratio(0.5);
        assert_eq!(generator.row(123), LegacyGenerator::new(7).dirty_ratio(0.5).row(123));
        for id in 2..400 {
            let row = generator.row(id);
            match generator.dirt(id) {
                Some(Dirt::BadEmail) => assert!(!row.email.contains('@') || row.email.ends_with('@'), "{row:?}"),
                Some(Dirt::DuplicateEmail) => {
                    let earlier = (1..id).any(|other| generator.clean_email(other) == row.email);
                    assert!(earlier, "{row:?}");
                }
                Some(Dirt::BadPhone) => assert!(row.phone.chars().filter(char::is_ascii_digit).count() < 10),
                Some(Dirt::EmptyName) => assert!(row.full_name.trim().is_empty()),
                None => assert!(row.email.contains('@') && !row.full_name.trim().is_empty()),
            }
        }
    }
}
