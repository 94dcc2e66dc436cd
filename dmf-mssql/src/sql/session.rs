//! What every new connection runs once, before the pool hands it out.

/// Creates and drops a temporary table, so the session's temporary namespace exists before
/// it runs anything else.
///
/// Babelfish 4.3 needs it: a session that checked a foreign key (PostgreSQL caches the
/// check's plan) and *then* creates its first `#temp` table re-plans that check with the
/// schema name mapped twice, and every later insert into the child table fails with
/// `relation "<db>_<db>_<schema>.<parent>" does not exist` (babelfish_extensions issue
/// 3058, fixed in later releases). DMF's upsert stage is such a temp table and its control
/// tables have foreign keys, so a pooled session that recorded a run and then staged an
/// upsert failed. On SQL Server this costs one round trip per connection and changes
/// nothing.
pub(crate) const OPEN: &str = "CREATE TABLE #dmf_session_open (x int); DROP TABLE #dmf_session_open;";
