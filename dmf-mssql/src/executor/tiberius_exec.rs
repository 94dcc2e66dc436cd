//! The [`Executor`] over a real tiberius connection.

use async_trait::async_trait;
use dmf_core::Value;
use tiberius::{Client, ColumnData, SqlBulkCopyOption, SqlBulkCopyOptions, ToSql, TokenRow};
use tokio::net::TcpStream;
use tokio_util::compat::Compat;

use super::guard::guarded;
use super::null_params::inline_null_params;
use super::{BulkOptions, Executor, SqlError, SqlRow};
use crate::types::param_data;

/// A tiberius client with a flag saying whether it can still be used: set while a call is
/// in flight and left set when the call failed or was dropped (see [`guarded`]).
pub struct MssqlConnection {
    client: Client<Compat<TcpStream>>,
    broken: bool,
}

impl MssqlConnection {
    pub(crate) fn new(client: Client<Compat<TcpStream>>) -> Self {
        Self { client, broken: false }
    }

    /// True after an error or a cancelled call: the pool discards it.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// `SELECT 1`, the pool's check before handing the connection out.
    pub(crate) async fn ping(&mut self) -> Result<(), SqlError> {
        let client = &mut self.client;
        guarded(&mut self.broken, async move {
            client.simple_query(crate::sql::admin::PING).await?.into_row().await?;
            Ok::<_, tiberius::error::Error>(())
        })
        .await
        .map_err(SqlError::from)
    }
}

/// A bound parameter: tiberius takes `&dyn ToSql`.
struct Param(ColumnData<'static>);

impl ToSql for Param {
    fn to_sql(&self) -> ColumnData<'_> {
        self.0.clone()
    }
}

fn bulk_flags(options: BulkOptions) -> SqlBulkCopyOptions {
    let mut flags = SqlBulkCopyOptions::empty();
    if options.keep_identity {
        flags |= SqlBulkCopyOption::KeepIdentity;
    }
    if options.keep_nulls {
        flags |= SqlBulkCopyOption::KeepNulls;
    }
    if options.check_constraints {
        flags |= SqlBulkCopyOption::CheckConstraints;
    }
    if options.table_lock {
        flags |= SqlBulkCopyOption::TableLock;
    }
    if options.fire_triggers {
        flags |= SqlBulkCopyOption::FireTriggers;
    }
    flags
}

#[async_trait]
impl Executor for MssqlConnection {
    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<SqlRow>, SqlError> {
        let (sql, params) = inline_null_params(sql, params);
        let params: Vec<Param> = params.into_iter().map(|v| Param(param_data(v))).collect();
        let refs: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
        let client = &mut self.client;
        let rows = guarded(&mut self.broken, async move {
            let stream = client.query(sql.as_ref(), &refs).await?;
            stream.into_first_result().await
        })
        .await?;
        Ok(rows.into_iter().map(|row| SqlRow(row.into_iter().collect())).collect())
    }

    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, SqlError> {
        let (sql, params) = inline_null_params(sql, params);
        let params: Vec<Param> = params.into_iter().map(|v| Param(param_data(v))).collect();
        let refs: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
        let client = &mut self.client;
        let result = guarded(&mut self.broken, async move { client.execute(sql.as_ref(), &refs).await }).await?;
        Ok(result.total())
    }

    async fn batch(&mut self, sql: &str) -> Result<Vec<Vec<SqlRow>>, SqlError> {
        let client = &mut self.client;
        let results =
            guarded(&mut self.broken, async move { client.simple_query(sql).await?.into_results().await }).await?;
        Ok(results
            .into_iter()
            .map(|rows| rows.into_iter().map(|row| SqlRow(row.into_iter().collect())).collect())
            .collect())
    }

    async fn bulk_insert(
        &mut self,
        table: &str,
        columns: &[String],
        options: BulkOptions,
        rows: Vec<TokenRow<'static>>,
    ) -> Result<u64, SqlError> {
        let client = &mut self.client;
        let names: Vec<&str> = columns.iter().map(String::as_str).collect();
        let loaded = guarded(&mut self.broken, async move {
            let mut request = client.bulk_insert_with_options(table, &names, bulk_flags(options), &[]).await?;
            for row in rows {
                request.send(row).await?;
            }
            Ok::<_, tiberius::error::Error>(request.finalize().await?.total())
        })
        .await?;
        Ok(loaded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_options_become_tiberius_flags() {
        assert!(bulk_flags(BulkOptions::default()).is_empty());
        let all = bulk_flags(BulkOptions {
            keep_identity: true,
            keep_nulls: true,
            check_constraints: true,
            table_lock: true,
            fire_triggers: true,
        });
        for flag in [
            SqlBulkCopyOption::KeepIdentity,
            SqlBulkCopyOption::KeepNulls,
            SqlBulkCopyOption::CheckConstraints,
            SqlBulkCopyOption::TableLock,
            SqlBulkCopyOption::FireTriggers,
        ] {
            assert!(all.contains(flag), "{flag:?}");
        }
        let fast = bulk_flags(BulkOptions { keep_nulls: true, ..BulkOptions::default() });
        assert!(!fast.contains(SqlBulkCopyOption::CheckConstraints));
        assert!(!fast.contains(SqlBulkCopyOption::FireTriggers));
    }

    #[test]
    fn parameters_carry_their_values() {
        let param = Param(ColumnData::I64(Some(42)));
        assert_eq!(param.to_sql(), ColumnData::I64(Some(42)));
    }
}
