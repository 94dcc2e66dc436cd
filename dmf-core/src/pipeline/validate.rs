//! Validation rules applied to mapped records before they are loaded.

use std::fmt;

/// One broken rule: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Violation {
    /// The field (or `*` for a rule about the whole record).
    pub field: String,
    /// What is wrong, ideally with the offending value.
    pub message: String,
}

/// Every violation found in one record.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ValidationReport {
    violations: Vec<Violation>,
}

impl ValidationReport {
    /// Adds a violation.
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.violations.push(Violation { field: field.into(), message: message.into() });
    }

    /// True when no rule was broken.
    pub fn is_valid(&self) -> bool {
        self.violations.is_empty()
    }

    /// The violations, in rule order.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }
}

impl fmt::Display for ValidationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.violations.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", v.field, v.message)?;
        }
        Ok(())
    }
}

/// A rule, or a set of rules, over records of type `T`.
pub trait Validator<T>: Send + Sync + 'static {
    /// Adds any violation of this rule to `report`.
    fn validate(&self, record: &T, report: &mut ValidationReport);
}

/// Rules composed in order; every rule runs, so a report lists all that is wrong at once.
///
/// ```
/// use dmf_core::{Rules, ValidationReport};
/// struct Customer { name: String, email: String }
///
/// let rules = Rules::new()
///     .field("name", |c: &Customer| (!c.name.trim().is_empty()).then_some(()).ok_or("is empty".to_string()))
///     .field("email", |c: &Customer| {
///         if c.email.contains('@') { Ok(()) } else { Err(format!("`{}` has no @", c.email)) }
///     });
/// let report = rules.check(&Customer { name: "".into(), email: "nobody".into() });
/// assert_eq!(report.to_string(), "name: is empty; email: `nobody` has no @");
/// ```
pub struct Rules<T> {
    rules: Vec<Box<dyn Validator<T>>>,
}

impl<T> Default for Rules<T> {
    fn default() -> Self {
        Self { rules: Vec::new() }
    }
}

impl<T: 'static> Rules<T> {
    /// No rules: every record is valid.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule on one field: `check` returns `Err(message)` when the field is invalid.
    pub fn field<F>(self, field: &str, check: F) -> Self
    where
        F: Fn(&T) -> Result<(), String> + Send + Sync + 'static,
    {
        self.rule(FieldRule { field: field.to_owned(), check })
    }

    /// Adds any validator (a rule or another set of rules).
    pub fn rule(mut self, validator: impl Validator<T>) -> Self {
        self.rules.push(Box::new(validator));
        self
    }

    /// Runs every rule on `record`.
    pub fn check(&self, record: &T) -> ValidationReport {
        let mut report = ValidationReport::default();
        self.validate(record, &mut report);
        report
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

impl<T: 'static> Validator<T> for Rules<T> {
    fn validate(&self, record: &T, report: &mut ValidationReport) {
        for rule in &self.rules {
            rule.validate(record, report);
        }
    }
}

struct FieldRule<F> {
    field: String,
    check: F,
}

impl<T, F> Validator<T> for FieldRule<F>
where
    F: Fn(&T) -> Result<(), String> + Send + Sync + 'static,
{
    fn validate(&self, record: &T, report: &mut ValidationReport) {
        if let Err(message) = (self.check)(record) {
            report.push(self.field.clone(), message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_rules_report_every_violation_in_order() {
        let inner =
            Rules::new().field("b", |v: &i32| if *v > 0 { Ok(()) } else { Err(format!("{v} is not positive")) });
        let rules = Rules::new()
            .field("a", |v: &i32| if *v % 2 == 0 { Ok(()) } else { Err(format!("{v} is odd")) })
            .rule(inner);
        assert!(rules.check(&2).is_valid());
        let report = rules.check(&-3);
        assert_eq!(report.violations().len(), 2);
        assert_eq!(report.to_string(), "a: -3 is odd; b: -3 is not positive");
    }
}
