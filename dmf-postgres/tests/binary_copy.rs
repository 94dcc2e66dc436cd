//! Binary COPY loads exactly what text COPY loads: every type DMF encodes, at its edges and as
//! NULL, synced through each format into its own database and compared as PostgreSQL prints
//! the rows; values of other kinds than their column's (integers into `numeric`, fractions of
//! microseconds, text of a domain column) land as their text would; a table with a type DMF
//! does not encode goes as text, and so does a batch with a value that has no binary form.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::sync::Arc;

use chrono::{NaiveDate, NaiveTime};
use common::TestDb;
use dmf_core::catalog::TableName;
use dmf_core::sync::{Database, LoadSpec, ReadOrder, SyncMode, SyncPlan, WriteMode};
use dmf_core::{
    Checkpoint, ErrorKind, Extractor, LoadBatch, Loader, MigrationName, Position, Row, RowShape, RunId, Value,
};
use dmf_postgres::{CopyFormat, PgDatabase, PgLoader};
use futures::StreamExt;

const EDGE_SCHEMA: &str = r#"
CREATE DOMAIN positive AS integer CHECK (VALUE > 0);
CREATE DOMAIN label AS text CHECK (VALUE <> 'forbidden');
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE every_type (
    id integer PRIMARY KEY,
    b boolean, i2 smallint, i4 integer, i8 bigint, f4 real, f8 double precision,
    n numeric, n38 numeric(38,10), n5 numeric(5), n10 numeric(10,2),
    t text, vc varchar(10), c char(5), by bytea,
    d date, tm time, tm3 time(3), ts timestamp, ts0 timestamp(0), tz timestamptz,
    u uuid, j json, jb jsonb, dom positive, lab label
);
CREATE TABLE not_binary (
    id integer PRIMARY KEY, span interval, ints integer[], feeling mood, name text, at timestamptz
);
"#;

/// Edge values of every column, a row of NULLs, and rows that only differ in one column.
const EDGE_DATA: &str = r#"
INSERT INTO every_type VALUES
(0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL),
(1, true, 1, 2, 3, 1.5, 2.5, 1.5, 1.5, 1, 1.5, 'hello', 'hi', 'ab', '\x0102', '2024-02-29', '13:45:00.25',
    '13:45:00.125', '2024-02-29 13:45:00.25', '2024-02-29 13:45:01', '2024-02-29 13:45:00.25+02',
    '01234567-89ab-cdef-0123-456789abcdef', '{"a": 1}', '{"a": 1}', 5, 'x'),
(2, false, -32768, -2147483648, -9223372036854775808, '-Infinity', '-Infinity', '-Infinity',
    '-9999999999999999999999999999.9999999999', -99999, -0.01, '', '', '', '\x', '4713-11-24 BC', '00:00',
    '00:00:00.001', '4713-11-24 00:00:00 BC', '1999-12-31 23:59:59', '4713-11-24 00:00:00+00 BC',
    '00000000-0000-0000-0000-000000000000', '""', 'null', 1, ''),
(3, true, 32767, 2147483647, 9223372036854775807, 'Infinity', 'Infinity', 'Infinity',
    '9999999999999999999999999999.9999999999', 99999, 99999999.99,
    E'tab\there\nnew line\r\\ backslash \\N end \\. ', 'ten chars!', 'abcde', '\x005c00ff000a0d09',
    '200000-12-31', '23:59:59.999999', '23:59:59.999', '200000-12-31 23:59:59.999999', '200000-12-31 23:59:59',
    '200000-12-31 23:59:59.999999+00', 'ffffffff-ffff-ffff-ffff-ffffffffffff',
    '{"é": "日本🦀", "a": [1, 2.50, null], "a": "dup", "nul": "\u0000"}', '{"é": "日本🦀", "a": [1, 2.50, null]}',
    2147483647, E'\\'),
(4, false, 0, 0, 0, 'NaN', 'NaN', 'NaN', 0, 0, 0, '🦀 Zoë 日本語', 'ünï', 'é', '\x00',
    '1999-12-31', '12:00', '12:00', '1969-07-20 20:17:40.123456', '1970-01-01 00:00:00', '1899-12-31 23:59:59.999999+00',
    '123e4567-e89b-12d3-a456-426614174000', '[]', '{}', 42, 'label'),
(5, true, -1, -1, -1, '1.4e-45', '4.9e-324', '0.00000000000000000000000000000000000000000000000001', -0.0000000001,
    0, -0, 'a', 'b', 'c', '\xdeadbeef', '0044-03-15 BC', '00:00:00.000001', '00:00:00.999', '0044-03-15 12:00:00 BC',
    '0001-01-01 00:00:00', '1999-12-31 23:59:59.5-05:30', NULL, '1.5e300', '1e-7', NULL, NULL),
(6, NULL, NULL, NULL, NULL, '3.4028235e38', '1.7976931348623157e308',
    '123456789012345678901234567890123456789012345678901234567890.123456789012345678901234567890',
    '0.0000000001', NULL, NULL, repeat('long ', 200000), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL),
(7, NULL, NULL, NULL, NULL, '-0', '-0', '1e100', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL),
(8, NULL, NULL, NULL, NULL, '0.1', '0.1', '-1e-100', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
(9, NULL, NULL, NULL, NULL, '-1.17549435e-38', '2.2250738585072014e-308', '-0.000', NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO not_binary VALUES
(1, '1 year 2 mons -3 days 04:05:06.789', '{1,NULL,3}', 'happy', E'a\tb', '2024-01-01 00:00:00+00'),
(2, NULL, '{}', NULL, NULL, NULL),
(3, '-178000000 years', '{{1,2},{3,4}}', 'sad', '', '0044-03-15 12:00:00+00 BC');
"#;

/// Every row of `table` as PostgreSQL prints it, in key order.
async fn rows_as_text(db: &TestDb, table: &str) -> Vec<String> {
    let client = db.client().await;
    let rows = client.query(&format!("SELECT r::text FROM {table} r ORDER BY id"), &[]).await.unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

async fn edge_db(label: &str, data: bool) -> TestDb {
    let db = TestDb::create(label).await;
    let client = db.client().await;
    client.batch_execute(EDGE_SCHEMA).await.unwrap();
    if data {
        client.batch_execute(EDGE_DATA).await.unwrap();
    }
    db
}

fn with_format(db: &TestDb, format: CopyFormat) -> Arc<PgDatabase> {
    Arc::new(PgDatabase::lazy(&db.url).unwrap().copy_format(format))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_at_its_edges_lands_the_same_in_binary_and_in_text() {
    let source = edge_db("bin_edges_src", true).await;
    let (binary, text) = (edge_db("bin_edges_bin", false).await, edge_db("bin_edges_txt", false).await);
    let from = source.database();
    for (db, format) in [(&binary, CopyFormat::Binary), (&text, CopyFormat::Text)] {
        let summary = common::sync(&from, &with_format(db, format), SyncMode::Full, false).await;
        assert!(summary.succeeded(), "{format}: {summary}");
    }
    // Straight through one loader: the values PostgreSQL's rows are read as all have their
    // binary form (else the loader would have turned to text).
    let direct = edge_db("bin_edges_direct", false).await;
    let catalog = from.read_catalog().await.unwrap();
    let plan = SyncPlan::build(&catalog, &catalog, None, SyncMode::Full).unwrap();
    for table in &plan.tables {
        let mut extractor = from.extractor(table.extract_spec(&table.columns, ReadOrder::Key, false));
        let batch = extractor.extract(None, NonZeroUsize::new(100).unwrap()).next().await.unwrap().unwrap();
        let spec = table.load_spec(&table.columns, WriteMode::Insert, BTreeSet::new());
        let mut loader = with_format(&direct, CopyFormat::Binary).loader(spec);
        let migration = MigrationName::new(table.target.name.to_string());
        let checkpoint = Checkpoint::at(batch.position.clone());
        let records = &batch.records;
        let load = LoadBatch { migration: &migration, run: RunId(1), records, checkpoint: &checkpoint };
        assert_eq!(loader.load(load).await.unwrap().inserted, records.len() as u64);
        let expected = if table.target.name.name == "not_binary" { CopyFormat::Text } else { CopyFormat::Binary };
        assert_eq!(loader.copy_format(), Some(expected), "{}", table.target.name);
    }

    for table in ["every_type", "not_binary"] {
        let expected = rows_as_text(&source, table).await;
        assert_eq!(expected.len(), if table == "every_type" { 10 } else { 3 });
        assert_eq!(rows_as_text(&direct, table).await, expected, "one binary loader of {table}");
        assert_eq!(rows_as_text(&text, table).await, expected, "text COPY of {table}");
        assert_eq!(rows_as_text(&binary, table).await, expected, "binary COPY of {table}");
    }

    // An upsert goes through the stage table: change some rows, add one, sync again.
    source
        .client()
        .await
        .batch_execute(
            "UPDATE every_type SET n = n * -3, t = t || E'\\t🦀', ts = ts - interval '1 microsecond', \
             jb = jsonb_build_object('k', id) WHERE id IN (1, 4, 5); \
             INSERT INTO every_type (id, n38, tz, dom) VALUES (10, 0.5, '2000-01-01 00:00:00+00', 3); \
             UPDATE not_binary SET span = span * 2, ints = ints || 9 WHERE id = 1",
        )
        .await
        .unwrap();
    for (db, format) in [(&binary, CopyFormat::Binary), (&text, CopyFormat::Text)] {
        let summary = common::sync(&from, &with_format(db, format), SyncMode::Upsert, true).await;
        assert!(summary.succeeded(), "{format}: {summary}");
        assert_eq!(common::counts(&summary, "public.every_type"), (11, 1, 3, 7, 0), "{format}: {summary}");
    }
    for table in ["every_type", "not_binary"] {
        let expected = rows_as_text(&source, table).await;
        assert_eq!(rows_as_text(&text, table).await, expected, "text COPY of {table} after the upsert");
        assert_eq!(rows_as_text(&binary, table).await, expected, "binary COPY of {table} after the upsert");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rich_schema_lands_the_same_in_binary_and_in_text() {
    let (source, binary) = common::rich_pair("bin_rich").await;
    let text = TestDb::create("bin_rich_txt").await;
    text.client().await.batch_execute(common::RICH_SCHEMA).await.unwrap();
    let from = source.database();
    for (db, format) in [(&binary, CopyFormat::Binary), (&text, CopyFormat::Text)] {
        let summary = common::sync(&from, &with_format(db, format), SyncMode::Full, false).await;
        assert!(summary.succeeded(), "{format}: {summary}");
    }
    let expected = common::fingerprints(&source.client().await).await;
    assert_eq!(common::fingerprints(&text.client().await).await, expected, "text COPY");
    assert_eq!(common::fingerprints(&binary.client().await).await, expected, "binary COPY");
}

/// `every_type` without its domain columns, so that every column has a binary form DMF reads,
/// and the same with an enum column, which has none: its rows are decoded as they are read.
const EVERY_WIRE: &str = "
CREATE TABLE every_wire AS
    SELECT id, b, i2, i4, i8, f4, f8, n, n38, n5, n10, t, vc, c, by, d, tm, tm3, ts, ts0, tz, u, j, jb
    FROM every_type;
ALTER TABLE every_wire ADD PRIMARY KEY (id);
CREATE TABLE every_wire_decoded AS SELECT *, NULL::mood AS feeling FROM every_wire;
ALTER TABLE every_wire_decoded ADD PRIMARY KEY (id);
";

/// Columns the target declares narrower than the source: the receive functions round and
/// check them as the input functions do.
const NARROW_SOURCE: &str = "
CREATE TABLE narrow (id integer PRIMARY KEY, t text, n numeric, ts timestamp, tm time, c text);
INSERT INTO narrow VALUES (1, 'abc', 1.005, '2024-01-01 12:00:00.75', '12:00:00.25', 'ab'),
    (2, 'abcde', -99999999.994, '1999-12-31 23:59:59.5', '23:59:59.4', '');
";
const NARROW_TARGET: &str = "
CREATE TABLE narrow (id integer PRIMARY KEY, t varchar(5), n numeric(10,2), ts timestamp(0), tm time(0),
    c char(4));
";

/// Every row of `table` as one batch read by a sync's extractor.
async fn read_all(database: &Arc<PgDatabase>, table: &str) -> dmf_core::Result<Vec<Row>> {
    let catalog = database.read_catalog().await.unwrap();
    let plan = SyncPlan::build(&catalog, &catalog, None, SyncMode::Full).unwrap();
    let table = plan.tables.iter().find(|t| t.source.name.name == table).unwrap();
    let mut extractor = database.extractor(table.extract_spec(&table.columns, ReadOrder::Key, false));
    let batch = extractor.extract(None, NonZeroUsize::new(100).unwrap()).next().await.unwrap()?;
    Ok(batch.records)
}

/// A target for the source of [`rows_kept_in_binary…`]: the edge schema, `every_wire` with two
/// columns wider than the source's, and the narrow table.
async fn wire_target(label: &str) -> TestDb {
    let db = edge_db(label, false).await;
    let every_wire = EVERY_WIRE.replace("FROM every_type", "FROM every_type WHERE false");
    let wider = "ALTER TABLE every_wire ALTER COLUMN vc TYPE text, ALTER COLUMN n5 TYPE numeric;";
    db.client().await.batch_execute(&format!("{every_wire} {wider} {NARROW_TARGET}")).await.unwrap();
    db
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_kept_in_binary_decode_as_read_values_do_and_land_as_they_were_read() {
    let source = edge_db("bin_wire_src", true).await;
    source.client().await.batch_execute(&format!("{EVERY_WIRE} {NARROW_SOURCE}")).await.unwrap();
    let from = source.database();

    // Kept in binary where every column has a binary form DMF reads, and loaded into columns
    // of the same binary forms without being decoded.
    let kept = read_all(&from, "every_wire").await.unwrap();
    assert_eq!(kept.len(), 10);
    assert!(kept.iter().all(|row| row.native_bytes().is_some()), "kept in binary");
    let direct = wire_target("bin_wire_direct").await;
    let (mut loader, _) = loader(&direct, CopyFormat::Binary, "every_wire", &[]).await;
    let migration = MigrationName::new("as read");
    let checkpoint = Checkpoint::at(Position::new("p"));
    let batch = LoadBatch { migration: &migration, run: RunId(1), records: &kept, checkpoint: &checkpoint };
    assert_eq!(loader.load(batch).await.unwrap().inserted, 10);
    assert!(kept.iter().all(|row| !row.is_decoded()), "the loader copied the bytes without decoding them");
    assert_eq!(rows_as_text(&direct, "every_wire").await, rows_as_text(&source, "every_wire").await);

    // A batch mixing runs of rows of one page (sent as slices of it), rows out of page order, a
    // row in a page of its own and a row made from values (encoded) lands the same rows.
    let mixed_target = wire_target("bin_wire_mixed").await;
    let (mut mixed_loader, _) = self::loader(&mixed_target, CopyFormat::Binary, "every_wire", &[]).await;
    let from_values = Row::new(Arc::clone(kept[2].shape()), kept[2].clone().into_values());
    let mut mixed = vec![kept[1].clone(), kept[0].clone(), from_values, kept[3].clone().detached()];
    mixed.extend([&kept[5], &kept[6], &kept[4], &kept[7], &kept[8], &kept[9]].map(Clone::clone));
    let batch = LoadBatch { migration: &migration, run: RunId(1), records: &mixed, checkpoint: &checkpoint };
    assert_eq!(mixed_loader.load(batch).await.unwrap().inserted, 10);
    assert!(mixed[5..].iter().all(|row| !row.is_decoded()), "copied as they are");
    assert_eq!(rows_as_text(&mixed_target, "every_wire").await, rows_as_text(&source, "every_wire").await);

    // Decoded, they are the values the same rows give when decoded as they are read (a table
    // with an enum column).
    let decoded = read_all(&from, "every_wire_decoded").await.unwrap();
    assert_eq!(decoded.len(), kept.len());
    assert!(decoded.iter().all(|row| row.native_bytes().is_none()), "an enum column: decoded when read");
    for (kept, decoded) in kept.iter().zip(&decoded) {
        // Compared as printed: NaN is not equal to itself.
        let printed = |values: &[Value]| values.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>();
        let width = kept.values().len();
        assert_eq!(printed(kept.values()), printed(&decoded.values()[..width]), "{}", dmf_core::Record::key(kept));
    }

    // A sync between PostgreSQL databases: each target prints the source's rows, into columns
    // of the same types and into wider ones (varchar into text, numeric(5) into numeric); into
    // narrower ones the target rounds and pads exactly as with text COPY.
    let (binary, text) = (wire_target("bin_wire_dst").await, wire_target("bin_wire_txt").await);
    for (db, format) in [(&binary, CopyFormat::Binary), (&text, CopyFormat::Text)] {
        let summary = common::sync(&from, &with_format(db, format), SyncMode::Full, false).await;
        assert!(summary.succeeded(), "{format}: {summary}");
    }
    for table in ["every_wire", "every_wire_decoded", "every_type"] {
        let expected = rows_as_text(&source, table).await;
        assert_eq!(rows_as_text(&binary, table).await, expected, "{table}");
        assert_eq!(rows_as_text(&text, table).await, expected, "{table} by text COPY");
    }
    let narrow = rows_as_text(&binary, "narrow").await;
    assert_eq!(narrow, rows_as_text(&text, "narrow").await, "narrower columns: binary as text COPY");
    assert_eq!(
        narrow,
        [
            r#"(1,abc,1.01,"2024-01-01 12:00:01",12:00:00,"ab  ")"#,
            r#"(2,abcde,-99999999.99,"1999-12-31 23:59:59",23:59:59,"    ")"#
        ]
    );

    // A value the source keeps but DMF cannot represent fails the read, naming the column.
    source.client().await.batch_execute("UPDATE every_wire SET ts = 'infinity' WHERE id = 4").await.unwrap();
    let error = read_all(&from, "every_wire").await.unwrap_err().to_string();
    assert!(error.contains("column `ts` (timestamp without time zone) of public.every_wire, row id=4"), "{error}");
    source.client().await.batch_execute("UPDATE every_wire SET ts = NULL, tm = '24:00' WHERE id = 4").await.unwrap();
    let error = read_all(&from, "every_wire").await.unwrap_err().to_string();
    assert!(error.contains("column `tm` (time without time zone) of public.every_wire, row id=4"), "{error}");
    assert!(error.contains("24:00:00 or more"), "{error}");
    // The same on a table decoded as it is read (it has an enum column).
    source.client().await.batch_execute("UPDATE every_wire_decoded SET tm = '24:00' WHERE id = 4").await.unwrap();
    let error = read_all(&from, "every_wire_decoded").await.unwrap_err().to_string();
    assert!(error.contains("column `tm` (time without time zone) of public.every_wire_decoded"), "{error}");
    assert!(error.contains("24:00:00 or more"), "{error}");
}

/// A loader of `table`'s `columns` (every column when empty) into `db`, inserting.
async fn loader(db: &TestDb, format: CopyFormat, table: &str, columns: &[&str]) -> (PgLoader, Arc<RowShape>) {
    let database = with_format(db, format);
    let catalog = database.read_catalog().await.unwrap();
    let table = catalog.table(&TableName::new(Some("public"), table)).unwrap();
    let columns: Vec<_> = if columns.is_empty() {
        table.columns.clone()
    } else {
        columns.iter().map(|c| table.column(c).unwrap().clone()).collect()
    };
    let shape = Arc::new(RowShape {
        table: table.name.clone(),
        columns: columns.iter().map(|c| c.name.clone()).collect(),
        key: vec![0],
    });
    let spec = LoadSpec {
        table: table.name.clone(),
        columns,
        key: vec!["id".into()],
        write: WriteMode::Insert,
        null_columns: BTreeSet::new(),
        undo: false,
        trust_foreign_keys: false,
    };
    (database.loader(spec), shape)
}

async fn load(loader: &mut PgLoader, shape: &Arc<RowShape>, rows: &[Vec<Value>]) -> dmf_core::Result<u64> {
    let records: Vec<Row> = rows.iter().map(|values| Row::new(Arc::clone(shape), values.clone())).collect();
    let migration = MigrationName::new("binary copy");
    let checkpoint = Checkpoint::at(Position::new("p"));
    let batch = LoadBatch { migration: &migration, run: RunId(1), records: &records, checkpoint: &checkpoint };
    loader.load(batch).await.map(|report| report.inserted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_of_other_kinds_than_their_column_land_as_their_text_would() {
    let (binary, text) = (edge_db("bin_kinds_bin", false).await, edge_db("bin_kinds_txt", false).await);
    let columns = ["id", "f4", "f8", "n", "n10", "t", "vc", "tm", "tm3", "ts", "ts0", "tz", "dom", "lab", "j", "jb"];
    let day = NaiveDate::from_ymd_opt(1999, 12, 31).unwrap();
    let at = |nanos| day.and_time(NaiveTime::from_hms_nano_opt(23, 59, 59, nanos).unwrap());
    let time = |nanos| NaiveTime::from_hms_nano_opt(23, 59, 59, nanos).unwrap();
    let rows: Vec<Vec<Value>> = vec![
        vec![
            Value::Int(1),
            Value::Int(16_777_217),
            Value::Int((1 << 53) + 1),
            Value::Int(i64::MIN),
            Value::Int(-7),
            Value::Int(42),
            Value::Bool(true),
            Value::Time(time(123_456_789)),
            Value::Time(time(999_500_000)),
            Value::Timestamp(at(500)),
            Value::Timestamp(at(500_000_000)),
            Value::TimestampTz(at(999_999_500).and_utc()),
            Value::Text("+17".into()),
            Value::Int(7),
            Value::Text("\"plain text as json\"".into()),
            Value::Decimal("12.50".into()),
        ],
        vec![
            Value::Int(2),
            Value::Float(0.1),
            Value::Float(-0.0),
            Value::Float(0.1),
            Value::Float(1.005),
            Value::Float(1e300),
            Value::Int(12_345),
            Value::Time(time(1_500)),
            Value::Time(time(2_500)),
            Value::Date(day),
            Value::TimestampTz(at(1_500).and_utc()),
            Value::TimestampTz(at(2_500).and_utc()),
            Value::Text("2147483647".into()),
            Value::Bytes(vec![0, 0xff]),
            Value::Int(3),
            Value::Json("{\"b\": [1, {\"é\": null}], \"a\": 1.50}".into()),
        ],
        vec![
            Value::Int(3),
            Value::Float(1e-40),
            Value::Float(f64::NAN),
            Value::Decimal("1.5e-7".into()),
            Value::Decimal("+.5".into()),
            Value::Json("[1]".into()),
            Value::Decimal("5.".into()),
            Value::Time(time(999_999_500)),
            Value::Time(time(999_999_999)),
            Value::TimestampTz(at(123_456_789).and_utc()),
            Value::Timestamp(at(999_999_999)),
            Value::TimestampTz(at(0).and_utc()),
            Value::Null,
            Value::Float(f64::NEG_INFINITY),
            Value::Decimal("-0.00".into()),
            Value::Text("false".into()),
        ],
        vec![
            Value::Int(4),
            Value::Float(f64::from(f32::MAX)),
            Value::Float(f64::MIN_POSITIVE / 4.0),
            Value::Float(f64::NAN),
            Value::Int(99_999_999),
            Value::Date(day),
            Value::Float(0.5),
            Value::Null,
            Value::Null,
            Value::Timestamp(NaiveDate::from_ymd_opt(-43, 3, 15).unwrap().and_hms_nano_opt(12, 0, 0, 7_500).unwrap()),
            Value::Null,
            Value::TimestampTz(NaiveDate::from_ymd_opt(-4713, 11, 24).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc()),
            Value::Text("2".into()),
            Value::Null,
            Value::Float(2.5),
            Value::Int(-1),
        ],
    ];
    for (db, format) in [(&binary, CopyFormat::Binary), (&text, CopyFormat::Text)] {
        let (mut loader, shape) = loader(db, format, "every_type", &columns).await;
        assert_eq!(loader.copy_format(), None, "not prepared yet");
        assert_eq!(load(&mut loader, &shape, &rows).await.unwrap(), 4, "{format}");
        assert_eq!(loader.copy_format(), Some(format), "every value had a binary form");
    }
    let expected = rows_as_text(&text, "every_type").await;
    assert_eq!(rows_as_text(&binary, "every_type").await, expected);
    // Fractions of a microsecond were rounded as PostgreSQL rounds their text.
    assert!(expected[0].contains("23:59:59.123457"), "{}", expected[0]);
    assert!(expected[2].contains("1999-12-31 23:59:59.123457"), "{}", expected[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_has_no_binary_form_goes_as_text_and_postgresql_still_refuses_what_it_refuses() {
    let db = edge_db("bin_fallback", false).await;

    // A type DMF does not encode: the whole table goes as text, from the first batch.
    let (mut intervals, shape) = loader(&db, CopyFormat::Binary, "not_binary", &["id", "span"]).await;
    let rows = vec![vec![Value::Int(1), Value::Text("1 day 02:00:00".into())]];
    assert_eq!(load(&mut intervals, &shape, &rows).await.unwrap(), 1);
    assert_eq!(intervals.copy_format(), Some(CopyFormat::Text));

    // A value of an unexpected kind (text into a date column) sends its batch as text, and
    // every later batch of the loader too.
    let (mut dates, shape) = loader(&db, CopyFormat::Binary, "every_type", &["id", "d", "i2", "n"]).await;
    let row = |id, d: Value, i2, n: &str| vec![Value::Int(id), d, Value::Int(i2), Value::Decimal(n.into())];
    let day = Value::Date(NaiveDate::from_ymd_opt(2024, 1, 31).unwrap());
    assert_eq!(load(&mut dates, &shape, &[row(1, day.clone(), 1, "1")]).await.unwrap(), 1);
    assert_eq!(dates.copy_format(), Some(CopyFormat::Binary));
    let batch = [row(2, day.clone(), 2, "2"), row(3, Value::Text("2024-02-01".into()), 3, "3")];
    assert_eq!(load(&mut dates, &shape, &batch).await.unwrap(), 2);
    assert_eq!(dates.copy_format(), Some(CopyFormat::Text));

    // A value out of what the binary form carries sends only its batch as text: PostgreSQL
    // reads what it can (a decimal with spaces) and refuses the rest with its own message.
    let (mut values, shape) = loader(&db, CopyFormat::Binary, "every_type", &["id", "d", "i2", "n"]).await;
    assert_eq!(load(&mut values, &shape, &[row(4, day.clone(), 4, " 4.50 ")]).await.unwrap(), 1);
    assert_eq!(values.copy_format(), Some(CopyFormat::Binary));
    let error =
        load(&mut values, &shape, &[row(5, day.clone(), 5, "5"), row(6, day.clone(), 40_000, "6")]).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Data, "{}", error.chain());
    assert!(error.chain().contains("value \"40000\" is out of range for type smallint"), "{}", error.chain());
    assert_eq!(values.copy_format(), Some(CopyFormat::Binary));
    let error = load(&mut values, &shape, &[row(7, day, 7, "1e131072")]).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Data, "{}", error.chain());
    assert!(error.chain().contains("value overflows numeric format"), "{}", error.chain());

    let client = db.client().await;
    let loaded: Vec<String> = client
        .query("SELECT concat_ws(' ', id, d, i2, n) FROM every_type ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(loaded, ["1 2024-01-31 1 1", "2 2024-01-31 2 2", "3 2024-02-01 3 3", "4 2024-01-31 4 4.50"]);
}

/// A small deterministic generator (xorshift64*), so a failure can be replayed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn digits(&mut self, n: u64) -> String {
        (0..n).map(|_| char::from(b'0' + self.below(10) as u8)).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_decimals_floats_and_fractions_of_microseconds_land_as_their_text_would() {
    let schema = "CREATE TABLE random (id integer PRIMARY KEY, n numeric, n5 numeric(12,5), f4 real, f8 double precision, \
                  ts timestamp, tz timestamptz, tm time, tm3 time(3))";
    let (binary, text) = (TestDb::create("bin_random_bin").await, TestDb::create("bin_random_txt").await);
    for db in [&binary, &text] {
        db.client().await.batch_execute(schema).await.unwrap();
    }
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let rows: Vec<Vec<Value>> = (0..3000)
        .map(|id| {
            let sign = if random.below(2) == 0 { "-" } else { "" };
            let int = random.below(30);
            let frac = random.below(30);
            let mut decimal = format!("{sign}{}", random.digits(int));
            if frac > 0 || int == 0 {
                decimal = format!("{decimal}.{}", random.digits(frac.max(1)));
            }
            if random.below(4) == 0 {
                decimal = format!("{decimal}e{}", random.below(80) as i64 - 40);
            }
            let (int, frac) = (random.below(8), random.below(9) + 1);
            let small = format!("{sign}{}.{}", random.digits(int), random.digits(frac));
            // Near the midpoint of two neighbouring reals, where rounding twice would differ.
            let real = f32::from_bits(random.below(0x7f00_0000) as u32);
            let midpoint = (f64::from(real) + f64::from(f32::from_bits(real.to_bits() + 1))) / 2.0;
            let near = f64::from_bits((midpoint.to_bits() as i64 + random.below(5) as i64 - 2) as u64);
            let double = f64::from_bits(random.next());
            let day = NaiveDate::from_num_days_from_ce_opt(random.below(3_700_000) as i32 - 300_000).unwrap();
            let time = NaiveTime::from_num_seconds_from_midnight_opt(
                random.below(86_400) as u32,
                random.below(1_000_000_000) as u32,
            )
            .unwrap();
            vec![
                Value::Int(id),
                Value::Decimal(decimal),
                Value::Decimal(small),
                Value::Float(if random.below(2) == 0 { near } else { f64::from(real) }),
                Value::Float(double),
                Value::Timestamp(day.and_time(time)),
                Value::TimestampTz(day.and_time(time).and_utc()),
                Value::Time(time),
                Value::Time(time),
            ]
        })
        .collect();
    for (db, format) in [(&binary, CopyFormat::Binary), (&text, CopyFormat::Text)] {
        let (mut loader, shape) = loader(db, format, "random", &[]).await;
        assert_eq!(load(&mut loader, &shape, &rows).await.unwrap(), 3000, "{format}");
        assert_eq!(loader.copy_format(), Some(format));
    }
    let expected = rows_as_text(&text, "random").await;
    let loaded = rows_as_text(&binary, "random").await;
    for (expected, loaded) in expected.iter().zip(&loaded) {
        assert_eq!(loaded, expected);
    }
    assert_eq!(loaded.len(), 3000);
}
