//! Rule checks (foreign-key orphans, NULLs, duplicates, predicates) name each user table as its
//! other statements do: `ONLY t` for an ordinary table, so that an inheritance parent's checks
//! see its own rows and not its children's, and `t` for a partitioned one, whose rows are its
//! partitions'.
//!
//! This is what PostgreSQL itself does for a foreign key: the constraint binds the parent's own
//! rows (children do not inherit it) and is satisfied only by the referenced table's own rows
//! (`SELECT 1 FROM ONLY …`). Without `ONLY`, a child's row holding a value the parent's foreign
//! key would refuse counted as an orphan, and a row referencing a value that only a child of
//! the referenced table holds did not.

use std::time::Duration;

use async_trait::async_trait;
use dmf_core::catalog::TableName;
use dmf_core::control::{ControlDialect, SqlConnector, SqlSession};
use dmf_core::quality::RuleCheck;
use dmf_core::{Result, Stage};

use crate::control::PgConnector;
use crate::database::Shared;
use crate::error::to_dmf_error;
use crate::sql::control::PgDialect;
use crate::sql::relation::{PARTITIONED, RelationKind, relation};

/// The tables a check reads: its own and, for a foreign key, the referenced one.
fn tables(check: &RuleCheck) -> Vec<&TableName> {
    let mut tables = vec![check.table()];
    if let RuleCheck::ForeignKey { foreign_key, .. } = check {
        tables.push(&foreign_key.referenced_table);
    }
    tables
}

/// A connector for `check` on `shared`'s server: the control plane's sessions and dialect,
/// except that user tables are named by their [`RelationKind`] (one catalog lookup per table;
/// a table the catalog lacks is named `ONLY`, and the check's own query then says it is
/// missing).
pub(crate) async fn connector(
    shared: &std::sync::Arc<Shared>,
    call_timeout: Duration,
    check: &RuleCheck,
) -> Result<RuleConnector> {
    let client = shared.connector.connect(Stage::Validate).await?;
    let mut partitioned = Vec::new();
    for table in tables(check) {
        let row = client.query_one(PARTITIONED, &[&crate::sql::qualified(table)]).await.map_err(|e| {
            to_dmf_error(e, Stage::Validate, format!("reading how table `{table}` is stored, to check `{check}`"))
        })?;
        if row.get::<_, bool>(0) {
            partitioned.push(table.clone());
        }
    }
    Ok(RuleConnector {
        inner: PgConnector::new(std::sync::Arc::clone(shared), call_timeout),
        dialect: RuleDialect { partitioned },
    })
}

/// The control plane's connector with a [`RuleDialect`].
pub(crate) struct RuleConnector {
    inner: PgConnector,
    dialect: RuleDialect,
}

#[async_trait]
impl SqlConnector for RuleConnector {
    async fn session(&self) -> Result<Box<dyn SqlSession>> {
        self.inner.session().await
    }

    fn dialect(&self) -> &dyn ControlDialect {
        &self.dialect
    }

    fn name(&self) -> String {
        self.inner.name()
    }

    fn call_timeout(&self) -> Duration {
        self.inner.call_timeout()
    }
}

/// [`PgDialect`], with user tables named `ONLY` unless they are among `partitioned`.
#[derive(Debug, Clone, Default)]
pub(crate) struct RuleDialect {
    partitioned: Vec<TableName>,
}

impl ControlDialect for RuleDialect {
    fn table(&self, name: &str) -> String {
        PgDialect.table(name)
    }

    fn column(&self, name: &str) -> String {
        PgDialect.column(name)
    }

    fn param(&self, n: usize) -> String {
        PgDialect.param(n)
    }

    fn max_params(&self) -> usize {
        PgDialect.max_params()
    }

    fn begin(&self) -> &'static str {
        PgDialect.begin()
    }

    fn commit(&self) -> &'static str {
        PgDialect.commit()
    }

    fn rollback(&self) -> &'static str {
        PgDialect.rollback()
    }

    fn user_table(&self, table: &TableName) -> String {
        let kind = if self.partitioned.contains(table) {
            RelationKind::Partitioned
        } else {
            RelationKind::Ordinary { rules: false }
        };
        relation(table, kind)
    }

    fn count_rows(&self) -> &'static str {
        PgDialect.count_rows()
    }

    fn begin_read_only(&self) -> &'static str {
        PgDialect.begin_read_only()
    }

    fn end_read_only(&self) -> &'static str {
        PgDialect.end_read_only()
    }
}

#[cfg(test)]
mod tests {
    use dmf_core::catalog::ForeignKey;
    use dmf_core::quality::count_statement;

    use super::*;

    #[test]
    fn orphans_are_counted_among_own_rows_and_partitioned_tables_through_their_partitions() {
        let name = |table: &str| TableName::new(Some("public"), table);
        let check = RuleCheck::ForeignKey {
            table: name("vehicles"),
            key: vec!["id".into()],
            foreign_key: ForeignKey {
                name: "vehicles_owner_fk".into(),
                columns: vec!["owner_id".into()],
                referenced_table: name("owners"),
                referenced_columns: vec!["id".into()],
                enforced: true,
            },
        };
        assert_eq!(
            count_statement(&RuleDialect::default(), &check),
            r#"SELECT count(*) FROM ONLY "public"."vehicles" AS c WHERE c."owner_id" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ONLY "public"."owners" AS p WHERE p."id" = c."owner_id")"#
        );
        let partitioned = RuleDialect { partitioned: vec![name("owners")] };
        assert!(
            count_statement(&partitioned, &check).contains(r#"NOT EXISTS (SELECT 1 FROM "public"."owners" AS p"#),
            "a partitioned table's rows are its partitions'"
        );
        let predicate =
            RuleCheck::Predicate { table: name("vehicles"), key: vec!["id".into()], sql: "vehicles.id > 0".into() };
        assert_eq!(
            count_statement(&RuleDialect::default(), &predicate),
            r#"SELECT count(*) FROM ONLY "public"."vehicles" WHERE CASE WHEN (vehicles.id > 0) THEN 1 ELSE 0 END = 0"#
        );
    }
}
