//! Rule checks on the target's content: foreign-key orphans, NOT NULL and unique keys the
//! source declares but the target does not enforce, and rules of the user's own (an SQL
//! predicate per table).
//!
//! [`rule_checks`] derives the checks from a [`SyncPlan`] and the user's [`Rule`]s;
//! [`check_rules`] asks the target ([`Database::find_violations`]) for each one's violating
//! rows, with one set-based query per check: the count of violating rows and a sample of
//! their keys, in key order, in a read-only transaction (see
//! [`find_violations`](super::find_violations)).
//!
//! ```
//! use dmf_core::quality::Rule;
//!
//! let rule: Rule = "public.orders: check(amount >= 0)".parse()?;
//! assert_eq!(rule.to_string(), "public.orders: check(amount >= 0)");
//! assert!("orders: positive(amount)".parse::<Rule>().is_err());
//! # Ok::<(), dmf_core::Error>(())
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::catalog::{ForeignKey, Table, TableName};
use crate::error::{Error, Result};
use crate::sync::{Database, SyncPlan, TablePlan};
use crate::value::RowShape;

/// One check of the target's content, run as one set-based query by the target's adapter
/// ([`Database::find_violations`]).
///
/// `table` is the target table, `key` the columns that identify its rows (the plan's row key),
/// in which the sample of violating rows is given and ordered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleCheck {
    /// Rows whose foreign-key columns are all non-NULL and match no row of the referenced
    /// table (MATCH SIMPLE: a row with any NULL in the foreign key is no orphan). Composite and
    /// self-referencing foreign keys included.
    ForeignKey {
        /// The referencing table.
        table: TableName,
        /// Its row key.
        key: Vec<String>,
        /// The foreign key, as the target declares it (enforced or not).
        foreign_key: ForeignKey,
    },
    /// Rows where `column` is NULL.
    NotNull {
        /// The table.
        table: TableName,
        /// Its row key.
        key: Vec<String>,
        /// The column that must hold a value.
        column: String,
    },
    /// Rows whose `columns` are all non-NULL and equal to another row's: every row of each
    /// duplicate group counts.
    Unique {
        /// The table.
        table: TableName,
        /// Its row key.
        key: Vec<String>,
        /// The columns that must be unique together.
        columns: Vec<String>,
    },
    /// Rows for which the user's predicate is not TRUE (FALSE or NULL).
    ///
    /// `sql` is the user's own SQL, run as given against the target in a `WHERE` clause over
    /// the table (unaliased, so columns may be named bare or qualified by the table's name): it
    /// is the one piece of text DMF splices into a statement instead of binding it, and it must
    /// be written in the target's dialect.
    Predicate {
        /// The table.
        table: TableName,
        /// Its row key.
        key: Vec<String>,
        /// A boolean SQL expression over the table's columns (`amount >= 0`).
        sql: String,
    },
}

/// What kind of rule a [`RuleCheck`] or [`RuleReport`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// A foreign key (orphans).
    ForeignKey,
    /// A column that must not be NULL.
    NotNull,
    /// Columns that must be unique together.
    Unique,
    /// A predicate of the user's.
    Predicate,
}

impl fmt::Display for RuleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuleKind::ForeignKey => "foreign_key",
            RuleKind::NotNull => "not_null",
            RuleKind::Unique => "unique",
            RuleKind::Predicate => "predicate",
        })
    }
}

impl RuleCheck {
    /// The table checked.
    pub fn table(&self) -> &TableName {
        match self {
            RuleCheck::ForeignKey { table, .. }
            | RuleCheck::NotNull { table, .. }
            | RuleCheck::Unique { table, .. }
            | RuleCheck::Predicate { table, .. } => table,
        }
    }

    /// The columns that identify the table's rows, in the order samples are sorted and shown.
    pub fn key(&self) -> &[String] {
        match self {
            RuleCheck::ForeignKey { key, .. }
            | RuleCheck::NotNull { key, .. }
            | RuleCheck::Unique { key, .. }
            | RuleCheck::Predicate { key, .. } => key,
        }
    }

    /// What kind of rule this is.
    pub fn kind(&self) -> RuleKind {
        match self {
            RuleCheck::ForeignKey { .. } => RuleKind::ForeignKey,
            RuleCheck::NotNull { .. } => RuleKind::NotNull,
            RuleCheck::Unique { .. } => RuleKind::Unique,
            RuleCheck::Predicate { .. } => RuleKind::Predicate,
        }
    }

    /// The shape of a row holding only the key columns: adapters decode a violating row's key
    /// into a [`Row`](crate::Row) of this shape, whose [`key`](crate::Record::key) is the
    /// sample text (`id=42`, `(order_id=7, line=2)`), formatted as [`compare`](super::compare)
    /// formats keys.
    pub fn key_shape(&self) -> Arc<RowShape> {
        let key = self.key().to_vec();
        Arc::new(RowShape { table: self.table().clone(), key: (0..key.len()).collect(), columns: key })
    }
}

impl fmt::Display for RuleCheck {
    /// `public.orders: FK orders_customer_fk (customer_id) → public.customers (id)`,
    /// `public.orders: not null(customer_id)`, `public.orders: unique(a, b)`,
    /// `public.orders: check(amount >= 0)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleCheck::ForeignKey { table, foreign_key: fk, .. } => write!(
                f,
                "{table}: FK {} ({}) → {} ({})",
                fk.name,
                fk.columns.join(", "),
                fk.referenced_table,
                fk.referenced_columns.join(", ")
            ),
            RuleCheck::NotNull { table, column, .. } => write!(f, "{table}: not null({column})"),
            RuleCheck::Unique { table, columns, .. } => write!(f, "{table}: unique({})", columns.join(", ")),
            RuleCheck::Predicate { table, sql, .. } => write!(f, "{table}: check({sql})"),
        }
    }
}

/// What an adapter found for one [`RuleCheck`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Violations {
    /// How many rows break the rule.
    pub count: u64,
    /// Up to the sample size of their keys, in key order, formatted as
    /// [`compare`](super::compare) formats keys (`id=42`, `(order_id=7, line=2)`; see
    /// [`RuleCheck::key_shape`]).
    pub sample: Vec<String>,
}

/// The verdict on one rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuleReport {
    /// The target table.
    pub table: String,
    /// The rule, as [`RuleCheck`] displays it.
    pub rule: String,
    /// What kind of rule.
    pub kind: RuleKind,
    /// Rows breaking it.
    pub violations: u64,
    /// Up to the sample size of their keys, in key order.
    pub sample: Vec<String>,
}

impl RuleReport {
    /// True when no row breaks the rule.
    pub fn passed(&self) -> bool {
        self.violations == 0
    }
}

/// A rule of the user's, parsed from text ([`FromStr`]):
///
/// | text | rule |
/// |---|---|
/// | `TABLE: not null(COLUMN)` | the column holds no NULL |
/// | `TABLE: unique(COLUMN[, COLUMN…])` | no two rows have the same non-NULL values in these columns |
/// | `TABLE: check(SQL predicate)` | the predicate is TRUE for every row (FALSE and NULL break it) |
///
/// `TABLE` is `schema.table` or `table` (see [`TableName::parse`]; no quoting); column names
/// are written exactly as stored. The predicate is SQL in the target's dialect, run as given
/// (see [`RuleCheck::Predicate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// `TABLE: not null(COLUMN)`.
    NotNull {
        /// The table.
        table: TableName,
        /// The column.
        column: String,
    },
    /// `TABLE: unique(COLUMN, …)`.
    Unique {
        /// The table.
        table: TableName,
        /// The columns.
        columns: Vec<String>,
    },
    /// `TABLE: check(SQL predicate)`.
    Check {
        /// The table.
        table: TableName,
        /// The predicate.
        sql: String,
    },
}

impl Rule {
    /// The table the rule is about, as written.
    pub fn table(&self) -> &TableName {
        match self {
            Rule::NotNull { table, .. } | Rule::Unique { table, .. } | Rule::Check { table, .. } => table,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::NotNull { table, column } => write!(f, "{table}: not null({column})"),
            Rule::Unique { table, columns } => write!(f, "{table}: unique({})", columns.join(", ")),
            Rule::Check { table, sql } => write!(f, "{table}: check({sql})"),
        }
    }
}

const RULE_SYNTAX: &str = "TABLE: not null(COLUMN), TABLE: unique(COLUMN[, COLUMN…]) or TABLE: check(SQL predicate)";

impl FromStr for Rule {
    type Err = Error;

    /// `TABLE: not null(COLUMN)`, `TABLE: unique(COLUMN[, COLUMN…])` or
    /// `TABLE: check(SQL predicate)`.
    fn from_str(text: &str) -> Result<Self> {
        let bad = |why: String| Err(Error::Config(format!("rule `{text}`: {why}")));
        let Some((table, body)) = text.split_once(':') else {
            return bad(format!("no `TABLE:` before the rule; write {RULE_SYNTAX}"));
        };
        let table = table.trim();
        if table.is_empty() || table.starts_with('.') || table.ends_with('.') {
            return bad(format!("`{table}` is not a table name; write {RULE_SYNTAX}"));
        }
        let table = TableName::parse(table);
        let body = body.trim();
        let Some(open) = body.find('(') else {
            return bad(format!("`{body}` has no parentheses; write {RULE_SYNTAX}"));
        };
        let keyword = body[..open].split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_lowercase();
        let Some(inner) = body[open + 1..].strip_suffix(')') else {
            return bad(format!("`{body}` does not end with `)`"));
        };
        let inner = inner.trim();
        let columns = || -> std::result::Result<Vec<String>, String> {
            let columns: Vec<String> = inner.split(',').map(|c| c.trim().to_owned()).collect();
            if columns.iter().any(String::is_empty) {
                return Err(format!("`{keyword}` needs column names between its parentheses, separated by commas"));
            }
            Ok(columns)
        };
        match keyword.as_str() {
            "not null" => match columns() {
                Ok(mut columns) if columns.len() == 1 => Ok(Rule::NotNull { table, column: columns.remove(0) }),
                Ok(_) => bad("`not null` takes one column: write one rule per column".into()),
                Err(why) => bad(why),
            },
            "unique" => match columns() {
                Ok(columns) => Ok(Rule::Unique { table, columns }),
                Err(why) => bad(why),
            },
            "check" if inner.is_empty() => bad("`check` needs an SQL predicate between its parentheses".into()),
            "check" => match check_predicate(inner) {
                Ok(()) => Ok(Rule::Check { table, sql: inner.to_owned() }),
                Err(why) => bad(why),
            },
            other => bad(format!("unknown rule `{other}`; write {RULE_SYNTAX}")),
        }
    }
}

/// Checks that a predicate is one SQL expression: no `;`, no comment, parentheses balanced
/// (never closing one it did not open) and every quoted string or name closed. Spliced into
/// `CASE WHEN (…) THEN 1 ELSE 0 END`, such a text cannot end the statement or start another
/// one, in any dialect (T-SQL needs no `;` between statements: closing the parenthesis would
/// be enough). Quoted text (`'…'`, `"…"`, `[…]`, `` `…` ``) is skipped, so `note <> 'a;b'` is
/// fine. `NEXT VALUE FOR` (a sequence's next value: a write, which SQL Server refuses in a
/// `WHERE` clause but Babelfish runs) is refused too. Run in a read-only transaction besides
/// (see [`find_violations`](super::find_violations)), the predicate can then only read.
pub(crate) fn check_predicate(sql: &str) -> std::result::Result<(), String> {
    let refuse = |why: &str| Err(format!("the predicate must be one SQL expression: {why}"));
    let mut depth = 0usize;
    // The text outside quotes, for the words that write.
    let mut bare = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        bare.push(if matches!(c, '\'' | '"' | '`' | '[') { ' ' } else { c });
        match c {
            '\'' | '"' | '`' | '[' => {
                let close = if c == '[' { ']' } else { c };
                loop {
                    match chars.next() {
                        // A doubled closing quote is one quote character inside.
                        Some(q) if q == close && chars.peek() == Some(&close) => {
                            chars.next();
                        }
                        Some(q) if q == close => break,
                        Some(_) => {}
                        None => return refuse(&format!("`{c}` is never closed")),
                    }
                }
            }
            '(' => depth += 1,
            ')' if depth == 0 => return refuse("`)` closes a parenthesis it did not open"),
            ')' => depth -= 1,
            ';' => return refuse("`;` ends a statement"),
            '-' if chars.peek() == Some(&'-') => return refuse("no comments (`--`)"),
            '/' if chars.peek() == Some(&'*') => return refuse("no comments (`/*`)"),
            _ => {}
        }
    }
    if depth > 0 {
        return refuse("a parenthesis is never closed");
    }
    let words = bare.split(|c: char| !c.is_alphanumeric() && c != '_').filter(|w| !w.is_empty());
    let words: Vec<String> = words.map(str::to_ascii_lowercase).collect();
    if words.windows(3).any(|w| w == ["next", "value", "for"]) {
        return Err("a rule may not write: `NEXT VALUE FOR` takes a sequence's next value".into());
    }
    Ok(())
}

/// The checks to run on the target after a sync of `plan`, table by table in load order:
///
/// 1. every foreign key the **target** table declares, enforced or not (disabled, `NOT VALID`
///    or `NOCHECK` keys are exactly where orphans hide), with MATCH SIMPLE semantics;
/// 2. NOT NULL for each column the source declares NOT NULL and the target leaves nullable;
/// 3. unique for the source's primary key and unique keys the target declares no key for
///    (a target key on the same columns, or on some of them, already guarantees it);
/// 4. the user's `rules` for that table (a check equal to a derived one is not repeated).
///
/// Errors name the rule whose table is not in the plan (or matches several of its tables), or
/// whose column the target table does not have.
pub fn rule_checks(plan: &SyncPlan, rules: &[Rule]) -> Result<Vec<RuleCheck>> {
    let mut user: Vec<(usize, RuleCheck)> = Vec::with_capacity(rules.len());
    for rule in rules {
        let index = resolve(plan, rule)?;
        let table = &plan.tables[index];
        let (name, key) = (table.target.name.clone(), table.key.clone());
        let has = |column: &str| {
            if table.target.column(column).is_some() {
                Ok(())
            } else {
                Err(Error::Config(format!("rule `{rule}`: table `{name}` has no column `{column}`")))
            }
        };
        let check = match rule {
            Rule::NotNull { column, .. } => {
                has(column)?;
                RuleCheck::NotNull { table: name.clone(), key, column: column.clone() }
            }
            Rule::Unique { columns, .. } => {
                for column in columns {
                    has(column)?;
                }
                RuleCheck::Unique { table: name.clone(), key, columns: columns.clone() }
            }
            Rule::Check { sql, .. } => {
                check_predicate(sql).map_err(|why| Error::Config(format!("rule `{rule}`: {why}")))?;
                RuleCheck::Predicate { table: name.clone(), key, sql: sql.clone() }
            }
        };
        user.push((index, check));
    }
    let mut checks = Vec::new();
    for (index, table) in plan.tables.iter().enumerate() {
        let derived = derived_checks(table);
        let own = user.iter().filter(|(i, _)| *i == index).map(|(_, check)| check.clone());
        for check in derived.into_iter().chain(own) {
            if !checks.contains(&check) {
                checks.push(check);
            }
        }
    }
    Ok(checks)
}

/// The plan's table a rule names: an exact name first, else the one table it
/// [matches](TableName::matches).
fn resolve(plan: &SyncPlan, rule: &Rule) -> Result<usize> {
    let wanted = rule.table();
    if let Some(index) = plan.tables.iter().position(|t| t.target.name == *wanted) {
        return Ok(index);
    }
    let matching: Vec<usize> =
        plan.tables.iter().enumerate().filter(|(_, t)| wanted.matches(&t.target.name)).map(|(i, _)| i).collect();
    match matching.as_slice() {
        [index] => Ok(*index),
        [] => Err(Error::Config(format!("rule `{rule}`: table `{wanted}` is not among the tables of the sync"))),
        several => {
            let names: Vec<String> = several.iter().map(|&i| plan.tables[i].target.name.to_string()).collect();
            Err(Error::Config(format!(
                "rule `{rule}`: `{wanted}` could be any of {}; name the schema",
                names.join(", ")
            )))
        }
    }
}

/// The foreign-key, NOT NULL and unique checks a table's plan implies.
fn derived_checks(plan: &TablePlan) -> Vec<RuleCheck> {
    let (source, target) = (&plan.source, &plan.target);
    let (table, key) = (&target.name, &plan.key);
    let mut checks: Vec<RuleCheck> = target
        .foreign_keys
        .iter()
        .map(|fk| RuleCheck::ForeignKey { table: table.clone(), key: key.clone(), foreign_key: fk.clone() })
        .collect();
    for column in source.columns.iter().filter(|c| !c.nullable) {
        if target.column(&column.name).is_some_and(|theirs| theirs.nullable) {
            checks.push(RuleCheck::NotNull { table: table.clone(), key: key.clone(), column: column.name.clone() });
        }
    }
    let source_keys = std::iter::once(&source.primary_key).filter(|k| !k.is_empty()).chain(&source.unique_keys);
    for columns in source_keys {
        let present = columns.iter().all(|c| target.column(c).is_some());
        if present && !guarantees_unique(target, columns) {
            checks.push(RuleCheck::Unique { table: table.clone(), key: key.clone(), columns: columns.clone() });
        }
    }
    checks
}

/// True when a key the target declares makes `columns` unique: its columns are all among them.
fn guarantees_unique(target: &Table, columns: &[String]) -> bool {
    std::iter::once(&target.primary_key)
        .filter(|k| !k.is_empty())
        .chain(&target.unique_keys)
        .any(|key| key.iter().all(|c| columns.contains(c)))
}

/// Runs every check on `target`: the count of violating rows and up to `sample` of their keys
/// each, in the order of `checks`. An error names the check whose query failed.
pub async fn check_rules<D: Database>(target: &D, checks: &[RuleCheck], sample: usize) -> Result<Vec<RuleReport>> {
    let mut reports = Vec::with_capacity(checks.len());
    for check in checks {
        let mut found = target.find_violations(check, sample).await?;
        found.sample.truncate(sample);
        tracing::info!(rule = %check, violations = found.count, "rule checked");
        reports.push(RuleReport {
            table: check.table().to_string(),
            rule: check.to_string(),
            kind: check.kind(),
            violations: found.count,
            sample: found.sample,
        });
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, Column, DataType};
    use crate::sync::SyncMode;

    fn parse(text: &str) -> Rule {
        text.parse().unwrap()
    }

    fn error(text: &str) -> String {
        text.parse::<Rule>().unwrap_err().to_string()
    }

    #[test]
    fn rules_parse() {
        assert_eq!(
            parse("public.orders: check(amount >= 0)"),
            Rule::Check { table: TableName::new(Some("public"), "orders"), sql: "amount >= 0".into() }
        );
        assert_eq!(
            parse("orders:NOT  Null ( customer_id )"),
            Rule::NotNull { table: TableName::new(None, "orders"), column: "customer_id".into() }
        );
        assert_eq!(
            parse(" shop.lines : unique(order_id, line) "),
            Rule::Unique {
                table: TableName::new(Some("shop"), "lines"),
                columns: vec!["order_id".into(), "line".into()]
            }
        );
        // The predicate keeps its own parentheses and colons (PostgreSQL casts).
        let nested = parse("orders: check((amount::numeric > 0) OR (note = 'a:b'))");
        assert_eq!(nested.to_string(), "orders: check((amount::numeric > 0) OR (note = 'a:b'))");
        for text in ["a.t: not null(c)", "t: unique(a, b)", "t: check(x IS NOT NULL)"] {
            assert_eq!(parse(text).to_string(), text, "round trip");
        }
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        assert_eq!(
            error("orders not null(id)"),
            "invalid configuration: rule `orders not null(id)`: no `TABLE:` before the rule; write TABLE: not \
             null(COLUMN), TABLE: unique(COLUMN[, COLUMN…]) or TABLE: check(SQL predicate)"
        );
        assert!(error(": check(x)").contains("rule `: check(x)`: `` is not a table name"));
        assert!(error("orders: positive(amount)").contains("rule `orders: positive(amount)`: unknown rule `positive`"));
        assert!(error("orders: not null").contains("`not null` has no parentheses"));
        assert!(error("orders: check(amount > 0").contains("`check(amount > 0` does not end with `)`"));
        assert!(error("orders: check( )").contains("`check` needs an SQL predicate"));
        assert!(error("orders: unique(a, )").contains("`unique` needs column names between its parentheses"));
        assert!(error("orders: not null()").contains("`not null` needs column names"));
        assert!(error("orders: not null(a, b)").contains("`not null` takes one column"));
    }

    #[test]
    fn a_predicate_is_one_expression_that_cannot_end_its_statement() {
        for fine in ["amount >= 0", "note <> 'a;b) --'", "[odd;name] > 0", "(a > 0) AND (\"b)\" < 1)", "x = 'it''s'"] {
            assert_eq!(check_predicate(fine), Ok(()), "{fine}");
        }
        let why = |sql: &str| check_predicate(sql).unwrap_err();
        assert!(why("1 = 1; DELETE FROM orders").contains("`;` ends a statement"));
        assert!(why("1 = 1) THEN 1 ELSE 0 END = 0 DELETE FROM orders SELECT (1").contains("`)` closes a parenthesis"));
        assert!(why("amount > 0 -- why").contains("no comments"));
        assert!(why("amount > 0 /* why */").contains("no comments"));
        assert!(why("(amount > 0").contains("never closed"));
        assert!(why("note = 'open").contains("`'` is never closed"));
        assert!(why("(NEXT  VALUE\nFOR dbo.s) > 0").contains("a rule may not write: `NEXT VALUE FOR`"));
        assert_eq!(check_predicate("note <> 'next value for'"), Ok(()), "quoted text is not SQL");
        assert!(error("orders: check(1=1); DELETE FROM orders; SELECT (1)").contains(
            "rule `orders: check(1=1); DELETE FROM orders; SELECT (1)`: the predicate must be one SQL expression"
        ));
    }

    fn table(name: &str, columns: Vec<Column>, primary_key: &[&str]) -> Table {
        Table {
            name: TableName::new(Some("public"), name),
            columns,
            primary_key: primary_key.iter().map(|c| c.to_string()).collect(),
            unique_keys: vec![],
            foreign_keys: vec![],
        }
    }

    fn int(name: &str) -> Column {
        Column::new(name, DataType::Int64, "bigint")
    }

    fn fk(name: &str, columns: &[&str], to: &str, referenced: &[&str], enforced: bool) -> ForeignKey {
        ForeignKey {
            name: name.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            referenced_table: TableName::new(Some("public"), to),
            referenced_columns: referenced.iter().map(|c| c.to_string()).collect(),
            enforced,
        }
    }

    /// The source: customers (email NOT NULL UNIQUE), orders (customer_id NOT NULL, FK).
    /// The target: the same, but email nullable and not unique, and the FK disabled.
    fn plan() -> SyncPlan {
        let mut customers = table(
            "customers",
            vec![int("id").not_null(), Column::new("email", DataType::Text { max_len: None }, "text").not_null()],
            &["id"],
        );
        customers.unique_keys = vec![vec!["email".into()]];
        let mut orders =
            table("orders", vec![int("id").not_null(), int("customer_id").not_null(), int("amount")], &["id"]);
        orders.foreign_keys = vec![fk("orders_customer_fk", &["customer_id"], "customers", &["id"], true)];
        let source = Catalog { tables: vec![customers.clone(), orders.clone()] };

        let mut weak_customers = customers;
        weak_customers.unique_keys.clear();
        weak_customers.columns[1].nullable = true;
        let mut weak_orders = orders;
        weak_orders.foreign_keys[0].enforced = false;
        let target = Catalog { tables: vec![weak_customers, weak_orders] };
        SyncPlan::build(&source, &target, None, SyncMode::Full).unwrap()
    }

    #[test]
    fn checks_cover_target_foreign_keys_and_constraints_the_target_lacks() {
        let rules = [parse("orders: check(amount >= 0)"), parse("public.customers: unique(email)")];
        let checks = rule_checks(&plan(), &rules).unwrap();
        let shown: Vec<String> = checks.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "public.customers: not null(email)",
                "public.customers: unique(email)",
                "public.orders: FK orders_customer_fk (customer_id) → public.customers (id)",
                "public.orders: check(amount >= 0)",
            ],
            "the FK is checked although it is not enforced; the user's unique(email) is the derived one"
        );
        assert_eq!(checks[2].kind(), RuleKind::ForeignKey);
        assert_eq!(checks[2].key(), ["id"]);
        assert_eq!(checks[3].table(), &TableName::new(Some("public"), "orders"));
    }

    #[test]
    fn a_target_key_on_some_of_the_columns_already_makes_them_unique() {
        let mut target = table("t", vec![int("a").not_null(), int("b").not_null()], &["a"]);
        assert!(guarantees_unique(&target, &["a".into(), "b".into()]));
        assert!(!guarantees_unique(&target, &["b".into()]));
        target.primary_key.clear();
        assert!(!guarantees_unique(&target, &["a".into()]));
    }

    #[test]
    fn rules_on_unknown_tables_or_columns_are_refused_by_name() {
        let plan = plan();
        assert_eq!(
            rule_checks(&plan, &[parse("invoices: not null(id)")]).unwrap_err().to_string(),
            "invalid configuration: rule `invoices: not null(id)`: table `invoices` is not among the tables of the sync"
        );
        assert_eq!(
            rule_checks(&plan, &[parse("orders: unique(id, total)")]).unwrap_err().to_string(),
            "invalid configuration: rule `orders: unique(id, total)`: table `public.orders` has no column `total`"
        );
        assert!(rule_checks(&plan, &[parse("sales.orders: check(true)")]).is_err(), "another schema");
    }

    #[test]
    fn key_shapes_format_keys_as_compare_does() {
        use crate::record::Record;
        let check = RuleCheck::NotNull {
            table: TableName::new(None, "lines"),
            key: vec!["order_id".into(), "line".into()],
            column: "sku".into(),
        };
        let row = crate::Row::new(check.key_shape(), vec![crate::Value::Int(7), crate::Value::Int(2)]);
        assert_eq!(row.key(), "(order_id=7, line=2)");
    }
}
