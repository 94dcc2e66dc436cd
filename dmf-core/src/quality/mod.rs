//! Data-quality verification after a sync: is the target's content the source's?
//!
//! [`compare`] reads each table from both databases in key order, at the same time and a page
//! at a time (bounded memory, like [`MergeExtractor`](crate::sync::MergeExtractor)), and
//! compares rows by their [canonical](crate::Value::canonical) values, so the comparison works
//! across dialects. It reports, per table, the row counts and every key that is missing in the
//! target, extra in the target, or whose values differ (with every differing column), and
//! keeps a sample of them. A table of the source (or of the selection) that the target lacks
//! is a difference too, named in the report; a table the plan left out (no key, not selected)
//! is listed as not compared, with the reason.
//!
//! [`rule_checks`] and [`check_rules`] check what a row-by-row comparison cannot see:
//! foreign-key orphans, NULLs and duplicates where the source declares NOT NULL and unique keys
//! the target does not, and predicates of the user's. [`verify`] runs both and gives one
//! [`QualityReport`].

mod rules;
mod violations;

use std::cmp::Ordering;
use std::fmt;
use std::num::NonZeroUsize;

use futures::StreamExt;

use crate::error::Result;
use crate::pipeline::Extractor;
use crate::record::Record;
use crate::sync::{Database, ReadOrder, SkipReason, SyncPlan};
use crate::value::Row;

pub use rules::{Rule, RuleCheck, RuleKind, RuleReport, Violations, check_rules, rule_checks};
pub use violations::{count_statement, find_violations, sample_statement};

/// What differs about one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DifferenceKind {
    /// In the source, not in the target.
    MissingInTarget,
    /// In the target, not in the source.
    ExtraInTarget,
    /// In both, with different values.
    Changed,
}

/// One differing key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Difference {
    /// The row's key (`id=42`).
    pub key: String,
    /// How it differs.
    pub kind: DifferenceKind,
    /// For a changed row, every column that differs, each as `name: source -> target`, in
    /// column order; empty for a missing or extra row.
    pub columns: Vec<String>,
}

/// The verdict on one table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableReport {
    /// The target table.
    pub table: String,
    /// Rows in the source.
    pub source_rows: u64,
    /// Rows in the target.
    pub target_rows: u64,
    /// Keys only in the source.
    pub missing_in_target: u64,
    /// Keys only in the target.
    pub extra_in_target: u64,
    /// Keys in both whose values differ.
    pub changed: u64,
    /// Up to the sample size of differing keys, in key order.
    pub sample: Vec<Difference>,
    /// Rows of this table the sync set aside on purpose (rejected into the quarantine, skipped,
    /// or still deferred), filled by [`QualityReport::explain`]: they account for keys missing
    /// or changed in the target.
    #[serde(default)]
    pub set_aside: u64,
}

impl TableReport {
    /// True when the target's table holds exactly the source's rows.
    pub fn is_equal(&self) -> bool {
        self.missing_in_target == 0 && self.extra_in_target == 0 && self.changed == 0
    }

    /// True when the table is equal, or its only differences are keys missing or changed in
    /// the target that the rows set aside by the sync can account for.
    pub fn is_explained(&self) -> bool {
        self.extra_in_target == 0 && self.missing_in_target + self.changed <= self.set_aside
    }
}

/// The verdict on one sequence the sync sets ([`SyncPlan::sequences`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SequenceReport {
    /// The target sequence, as [`Sequence`](crate::catalog::Sequence) displays it.
    pub sequence: String,
    /// The last value the source's handed out (`None`: none).
    pub source_value: Option<i64>,
    /// The last value the target's handed out (`None`: none).
    pub target_value: Option<i64>,
}

impl SequenceReport {
    /// True when both sides are at the same value.
    pub fn is_equal(&self) -> bool {
        self.source_value == self.target_value
    }
}

/// A table of the source that was not compared row by row, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NotCompared {
    /// The source table.
    pub table: String,
    /// Why: missing in the target (a difference), no key, or not selected.
    pub reason: SkipReason,
}

/// The verdict on every table of a sync.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QualityReport {
    /// Per table, in load order.
    pub tables: Vec<TableReport>,
    /// Per rule checked on the target ([`check_rules`]), in the order they ran.
    #[serde(default)]
    pub rules: Vec<RuleReport>,
    /// The source's tables that were not compared, from the plan's
    /// [`skipped`](SyncPlan::skipped): one the target lacks makes the report unequal.
    #[serde(default)]
    pub not_compared: Vec<NotCompared>,
    /// Per sequence the sync sets ([`SyncPlan::sequences`]): one at another value than the
    /// source's makes the report unequal.
    #[serde(default)]
    pub sequences: Vec<SequenceReport>,
}

impl QualityReport {
    /// True when every table is equal and the target has every table of the source (or of the
    /// selection); about content only: rules are not considered.
    pub fn is_equal(&self) -> bool {
        self.tables.iter().all(TableReport::is_equal)
            && self.missing_tables().next().is_none()
            && self.sequences.iter().all(SequenceReport::is_equal)
    }

    /// The tables of the source (or of the selection) that the target lacks.
    pub fn missing_tables(&self) -> impl Iterator<Item = &str> {
        self.not_compared.iter().filter(|n| n.reason.is_difference()).map(|n| n.table.as_str())
    }

    /// The tables left out for want of a key (no primary key, no NOT NULL unique key): the sync
    /// did not move them and their content was not compared, so an equal report says nothing of
    /// them.
    pub fn unverified_tables(&self) -> impl Iterator<Item = &str> {
        self.not_compared.iter().filter(|n| n.reason == SkipReason::NoKey).map(|n| n.table.as_str())
    }

    /// The verdict in one line: equal or not, rules kept or broken, and the tables whose content
    /// was not compared for want of a key, named, so that "equal" is never said of them.
    pub fn verdict(&self) -> String {
        let missing: Vec<&str> = self.missing_tables().collect();
        let verdict = match (self.is_equal(), self.rules.iter().all(RuleReport::passed), missing.is_empty()) {
            (true, true, _) => "the target equals the source and passes every rule".to_owned(),
            (true, false, _) => "the target equals the source but BREAKS a rule".to_owned(),
            (false, _, false) => format!("the target DIFFERS from the source: it lacks {}", missing.join(", ")),
            (false, _, true) => "the target DIFFERS from the source".to_owned(),
        };
        let unverified: Vec<&str> = self.unverified_tables().collect();
        if unverified.is_empty() {
            return verdict;
        }
        let verdict =
            verdict.replacen("the target equals the source", "the target equals the source in every table compared", 1);
        format!(
            "{verdict}; NOT VERIFIED ({}): {} (exclude them from the selection to leave them out on purpose)",
            SkipReason::NoKey,
            unverified.join(", ")
        )
    }

    /// True when every table is equal, every selected table was compared (none left out for
    /// want of a key) and no row breaks a rule.
    pub fn passed(&self) -> bool {
        self.is_equal() && self.unverified_tables().next().is_none() && self.rules.iter().all(RuleReport::passed)
    }

    /// True when every difference is explained by rows the sync set aside (see
    /// [`explain`](Self::explain)), every selected table was compared and no row breaks a rule.
    pub fn passed_with_set_asides(&self) -> bool {
        self.tables.iter().all(TableReport::is_explained)
            && self.missing_tables().next().is_none()
            && self.unverified_tables().next().is_none()
            && self.sequences.iter().all(SequenceReport::is_equal)
            && self.rules.iter().all(RuleReport::passed)
    }

    /// Notes, per table, the rows `summary`'s run set aside (rejected, skipped, still deferred),
    /// so that differences they cause are told apart from unexplained ones. Counts are matched
    /// to tables by the migrations' names (`TABLE`, `TABLE (…)`, `TABLE [range i/N]`) and the catch-up pass is left
    /// out (its deferrals are repeats of the loads').
    pub fn explain(&mut self, summary: &crate::orchestrator::RunSummary) {
        for table in &mut self.tables {
            let passes = format!("{} (", table.table);
            let ranges = format!("{} [range ", table.table);
            table.set_aside = summary
                .migrations
                .iter()
                .filter(|m| {
                    let name = m.migration.as_str();
                    name == table.table || name.starts_with(&passes) || name.starts_with(&ranges)
                })
                .map(|m| m.counts.rejected + m.counts.skipped + m.counts.deferred)
                .sum();
        }
    }
}

impl fmt::Display for QualityReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<30} {:>10} {:>10} {:>9} {:>9} {:>9}  verdict",
            "table", "source", "target", "missing", "extra", "changed"
        )?;
        for t in &self.tables {
            let verdict = match (t.is_equal(), t.set_aside > 0 && t.is_explained()) {
                (true, _) => "equal".to_owned(),
                (false, true) => format!("explained by {} rows set aside (see the rejects)", t.set_aside),
                (false, false) => "DIFFERENT".to_owned(),
            };
            writeln!(
                f,
                "{:<30} {:>10} {:>10} {:>9} {:>9} {:>9}  {verdict}",
                t.table, t.source_rows, t.target_rows, t.missing_in_target, t.extra_in_target, t.changed
            )?;
            for d in &t.sample {
                let what = match d.kind {
                    DifferenceKind::MissingInTarget => "missing in the target".to_owned(),
                    DifferenceKind::ExtraInTarget => "only in the target".to_owned(),
                    DifferenceKind::Changed => format!("changed: {}", d.columns.join("; ")),
                };
                writeln!(f, "    {}: {what}", d.key)?;
            }
        }
        for table in self.missing_tables() {
            writeln!(
                f,
                "{table:<30} {:>10} {:>10} {:>9} {:>9} {:>9}  DIFFERENT: the table is missing in the target",
                "?", "-", "", "", ""
            )?;
        }
        let value = |v: Option<i64>| v.map_or_else(|| "unused".to_owned(), |v| v.to_string());
        for s in &self.sequences {
            let verdict = if s.is_equal() { "equal" } else { "DIFFERENT" };
            writeln!(
                f,
                "sequence {}: source {}, target {}  {verdict}",
                s.sequence,
                value(s.source_value),
                value(s.target_value)
            )?;
        }
        for reason in [SkipReason::NoKey, SkipReason::NotSelected] {
            let names: Vec<&str> =
                self.not_compared.iter().filter(|n| n.reason == reason).map(|n| n.table.as_str()).collect();
            if !names.is_empty() {
                writeln!(f, "not compared ({reason}): {}", names.join(", "))?;
            }
        }
        if !self.rules.is_empty() {
            writeln!(f)?;
            writeln!(f, "{:<60} {:>10}  verdict", "rule", "violations")?;
            for r in &self.rules {
                let verdict = if r.passed() { "ok" } else { "VIOLATED" };
                writeln!(f, "{:<60} {:>10}  {verdict}", r.rule, r.violations)?;
                for key in &r.sample {
                    writeln!(f, "    {key}")?;
                }
            }
        }
        Ok(())
    }
}

/// Every column whose values differ, each as `name: source -> target`.
fn differences(source: &Row, target: &Row) -> Vec<String> {
    source
        .shape()
        .columns
        .iter()
        .zip(source.values().iter().zip(target.values()))
        .filter(|(_, (a, b))| a != b && a.canonical() != b.canonical())
        .map(|(column, (a, b))| format!("{column}: {a} -> {b}"))
        .collect()
}

/// Compares every table of `plan` between `source` and `target`; keeps up to `sample` differing
/// keys per table.
pub async fn compare<S: Database, T: Database>(
    source: &S,
    target: &T,
    plan: &SyncPlan,
    sample: usize,
) -> Result<QualityReport> {
    let page = NonZeroUsize::new(5000).unwrap_or(NonZeroUsize::MIN);
    let not_compared =
        plan.skipped.iter().map(|s| NotCompared { table: s.table.to_string(), reason: s.reason }).collect();
    let mut report = QualityReport { not_compared, ..QualityReport::default() };
    for table in &plan.tables {
        let mut left = source.extractor(table.extract_spec(&table.columns, ReadOrder::Key, false));
        let mut right = target.extractor(table.extract_spec(&table.columns, ReadOrder::Key, true));
        // Fused: a side that has ended is asked again while the other goes on.
        let mut left_pages = left.extract(None, page).fuse();
        let mut right_pages = right.extract(None, page).fuse();
        let (mut left_rows, mut right_rows) = (Vec::new().into_iter(), Vec::new().into_iter());
        let mut verdict = TableReport {
            table: table.target.name.to_string(),
            source_rows: 0,
            target_rows: 0,
            missing_in_target: 0,
            extra_in_target: 0,
            changed: 0,
            sample: Vec::new(),
            set_aside: 0,
        };
        let note = |verdict: &mut TableReport, key: String, kind, columns| {
            if verdict.sample.len() < sample {
                verdict.sample.push(Difference { key, kind, columns });
            }
        };
        let (mut l, mut r): (Option<Row>, Option<Row>) = (None, None);
        loop {
            if l.is_none() {
                l = next_row(&mut left_rows, &mut left_pages).await?;
            }
            if r.is_none() {
                r = next_row(&mut right_rows, &mut right_pages).await?;
            }
            match (&l, &r) {
                (None, None) => break,
                (Some(_), None) => {
                    if let Some(row) = l.take() {
                        verdict.source_rows += 1;
                        verdict.missing_in_target += 1;
                        note(&mut verdict, row.key(), DifferenceKind::MissingInTarget, Vec::new());
                    }
                }
                (None, Some(_)) => {
                    if let Some(row) = r.take() {
                        verdict.target_rows += 1;
                        verdict.extra_in_target += 1;
                        note(&mut verdict, row.key(), DifferenceKind::ExtraInTarget, Vec::new());
                    }
                }
                (Some(a), Some(b)) => match a.cmp_key(b) {
                    Ordering::Less => {
                        if let Some(row) = l.take() {
                            verdict.source_rows += 1;
                            verdict.missing_in_target += 1;
                            note(&mut verdict, row.key(), DifferenceKind::MissingInTarget, Vec::new());
                        }
                    }
                    Ordering::Greater => {
                        if let Some(row) = r.take() {
                            verdict.target_rows += 1;
                            verdict.extra_in_target += 1;
                            note(&mut verdict, row.key(), DifferenceKind::ExtraInTarget, Vec::new());
                        }
                    }
                    Ordering::Equal => {
                        if let (Some(a), Some(b)) = (l.take(), r.take()) {
                            verdict.source_rows += 1;
                            verdict.target_rows += 1;
                            let columns = differences(&a, &b);
                            if !columns.is_empty() {
                                verdict.changed += 1;
                                note(&mut verdict, a.key(), DifferenceKind::Changed, columns);
                            }
                        }
                    }
                },
            }
        }
        report.tables.push(verdict);
    }
    if !plan.sequences.is_empty() {
        let (ours, theirs) = crate::sync::read_sequences(source, target, &plan.sequences).await?;
        for pair in &plan.sequences {
            let value = |side: &[crate::catalog::Sequence], name: &crate::catalog::TableName| {
                side.iter().find(|s| s.name == *name).and_then(|s| s.last_value)
            };
            let target_value = value(&theirs, &pair.target.name);
            report.sequences.push(SequenceReport {
                sequence: pair.target.label(),
                source_value: value(&ours, &pair.source.name),
                target_value,
            });
        }
    }
    Ok(report)
}

/// [`compare`]s every table of `plan` between `source` and `target`, then checks the target
/// against the rules [`rule_checks`] derives from the plan and `rules` ([`check_rules`]); keeps
/// up to `sample` keys per table and per rule. An invalid rule is refused before anything is
/// read.
///
/// ```no_run
/// # async fn demo<S: dmf_core::sync::Database, T: dmf_core::sync::Database>(
/// #     source: S, target: T, plan: dmf_core::sync::SyncPlan) -> dmf_core::Result<()> {
/// use dmf_core::quality::{Rule, verify};
/// let rules: Vec<Rule> = vec!["public.orders: check(amount >= 0)".parse()?];
/// let report = verify(&source, &target, &plan, &rules, 10).await?;
/// print!("{report}");
/// if !report.passed() {
///     std::process::exit(1);
/// }
/// # Ok(()) }
/// ```
pub async fn verify<S: Database, T: Database>(
    source: &S,
    target: &T,
    plan: &SyncPlan,
    rules: &[Rule],
    sample: usize,
) -> Result<QualityReport> {
    let checks = rule_checks(plan, rules)?;
    let mut report = compare(source, target, plan, sample).await?;
    report.rules = check_rules(target, &checks, sample).await?;
    Ok(report)
}

async fn next_row(
    rows: &mut std::vec::IntoIter<Row>,
    pages: &mut (impl futures::Stream<Item = Result<crate::pipeline::SourceBatch<Row>>> + Unpin),
) -> Result<Option<Row>> {
    loop {
        if let Some(row) = rows.next() {
            return Ok(Some(row));
        }
        match pages.next().await {
            Some(page) => *rows = page?.records.into_iter(),
            None => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_set_aside_by_the_run_explain_missing_keys() {
        use crate::orchestrator::{MigrationRecord, MigrationStatus, RunStatus, RunSummary};
        let table = |missing, extra| TableReport {
            table: "public.orders".into(),
            source_rows: 10,
            target_rows: 10 - missing + extra,
            missing_in_target: missing,
            extra_in_target: extra,
            changed: 0,
            sample: vec![],
            set_aside: 0,
        };
        let mut record = MigrationRecord::new(crate::RunId(1), "public.orders".into(), MigrationStatus::Completed);
        record.counts.rejected = 2;
        let mut deferred =
            MigrationRecord::new(crate::RunId(1), "public.orders (catch-up)".into(), MigrationStatus::Completed);
        deferred.counts.deferred = 1;
        let other = MigrationRecord::new(crate::RunId(1), "public.orders_archive".into(), MigrationStatus::Completed);
        let summary = RunSummary {
            run: crate::RunId(1),
            status: RunStatus::Completed,
            migrations: vec![record, deferred, other],
            preflight: Default::default(),
            backup: None,
            duration: std::time::Duration::ZERO,
            error: None,
        };
        let mut report =
            QualityReport { tables: vec![table(3, 0)], rules: vec![], not_compared: vec![], sequences: vec![] };
        report.explain(&summary);
        assert_eq!(report.tables[0].set_aside, 3);
        assert!(!report.passed() && report.passed_with_set_asides());
        assert!(report.to_string().contains("explained by 3 rows set aside"), "{report}");
        let mut report =
            QualityReport { tables: vec![table(3, 1)], rules: vec![], not_compared: vec![], sequences: vec![] };
        report.explain(&summary);
        assert!(!report.passed_with_set_asides(), "an extra row is never explained by rejects");
    }

    #[test]
    fn a_table_missing_in_the_target_is_a_difference_and_tables_left_out_are_listed() {
        let equal = TableReport {
            table: "public.customers".into(),
            source_rows: 2,
            target_rows: 2,
            missing_in_target: 0,
            extra_in_target: 0,
            changed: 0,
            sample: vec![],
            set_aside: 0,
        };
        let left_out = |table: &str, reason| NotCompared { table: table.into(), reason };
        let mut report = QualityReport {
            tables: vec![equal],
            rules: vec![],
            not_compared: vec![
                left_out("public.log", SkipReason::NoKey),
                left_out("public.archive", SkipReason::NotSelected),
            ],
            sequences: vec![],
        };
        // A keyless table could not be compared: equal content, but no pass until it is
        // excluded on purpose.
        assert!(report.is_equal() && !report.passed() && !report.passed_with_set_asides(), "{}", report.verdict());
        assert!(report.verdict().contains("NOT VERIFIED (no primary key and no NOT NULL unique key): public.log"));
        report.not_compared.remove(0);
        assert!(report.passed() && report.passed_with_set_asides(), "tables left out on purpose are no difference");
        report.not_compared.insert(0, left_out("public.log", SkipReason::NoKey));
        report.not_compared.push(left_out("public.orders", SkipReason::MissingInTarget));
        assert!(!report.is_equal() && !report.passed() && !report.passed_with_set_asides());
        assert_eq!(report.missing_tables().collect::<Vec<_>>(), ["public.orders"]);
        let text = report.to_string();
        let lines: Vec<&str> = text.lines().skip(2).collect();
        assert_eq!(
            lines,
            [
                "public.orders                           ?          -                                DIFFERENT: the table is missing in the target",
                "not compared (no primary key and no NOT NULL unique key): public.log",
                "not compared (not among the selected tables): public.archive",
            ]
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["not_compared"][2]["reason"], "missing_in_target");
        assert_eq!(
            report.verdict(),
            "the target DIFFERS from the source: it lacks public.orders; NOT VERIFIED (no primary key and no NOT NULL \
             unique key): public.log (exclude them from the selection to leave them out on purpose)"
        );
        report.not_compared.pop();
        assert_eq!(
            report.verdict(),
            "the target equals the source in every table compared and passes every rule; NOT VERIFIED (no primary key \
             and no NOT NULL unique key): public.log (exclude them from the selection to leave them out on purpose)",
            "equal is not said of a table left out for want of a key"
        );
        report.not_compared.retain(|n| n.reason != SkipReason::NoKey);
        assert_eq!(report.verdict(), "the target equals the source and passes every rule");
    }

    #[test]
    fn the_report_prints_rules_after_the_tables_and_passes_only_without_violations() {
        let table = TableReport {
            table: "public.orders".into(),
            source_rows: 3,
            target_rows: 3,
            missing_in_target: 0,
            extra_in_target: 0,
            changed: 0,
            sample: vec![],
            set_aside: 0,
        };
        let rule = |violations, sample: &[&str]| RuleReport {
            table: "public.orders".into(),
            rule: "public.orders: FK orders_customer_fk (customer_id) → public.customers (id)".into(),
            kind: RuleKind::ForeignKey,
            violations,
            sample: sample.iter().map(|s| s.to_string()).collect(),
        };
        let mut report =
            QualityReport { tables: vec![table], rules: vec![rule(0, &[])], not_compared: vec![], sequences: vec![] };
        assert!(report.is_equal() && report.passed());
        report.rules.push(rule(2, &["id=7", "id=9"]));
        assert!(report.is_equal(), "content equality ignores rules");
        assert!(!report.passed());
        let text = report.to_string();
        let rules_table = text.split_once("\n\n").unwrap().1;
        assert_eq!(
            rules_table,
            "rule                                                         violations  verdict\n\
             public.orders: FK orders_customer_fk (customer_id) → public.customers (id)          0  ok\n\
             public.orders: FK orders_customer_fk (customer_id) → public.customers (id)          2  VIOLATED\n    \
             id=7\n    id=9\n"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["rules"][1]["kind"], "foreign_key");
        assert_eq!(json["rules"][1]["sample"][1], "id=9");
        // Reports written before rules existed still read.
        let old: QualityReport = serde_json::from_str(r#"{"tables": []}"#).unwrap();
        assert!(old.rules.is_empty());
    }
}
