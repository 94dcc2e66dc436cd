//! Writing batches: the per-session stage and merge log, the MERGE batch (with its
//! checkpoint and, optionally, undo log in one transaction), the plain bulk-insert
//! transaction, emptying tables, and undoing a run from the undo log.

use dmf_core::catalog::TableName;

use super::control::save_checkpoint;
use super::{qualified, quote_ident, quote_literal};

/// The stage table of a loader's session: a `#temp` table, private to the session and
/// dropped with it. Created by a plain batch, never through `sp_executesql` (a `#table`
/// created inside an RPC is dropped when the RPC ends).
pub(crate) const STAGE: &str = "#dmf_stage";

/// The MERGE's `OUTPUT … INTO` target: one row per action, from which the counts come.
pub(crate) const MERGE_LOG: &str = "#dmf_merge_log";

/// A column of the stage or of the merge log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TempColumn<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its type, as DMF spells it (`nvarchar(200)`).
    pub native: String,
    /// Its collation, for character columns (the target column's, so comparisons with the
    /// target never meet a collation conflict); `None`: the database default.
    pub collation: Option<&'a str>,
}

fn column_def(column: &TempColumn<'_>, name: &str, not_null: bool) -> String {
    let mut def = format!("{name} {}", column.native);
    match column.collation {
        Some(collation) => def.push_str(&format!(" COLLATE {collation}")),
        None if is_character(&column.native) => def.push_str(" COLLATE DATABASE_DEFAULT"),
        None => {}
    }
    def.push_str(if not_null { " NOT NULL" } else { " NULL" });
    def
}

fn is_character(native: &str) -> bool {
    let lower = native.to_ascii_lowercase();
    ["char", "varchar", "nchar", "nvarchar", "text", "ntext"]
        .iter()
        .any(|t| lower == *t || lower.starts_with(&format!("{t}(")))
}

/// The log column holding the inserted value of key column `i`.
pub(crate) fn new_column(i: usize) -> String {
    format!("[new_{i}]")
}

/// The log column holding the deleted (before) value of image column `i`.
pub(crate) fn old_column(i: usize) -> String {
    format!("[old_{i}]")
}

/// (Re)creates the stage (the loaded columns; the key as its primary key, so a batch with a
/// key twice fails on the bulk load and is bisected, instead of failing the MERGE with
/// 8672) and the merge log (`action`, the inserted key, the deleted image). One batch.
pub(crate) fn create_stage(
    stage: &[TempColumn<'_>],
    key: &[String],
    log_key: &[TempColumn<'_>],
    log_image: &[TempColumn<'_>],
) -> String {
    let mut stage_defs: Vec<String> =
        stage.iter().map(|c| column_def(c, &quote_ident(c.name), key.iter().any(|k| k == c.name))).collect();
    if !key.is_empty() {
        stage_defs.push(format!(
            "PRIMARY KEY CLUSTERED ({})",
            key.iter().map(|k| quote_ident(k)).collect::<Vec<_>>().join(", ")
        ));
    }
    let mut log_defs = vec!["[action] nvarchar(10) NOT NULL".to_owned()];
    log_defs.extend(log_key.iter().enumerate().map(|(i, c)| column_def(c, &new_column(i), false)));
    log_defs.extend(log_image.iter().enumerate().map(|(i, c)| column_def(c, &old_column(i), false)));
    format!(
        "DROP TABLE IF EXISTS {STAGE}; DROP TABLE IF EXISTS {MERGE_LOG}; CREATE TABLE {STAGE} ({}); CREATE TABLE {MERGE_LOG} ({});",
        stage_defs.join(", "),
        log_defs.join(", ")
    )
}

/// One row inserted with bound parameters (`@P1`… in column order, each cast to its column's
/// type), for a row holding a value no bulk load can carry
/// ([`BULK_VALUE_LIMIT`](crate::types::BULK_VALUE_LIMIT)). `table` is already quoted: the
/// target, or the stage. With `identity_insert`, `SET IDENTITY_INSERT` on and off around it in
/// the same call (a `SET` made inside `sp_executesql` ends with the call).
pub(crate) fn insert_row(table: &str, columns: &[TempColumn<'_>], identity_insert: bool) -> String {
    let names = columns.iter().map(|c| quote_ident(c.name)).collect::<Vec<_>>().join(", ");
    let values =
        columns.iter().enumerate().map(|(i, c)| format!("CAST(@P{} AS {})", i + 1, c.native)).collect::<Vec<_>>();
    let insert = format!("INSERT INTO {table} ({names}) VALUES ({});", values.join(", "));
    if identity_insert {
        format!("SET IDENTITY_INSERT {table} ON; {insert} SET IDENTITY_INSERT {table} OFF;")
    } else {
        insert
    }
}

/// Moves `table`'s identity past the largest value of its identity `column` when a load that
/// kept identity values left it behind, so the table's own next insert does not collide.
/// SQL Server moves it itself; Babelfish 4.3 does not after `INSERT BULK … KEEP_IDENTITY`
/// (its `IDENTITY_INSERT` does). `DBCC CHECKIDENT` takes no parameter: the table's name goes
/// in as a literal ([`quote_literal`]). It runs only when needed (it needs `ALTER` on the
/// table), and only for an ascending identity.
pub(crate) fn reseed_identity(table: &TableName, column: &str) -> String {
    let target = qualified(table);
    let name = quote_literal(&target);
    format!(
        "IF IDENT_INCR({name}) > 0 AND IDENT_CURRENT({name}) < (SELECT MAX({}) FROM {target}) \
         DBCC CHECKIDENT ({name}, RESEED);",
        quote_ident(column)
    )
}

/// Sets `table`'s identity to `last_value`, the last value handed out: the next insert gets
/// `last_value` plus the increment (SQL Server: unless no row was ever inserted since the table
/// was created or truncated; then it gets `last_value` itself). `DBCC CHECKIDENT` takes no
/// parameter: the table's name goes in as a literal ([`quote_literal`]) and the value is
/// formatted from the integer, never from text. Needs `ALTER` on the table.
pub(crate) fn set_identity(table: &TableName, last_value: i64) -> String {
    format!("DBCC CHECKIDENT ({}, RESEED, {last_value});", quote_literal(&qualified(table)))
}

/// Sets the sequence object `sequence` so that it has handed out `last_value` (`None`: none;
/// its next value is its start). `ALTER SEQUENCE … RESTART WITH` takes a literal only, no
/// parameter or expression: the value is formatted from the integer, never from text, and the
/// name quoted by [`quote_ident`].
///
/// `Some(n)`: `RESTART WITH n`, then one `NEXT VALUE FOR`, which hands out `n` (its one-row
/// result is discarded). The sequence's `last_used_value` is then `n` and its next value `n`
/// plus its increment, as in the source, without reading the increment (Babelfish 4.3 lists no
/// sequences in `sys.sequences`); `RESTART WITH n + increment` alone would leave
/// `last_used_value` unlike the source's, and a verification comparing it would never agree.
///
/// `None`: `RESTART` without a value, which restarts at the start value SQL Server holds for
/// it: its `START WITH`, unless a `RESTART WITH` (a sync's included) replaced it, since SQL
/// Server keeps only one start value (Babelfish keeps the `START WITH`). Needs `ALTER` on the
/// sequence.
pub(crate) fn set_sequence(sequence: &TableName, last_value: Option<i64>) -> String {
    let name = qualified(sequence);
    match last_value {
        Some(value) => format!("ALTER SEQUENCE {name} RESTART WITH {value}; SELECT NEXT VALUE FOR {name};"),
        None => format!("ALTER SEQUENCE {name} RESTART;"),
    }
}

/// `statements` (identities reseeded, sequences restarted) in one transaction, all or none:
/// `XACT_ABORT` rolls every one back when one fails. (The values a `NEXT VALUE FOR` in it
/// handed out are not taken back, but the `RESTART` before it is.)
pub(crate) fn set_counters(statements: &str) -> String {
    format!("SET XACT_ABORT ON; BEGIN TRANSACTION; {statements} COMMIT TRANSACTION;")
}

/// What the MERGE does with the staged rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MergeMode {
    /// Insert every staged row (an emptied table, when the undo log records the keys): a
    /// plain `INSERT … OUTPUT … SELECT`, so a key already present still fails.
    Insert,
    /// Insert new keys, update existing rows that differ.
    Upsert,
    /// Update existing rows that differ; never insert.
    Update,
    /// Delete the rows whose keys are staged.
    Delete,
}

/// A loaded column, as the MERGE uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MergeColumn<'a> {
    /// Its name.
    pub name: &'a str,
    /// Written and compared on existing rows (not a key, not identity, not deferred).
    pub update: bool,
    /// How it is compared in the `EXCEPT` that finds the rows that differ.
    pub compare: Compared,
}

/// How a column is compared in the `EXCEPT` that finds the rows that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compared {
    /// As it is.
    Value,
    /// Through `CAST(… AS type)`: `text`, `ntext`, `image`, `xml` have no equality.
    Cast(&'static str),
    /// A `datetimeoffset`, as its UTC instant: `CAST(SWITCHOFFSET(…, '+00:00') AS
    /// datetime2(7))`. SQL Server compares `datetimeoffset` values by that instant anyway;
    /// Babelfish 4.3's `EXCEPT` of two equal `datetimeoffset` values finds them different
    /// now and then (the same query, run again, answers otherwise), which would update
    /// unchanged rows.
    Utc,
}

/// The undo log written in the MERGE's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UndoImage<'a> {
    /// The columns of the before-image (`old_i` in the log), in order.
    pub image: Vec<&'a str>,
    /// For each key column, its index in `image`.
    pub key_in_image: Vec<usize>,
}

fn compared(prefix: &str, column: &MergeColumn<'_>) -> String {
    let expr = format!("{prefix}.{}", quote_ident(column.name));
    match column.compare {
        Compared::Value => expr,
        Compared::Cast(ty) => format!("CAST({expr} AS {ty})"),
        Compared::Utc => format!("CAST(SWITCHOFFSET({expr}, '+00:00') AS datetime2(7))"),
    }
}

/// The `OUTPUT … INTO #dmf_merge_log (…)` clause: `action`, the inserted key (`with_key`;
/// a `DELETE` has no `inserted`) and, with an undo log, the before-image.
fn output_into(action: &str, key: &[String], with_key: bool, undo: Option<&UndoImage<'_>>) -> String {
    let mut output = vec![action.to_owned()];
    let mut into = vec!["[action]".to_owned()];
    if with_key {
        for (i, k) in key.iter().enumerate() {
            output.push(format!("inserted.{}", quote_ident(k)));
            into.push(new_column(i));
        }
    }
    if let Some(undo) = undo {
        for (i, name) in undo.image.iter().enumerate() {
            output.push(format!("deleted.{}", quote_ident(name)));
            into.push(old_column(i));
        }
    }
    format!("OUTPUT {} INTO {MERGE_LOG} ({})", output.join(", "), into.join(", "))
}

/// The statement that writes the staged rows, logging one row per action in the merge log
/// (`None` when there is nothing it could do: an update of key columns only). Only
/// [`MergeMode::Upsert`] needs a MERGE; the other modes are a plain `INSERT … SELECT`,
/// `UPDATE … FROM` or `DELETE … FROM` with the stage, which every T-SQL server has
/// (Babelfish has no MERGE). The stage's primary key is the table's key, so no target row
/// meets two staged rows.
pub(crate) fn merge(
    table: &TableName,
    columns: &[MergeColumn<'_>],
    key: &[String],
    mode: MergeMode,
    undo: Option<&UndoImage<'_>>,
) -> Option<String> {
    let target = qualified(table);
    let on = key.iter().map(|k| format!("t.{0} = s.{0}", quote_ident(k))).collect::<Vec<_>>().join(" AND ");
    let names = || columns.iter().map(|c| quote_ident(c.name)).collect::<Vec<_>>().join(", ");
    let values = || columns.iter().map(|c| format!("s.{}", quote_ident(c.name))).collect::<Vec<_>>().join(", ");
    let updated: Vec<&MergeColumn<'_>> = columns.iter().filter(|c| c.update).collect();
    // Only rows that differ are updated (`EXCEPT` compares NULLs as equal).
    let differs = || {
        let source = updated.iter().map(|c| compared("s", c)).collect::<Vec<_>>().join(", ");
        let target = updated.iter().map(|c| compared("t", c)).collect::<Vec<_>>().join(", ");
        format!("EXISTS (SELECT {source} EXCEPT SELECT {target})")
    };
    let set = || updated.iter().map(|c| format!("t.{0} = s.{0}", quote_ident(c.name))).collect::<Vec<_>>().join(", ");
    match mode {
        MergeMode::Insert => Some(format!(
            "INSERT INTO {target} ({}) {} SELECT {} FROM {STAGE} AS s;",
            names(),
            output_into("N'INSERT'", key, true, None),
            values()
        )),
        MergeMode::Update if updated.is_empty() => None,
        MergeMode::Update => {
            Some(update_from_stage(table, &updated, key, "", Some(&output_into("N'UPDATE'", key, true, undo))))
        }
        MergeMode::Delete => Some(format!(
            "DELETE t {} FROM {target} AS t JOIN {STAGE} AS s ON {on};",
            output_into("N'DELETE'", key, false, undo)
        )),
        MergeMode::Upsert => {
            let mut clauses = Vec::new();
            if !updated.is_empty() {
                clauses.push(format!("WHEN MATCHED AND {} THEN UPDATE SET {}", differs(), set()));
            }
            clauses.push(format!("WHEN NOT MATCHED BY TARGET THEN INSERT ({}) VALUES ({})", names(), values()));
            Some(format!(
                "MERGE INTO {target} AS t USING {STAGE} AS s ON {on} {} {};",
                clauses.join(" "),
                output_into("$action", key, true, undo)
            ))
        }
    }
}

/// `UPDATE <table> [hints] SET … [OUTPUT …] FROM #dmf_stage WHERE <key> AND EXISTS (… EXCEPT …)`:
/// the staged values written into the rows whose key is staged and whose `updated` columns
/// differ. Neither the target nor the stage has an alias: Babelfish 4.3 loses an aliased
/// join's FROM clause in an `UPDATE … OUTPUT … INTO` ("missing FROM-clause entry"). The target
/// is named by its table name, the stage (a `#` name no table has) by its own.
fn update_from_stage(
    table: &TableName,
    updated: &[&MergeColumn<'_>],
    key: &[String],
    hints: &str,
    output: Option<&str>,
) -> String {
    let t = quote_ident(&table.name);
    let on = key.iter().map(|k| format!("{t}.{0} = {STAGE}.{0}", quote_ident(k))).collect::<Vec<_>>();
    let source = updated.iter().map(|c| compared(STAGE, c)).collect::<Vec<_>>().join(", ");
    let current = updated.iter().map(|c| compared(&t, c)).collect::<Vec<_>>().join(", ");
    let set = updated.iter().map(|c| format!("{0} = {STAGE}.{0}", quote_ident(c.name))).collect::<Vec<_>>().join(", ");
    let output = output.map(|o| format!(" {o}")).unwrap_or_default();
    format!(
        "UPDATE {}{hints} SET {set}{output} FROM {STAGE} WHERE {} AND EXISTS (SELECT {source} EXCEPT SELECT {current});",
        qualified(table),
        on.join(" AND "),
    )
}

/// The table hint of the MERGE-free writes, on the target wherever they read it to decide
/// (the upsert's `UPDATE`, its `INSERT`'s `NOT EXISTS`, the undo log's before-images): update
/// locks and key-range locks on every key read, held to the end of the transaction. Without
/// it another session could insert a staged key between the upsert's two statements (the
/// `INSERT` would then skip that row, its value lost, or both sessions insert it: a
/// duplicate key), or change a row between its logging and its writing.
pub(crate) const UPSERT_HINTS: &str = " WITH (UPDLOCK, SERIALIZABLE)";

/// The MERGE-free write of the staged rows ([`UpsertStrategy::UpdateInsert`](crate::UpsertStrategy)),
/// the statements inside the batch's transaction ([`merge_free_batch`]): no MERGE and no
/// `OUTPUT`, each count (`@inserted`, `@updated`, `@deleted`) read from `@@ROWCOUNT` right
/// after its statement. `None` when there is nothing to do (an update of key columns only).
///
/// | mode | statements |
/// |---|---|
/// | `Upsert` | `UPDATE t SET … FROM <table> AS t WITH (UPDLOCK, SERIALIZABLE) JOIN #dmf_stage AS s ON <key> WHERE EXISTS (SELECT s.… EXCEPT SELECT t.…)`, then `INSERT INTO <table> (…) SELECT s.… FROM #dmf_stage AS s WHERE NOT EXISTS (SELECT 1 FROM <table> AS t WITH (UPDLOCK, SERIALIZABLE) WHERE <key>)`, with `IDENTITY_INSERT` around the insert when identity values are loaded |
/// | `Update` | the `UPDATE` alone |
/// | `Delete` | `DELETE t FROM <table> AS t JOIN #dmf_stage AS s ON <key>` |
/// | `Insert` | `INSERT INTO <table> (…) SELECT s.… FROM #dmf_stage AS s` (a key already present fails) |
///
/// With an undo log, each write is preceded by an `INSERT INTO #dmf_merge_log … SELECT` of
/// what it is about to change, by the same predicate and under the same locks, so the log
/// holds the rows the MERGE's `OUTPUT` would have put there (updates: the key and the
/// before-image; deletes: the before-image; inserts: the key) and the undo log gets the same
/// entries. Logging first, not by `OUTPUT`, is what Babelfish 4.3 needs: it refuses
/// `INSERT … OUTPUT … INTO` under `IDENTITY_INSERT`, an `UPDATE … OUTPUT deleted.…` of a
/// table outside `dbo`, and a `DELETE … OUTPUT` of constants only.
pub(crate) fn merge_free(
    table: &TableName,
    columns: &[MergeColumn<'_>],
    key: &[String],
    mode: MergeMode,
    identity_insert: bool,
    undo: Option<&UndoImage<'_>>,
) -> Option<String> {
    let target = qualified(table);
    let updated: Vec<&MergeColumn<'_>> = columns.iter().filter(|c| c.update).collect();
    let on = key.iter().map(|k| format!("t.{0} = s.{0}", quote_ident(k))).collect::<Vec<_>>().join(" AND ");
    let joined = format!("FROM {target} AS t{UPSERT_HINTS} JOIN {STAGE} AS s ON {on}");
    let differs = || {
        let source = updated.iter().map(|c| compared("s", c)).collect::<Vec<_>>().join(", ");
        let current = updated.iter().map(|c| compared("t", c)).collect::<Vec<_>>().join(", ");
        format!("EXISTS (SELECT {source} EXCEPT SELECT {current})")
    };
    let absent = format!("NOT EXISTS (SELECT 1 FROM {target} AS t{UPSERT_HINTS} WHERE {on})");
    // `INSERT INTO #dmf_merge_log ([action], <log columns>) SELECT N'<action>', <values>`.
    let log = |action: &str, logged: Vec<(String, String)>| {
        let (into, values): (Vec<String>, Vec<String>) = logged.into_iter().unzip();
        format!("INSERT INTO {MERGE_LOG} ([action], {}) SELECT N'{action}', {}", into.join(", "), values.join(", "))
    };
    let logged_keys = |prefix: &str| -> Vec<(String, String)> {
        key.iter().enumerate().map(|(i, k)| (new_column(i), format!("{prefix}.{}", quote_ident(k)))).collect()
    };
    let logged_image = |undo: &UndoImage<'_>| -> Vec<(String, String)> {
        undo.image.iter().enumerate().map(|(i, c)| (old_column(i), format!("t.{}", quote_ident(c)))).collect()
    };
    let update = || {
        let mut sql = String::new();
        if let Some(undo) = undo {
            let mut logged = logged_keys("t");
            logged.extend(logged_image(undo));
            sql.push_str(&format!("{} {joined} WHERE {}; ", log("UPDATE", logged), differs()));
        }
        let set = updated.iter().map(|c| format!("{0} = s.{0}", quote_ident(c.name))).collect::<Vec<_>>().join(", ");
        sql.push_str(&format!("UPDATE t SET {set} {joined} WHERE {}; SET @updated = @@ROWCOUNT;", differs()));
        sql
    };
    let insert = |only_absent: bool| {
        let filter = if only_absent { format!(" WHERE {absent}") } else { String::new() };
        let mut sql = String::new();
        if undo.is_some() {
            sql.push_str(&format!("{} FROM {STAGE} AS s{filter}; ", log("INSERT", logged_keys("s"))));
        }
        if identity_insert {
            sql.push_str(&format!("SET IDENTITY_INSERT {target} ON; "));
        }
        let names = columns.iter().map(|c| quote_ident(c.name)).collect::<Vec<_>>().join(", ");
        let values = columns.iter().map(|c| format!("s.{}", quote_ident(c.name))).collect::<Vec<_>>().join(", ");
        // `@@ROWCOUNT` is read at once: `SET IDENTITY_INSERT` resets it.
        sql.push_str(&format!(
            "INSERT INTO {target} ({names}) SELECT {values} FROM {STAGE} AS s{filter}; SET @inserted = @@ROWCOUNT;"
        ));
        if identity_insert {
            sql.push_str(&format!(" SET IDENTITY_INSERT {target} OFF;"));
        }
        sql
    };
    match mode {
        MergeMode::Insert => Some(insert(false)),
        MergeMode::Upsert if updated.is_empty() => Some(insert(true)),
        MergeMode::Upsert => Some(format!("{} {}", update(), insert(true))),
        MergeMode::Update if updated.is_empty() => None,
        MergeMode::Update => Some(update()),
        MergeMode::Delete => {
            let mut sql = String::new();
            if let Some(undo) = undo {
                sql.push_str(&format!("{} {joined}; ", log("DELETE", logged_image(undo))));
            }
            sql.push_str(&format!("DELETE t FROM {target} AS t JOIN {STAGE} AS s ON {on}; SET @deleted = @@ROWCOUNT;"));
            Some(sql)
        }
    }
}

/// The counts of the MERGE-free write, in the merge log's shape: `(action, n)`.
pub(crate) const MERGE_FREE_COUNTS: &str = "SELECT N'INSERT' AS [action], @inserted AS n \
     UNION ALL SELECT N'UPDATE' AS [action], @updated AS n UNION ALL SELECT N'DELETE' AS [action], @deleted AS n;";

/// Copies the merge log into `dmf.undo_log`: the key (inserted or deleted) and, for updates
/// and deletes, the before-image, as JSON objects. Parameters: `@P1` migration, `@P6` run
/// id, `@P7` the table's name (as `schema.table`), after the checkpoint's five.
pub(crate) fn undo_insert(key: &[String], undo: &UndoImage<'_>) -> String {
    let key_json = key
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let old = undo.key_in_image.get(i).map_or("NULL".to_owned(), |&j| format!("l.{}", old_column(j)));
            format!("COALESCE(l.{}, {old}) AS {}", new_column(i), quote_ident(k))
        })
        .collect::<Vec<_>>()
        .join(", ");
    let image_json = undo
        .image
        .iter()
        .enumerate()
        .map(|(i, name)| format!("l.{} AS {}", old_column(i), quote_ident(name)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO dmf.undo_log (run_id, migration, table_name, [key], [action], before_image) \
         SELECT @P6, @P1, @P7, (SELECT {key_json} FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES), \
         LOWER(l.[action]), CASE WHEN l.[action] = N'INSERT' THEN NULL ELSE \
         (SELECT {image_json} FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES) END \
         FROM {MERGE_LOG} AS l;"
    )
}

/// The counts of the last MERGE, one row per action: `(action, n)`.
pub(crate) const MERGE_COUNTS: &str = "SELECT [action], COUNT_BIG(*) AS n FROM #dmf_merge_log GROUP BY [action];";

/// One batch of a staged write, sent with parameters (`sp_executesql`; the `#` tables of the
/// session are visible inside): under `XACT_ABORT`, in one transaction, the MERGE (with
/// `IDENTITY_INSERT` around it when identity values are loaded), the undo log, and the
/// checkpoint; then the counts, and the stage and log emptied for the next batch.
/// Parameters: the checkpoint's ([`dmf_core::control::checkpoints::write_params`]: `@P1`
/// migration … `@P5` time), and with an undo log `@P6` run id, `@P7` table name.
pub(crate) fn merge_batch(table: &TableName, merge: Option<&str>, identity_insert: bool, undo: Option<&str>) -> String {
    let mut body = String::new();
    if let Some(merge) = merge {
        if identity_insert {
            body.push_str(&format!("SET IDENTITY_INSERT {} ON; ", qualified(table)));
        }
        body.push_str(merge);
        body.push(' ');
        if identity_insert {
            body.push_str(&format!("SET IDENTITY_INSERT {} OFF; ", qualified(table)));
        }
        if let Some(undo) = undo {
            body.push_str(undo);
            body.push(' ');
        }
    }
    staged_batch("", &body, MERGE_COUNTS)
}

/// [`merge_batch`] for the MERGE-free write: `body` is [`merge_free`]'s statements (`None`:
/// the checkpoint alone), whose counts (`@inserted`, `@updated`, `@deleted`, declared here) are
/// returned in the merge log's shape ([`MERGE_FREE_COUNTS`]). Same parameters.
pub(crate) fn merge_free_batch(body: Option<&str>, undo: Option<&str>) -> String {
    let mut statements = String::new();
    if let Some(body) = body {
        statements.push_str(body);
        statements.push(' ');
        if let Some(undo) = undo {
            statements.push_str(undo);
            statements.push(' ');
        }
    }
    staged_batch(
        "DECLARE @inserted bigint = 0, @updated bigint = 0, @deleted bigint = 0; ",
        &statements,
        MERGE_FREE_COUNTS,
    )
}

/// Under `XACT_ABORT` (and after `declare`), in one transaction, `body` and the checkpoint;
/// then `counts`, and the stage and the merge log emptied for the next batch.
fn staged_batch(declare: &str, body: &str, counts: &str) -> String {
    format!(
        "SET XACT_ABORT ON; {declare}BEGIN TRANSACTION; {body}{} COMMIT TRANSACTION; {counts} \
         TRUNCATE TABLE {STAGE}; TRUNCATE TABLE {MERGE_LOG};",
        save_checkpoint()
    )
}

/// Empties `tables`, in the given order (referencing tables first), in one transaction.
/// `DELETE`, not `TRUNCATE`: SQL Server refuses to truncate a table that a foreign key
/// references, even from an empty table. A foreign key against that order (a cycle, such as
/// departments ⇄ employees) would refuse the delete of its referenced table: `unlink` names
/// such nullable foreign-key columns, set to NULL first.
pub(crate) fn clear(tables: &[TableName], unlink: &[(TableName, Vec<String>)]) -> String {
    let updates: Vec<String> = unlink
        .iter()
        .filter(|(_, columns)| !columns.is_empty())
        .map(|(table, columns)| {
            let set = columns.iter().map(|c| format!("{} = NULL", quote_ident(c))).collect::<Vec<_>>().join(", ");
            let any = columns.iter().map(|c| format!("{} IS NOT NULL", quote_ident(c))).collect::<Vec<_>>();
            format!("UPDATE {} SET {set} WHERE {};", qualified(table), any.join(" OR "))
        })
        .collect();
    let deletes: Vec<String> =
        tables.iter().map(|t| format!("DELETE FROM {}; SET @deleted = @deleted + @@ROWCOUNT;", qualified(t))).collect();
    let mut sql = String::from("SET XACT_ABORT ON; DECLARE @deleted bigint = 0; BEGIN TRANSACTION; ");
    for statement in updates.iter().chain(&deletes) {
        sql.push_str(statement);
        sql.push(' ');
    }
    sql.push_str("COMMIT TRANSACTION; SELECT @deleted AS deleted;");
    sql
}

/// A column of the table being restored from the undo log: its name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UndoColumn<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its type (as the JSON is read back: `OPENJSON … WITH (col type '$."col"')`).
    pub native: String,
}

impl UndoColumn<'_> {
    /// True for character types, whose values are JSON strings that may hold escapes.
    fn is_text(&self) -> bool {
        let native = self.native.to_ascii_lowercase();
        ["char", "varchar", "nchar", "nvarchar", "text", "ntext"]
            .iter()
            .any(|t| native == *t || native.starts_with(&format!("{t}(")))
    }

    /// The type it is read from the JSON as: a character column as `nvarchar(max)`, so that a
    /// value Babelfish hands back still escaped (longer than the column) is not cut short
    /// before [`read_back`] unescapes it.
    fn json_type(&self) -> &str {
        if self.is_text() { "nvarchar(max)" } else { &self.native }
    }
}

/// Sets `@json_escaped` to 1 when the server's `OPENJSON … WITH` returns a string as its
/// JSON text without the quotes (`a\"b` for `a"b`, `\n` for a line feed): Babelfish 4.3
/// does (its OPENJSON is PostgreSQL's `jsonb`, whose text output escapes them again); SQL
/// Server returns the string itself (0).
const JSON_ESCAPED: &str = "DECLARE @json_escaped bit = 0; SELECT @json_escaped = CASE WHEN p.x = N'\\' THEN 0 ELSE 1 END \
                            FROM OPENJSON(N'{\"x\":\"\\\\\"}') WITH (x nvarchar(4) '$.x') AS p; ";

/// The JSON string escapes `jsonb` writes, each with the text it stands for, in the order
/// they are undone: `\\` first becomes `\u005c`, so that every backslash left starts an
/// escape; then `\"`, `\/`, the named control characters and `\u0001` … `\u001f` (`jsonb`
/// writes no other `\uXXXX`, and no `\u0000`); `\u005c` last. Each is one `REPLACE`, which
/// like [`str::replace`] replaces from left to right without overlaps.
fn jsonb_unescapes() -> Vec<(String, String)> {
    let mut steps = vec![("\\\\".to_owned(), "\\u005c".to_owned())];
    steps.extend([("\\\"", "\""), ("\\/", "/")].map(|(from, to)| (from.to_owned(), to.to_owned())));
    for (letter, code) in [('b', 8u32), ('f', 12), ('n', 10), ('r', 13), ('t', 9)] {
        steps.push((format!("\\{letter}"), char::from_u32(code).map(String::from).unwrap_or_default()));
    }
    for code in (1u32..32).filter(|c| ![8, 9, 10, 12, 13].contains(c)) {
        steps.push((format!("\\u{code:04x}"), char::from_u32(code).map(String::from).unwrap_or_default()));
    }
    steps.push(("\\u005c".to_owned(), "\\".to_owned()));
    steps
}

/// `text` as a T-SQL literal: `NCHAR(n)` for a control character, else `N'…'`.
fn text_literal(text: &str) -> String {
    match text.chars().next() {
        Some(c) if text.chars().count() == 1 && u32::from(c) < 32 => format!("NCHAR({})", u32::from(c)),
        _ => format!("N'{}'", text.replace('\'', "''")),
    }
}

/// `value` with the escapes `jsonb` writes undone ([`jsonb_unescapes`]), in T-SQL.
fn json_unescape(value: &str) -> String {
    jsonb_unescapes().iter().fold(value.to_owned(), |sql, (from, to)| {
        format!("REPLACE({sql}, {}, {})", text_literal(from), text_literal(to))
    })
}

/// `reference` (a column of an `OPENJSON … WITH` result) as the value it holds: a character
/// column unescaped where the server left it escaped ([`JSON_ESCAPED`]).
fn read_back(reference: &str, column: &UndoColumn<'_>) -> String {
    if column.is_text() {
        format!("CASE WHEN @json_escaped = 1 THEN {} ELSE {reference} END", json_unescape(reference))
    } else {
        reference.to_owned()
    }
}

/// `'$."name"'`: a JSON path to a property, `"` and `\` escaped for JSON, the whole a T-SQL
/// literal (paths cannot be parameters).
pub(crate) fn json_path(name: &str) -> String {
    let mut escaped = String::with_capacity(name.len() + 4);
    escaped.push_str("$.\"");
    for c in name.chars() {
        match c {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            c => escaped.push(c),
        }
    }
    escaped.push('"');
    quote_literal(&escaped)
}

fn with_clause(columns: &[UndoColumn<'_>]) -> String {
    columns
        .iter()
        .map(|c| format!("{} {} {}", quote_ident(c.name), c.json_type(), json_path(c.name)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Undoes what one run wrote into one table, newest change first, in one transaction:
/// inserted keys are deleted, updated rows get their before-image back, deleted rows are
/// inserted again (with `IDENTITY_INSERT` when the table has an identity column among
/// `image`). Returns one row: `(deleted, restored)`. Parameters: `@P1` run id, `@P2`
/// migration.
pub(crate) fn undo(
    table: &TableName,
    key: &[UndoColumn<'_>],
    image: &[UndoColumn<'_>],
    identity_insert: bool,
) -> String {
    let target = qualified(table);
    let entries = "FROM dmf.undo_log AS u WHERE u.run_id = @P1 AND u.migration = @P2";
    let logged = |action: &str, json: &str, alias: &str, columns: &[UndoColumn<'_>]| {
        format!(
            "FROM dmf.undo_log AS u CROSS APPLY OPENJSON(u.{json}) WITH ({}) AS {alias} \
             JOIN {target} AS t ON {} WHERE u.run_id = @P1 AND u.migration = @P2 AND u.[action] = N'{action}'",
            with_clause(columns),
            key.iter()
                .map(|k| format!(
                    "t.{} = {}",
                    quote_ident(k.name),
                    read_back(&format!("{alias}.{}", quote_ident(k.name)), k)
                ))
                .collect::<Vec<_>>()
                .join(" AND ")
        )
    };
    let set: Vec<String> = image
        .iter()
        .filter(|c| !key.iter().any(|k| k.name == c.name))
        .map(|c| format!("t.{} = {}", quote_ident(c.name), read_back(&format!("b.{}", quote_ident(c.name)), c)))
        .collect();
    let names = image.iter().map(|c| quote_ident(c.name)).collect::<Vec<_>>().join(", ");
    let values =
        image.iter().map(|c| read_back(&format!("b.{}", quote_ident(c.name)), c)).collect::<Vec<_>>().join(", ");
    let mut sql =
        String::from("SET XACT_ABORT ON; BEGIN TRANSACTION; DECLARE @deleted bigint = 0, @restored bigint = 0; ");
    sql.push_str(JSON_ESCAPED);
    sql.push_str(&format!("DELETE t {}; SET @deleted = @@ROWCOUNT; ", logged("insert", "[key]", "k", key)));
    if !set.is_empty() {
        sql.push_str(&format!(
            "UPDATE t SET {} {}; SET @restored = @@ROWCOUNT; ",
            set.join(", "),
            logged("update", "before_image", "b", image)
        ));
    }
    if identity_insert {
        sql.push_str(&format!("SET IDENTITY_INSERT {target} ON; "));
    }
    sql.push_str(&format!(
        "INSERT INTO {target} ({names}) SELECT {values} FROM dmf.undo_log AS u \
         CROSS APPLY OPENJSON(u.before_image) WITH ({}) AS b \
         WHERE u.run_id = @P1 AND u.migration = @P2 AND u.[action] = N'delete'; SET @restored = @restored + @@ROWCOUNT; ",
        with_clause(image)
    ));
    if identity_insert {
        sql.push_str(&format!("SET IDENTITY_INSERT {target} OFF; "));
    }
    sql.push_str(&format!(
        "DELETE u {entries}; COMMIT TRANSACTION; SELECT @deleted AS deleted, @restored AS restored;"
    ));
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TableName {
        TableName::new(Some("dbo"), "Orders")
    }

    fn temp(name: &'static str, native: &str, collation: Option<&'static str>) -> TempColumn<'static> {
        TempColumn { name, native: native.into(), collation }
    }

    #[test]
    fn stage_and_log_are_created_in_one_batch() {
        let stage = [
            temp("id", "int", None),
            temp("name", "nvarchar(200)", Some("Latin1_General_CS_AS")),
            temp("note]x", "varchar(max)", None),
        ];
        assert_eq!(
            create_stage(&stage, &["id".into()], &stage[..1], &[]),
            "DROP TABLE IF EXISTS #dmf_stage; DROP TABLE IF EXISTS #dmf_merge_log; \
             CREATE TABLE #dmf_stage ([id] int NOT NULL, [name] nvarchar(200) COLLATE Latin1_General_CS_AS NULL, \
             [note]]x] varchar(max) COLLATE DATABASE_DEFAULT NULL, PRIMARY KEY CLUSTERED ([id])); \
             CREATE TABLE #dmf_merge_log ([action] nvarchar(10) NOT NULL, [new_0] int NULL);"
        );
        assert_eq!(
            create_stage(&stage[..2], &["id".into()], &stage[..1], &stage[..2]),
            "DROP TABLE IF EXISTS #dmf_stage; DROP TABLE IF EXISTS #dmf_merge_log; \
             CREATE TABLE #dmf_stage ([id] int NOT NULL, [name] nvarchar(200) COLLATE Latin1_General_CS_AS NULL, PRIMARY KEY CLUSTERED ([id])); \
             CREATE TABLE #dmf_merge_log ([action] nvarchar(10) NOT NULL, [new_0] int NULL, [old_0] int NULL, \
             [old_1] nvarchar(200) COLLATE Latin1_General_CS_AS NULL);"
        );
    }

    fn columns() -> Vec<MergeColumn<'static>> {
        vec![
            MergeColumn { name: "id", update: false, compare: Compared::Value },
            MergeColumn { name: "name", update: true, compare: Compared::Value },
            MergeColumn { name: "notes", update: true, compare: Compared::Cast("nvarchar(max)") },
            MergeColumn { name: "parent_id", update: false, compare: Compared::Value },
        ]
    }

    #[test]
    fn upsert_merges_only_rows_that_differ_and_logs_every_action() {
        assert_eq!(
            merge(&table(), &columns(), &["id".into()], MergeMode::Upsert, None).unwrap(),
            "MERGE INTO [dbo].[Orders] AS t USING #dmf_stage AS s ON t.[id] = s.[id] \
             WHEN MATCHED AND EXISTS (SELECT s.[name], CAST(s.[notes] AS nvarchar(max)) EXCEPT SELECT t.[name], CAST(t.[notes] AS nvarchar(max))) \
             THEN UPDATE SET t.[name] = s.[name], t.[notes] = s.[notes] \
             WHEN NOT MATCHED BY TARGET THEN INSERT ([id], [name], [notes], [parent_id]) VALUES (s.[id], s.[name], s.[notes], s.[parent_id]) \
             OUTPUT $action, inserted.[id] INTO #dmf_merge_log ([action], [new_0]);"
        );
    }

    #[test]
    fn datetimeoffset_is_compared_as_its_utc_instant_and_lobs_through_a_cast() {
        let column = |compare| MergeColumn { name: "at", update: true, compare };
        assert_eq!(compared("s", &column(Compared::Value)), "s.[at]");
        assert_eq!(compared("s", &column(Compared::Cast("nvarchar(max)"))), "CAST(s.[at] AS nvarchar(max))");
        assert_eq!(
            compared("#dmf_stage", &column(Compared::Utc)),
            "CAST(SWITCHOFFSET(#dmf_stage.[at], '+00:00') AS datetime2(7))"
        );
    }

    #[test]
    fn updates_and_deletes_join_the_stage_without_merge() {
        let key = ["id".to_owned(), "line".to_owned()];
        let undo = UndoImage { image: vec!["id", "line", "qty"], key_in_image: vec![0, 1] };
        assert_eq!(
            merge(&table(), &columns()[..2], &key, MergeMode::Update, None).unwrap(),
            "UPDATE [dbo].[Orders] SET [name] = #dmf_stage.[name] \
             OUTPUT N'UPDATE', inserted.[id], inserted.[line] INTO #dmf_merge_log ([action], [new_0], [new_1]) \
             FROM #dmf_stage WHERE [Orders].[id] = #dmf_stage.[id] AND [Orders].[line] = #dmf_stage.[line] \
             AND EXISTS (SELECT #dmf_stage.[name] EXCEPT SELECT [Orders].[name]);"
        );
        assert_eq!(
            merge(&table(), &columns()[..2], &key, MergeMode::Update, Some(&undo)).unwrap(),
            "UPDATE [dbo].[Orders] SET [name] = #dmf_stage.[name] \
             OUTPUT N'UPDATE', inserted.[id], inserted.[line], deleted.[id], deleted.[line], deleted.[qty] \
             INTO #dmf_merge_log ([action], [new_0], [new_1], [old_0], [old_1], [old_2]) \
             FROM #dmf_stage WHERE [Orders].[id] = #dmf_stage.[id] AND [Orders].[line] = #dmf_stage.[line] \
             AND EXISTS (SELECT #dmf_stage.[name] EXCEPT SELECT [Orders].[name]);"
        );
        assert_eq!(
            merge(&table(), &[], &key, MergeMode::Delete, Some(&undo)).unwrap(),
            "DELETE t OUTPUT N'DELETE', deleted.[id], deleted.[line], deleted.[qty] \
             INTO #dmf_merge_log ([action], [old_0], [old_1], [old_2]) \
             FROM [dbo].[Orders] AS t JOIN #dmf_stage AS s ON t.[id] = s.[id] AND t.[line] = s.[line];"
        );
        assert_eq!(
            merge(&table(), &[], &key, MergeMode::Delete, None).unwrap(),
            "DELETE t OUTPUT N'DELETE' INTO #dmf_merge_log ([action]) \
             FROM [dbo].[Orders] AS t JOIN #dmf_stage AS s ON t.[id] = s.[id] AND t.[line] = s.[line];"
        );
        assert_eq!(merge(&table(), &columns()[..1], &["id".into()], MergeMode::Update, None), None);
        assert_eq!(
            merge(&table(), &columns()[..2], &["id".into()], MergeMode::Insert, None).unwrap(),
            "INSERT INTO [dbo].[Orders] ([id], [name]) OUTPUT N'INSERT', inserted.[id] INTO #dmf_merge_log ([action], [new_0]) \
             SELECT s.[id], s.[name] FROM #dmf_stage AS s;"
        );
    }

    #[test]
    fn the_merge_free_upsert_updates_rows_that_differ_then_inserts_absent_keys_under_key_range_locks() {
        assert_eq!(
            merge_free(&table(), &columns(), &["id".into()], MergeMode::Upsert, false, None).unwrap(),
            "UPDATE t SET [name] = s.[name], [notes] = s.[notes] \
             FROM [dbo].[Orders] AS t WITH (UPDLOCK, SERIALIZABLE) JOIN #dmf_stage AS s ON t.[id] = s.[id] \
             WHERE EXISTS (SELECT s.[name], CAST(s.[notes] AS nvarchar(max)) EXCEPT SELECT t.[name], CAST(t.[notes] AS nvarchar(max))); \
             SET @updated = @@ROWCOUNT; \
             INSERT INTO [dbo].[Orders] ([id], [name], [notes], [parent_id]) SELECT s.[id], s.[name], s.[notes], s.[parent_id] \
             FROM #dmf_stage AS s WHERE NOT EXISTS (SELECT 1 FROM [dbo].[Orders] AS t WITH (UPDLOCK, SERIALIZABLE) WHERE t.[id] = s.[id]); \
             SET @inserted = @@ROWCOUNT;"
        );
        // Nothing to update (the key only): the insert alone.
        assert_eq!(
            merge_free(&table(), &columns()[..1], &["id".into()], MergeMode::Upsert, false, None).unwrap(),
            "INSERT INTO [dbo].[Orders] ([id]) SELECT s.[id] FROM #dmf_stage AS s \
             WHERE NOT EXISTS (SELECT 1 FROM [dbo].[Orders] AS t WITH (UPDLOCK, SERIALIZABLE) WHERE t.[id] = s.[id]); \
             SET @inserted = @@ROWCOUNT;"
        );
    }

    #[test]
    fn with_an_undo_log_each_merge_free_write_first_logs_what_it_changes_under_the_same_locks() {
        let key = ["id".to_owned(), "line".to_owned()];
        let undo = UndoImage { image: vec!["id", "line", "name"], key_in_image: vec![0, 1] };
        let on = "t.[id] = s.[id] AND t.[line] = s.[line]";
        let absent = format!("NOT EXISTS (SELECT 1 FROM [dbo].[Orders] AS t WITH (UPDLOCK, SERIALIZABLE) WHERE {on})");
        let update = format!(
            "INSERT INTO #dmf_merge_log ([action], [new_0], [new_1], [old_0], [old_1], [old_2]) \
             SELECT N'UPDATE', t.[id], t.[line], t.[id], t.[line], t.[name] \
             FROM [dbo].[Orders] AS t WITH (UPDLOCK, SERIALIZABLE) JOIN #dmf_stage AS s ON {on} \
             WHERE EXISTS (SELECT s.[name] EXCEPT SELECT t.[name]); \
             UPDATE t SET [name] = s.[name] FROM [dbo].[Orders] AS t WITH (UPDLOCK, SERIALIZABLE) JOIN #dmf_stage AS s ON {on} \
             WHERE EXISTS (SELECT s.[name] EXCEPT SELECT t.[name]); SET @updated = @@ROWCOUNT;"
        );
        assert_eq!(
            merge_free(&table(), &columns()[..2], &key, MergeMode::Upsert, true, Some(&undo)).unwrap(),
            format!(
                "{update} \
                 INSERT INTO #dmf_merge_log ([action], [new_0], [new_1]) SELECT N'INSERT', s.[id], s.[line] \
                 FROM #dmf_stage AS s WHERE {absent}; \
                 SET IDENTITY_INSERT [dbo].[Orders] ON; \
                 INSERT INTO [dbo].[Orders] ([id], [name]) SELECT s.[id], s.[name] FROM #dmf_stage AS s WHERE {absent}; \
                 SET @inserted = @@ROWCOUNT; SET IDENTITY_INSERT [dbo].[Orders] OFF;"
            )
        );
        assert_eq!(merge_free(&table(), &columns()[..2], &key, MergeMode::Update, false, Some(&undo)).unwrap(), update);
        assert_eq!(
            merge_free(&table(), &[], &key, MergeMode::Delete, false, Some(&undo)).unwrap(),
            format!(
                "INSERT INTO #dmf_merge_log ([action], [old_0], [old_1], [old_2]) SELECT N'DELETE', t.[id], t.[line], t.[name] \
                 FROM [dbo].[Orders] AS t WITH (UPDLOCK, SERIALIZABLE) JOIN #dmf_stage AS s ON {on}; \
                 DELETE t FROM [dbo].[Orders] AS t JOIN #dmf_stage AS s ON {on}; SET @deleted = @@ROWCOUNT;"
            )
        );
        assert_eq!(
            merge_free(&table(), &columns()[..2], &key, MergeMode::Insert, true, Some(&undo)).unwrap(),
            "INSERT INTO #dmf_merge_log ([action], [new_0], [new_1]) SELECT N'INSERT', s.[id], s.[line] FROM #dmf_stage AS s; \
             SET IDENTITY_INSERT [dbo].[Orders] ON; \
             INSERT INTO [dbo].[Orders] ([id], [name]) SELECT s.[id], s.[name] FROM #dmf_stage AS s; \
             SET @inserted = @@ROWCOUNT; SET IDENTITY_INSERT [dbo].[Orders] OFF;"
        );
    }

    #[test]
    fn merge_free_deletes_and_updates_need_no_output() {
        assert_eq!(
            merge_free(&table(), &[], &["id".into()], MergeMode::Delete, false, None).unwrap(),
            "DELETE t FROM [dbo].[Orders] AS t JOIN #dmf_stage AS s ON t.[id] = s.[id]; SET @deleted = @@ROWCOUNT;"
        );
        assert_eq!(merge_free(&table(), &columns()[..1], &["id".into()], MergeMode::Update, false, None), None);
    }

    #[test]
    fn the_merge_free_batch_declares_its_counts_and_returns_them_like_the_merge_log() {
        let checkpoint = save_checkpoint();
        let counts = "SELECT N'INSERT' AS [action], @inserted AS n UNION ALL SELECT N'UPDATE' AS [action], @updated AS n \
                      UNION ALL SELECT N'DELETE' AS [action], @deleted AS n;";
        assert_eq!(
            merge_free_batch(Some("UPDATE …; INSERT …;"), Some("INSERT INTO dmf.undo_log …;")),
            format!(
                "SET XACT_ABORT ON; DECLARE @inserted bigint = 0, @updated bigint = 0, @deleted bigint = 0; BEGIN TRANSACTION; \
                 UPDATE …; INSERT …; INSERT INTO dmf.undo_log …; {checkpoint} COMMIT TRANSACTION; {counts} \
                 TRUNCATE TABLE #dmf_stage; TRUNCATE TABLE #dmf_merge_log;"
            )
        );
        assert_eq!(
            merge_free_batch(None, Some("INSERT INTO dmf.undo_log …;")),
            format!(
                "SET XACT_ABORT ON; DECLARE @inserted bigint = 0, @updated bigint = 0, @deleted bigint = 0; BEGIN TRANSACTION; \
                 {checkpoint} COMMIT TRANSACTION; {counts} TRUNCATE TABLE #dmf_stage; TRUNCATE TABLE #dmf_merge_log;"
            ),
            "nothing to write: the checkpoint alone"
        );
    }

    #[test]
    fn the_identity_is_reseeded_only_when_behind() {
        assert_eq!(
            reseed_identity(&TableName::new(Some("shop"), "it's"), "id"),
            "IF IDENT_INCR('[shop].[it''s]') > 0 AND IDENT_CURRENT('[shop].[it''s]') < (SELECT MAX([id]) FROM [shop].[it's]) \
             DBCC CHECKIDENT ('[shop].[it''s]', RESEED);"
        );
    }

    #[test]
    fn an_identity_is_set_to_a_formatted_integer_with_its_table_as_a_literal() {
        assert_eq!(
            set_identity(&TableName::new(Some("shop"), "it's ü"), 3000),
            "DBCC CHECKIDENT (N'[shop].[it''s ü]', RESEED, 3000);"
        );
        assert_eq!(set_identity(&TableName::new(Some("dbo"), "t"), -5), "DBCC CHECKIDENT ('[dbo].[t]', RESEED, -5);");
    }

    #[test]
    fn a_sequence_restarts_at_a_formatted_integer_and_hands_it_out_or_restarts_at_its_start() {
        let hostile = TableName::new(Some("sales ]x"), "ticket 'no' ü");
        assert_eq!(
            set_sequence(&hostile, Some(9_007_199_254_740_993)),
            "ALTER SEQUENCE [sales ]]x].[ticket 'no' ü] RESTART WITH 9007199254740993; \
             SELECT NEXT VALUE FOR [sales ]]x].[ticket 'no' ü];"
        );
        let numbers = TableName::new(Some("dbo"), "ticket_numbers");
        assert_eq!(
            set_sequence(&numbers, Some(-40)),
            "ALTER SEQUENCE [dbo].[ticket_numbers] RESTART WITH -40; SELECT NEXT VALUE FOR [dbo].[ticket_numbers];"
        );
        assert_eq!(set_sequence(&numbers, None), "ALTER SEQUENCE [dbo].[ticket_numbers] RESTART;");
        assert_eq!(
            set_counters("DBCC CHECKIDENT ('[dbo].[t]', RESEED, 5); ALTER SEQUENCE [dbo].[s] RESTART;"),
            "SET XACT_ABORT ON; BEGIN TRANSACTION; DBCC CHECKIDENT ('[dbo].[t]', RESEED, 5); \
             ALTER SEQUENCE [dbo].[s] RESTART; COMMIT TRANSACTION;"
        );
    }

    #[test]
    fn a_row_too_long_for_a_bulk_load_is_inserted_with_parameters() {
        let columns = [temp("id", "bigint", None), temp("bio", "nvarchar(max)", Some("Latin1_General_CS_AS"))];
        assert_eq!(
            insert_row("[dbo].[Orders]", &columns, true),
            "SET IDENTITY_INSERT [dbo].[Orders] ON; \
             INSERT INTO [dbo].[Orders] ([id], [bio]) VALUES (CAST(@P1 AS bigint), CAST(@P2 AS nvarchar(max))); \
             SET IDENTITY_INSERT [dbo].[Orders] OFF;"
        );
        assert_eq!(
            insert_row(STAGE, &columns, false),
            "INSERT INTO #dmf_stage ([id], [bio]) VALUES (CAST(@P1 AS bigint), CAST(@P2 AS nvarchar(max)));"
        );
    }

    #[test]
    fn undo_log_rows_come_from_the_merge_log() {
        let undo = UndoImage { image: vec!["id", "na]me"], key_in_image: vec![0] };
        assert_eq!(
            undo_insert(&["id".into()], &undo),
            "INSERT INTO dmf.undo_log (run_id, migration, table_name, [key], [action], before_image) \
             SELECT @P6, @P1, @P7, (SELECT COALESCE(l.[new_0], l.[old_0]) AS [id] FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES), \
             LOWER(l.[action]), CASE WHEN l.[action] = N'INSERT' THEN NULL ELSE \
             (SELECT l.[old_0] AS [id], l.[old_1] AS [na]]me] FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES) END \
             FROM #dmf_merge_log AS l;"
        );
    }

    #[test]
    fn merge_batches_hold_merge_identity_insert_undo_and_checkpoint_in_one_transaction() {
        let checkpoint = save_checkpoint();
        let batch = merge_batch(&table(), Some("MERGE …;"), true, Some("INSERT INTO dmf.undo_log …;"));
        assert_eq!(
            batch,
            format!(
                "SET XACT_ABORT ON; BEGIN TRANSACTION; SET IDENTITY_INSERT [dbo].[Orders] ON; MERGE …; \
                 SET IDENTITY_INSERT [dbo].[Orders] OFF; INSERT INTO dmf.undo_log …; {checkpoint} COMMIT TRANSACTION; \
                 SELECT [action], COUNT_BIG(*) AS n FROM #dmf_merge_log GROUP BY [action]; \
                 TRUNCATE TABLE #dmf_stage; TRUNCATE TABLE #dmf_merge_log;"
            )
        );
        assert_eq!(
            merge_batch(&table(), None, true, None),
            format!(
                "SET XACT_ABORT ON; BEGIN TRANSACTION; {checkpoint} COMMIT TRANSACTION; \
                 SELECT [action], COUNT_BIG(*) AS n FROM #dmf_merge_log GROUP BY [action]; \
                 TRUNCATE TABLE #dmf_stage; TRUNCATE TABLE #dmf_merge_log;"
            )
        );
    }

    #[test]
    fn clearing_deletes_in_the_given_order() {
        let tables = [TableName::new(Some("dbo"), "lines"), TableName::new(Some("dbo"), "Order]s")];
        assert_eq!(
            clear(&tables, &[]),
            "SET XACT_ABORT ON; DECLARE @deleted bigint = 0; BEGIN TRANSACTION; \
             DELETE FROM [dbo].[lines]; SET @deleted = @deleted + @@ROWCOUNT; \
             DELETE FROM [dbo].[Order]]s]; SET @deleted = @deleted + @@ROWCOUNT; \
             COMMIT TRANSACTION; SELECT @deleted AS deleted;"
        );
        let unlink = [(tables[1].clone(), vec!["head id".to_owned(), "b".to_owned()])];
        assert_eq!(
            clear(&tables, &unlink),
            "SET XACT_ABORT ON; DECLARE @deleted bigint = 0; BEGIN TRANSACTION; \
             UPDATE [dbo].[Order]]s] SET [head id] = NULL, [b] = NULL WHERE [head id] IS NOT NULL OR [b] IS NOT NULL; \
             DELETE FROM [dbo].[lines]; SET @deleted = @deleted + @@ROWCOUNT; \
             DELETE FROM [dbo].[Order]]s]; SET @deleted = @deleted + @@ROWCOUNT; \
             COMMIT TRANSACTION; SELECT @deleted AS deleted;"
        );
    }

    #[test]
    fn json_paths_are_escaped_twice() {
        assert_eq!(json_path("id"), "'$.\"id\"'");
        assert_eq!(json_path("it's \"x\"\\"), "'$.\"it''s \\\"x\\\"\\\\\"'");
        assert_eq!(json_path("ü"), "N'$.\"ü\"'");
    }

    #[test]
    fn undo_replays_the_log() {
        let key = [UndoColumn { name: "id", native: "int".into() }];
        let image = [
            UndoColumn { name: "id", native: "int".into() },
            UndoColumn { name: "name", native: "nvarchar(50)".into() },
        ];
        let name = format!("CASE WHEN @json_escaped = 1 THEN {} ELSE b.[name] END", json_unescape("b.[name]"));
        assert_eq!(
            undo(&table(), &key, &image, true),
            format!(
                "SET XACT_ABORT ON; BEGIN TRANSACTION; DECLARE @deleted bigint = 0, @restored bigint = 0; \
                 DECLARE @json_escaped bit = 0; SELECT @json_escaped = CASE WHEN p.x = N'\\' THEN 0 ELSE 1 END \
                 FROM OPENJSON(N'{{\"x\":\"\\\\\"}}') WITH (x nvarchar(4) '$.x') AS p; \
                 DELETE t FROM dmf.undo_log AS u CROSS APPLY OPENJSON(u.[key]) WITH ([id] int '$.\"id\"') AS k \
                 JOIN [dbo].[Orders] AS t ON t.[id] = k.[id] WHERE u.run_id = @P1 AND u.migration = @P2 AND u.[action] = N'insert'; \
                 SET @deleted = @@ROWCOUNT; \
                 UPDATE t SET t.[name] = {name} FROM dmf.undo_log AS u CROSS APPLY OPENJSON(u.before_image) \
                 WITH ([id] int '$.\"id\"', [name] nvarchar(max) '$.\"name\"') AS b \
                 JOIN [dbo].[Orders] AS t ON t.[id] = b.[id] WHERE u.run_id = @P1 AND u.migration = @P2 AND u.[action] = N'update'; \
                 SET @restored = @@ROWCOUNT; \
                 SET IDENTITY_INSERT [dbo].[Orders] ON; \
                 INSERT INTO [dbo].[Orders] ([id], [name]) SELECT b.[id], {name} FROM dmf.undo_log AS u \
                 CROSS APPLY OPENJSON(u.before_image) WITH ([id] int '$.\"id\"', [name] nvarchar(max) '$.\"name\"') AS b \
                 WHERE u.run_id = @P1 AND u.migration = @P2 AND u.[action] = N'delete'; SET @restored = @restored + @@ROWCOUNT; \
                 SET IDENTITY_INSERT [dbo].[Orders] OFF; \
                 DELETE u FROM dmf.undo_log AS u WHERE u.run_id = @P1 AND u.migration = @P2; COMMIT TRANSACTION; SELECT @deleted AS deleted, @restored AS restored;"
            )
        );
    }

    #[test]
    fn a_text_key_is_matched_unescaped_where_the_server_left_it_escaped() {
        let key = [UndoColumn { name: "code", native: "varchar(10)".into() }];
        let sql = undo(&table(), &key, &key, false);
        let code = format!("CASE WHEN @json_escaped = 1 THEN {} ELSE k.[code] END", json_unescape("k.[code]"));
        let join =
            format!("WITH ([code] nvarchar(max) '$.\"code\"') AS k JOIN [dbo].[Orders] AS t ON t.[code] = {code} ");
        assert!(sql.contains(&join), "{sql}");
    }

    /// What PostgreSQL's `escape_json` writes for `text` (Babelfish's OPENJSON hands strings
    /// back so).
    fn jsonb_escaped(text: &str) -> String {
        text.chars()
            .map(|c| match c {
                '"' => "\\\"".to_owned(),
                '\\' => "\\\\".to_owned(),
                '\u{8}' => "\\b".to_owned(),
                '\u{c}' => "\\f".to_owned(),
                '\n' => "\\n".to_owned(),
                '\r' => "\\r".to_owned(),
                '\t' => "\\t".to_owned(),
                c if u32::from(c) < 32 => format!("\\u{:04x}", u32::from(c)),
                c => c.to_string(),
            })
            .collect()
    }

    #[test]
    fn the_unescapes_undo_what_jsonb_escaped_whatever_the_backslashes_around() {
        let texts = [
            "plain Zoë 🦀",
            "a\"b\\c",
            "\\",
            "ends with \\",
            "\\\"",
            "\\n is not a line feed, \n is",
            "\\u005c and \\u0001 as text",
            "tab\there\r\n\u{1}\u{1f}\u{8}\u{c}",
            "\\\\\"\"\\/",
            "it's",
        ];
        for text in texts {
            let escaped = jsonb_escaped(text);
            let undone =
                jsonb_unescapes().iter().fold(escaped.clone(), |value, (from, to)| value.replace(from.as_str(), to));
            assert_eq!(undone, text, "escaped as {escaped}");
        }
        assert_eq!(text_literal("\u{1f}"), "NCHAR(31)");
        assert_eq!(text_literal("\\\""), "N'\\\"'");
        assert_eq!(text_literal("'"), "N''''");
        let sql = json_unescape("b.[x]");
        let first = "REPLACE(b.[x], N'\\\\', N'\\u005c'), N'\\\"', N'\"'), N'\\/', N'/'), N'\\b', NCHAR(8))";
        assert!(sql.contains(first), "{sql}");
        assert!(sql.ends_with("N'\\u001f', NCHAR(31)), N'\\u005c', N'\\')"), "{sql}");
        assert_eq!(sql.matches("REPLACE(").count(), 35, "{sql}");
    }
}
