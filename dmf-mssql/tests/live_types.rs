//! Live (needs `DMF_TEST_MSSQL_URL`): every SQL Server type DMF maps, with its edge values
//! (NULL, minimum and maximum, empty, unicode, values over the 64 KiB a bulk load carries),
//! read through the keyset extractor and compared with the value it stands for, then
//! bulk-loaded by the loader into an emptied table (`full`) and through the stage (`upsert`),
//! and read back equal: through the extractor again, and cell by cell as the server sends it.
//! An unchanged re-run of the upsert writes nothing and a NULLed value is found changed, so
//! every type's comparison works. Keys of every kind page in order across small batches.
//!
//! One test per type family; a failure names the type, the row and the literal.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod live_common;

use std::num::NonZeroUsize;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use dmf_core::catalog::TableName;
use dmf_core::sync::{Database, ReadOrder, SyncJob, SyncMode, SyncPlan};
use dmf_core::{EngineConfig, Extractor, RejectLimit, RunRequest, RunStatus, RunSummary, Value};
use dmf_mssql::MssqlDatabase;
use futures::StreamExt;
use live_common::{TestDb, UPSERT_STRATEGIES, server_url};

/// One column type and its values: the T-SQL expression inserted, and the value DMF must
/// read for it.
struct Case {
    /// The column's type, as written in `CREATE TABLE`.
    ty: &'static str,
    values: Vec<(String, Value)>,
}

fn case(ty: &'static str, values: Vec<(&str, Value)>) -> Case {
    let mut values: Vec<(String, Value)> = values.into_iter().map(|(sql, value)| (sql.to_owned(), value)).collect();
    values.push(("NULL".to_owned(), Value::Null));
    Case { ty, values }
}

/// The table a case's values live in: its type with the punctuation turned into `_`.
fn table_of(case: &Case) -> String {
    let name: String = case.ty.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!("t_{}", name.trim_end_matches('_'))
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn dec(s: &str) -> Value {
    Value::Decimal(s.to_owned())
}

fn bytes(b: &[u8]) -> Value {
    Value::Bytes(b.to_vec())
}

fn date(s: &str) -> Value {
    Value::Date(NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap())
}

fn time(s: &str) -> Value {
    Value::Time(NaiveTime::parse_from_str(s, "%H:%M:%S%.f").unwrap())
}

fn timestamp(s: &str) -> Value {
    Value::Timestamp(NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").unwrap())
}

fn instant(s: &str) -> Value {
    Value::TimestampTz(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc))
}

fn guid(s: &str) -> Value {
    Value::Uuid(uuid::Uuid::parse_str(s).unwrap())
}

/// Reads every row of `table` through the keyset extractor, two rows a page.
async fn read_all(database: &MssqlDatabase, plan: &SyncPlan, table: &str, from_target: bool) -> Vec<Vec<Value>> {
    let table_plan = plan.tables.iter().find(|t| t.source.name.name == table).unwrap();
    let spec = table_plan.extract_spec(&table_plan.columns, ReadOrder::Key, from_target);
    let mut extractor = database.extractor(spec);
    let mut stream = extractor.extract(None, NonZeroUsize::new(2).unwrap());
    let mut rows = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.unwrap_or_else(|e| panic!("reading {table}: {}", e.chain()));
        rows.extend(batch.records.iter().map(|row| row.values().to_vec()));
    }
    rows
}

/// Checks that `rows` (read from `side`) hold each case's values, in id order; a failure
/// lists every value read wrong.
fn assert_values(case: &Case, rows: &[Vec<Value>], side: &str) {
    let ids: Vec<Value> = rows.iter().map(|row| row[0].clone()).collect();
    let expected_ids: Vec<Value> = (1..=case.values.len() as i64).map(Value::Int).collect();
    assert_eq!(ids, expected_ids, "{} in the {side}: every row once, in key order", case.ty);
    let clip = |text: String| {
        if text.chars().count() > 120 {
            format!("{}… ({} bytes)", text.chars().take(120).collect::<String>(), text.len())
        } else {
            text
        }
    };
    let wrong: Vec<String> = case
        .values
        .iter()
        .zip(rows)
        .enumerate()
        .filter(|(_, ((_, expected), row))| row[1] != *expected)
        .map(|(i, ((sql, expected), row))| {
            format!(
                "  id {} inserted as `{}`: read {}, expected {}",
                i + 1,
                clip(sql.clone()),
                clip(format!("{:?}", row[1])),
                clip(format!("{expected:?}"))
            )
        })
        .collect();
    assert!(wrong.is_empty(), "{} in the {side}:\n{}", case.ty, wrong.join("\n"));
}

/// Each value as the server sends it (tiberius's cells, not DMF's decoding), in id order; a
/// `datetimeoffset` at offset +00:00, since DMF keeps the instant and writes offset 0.
async fn cells(db: &TestDb, case: &Case) -> Vec<dmf_mssql::SqlRow> {
    let column = if case.ty.starts_with("datetimeoffset") { "SWITCHOFFSET(v, '+00:00')" } else { "v" };
    let sql = format!("SELECT id, {column} FROM dbo.{} ORDER BY id", table_of(case));
    db.session().await.query(&sql, &[]).await.unwrap_or_else(|e| panic!("{e}\n{sql}"))
}

async fn sync(
    source: &Arc<MssqlDatabase>,
    target: &Arc<MssqlDatabase>,
    mode: SyncMode,
    tables: &[TableName],
) -> RunSummary {
    let engine = EngineConfig::builder().batch_size(2).reject_limit(RejectLimit::Count(0)).build().unwrap();
    SyncJob::new(Arc::clone(source), Arc::clone(target), mode)
        .engine(engine)
        .jobs(4)
        .tables(tables.to_vec())
        .run(RunRequest::all().force())
        .await
        .unwrap()
}

/// The round trip of every case of one family; see the module documentation.
async fn round_trip(family: &str, cases: Vec<Case>) {
    let url = server_url(family).await;
    let source_db = TestDb::create(&url, &format!("{}_src", &family[..family.len().min(8)])).await;
    let full_db = TestDb::create(&url, &format!("{}_full", &family[..family.len().min(8)])).await;
    let mut ddl = String::new();
    let mut rows = String::new();
    for case in &cases {
        let table = table_of(case);
        ddl.push_str(&format!("CREATE TABLE dbo.{table} (id int NOT NULL PRIMARY KEY, v {} NULL);\n", case.ty));
        for (i, (sql, _)) in case.values.iter().enumerate() {
            rows.push_str(&format!("INSERT INTO dbo.{table} (id, v) VALUES ({}, {sql});\n", i + 1));
        }
    }
    source_db.batch(&format!("{ddl}{rows}")).await;
    full_db.batch(&ddl).await;
    let tables: Vec<TableName> = cases.iter().map(|c| TableName::new(Some("dbo"), &table_of(c))).collect();
    let source = source_db.database();

    // Read through the extractor: each value is the one it stands for.
    let plan = SyncJob::new(Arc::clone(&source), full_db.database(), SyncMode::Full)
        .tables(tables.clone())
        .plan()
        .await
        .unwrap();
    for case in &cases {
        assert_values(case, &read_all(&source, &plan, &table_of(case), false).await, "source");
    }

    // Bulk-loaded into emptied tables, read back equal.
    let full = full_db.database();
    let summary = sync(&source, &full, SyncMode::Full, &tables).await;
    assert_eq!(summary.status, RunStatus::Completed, "{summary}");
    for case in &cases {
        let counts = summary.migration(&format!("dbo.{}", table_of(case))).unwrap().counts;
        let n = case.values.len() as u64;
        assert_eq!((counts.read, counts.inserted, counts.rejected), (n, n, 0), "{}: {summary}", case.ty);
        assert_values(case, &read_all(&full, &plan, &table_of(case), true).await, "target of a full sync");
        assert_eq!(cells(&full_db, case).await, cells(&source_db, case).await, "{}: the server's own cells", case.ty);
    }

    // Through the stage with each upsert strategy this server has.
    for &strategy in UPSERT_STRATEGIES {
        let upsert_db = TestDb::create(&url, &format!("{}_up", &family[..family.len().min(8)])).await;
        upsert_db.batch(&ddl).await;
        let target = upsert_db.upserting(strategy);
        let first = sync(&source, &target, SyncMode::Upsert, &tables).await;
        assert_eq!(first.status, RunStatus::Completed, "{strategy:?}: {first}");
        assert_eq!(first.totals().inserted, cases.iter().map(|c| c.values.len() as u64).sum::<u64>(), "{first}");
        for case in &cases {
            assert_values(case, &read_all(&target, &plan, &table_of(case), true).await, "target of an upsert");
            assert_eq!(cells(&upsert_db, case).await, cells(&source_db, case).await, "{strategy:?}: {}", case.ty);
        }
        let again = sync(&source, &target, SyncMode::Upsert, &tables).await;
        assert_eq!(again.status, RunStatus::Completed, "{strategy:?}: {again}");
        for case in &cases {
            let counts = again.migration(&format!("dbo.{}", table_of(case))).unwrap().counts;
            assert_eq!(
                (counts.inserted, counts.updated),
                (0, 0),
                "{strategy:?}, {}: an unchanged value was found different\n{again}",
                case.ty
            );
        }
        // Every value NULLed in the target is found changed and written back.
        for case in &cases {
            upsert_db.batch(&format!("UPDATE dbo.{} SET v = NULL", table_of(case))).await;
        }
        // The same pool: its sessions recorded the runs before and staged their upserts
        // (see live_server's `a_session_that_checked_a_foreign_key…`).
        let repair = sync(&source, &target, SyncMode::Upsert, &tables).await;
        assert_eq!(repair.status, RunStatus::Completed, "{strategy:?}: {repair}");
        for case in &cases {
            let counts = repair.migration(&format!("dbo.{}", table_of(case))).unwrap().counts;
            let not_null = case.values.iter().filter(|(_, v)| *v != Value::Null).count() as u64;
            assert_eq!((counts.inserted, counts.updated), (0, not_null), "{strategy:?}, {}\n{repair}", case.ty);
            assert_values(case, &read_all(&target, &plan, &table_of(case), true).await, "target after the repair");
        }
    }
}

macro_rules! type_families {
    ($($(#[$attr:meta])* $name:ident => $cases:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        #[cfg_attr(
            dmf_mssql_server = "none",
            ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
        )]
        $(#[$attr])*
        async fn $name() {
            round_trip(stringify!($name), $cases).await;
        }
    )*};
}

fn long(unit: &str, times: usize) -> String {
    unit.repeat(times)
}

type_families! {
    bit_and_integers_round_trip => vec![
        case("bit", vec![("0", Value::Bool(false)), ("1", Value::Bool(true))]),
        case("tinyint", vec![("0", Value::Int(0)), ("255", Value::Int(255))]),
        case("smallint", vec![("-32768", Value::Int(-32768)), ("32767", Value::Int(32767))]),
        case("int", vec![("-2147483648", Value::Int(i64::from(i32::MIN))), ("2147483647", Value::Int(i64::from(i32::MAX)))]),
        case("bigint", vec![
            ("CAST(-9223372036854775808 AS bigint)", Value::Int(i64::MIN)),
            ("9223372036854775807", Value::Int(i64::MAX)),
            ("0", Value::Int(0)),
        ]),
    ];

    #[cfg_attr(
        dmf_mssql_server = "babelfish",
        ignore = "known failure over TDS on Babelfish 4.3 (its bug, not DMF's): bulk-loaded decimals come out wrong; see `live_sync::bulk_loaded_decimals_read_back_equal`. Their reading is `decimals_read_exactly_through_the_extractor`"
    )]
    decimals_round_trip => decimal_cases();

    money_round_trip => vec![
        case("money", vec![
            ("CAST(-922337203685477.5808 AS money)", dec("-922337203685477.5808")),
            ("CAST(922337203685477.5807 AS money)", dec("922337203685477.5807")),
            ("CAST(0.0001 AS money)", dec("0.0001")),
            ("CAST(-1.5 AS money)", dec("-1.5000")),
            ("CAST(0 AS money)", dec("0.0000")),
        ]),
        case("smallmoney", vec![
            ("CAST(214748.3647 AS smallmoney)", dec("214748.3647")),
            ("CAST(0 AS smallmoney)", dec("0.0000")),
        ]),
    ];

    floats_round_trip => vec![
        case("float", vec![
            ("CAST(-1.7976931348623157E+308 AS float)", Value::Float(f64::MIN)),
            ("CAST(1.7976931348623157E+308 AS float)", Value::Float(f64::MAX)),
            ("CAST(2.2250738585072014E-308 AS float)", Value::Float(f64::MIN_POSITIVE)),
            ("CAST(0.1E0 AS float)", Value::Float(0.1)),
            ("CAST(0 AS float)", Value::Float(0.0)),
        ]),
        case("real", vec![
            ("CAST(-3.4028235E+38 AS real)", Value::Float(f64::from(f32::MIN))),
            ("CAST(3.4028235E+38 AS real)", Value::Float(f64::from(f32::MAX))),
            ("CAST(1.17549435E-38 AS real)", Value::Float(f64::from(f32::MIN_POSITIVE))),
            ("CAST(0.1E0 AS real)", Value::Float(f64::from(0.1_f32))),
        ]),
    ];

    code_page_text_round_trip => vec![
        case("char(10)", vec![("'abc'", text("abc       ")), ("''", text("          "))]),
        case("varchar(50)", vec![("''", text("")), ("'café '", text("café ")), ("' '", text(" ")), ("'a''b]]\"c'", text("a'b]]\"c"))]),
        case("varchar(max)", vec![
            ("''", text("")),
            ("REPLICATE(CAST('x' AS varchar(max)), 70000)", text(&long("x", 70000))),
        ]),
    ];

    unicode_text_round_trip => vec![
        case("nchar(10)", vec![("N'Zoë'", text("Zoë       ")), ("N''", text("          "))]),
        case("nvarchar(50)", vec![
            ("N''", text("")),
            ("N'日本語 🦀 \"q\" ]] '''", text("日本語 🦀 \"q\" ]] '")),
            ("CONCAT(N'a', NCHAR(9), N'b', NCHAR(10), N'\\N')", text("a\tb\n\\N")),
        ]),
        case("nvarchar(max)", vec![
            ("N''", text("")),
            ("REPLICATE(CAST(N'日本語🦀' AS nvarchar(max)), 20000)", text(&long("日本語🦀", 20000))),
        ]),
    ];

    legacy_lob_types_round_trip => vec![
        case("text", vec![
            ("''", text("")),
            ("'abc'", text("abc")),
            ("CAST(REPLICATE(CAST('y' AS varchar(max)), 70000) AS text)", text(&long("y", 70000))),
        ]),
        case("ntext", vec![
            ("N''", text("")),
            ("N'Zoë 🦀'", text("Zoë 🦀")),
            ("CAST(REPLICATE(CAST(N'ü' AS nvarchar(max)), 40000) AS ntext)", text(&long("ü", 40000))),
        ]),
        case("image", vec![
            ("0x0102", bytes(&[1, 2])),
            ("CAST(CAST(REPLICATE(CAST('ab' AS varchar(max)), 40000) AS varbinary(max)) AS image)", bytes(long("ab", 40000).as_bytes())),
        ]),
    ];

    binaries_round_trip => vec![
        case("binary(4)", vec![
            ("0x00000000", bytes(&[0, 0, 0, 0])),
            ("0xFFFFFFFF", bytes(&[255; 4])),
            ("0x01", bytes(&[1, 0, 0, 0])),
        ]),
        case("varbinary(50)", vec![("0x", bytes(&[])), ("0x005C00FF", bytes(&[0, 0x5c, 0, 0xff]))]),
        case("varbinary(max)", vec![
            ("0x", bytes(&[])),
            ("CAST(REPLICATE(CAST('ab' AS varchar(max)), 40000) AS varbinary(max))", bytes(long("ab", 40000).as_bytes())),
        ]),
    ];

    dates_and_times_round_trip => vec![
        case("date", vec![("'0001-01-01'", date("0001-01-01")), ("'9999-12-31'", date("9999-12-31")), ("'2024-02-29'", date("2024-02-29"))]),
        case("time(0)", vec![("'00:00:00'", time("00:00:00")), ("'23:59:59'", time("23:59:59"))]),
        case("time(6)", vec![
            ("'23:59:59.999999'", time("23:59:59.999999")),
            ("'00:00:00.000001'", time("00:00:00.000001")),
        ]),
    ];

    #[cfg_attr(
        dmf_mssql_server = "babelfish",
        ignore = "known failure over TDS on Babelfish 4.3 (its bug, not DMF's): INSERT BULK zero-extends a smallmoney's 4 bytes (TdsTypeSmallMoneyToDatum in babelfishpg_tds/tdstypeio.c: `val = (uint64)low`), so -1.5 arrives as 429495.2296"
    )]
    negative_smallmoney_round_trip => vec![
        case("smallmoney", vec![
            ("CAST(-214748.3648 AS smallmoney)", dec("-214748.3648")),
            ("CAST(-1.5 AS smallmoney)", dec("-1.5000")),
        ]),
    ];

    #[cfg_attr(
        dmf_mssql_server = "babelfish",
        ignore = "known failure over TDS on Babelfish 4.3 (its bug, not DMF's): sys.columns reports scale 6 for time(7) and datetimeoffset(7) (it stores 6 digits) while INSERT BULK decodes those columns' values at scale 7, so 23:59:59.999999 arrives as 02:23:59.9999999; scale 0 to 6 round-trip"
    )]
    seven_digit_times_round_trip => vec![
        case("time(7)", vec![
            ("'23:59:59.9999999'", time("23:59:59.9999999")),
            ("'00:00:00.0000001'", time("00:00:00.0000001")),
        ]),
        case("datetimeoffset(7)", vec![
            ("'9999-12-31T23:59:59.9999999+00:00'", instant("9999-12-31T23:59:59.9999999Z")),
            ("'2024-06-01T10:20:30.1234567+05:30'", instant("2024-06-01T04:50:30.1234567Z")),
        ]),
    ];

    timestamps_round_trip => vec![
        // datetime counts 1/300 s: .123 is stored as 37 ticks, .997 as 299.
        case("datetime", vec![
            ("'1753-01-01T00:00:00'", timestamp("1753-01-01T00:00:00")),
            ("'9999-12-31T23:59:59.997'", timestamp("9999-12-31T23:59:59.996666667")),
            ("'2024-02-29T12:34:56.123'", timestamp("2024-02-29T12:34:56.123333333")),
        ]),
        case("smalldatetime", vec![
            ("'1900-01-01T00:00'", timestamp("1900-01-01T00:00:00")),
            ("'2079-06-06T23:59'", timestamp("2079-06-06T23:59:00")),
        ]),
        case("datetime2(0)", vec![
            ("'0001-01-01T00:00:00'", timestamp("0001-01-01T00:00:00")),
            ("'9999-12-31T23:59:59'", timestamp("9999-12-31T23:59:59")),
        ]),
        // tiberius sends a datetime2 at the scale the server's bulk metadata names.
        case("datetime2(7)", vec![
            ("'9999-12-31T23:59:59.999999'", timestamp("9999-12-31T23:59:59.999999")),
            ("'2024-02-29T12:34:56.5'", timestamp("2024-02-29T12:34:56.5")),
        ]),
    ];

    datetimeoffsets_round_trip => vec![
        case("datetimeoffset(0)", vec![
            ("'2024-01-01T12:00:00+14:00'", instant("2023-12-31T22:00:00Z")),
            ("'2024-01-01T00:00:00-12:00'", instant("2024-01-01T12:00:00Z")),
        ]),
        case("datetimeoffset(6)", vec![
            ("'0001-01-01T00:00:00+00:00'", instant("0001-01-01T00:00:00Z")),
            ("'9999-12-31T23:59:59.999999+00:00'", instant("9999-12-31T23:59:59.999999Z")),
            ("'2024-06-01T10:20:30.123456+05:30'", instant("2024-06-01T04:50:30.123456Z")),
        ]),
    ];

    uniqueidentifiers_round_trip => vec![
        case("uniqueidentifier", vec![
            ("'00000000-0000-0000-0000-000000000000'", guid("00000000-0000-0000-0000-000000000000")),
            ("'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF'", guid("ffffffff-ffff-ffff-ffff-ffffffffffff")),
            ("'6F9619FF-8B86-D011-B42D-00C04FC964FF'", guid("6f9619ff-8b86-d011-b42d-00c04fc964ff")),
        ]),
    ];

    xml_round_trip => vec![
        case("xml", vec![
            ("'<a b=\"1\">x</a>'", text("<a b=\"1\">x</a>")),
            ("N'<r>Zoë 🦀</r>'", text("<r>Zoë 🦀</r>")),
        ]),
    ];
}

fn decimal_cases() -> Vec<Case> {
    vec![
        case(
            "decimal(38,10)",
            vec![
                ("-9999999999999999999999999999.9999999999", dec("-9999999999999999999999999999.9999999999")),
                ("0.0000000001", dec("0.0000000001")),
                ("0", dec("0.0000000000")),
            ],
        ),
        case(
            "numeric(12,2)",
            vec![("1.50", dec("1.50")), ("-0.01", dec("-0.01")), ("9999999999.99", dec("9999999999.99"))],
        ),
        case("decimal(5,0)", vec![("-99999", dec("-99999")), ("0", dec("0"))]),
    ]
}

/// The reading half of `decimals_round_trip`, which Babelfish cannot bulk-load: every decimal
/// read exactly, through the extractor, on every server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
async fn decimals_read_exactly_through_the_extractor() {
    let url = server_url("decimals_read").await;
    let db = TestDb::create(&url, "decimals_read").await;
    let cases = decimal_cases();
    for case in &cases {
        let table = table_of(case);
        db.batch(&format!("CREATE TABLE dbo.{table} (id int NOT NULL PRIMARY KEY, v {} NULL)", case.ty)).await;
        for (i, (sql, _)) in case.values.iter().enumerate() {
            db.batch(&format!("INSERT INTO dbo.{table} (id, v) VALUES ({}, {sql})", i + 1)).await;
        }
    }
    let database = db.database();
    let tables: Vec<TableName> = cases.iter().map(|c| TableName::new(Some("dbo"), &table_of(c))).collect();
    let plan =
        SyncJob::new(Arc::clone(&database), Arc::clone(&database), SyncMode::Full).tables(tables).plan().await.unwrap();
    for case in &cases {
        assert_values(case, &read_all(&database, &plan, &table_of(case), false).await, "source");
    }
}

/// Keys of every kind, read in keyset pages of two rows: text keys with unicode and case,
/// GUID keys (which SQL Server orders by their last bytes first), date-time keys, negative
/// integers and a composite key. Paging that compared keys differently from the ORDER BY would
/// skip or repeat rows: every row arrives exactly once, through `full` and `upsert`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
async fn keys_of_every_kind_page_exactly_in_small_batches() {
    let url = server_url("keys").await;
    let source_db = TestDb::create(&url, "keys_src").await;
    let full_db = TestDb::create(&url, "keys_full").await;
    let upsert_db = TestDb::create(&url, "keys_up").await;
    let ddl = "
        CREATE TABLE dbo.k_text (k nvarchar(20) NOT NULL PRIMARY KEY, n int NOT NULL);
        CREATE TABLE dbo.k_guid (k uniqueidentifier NOT NULL PRIMARY KEY, n int NOT NULL);
        CREATE TABLE dbo.k_time (k datetime2(6) NOT NULL PRIMARY KEY, n int NOT NULL);
        CREATE TABLE dbo.k_int (k bigint NOT NULL PRIMARY KEY, n int NOT NULL);
        CREATE TABLE dbo.k_pair (a int NOT NULL, b nvarchar(10) NOT NULL, n int NOT NULL, PRIMARY KEY (a, b));";
    for db in [&source_db, &full_db, &upsert_db] {
        db.batch(ddl).await;
    }
    source_db
        .batch(
            "INSERT INTO dbo.k_text VALUES (N'a', 1), (N'B', 2), (N'é', 3), (N'🦀', 4), (N'Z', 5), (N'ä', 6), (N'', 7), (N' x', 8), (N'a b', 9);
             INSERT INTO dbo.k_guid VALUES ('00000000-0000-0000-0000-000000000001', 1), ('01000000-0000-0000-0000-000000000000', 2),
                 ('00000000-0000-0000-0000-010000000000', 3), ('FFFFFFFF-0000-0000-0000-000000000000', 4),
                 ('00000000-0000-0000-FF00-000000000000', 5), ('00000000-0000-FF00-0000-000000000000', 6), (NEWID(), 7), (NEWID(), 8);
             INSERT INTO dbo.k_time VALUES ('0001-01-01', 1), ('2024-01-01T00:00:00.000001', 2), ('2024-01-01', 3), ('9999-12-31T23:59:59.999999', 4), ('1999-12-31T23:59:59', 5);
             INSERT INTO dbo.k_int VALUES (-9223372036854775808, 1), (-1, 2), (0, 3), (1, 4), (9223372036854775807, 5);
             INSERT INTO dbo.k_pair VALUES (1, N'b', 1), (1, N'a', 2), (2, N'a', 3), (-1, N'z', 4), (1, N'', 5), (2, N'🦀', 6), (1, N'é', 7);",
        )
        .await;
    let name = |t: &str| TableName::new(Some("dbo"), t);
    let tables = vec![name("k_text"), name("k_guid"), name("k_time"), name("k_int"), name("k_pair")];
    let expected = [("dbo.k_text", 9), ("dbo.k_guid", 8), ("dbo.k_time", 5), ("dbo.k_int", 5), ("dbo.k_pair", 7)];
    let source = source_db.database();
    let plan = SyncJob::new(Arc::clone(&source), full_db.database(), SyncMode::Full)
        .tables(tables.clone())
        .plan()
        .await
        .unwrap();
    let full = full_db.database();
    let strategy = *UPSERT_STRATEGIES.last().unwrap();
    let upsert = upsert_db.upserting(strategy);
    for (target, mode) in [(&full, SyncMode::Full), (&upsert, SyncMode::Upsert)] {
        let summary = sync(&source, target, mode.clone(), &tables).await;
        assert_eq!(summary.status, RunStatus::Completed, "{mode}: {summary}");
        for (table, rows) in expected {
            let counts = summary.migration(table).unwrap().counts;
            assert_eq!((counts.read, counts.inserted), (rows, rows), "{mode}, {table}: each row read once\n{summary}");
            let short = table.trim_start_matches("dbo.");
            let read = read_all(target, &plan, short, true).await;
            assert_eq!(
                read,
                read_all(&source, &plan, short, false).await,
                "{mode}, {table}: the same rows in the same order"
            );
        }
    }
    let report = dmf_core::quality::compare(source.as_ref(), upsert.as_ref(), &plan, 10).await.unwrap();
    assert!(report.is_equal(), "{report}");
}
