//! Quality rules on the target: violations named by rule, table and key, counted exactly.

use std::collections::BTreeMap;

use dmf_core::quality::{Rule, RuleKind, check_rules, rule_checks, verify};
use dmf_core::sync::{Database, SyncMode, SyncPlan};

use super::{Child, Parent, Side, SyncFixture};

fn clean() -> (Vec<Parent>, Vec<Child>) {
    let parents = vec![(1, "Ann".to_owned(), Some(10)), (2, "Bob".to_owned(), Some(0)), (3, "Cy".to_owned(), Some(7))];
    let children = vec![(1, 1, Some("ok".to_owned())), (2, 1, None), (3, 3, Some("fine".to_owned()))];
    (parents, children)
}

/// Rows breaking the rules of [`rules`]: a second `Ann`, a NULL and two negative scores, and
/// two `bad` notes. The target's foreign key holds (every child has its parent).
fn planted() -> (Vec<Parent>, Vec<Child>) {
    let parents = vec![(4, "Ann".to_owned(), Some(-1)), (5, "Eve".to_owned(), None), (6, "Fay".to_owned(), Some(-3))];
    let children = vec![(4, 2, Some("bad".to_owned())), (5, 5, Some("bad".to_owned())), (6, 6, None)];
    (parents, children)
}

fn parse(text: &str) -> Rule {
    text.parse().unwrap_or_else(|e| panic!("rule `{text}`: {e}"))
}

/// The user's rules (`--rule`), and the foreign key the target declares, checked on the target:
///
/// - on a target equal to the source that breaks none, [`verify`] passes, with every rule
///   reported and none violated;
/// - on a target with rows breaking them, each rule reports how many rows break it and a
///   sample of their keys in key order (`id=4`), bounded by the sample size while the count
///   is not; a NULL breaks a predicate (it is not TRUE), two NULLs are no duplicates, and the
///   two rows of a duplicate both count;
/// - a predicate the target cannot run fails with an error naming the rule, and a rule on a
///   column the table lacks is refused naming the column.
///
/// The rules: `parents: not null(score)`, `parents: unique(name)`, `parents: check(score >= 0)`
/// and `children: check(note IS NULL OR note <> 'bad')` (a table named without its schema).
/// Rules that write are refused in a dialect's own way (PostgreSQL's `setval`, SQL Server's
/// `NEXT VALUE FOR`): the adapters' own tests show those.
pub async fn rules<F: SyncFixture>(fixture: &F) {
    let (parents, children) = clean();
    let source = Side::new(fixture, "rules_src").await;
    let target = Side::new(fixture, "rules_dst").await;
    source.fill(&parents, &children).await;
    target.fill(&parents, &children).await;
    let (p, c) = (target.parents.to_string(), target.children.to_string());
    let rules = vec![
        parse(&format!("{p}: not null(score)")),
        parse(&format!("{p}: unique(name)")),
        parse(&format!("{p}: check(score >= 0)")),
        parse("children: check(note IS NULL OR note <> 'bad')"),
    ];
    let catalog = |side: &Side<F::Database>| {
        let database = side.database.clone();
        async move { database.read_catalog().await.unwrap_or_else(|e| panic!("reading the catalog: {}", e.chain())) }
    };
    let plan = SyncPlan::build(&catalog(&source).await, &catalog(&target).await, None, SyncMode::Full)
        .unwrap_or_else(|e| panic!("planning: {}", e.chain()));
    let checks = rule_checks(&plan, &rules).unwrap_or_else(|e| panic!("{}", e.chain()));

    let not_null = format!("{p}: not null(score)");
    let unique = format!("{p}: unique(name)");
    let positive = format!("{p}: check(score >= 0)");
    let foreign_key = format!("{c}: FK children_parent_id_fkey (parent_id) → {p} (id)");
    let notes = format!("{c}: check(note IS NULL OR note <> 'bad')");

    // Nothing breaks them.
    let report = verify(&source.database, &target.database, &plan, &rules, 10)
        .await
        .unwrap_or_else(|e| panic!("verifying: {}", e.chain()));
    assert!(report.is_equal(), "{report}");
    let names: Vec<&str> = report.rules.iter().map(|r| r.rule.as_str()).collect();
    assert_eq!(names, [&not_null, &unique, &positive, &foreign_key, &notes], "every rule, in load order\n{report}");
    assert!(report.rules.iter().all(|r| r.violations == 0 && r.sample.is_empty()), "{report}");
    assert!(report.passed(), "{report}");

    // Rows that break them.
    let (bad_parents, bad_children) = planted();
    target.fill(&bad_parents, &bad_children).await;
    let reports = check_rules(&target.database, &checks, 10).await.unwrap_or_else(|e| panic!("{}", e.chain()));
    let found: BTreeMap<&str, (u64, Vec<&str>)> = reports
        .iter()
        .map(|r| (r.rule.as_str(), (r.violations, r.sample.iter().map(String::as_str).collect())))
        .collect();
    let expected: BTreeMap<&str, (u64, Vec<&str>)> = [
        (not_null.as_str(), (1, vec!["id=5"])),
        (unique.as_str(), (2, vec!["id=1", "id=4"])),
        (positive.as_str(), (3, vec!["id=4", "id=5", "id=6"])),
        (foreign_key.as_str(), (0, vec![])),
        (notes.as_str(), (2, vec!["id=4", "id=5"])),
    ]
    .into_iter()
    .collect();
    assert_eq!(found, expected, "each rule's violations and their keys");
    let kinds: Vec<RuleKind> = reports.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [RuleKind::NotNull, RuleKind::Unique, RuleKind::Predicate, RuleKind::ForeignKey, RuleKind::Predicate]
    );
    assert_eq!(reports[3].table, c, "a rule's table is the target table");

    // The sample is bounded and in key order; the count is not.
    let one = check_rules(&target.database, &checks, 1).await.unwrap_or_else(|e| panic!("{}", e.chain()));
    let scores = one.iter().find(|r| r.rule == positive).unwrap_or_else(|| panic!("no {positive} in {one:?}"));
    assert_eq!((scores.violations, scores.sample.clone()), (3, vec!["id=4".to_owned()]));

    let report = verify(&source.database, &target.database, &plan, &rules, 10)
        .await
        .unwrap_or_else(|e| panic!("verifying: {}", e.chain()));
    assert!(!report.is_equal() && !report.passed(), "{report}");
    assert_eq!(report.rules, reports, "verify reports the same violations");
    let text = report.to_string();
    assert!(text.contains(positive.as_str()) && text.contains("VIOLATED\n    id=4\n"), "{text}");

    // Predicates the target cannot run, and a column the table lacks.
    for predicate in ["no_such_column > 0", "score >= >= 0"] {
        let rule = format!("{p}: check({predicate})");
        let checks = rule_checks(&plan, &[parse(&rule)]).unwrap_or_else(|e| panic!("{}", e.chain()));
        let error = check_rules(&target.database, &checks, 10).await.map(|reports| reports.len());
        let error = error.err().unwrap_or_else(|| panic!("`{rule}` must fail")).chain();
        assert!(error.contains(&format!("checking `{rule}`")), "the error names the rule: {error}");
    }
    let rule = format!("{p}: not null(no_such_column)");
    let error = rule_checks(&plan, &[parse(&rule)]).map(|checks| checks.len());
    let error = error.err().unwrap_or_else(|| panic!("`{rule}` must be refused")).chain();
    assert!(error.contains(&format!("rule `{rule}`: table `{p}` has no column `no_such_column`")), "{error}");
}
