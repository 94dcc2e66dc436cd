//! The business rules of the customer migration: how a legacy customer becomes a modern one,
//! and what a modern customer must satisfy to be loaded. Nothing here knows where rows are
//! stored, so the same rules serve the in-memory demo and a database-backed run.

use std::fmt;

use dmf_core::{Record, Rules, Transformed, Transformer};
use dmf_testkit::LegacyCustomer;

/// A customer in the new schema.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModernCustomer {
    /// The new id: the legacy id, kept so that foreign keys can be migrated the same way.
    pub id: i64,
    /// The id in the legacy system, for tracing a row back to its source.
    pub legacy_id: i64,
    /// Every name but the last (middle names included).
    pub first_name: String,
    /// The last word of the legacy full name.
    pub last_name: String,
    /// Trimmed and lowercased.
    pub email: String,
    /// E.164, for example `+15551234567`.
    pub phone: String,
    /// The loyalty tier.
    pub tier: Tier,
    /// House number and street, for example `12 Elm Street`.
    pub street: String,
    /// The city.
    pub city: String,
    /// A 5-digit ZIP code (or ZIP+4).
    pub postal_code: String,
    /// The day the customer was created, `YYYY-MM-DD`.
    pub created_on: String,
}

impl Record for ModernCustomer {
    /// The legacy id, so that rejects name the row a user can find in the source.
    fn key(&self) -> String {
        self.legacy_id.to_string()
    }
}

/// The loyalty tier, from the legacy `level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Legacy `GOLD`.
    Vip,
    /// Legacy `SILVER`.
    Premium,
    /// Every other level, empty included.
    Regular,
}

impl Tier {
    /// Maps a legacy level, ignoring case and surrounding blanks; unknown levels are `Regular`.
    pub fn from_level(level: &str) -> Self {
        let level = level.trim();
        if level.eq_ignore_ascii_case("GOLD") {
            Tier::Vip
        } else if level.eq_ignore_ascii_case("SILVER") {
            Tier::Premium
        } else {
            Tier::Regular
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tier::Vip => "vip",
            Tier::Premium => "premium",
            Tier::Regular => "regular",
        })
    }
}

/// Maps [`LegacyCustomer`]s to [`ModernCustomer`]s.
///
/// - Customers already in the target are not this transformer's business: the target skips
///   them (`insert_or_skip`), in the database, without reading them into memory.
/// - A phone or address that cannot be parsed rejects the row, naming the field and value.
/// - Names and emails are only normalised here; [`customer_rules`] decides whether they are
///   acceptable, so a report lists every problem of a row at once.
#[derive(Debug, Clone, Copy, Default)]
pub struct CustomerTransformer;

impl CustomerTransformer {
    /// Maps one customer (used to seed a target, too).
    pub fn map(legacy: &LegacyCustomer) -> Result<ModernCustomer, String> {
        let phone = normalize_phone(&legacy.phone)?;
        let address = parse_address(&legacy.address)?;
        let created_on = parse_date(&legacy.created)?;
        let (first_name, last_name) = split_name(&legacy.full_name);
        Ok(ModernCustomer {
            id: legacy.id,
            legacy_id: legacy.id,
            first_name,
            last_name,
            email: normalize_email(&legacy.email),
            phone,
            tier: Tier::from_level(&legacy.level),
            street: address.street,
            city: address.city,
            postal_code: address.postal_code,
            created_on,
        })
    }
}

impl Transformer for CustomerTransformer {
    type Input = LegacyCustomer;
    type Output = ModernCustomer;

    fn transform(&self, legacy: &LegacyCustomer) -> Transformed<ModernCustomer> {
        match Self::map(legacy) {
            Ok(customer) => Transformed::Mapped(customer),
            Err(reason) => Transformed::Rejected { reason },
        }
    }
}

/// Splits a full name on whitespace: the last word is the last name, every word before it the
/// first name, so middle names are kept (`Anna Maya Smith` → `Anna Maya` / `Smith`). A single
/// word becomes the first name with a blank last name, which [`customer_rules`] rejects: a
/// person needs both to be addressed correctly, and guessing would be worse than asking.
pub fn split_name(full_name: &str) -> (String, String) {
    let mut words: Vec<&str> = full_name.split_whitespace().collect();
    match words.pop() {
        None => (String::new(), String::new()),
        Some(only) if words.is_empty() => (only.to_owned(), String::new()),
        Some(last) => (words.join(" "), last.to_owned()),
    }
}

/// Trims and lowercases an email address; whether it is well-formed is a validation rule.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Normalises a North-American phone number to E.164 (`+1` and 10 digits).
///
/// Accepts digits with the usual separators (spaces, `-`, `.`, parentheses) and an optional
/// `+1` or `1` country code: `(555) 123-4567`, `555.123.4567`, `+1 555 123 4567`,
/// `5551234567`. Anything else (letters, too few or too many digits, another country code)
/// is an error naming the value.
pub fn normalize_phone(raw: &str) -> Result<String, String> {
    let text = raw.trim();
    let not_a_phone = |why: &str| format!("phone `{raw}` is not a phone number ({why})");
    let (international, rest) = match text.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if rest.chars().any(char::is_alphabetic) {
        return Err(not_a_phone("it contains letters"));
    }
    if let Some(bad) = rest.chars().find(|c| !(c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')'))) {
        return Err(not_a_phone(&format!("unexpected `{bad}`")));
    }
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    let national = if international {
        match digits.strip_prefix('1') {
            Some(national) if national.len() == 10 => national,
            Some(national) => {
                return Err(not_a_phone(&format!("expected 10 digits after +1, found {}", national.len())));
            }
            None if digits.is_empty() => return Err(not_a_phone("no digits")),
            None => return Err(not_a_phone("only North-American numbers (+1) are supported")),
        }
    } else {
        match digits.len() {
            10 => digits.as_str(),
            11 if digits.starts_with('1') => &digits[1..],
            n => return Err(not_a_phone(&format!("expected 10 digits, found {n}"))),
        }
    };
    Ok(format!("+1{national}"))
}

/// An address split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// House number and street.
    pub street: String,
    /// The city.
    pub city: String,
    /// A ZIP code: 5 digits, or ZIP+4 (`12345-6789`).
    pub postal_code: String,
}

/// Parses `"12 Elm Street, Springfield, 12345"`: three comma-separated parts, none blank, the
/// last a ZIP code.
pub fn parse_address(raw: &str) -> Result<Address, String> {
    let parts: Vec<&str> = raw.split(',').map(str::trim).collect();
    let [street, city, postal_code] = parts[..] else {
        return Err(format!("address `{raw}` is not `street, city, postal code`"));
    };
    if street.is_empty() || city.is_empty() {
        return Err(format!("address `{raw}` has a blank street or city"));
    }
    if !is_zip_code(postal_code) {
        return Err(format!("address `{raw}`: postal code `{postal_code}` is not a 5-digit ZIP code"));
    }
    Ok(Address { street: street.to_owned(), city: city.to_owned(), postal_code: postal_code.to_owned() })
}

fn is_zip_code(code: &str) -> bool {
    let all_digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    match code.split_once('-') {
        None => all_digits(code, 5),
        Some((zip, plus4)) => all_digits(zip, 5) && all_digits(plus4, 4),
    }
}

/// Checks that a legacy `created` value is a `YYYY-MM-DD` date (month 1–12, day 1–31) and
/// returns it trimmed.
pub fn parse_date(raw: &str) -> Result<String, String> {
    let text = raw.trim();
    let number = |s: &str, len: usize| {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<u32>().ok()).flatten()
    };
    let valid = match text.split('-').collect::<Vec<_>>()[..] {
        [y, m, d] => {
            number(y, 4).is_some()
                && number(m, 2).is_some_and(|m| (1..=12).contains(&m))
                && number(d, 2).is_some_and(|d| (1..=31).contains(&d))
        }
        _ => false,
    };
    if valid { Ok(text.to_owned()) } else { Err(format!("created `{raw}` is not a date (YYYY-MM-DD)")) }
}

/// Checks an email address: exactly one `@`, a non-empty local part, and a domain with a dot
/// that neither starts nor ends it. The message quotes the value.
pub fn check_email(email: &str) -> Result<(), String> {
    let invalid = |why: &str| Err(format!("`{email}` is not an email address: {why}"));
    let Some((local, domain)) = email.split_once('@') else {
        return invalid("it has no @");
    };
    if domain.contains('@') {
        return invalid("it has more than one @");
    }
    if local.is_empty() {
        return invalid("nothing before the @");
    }
    if email.chars().any(char::is_whitespace) {
        return invalid("it contains blanks");
    }
    if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
        return invalid(&format!("domain `{domain}` is not a domain name"));
    }
    Ok(())
}

fn not_blank(value: &str) -> Result<(), String> {
    if value.trim().is_empty() { Err("name is blank".to_owned()) } else { Ok(()) }
}

/// The rules a mapped customer must satisfy to be loaded. Duplicate emails are not checked
/// here: the target's unique constraint refuses them, and the engine rejects exactly those rows.
pub fn customer_rules() -> Rules<ModernCustomer> {
    Rules::new()
        .field("first_name", |c: &ModernCustomer| not_blank(&c.first_name))
        .field("last_name", |c: &ModernCustomer| not_blank(&c.last_name))
        .field("email", |c: &ModernCustomer| check_email(&c.email))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn legacy(id: i64) -> LegacyCustomer {
        LegacyCustomer {
            id,
            full_name: "Anna Smith".into(),
            email: "  Anna.Smith1@Example.COM ".into(),
            phone: "(555) 123-4567".into(),
            level: "GOLD".into(),
            address: "12 Elm Street, Springfield, 12345".into(),
            created: "2019-03-07".into(),
        }
    }

    fn mapped(transformer: &CustomerTransformer, row: &LegacyCustomer) -> ModernCustomer {
        match transformer.transform(row) {
            Transformed::Mapped(customer) => customer,
            other => panic!("expected a mapped customer, got {other:?}"),
        }
    }

    fn rejected(row: &LegacyCustomer) -> String {
        match CustomerTransformer.transform(row) {
            Transformed::Rejected { reason } => reason,
            other => panic!("expected a reject, got {other:?}"),
        }
    }

    #[test]
    fn maps_every_field_of_a_clean_row() {
        let customer = mapped(&CustomerTransformer, &legacy(7));
        assert_eq!(
            customer,
            ModernCustomer {
                id: 7,
                legacy_id: 7,
                first_name: "Anna".into(),
                last_name: "Smith".into(),
                email: "anna.smith1@example.com".into(),
                phone: "+15551234567".into(),
                tier: Tier::Vip,
                street: "12 Elm Street".into(),
                city: "Springfield".into(),
                postal_code: "12345".into(),
                created_on: "2019-03-07".into(),
            }
        );
        assert_eq!(customer.key(), "7");
    }

    #[test]
    fn tiers_ignore_case_and_blanks() {
        for (level, tier) in [
            ("GOLD", Tier::Vip),
            ("gold", Tier::Vip),
            (" Gold ", Tier::Vip),
            ("SILVER", Tier::Premium),
            ("Silver", Tier::Premium),
            ("\tsilver\n", Tier::Premium),
            ("BRONZE", Tier::Regular),
            ("STANDARD", Tier::Regular),
            ("", Tier::Regular),
            ("platinum", Tier::Regular),
        ] {
            assert_eq!(Tier::from_level(level), tier, "level {level:?}");
        }
    }

    #[test]
    fn tiers_serialise_in_snake_case() {
        for (level, name) in [("GOLD", "vip"), ("SILVER", "premium"), ("", "regular")] {
            let customer = mapped(&CustomerTransformer, &LegacyCustomer { level: level.into(), ..legacy(1) });
            let payload = dmf_core::Reject::of(dmf_core::Stage::Load, &customer, "for its payload").payload;
            assert_eq!(payload["tier"], name);
            assert_eq!(customer.tier.to_string(), name);
        }
    }

    #[test]
    fn every_north_american_phone_format_becomes_e164() {
        for raw in ["(555) 123-4567", "555.123.4567", "+1 555 123 4567", "5551234567", "555-123-4567", "1 555 123 4567"]
        {
            assert_eq!(normalize_phone(raw).as_deref(), Ok("+15551234567"), "phone {raw:?}");
        }
        assert_eq!(normalize_phone("  +15551234567 ").as_deref(), Ok("+15551234567"));
    }

    #[test]
    fn bad_phones_are_rejected_naming_field_and_value() {
        for raw in
            ["ask reception", "12", "n/a", "555-CALL-NOW", "", "555 123 45678", "+44 20 7946 0958", "5+551234567"]
        {
            let reason = match normalize_phone(raw) {
                Err(reason) => reason,
                Ok(phone) => panic!("{raw:?} was accepted as {phone}"),
            };
            assert!(reason.starts_with(&format!("phone `{raw}` is not a phone number")), "{reason}");
        }
        for (raw, why) in [
            ("ask reception", "it contains letters"),
            ("12", "expected 10 digits, found 2"),
            ("2 555 123 4567", "expected 10 digits, found 11"),
            ("+1 555 123 456", "expected 10 digits after +1, found 9"),
            ("+44 20 7946 0958", "only North-American numbers (+1) are supported"),
            ("555/123/4567", "unexpected `/`"),
        ] {
            assert_eq!(normalize_phone(raw), Err(format!("phone `{raw}` is not a phone number ({why})")));
        }
        let row = LegacyCustomer { phone: "ask reception".into(), ..legacy(3) };
        assert!(rejected(&row).starts_with("phone `ask reception` is not a phone number"));
    }

    #[test]
    fn addresses_split_into_street_city_and_postal_code() {
        assert_eq!(
            parse_address(" 12 Elm Street ,Springfield,  12345 "),
            Ok(Address { street: "12 Elm Street".into(), city: "Springfield".into(), postal_code: "12345".into() })
        );
        assert_eq!(parse_address("1 Main Road, Newport, 02840-1234").map(|a| a.postal_code), Ok("02840-1234".into()));
    }

    #[test]
    fn unparseable_addresses_are_rejected_with_the_value() {
        for (raw, expected) in [
            (
                "12 Elm Street Springfield 12345",
                "address `12 Elm Street Springfield 12345` is not `street, city, postal code`",
            ),
            ("12 Elm Street, Springfield", "address `12 Elm Street, Springfield` is not `street, city, postal code`"),
            ("a, b, c, 12345", "address `a, b, c, 12345` is not `street, city, postal code`"),
            (", Springfield, 12345", "address `, Springfield, 12345` has a blank street or city"),
            (
                "12 Elm Street, Springfield, 1234",
                "address `12 Elm Street, Springfield, 1234`: postal code `1234` is not a 5-digit ZIP code",
            ),
            (
                "12 Elm Street, Springfield, ABCDE",
                "address `12 Elm Street, Springfield, ABCDE`: postal code `ABCDE` is not a 5-digit ZIP code",
            ),
        ] {
            assert_eq!(parse_address(raw), Err(expected.to_owned()));
        }
        let row = LegacyCustomer { address: "somewhere".into(), ..legacy(4) };
        assert_eq!(rejected(&row), "address `somewhere` is not `street, city, postal code`");
    }

    #[test]
    fn created_must_be_a_date() {
        assert_eq!(parse_date(" 2005-01-31"), Ok("2005-01-31".into()));
        for raw in ["2005-13-01", "2005-1-01", "05-01-01", "yesterday", "2005-01-00"] {
            assert_eq!(parse_date(raw), Err(format!("created `{raw}` is not a date (YYYY-MM-DD)")));
        }
    }

    #[test]
    fn names_split_on_the_last_word_and_keep_middle_names() {
        assert_eq!(split_name("Anna Smith"), ("Anna".into(), "Smith".into()));
        assert_eq!(split_name("  Anna   Maya  Smith "), ("Anna Maya".into(), "Smith".into()));
        assert_eq!(split_name("Zoë O'Brien"), ("Zoë".into(), "O'Brien".into()));
        assert_eq!(split_name("Cher"), ("Cher".into(), String::new()));
        assert_eq!(split_name("   "), (String::new(), String::new()));
    }

    #[test]
    fn blank_names_break_the_rules() {
        let rules = customer_rules();
        let customer = mapped(&CustomerTransformer, &legacy(1));
        assert!(rules.check(&customer).is_valid());
        let blank = ModernCustomer { first_name: " ".into(), last_name: String::new(), ..customer.clone() };
        assert_eq!(rules.check(&blank).to_string(), "first_name: name is blank; last_name: name is blank");
        let single = mapped(&CustomerTransformer, &LegacyCustomer { full_name: "Cher".into(), ..legacy(1) });
        assert_eq!(rules.check(&single).to_string(), "last_name: name is blank");
    }

    #[test]
    fn emails_are_trimmed_lowercased_and_checked() {
        assert_eq!(normalize_email("  Anna.Smith@Example.COM\t"), "anna.smith@example.com");
        assert_eq!(check_email("anna.smith@example.com"), Ok(()));
        for (email, why) in [
            ("anna.smith", "it has no @"),
            ("n/a", "it has no @"),
            ("anna@", "domain `` is not a domain name"),
            ("@example.com", "nothing before the @"),
            ("anna@example", "domain `example` is not a domain name"),
            ("anna@.com", "domain `.com` is not a domain name"),
            ("anna@@example.com", "it has more than one @"),
            ("a@b@example.com", "it has more than one @"),
            ("anna smith@example.com", "it contains blanks"),
        ] {
            assert_eq!(check_email(email), Err(format!("`{email}` is not an email address: {why}")));
        }
        let customer = mapped(&CustomerTransformer, &LegacyCustomer { email: "n/a".into(), ..legacy(1) });
        assert_eq!(customer_rules().check(&customer).to_string(), "email: `n/a` is not an email address: it has no @");
    }

    #[test]
    fn generated_legacy_rows_are_mapped_or_refused_with_a_reason() {
        let generator = dmf_testkit::LegacyGenerator::new(42);
        let (transformer, rules) = (CustomerTransformer, customer_rules());
        for row in generator.rows(1..=2_000) {
            let clean = generator.dirt(row.id).is_none();
            match transformer.transform(&row) {
                Transformed::Mapped(customer) => {
                    let report = rules.check(&customer);
                    assert_eq!(
                        report.is_valid(),
                        clean || generator.dirt(row.id) == Some(dmf_testkit::Dirt::DuplicateEmail),
                        "{row:?}: {report}"
                    );
                }
                Transformed::Rejected { reason } => {
                    assert_eq!(generator.dirt(row.id), Some(dmf_testkit::Dirt::BadPhone), "{row:?}: {reason}");
                }
                Transformed::Skipped { reason } => panic!("nothing is migrated yet, but {row:?} was skipped: {reason}"),
            }
        }
    }
}
