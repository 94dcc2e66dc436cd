//! The catalog reader turns `sys.*` rows into dmf-core's model: schemas other than dbo,
//! identity, computed, rowversion, sparse and temporal period columns, composite and unique
//! keys, disabled foreign keys; dmf-core then orders the tables by foreign key.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use dmf_core::catalog::{DataType, LoadOrder, TableName};
use dmf_core::sync::Database;
use dmf_mssql::MssqlOptions;
use dmf_mssql::executor::{Response, Script};
use tiberius::ColumnData;

/// A `COLUMNS` row.
#[allow(clippy::too_many_arguments)]
fn catalog_column(
    object_id: i32,
    schema: &str,
    table: &str,
    name: &str,
    type_name: &str,
    sizes: (i32, i32, i32),
    nullable: bool,
    identity: bool,
    computed: bool,
    sparse: bool,
    period: i32,
    default: Option<&str>,
) -> Vec<ColumnData<'static>> {
    vec![
        int(object_id),
        text(schema),
        text(table),
        text(name),
        text(type_name),
        int(sizes.0),
        int(sizes.1),
        int(sizes.2),
        flag(nullable),
        flag(identity),
        flag(computed),
        flag(sparse),
        int(period),
        null(),
        default.map_or_else(null, text),
    ]
}

fn script_catalog(script: &Script) {
    script.on(
        pattern::CATALOG_COLUMNS,
        Response::rows(vec![
            catalog_column(10, "dbo", "customers", "id", "int", (4, 10, 0), false, true, false, false, 0, None),
            catalog_column(
                10,
                "dbo",
                "customers",
                "email",
                "nvarchar",
                (400, 0, 0),
                false,
                false,
                false,
                false,
                0,
                None,
            ),
            catalog_column(
                10,
                "dbo",
                "customers",
                "balance",
                "money",
                (8, 19, 4),
                false,
                false,
                false,
                false,
                0,
                Some("((0))"),
            ),
            catalog_column(
                10,
                "dbo",
                "customers",
                "email_upper",
                "nvarchar",
                (400, 0, 0),
                true,
                false,
                true,
                false,
                0,
                None,
            ),
            catalog_column(10, "dbo", "customers", "rv", "timestamp", (8, 0, 0), false, false, false, false, 0, None),
            catalog_column(10, "dbo", "customers", "notes", "nvarchar", (-1, 0, 0), true, false, false, true, 0, None),
            catalog_column(
                10,
                "dbo",
                "customers",
                "valid_from",
                "datetime2",
                (8, 27, 7),
                false,
                false,
                false,
                false,
                1,
                None,
            ),
            catalog_column(
                20,
                "sales ]x",
                "Order Lines",
                "order_id",
                "bigint",
                (8, 19, 0),
                false,
                false,
                false,
                false,
                0,
                None,
            ),
            catalog_column(
                20,
                "sales ]x",
                "Order Lines",
                "line",
                "smallint",
                (2, 5, 0),
                false,
                false,
                false,
                false,
                0,
                None,
            ),
            catalog_column(
                20,
                "sales ]x",
                "Order Lines",
                "customer_id",
                "int",
                (4, 10, 0),
                true,
                false,
                false,
                false,
                0,
                None,
            ),
            catalog_column(
                20,
                "sales ]x",
                "Order Lines",
                "guid",
                "uniqueidentifier",
                (16, 0, 0),
                false,
                false,
                false,
                false,
                0,
                None,
            ),
            catalog_column(
                20,
                "sales ]x",
                "Order Lines",
                "price",
                "decimal",
                (9, 12, 2),
                false,
                false,
                false,
                false,
                0,
                None,
            ),
            catalog_column(
                20,
                "sales ]x",
                "Order Lines",
                "variant",
                "sql_variant",
                (8016, 0, 0),
                true,
                false,
                false,
                false,
                0,
                None,
            ),
        ]),
    );
    script.on(
        pattern::CATALOG_KEYS,
        Response::rows(vec![
            vec![int(10), int(1), flag(true), text("id")],
            vec![int(10), int(2), flag(false), text("email")],
            vec![int(20), int(1), flag(true), text("order_id")],
            vec![int(20), int(1), flag(true), text("line")],
            vec![int(20), int(3), flag(false), text("guid")],
        ]),
    );
    script.on(
        pattern::CATALOG_FKS,
        Response::rows(vec![
            vec![
                int(20),
                int(900),
                text("FK_lines_customers"),
                text("dbo"),
                text("customers"),
                text("customer_id"),
                text("id"),
                flag(true),
                flag(true),
            ],
            vec![
                int(10),
                int(901),
                text("FK_customers_lines"),
                text("sales ]x"),
                text("Order Lines"),
                text("id"),
                text("order_id"),
                flag(false),
                flag(false),
            ],
        ]),
    );
}

#[tokio::test]
async fn sys_rows_become_the_neutral_model() {
    let (script, db) = scripted(MssqlOptions::default());
    script_catalog(&script);
    let catalog = db.read_catalog().await.unwrap();
    let sent = statements(&script);
    assert_eq!(sent.len(), 3);
    assert!(
        sent[0].contains(pattern::CATALOG_COLUMNS) && sent[0].contains("s.name <> N'dmf'"),
        "the control schema is left out"
    );
    assert!(sent[1].contains(pattern::CATALOG_KEYS));
    assert!(sent[2].contains(pattern::CATALOG_FKS));

    assert_eq!(catalog.tables.len(), 2);
    let customers = catalog.table(&TableName::new(Some("dbo"), "customers")).unwrap();
    let id = customers.column("id").unwrap();
    assert!(id.identity && !id.generated && !id.nullable);
    assert_eq!((id.data_type.clone(), id.native_type.as_str()), (DataType::Int32, "int"));
    assert_eq!(
        customers.column("email").unwrap().data_type,
        DataType::Text { max_len: Some(200) },
        "bytes halved for nvarchar"
    );
    let balance = customers.column("balance").unwrap();
    assert_eq!(balance.data_type, DataType::Decimal { precision: Some(19), scale: Some(4) });
    assert_eq!(balance.default.as_deref(), Some("((0))"));
    assert!(customers.column("email_upper").unwrap().generated, "computed");
    let rv = customers.column("rv").unwrap();
    assert!(rv.generated);
    assert_eq!(rv.native_type, "rowversion");
    let notes = customers.column("notes").unwrap();
    assert!(!notes.generated, "sparse columns are ordinary columns to write");
    assert_eq!(notes.native_type, "nvarchar(max)");
    assert!(customers.column("valid_from").unwrap().generated, "temporal period columns are never written");
    let writable: Vec<&str> = customers.writable_columns().map(|c| c.name.as_str()).collect();
    assert_eq!(writable, ["id", "email", "balance", "notes"]);
    assert_eq!(customers.primary_key, ["id"]);
    assert_eq!(customers.unique_keys, vec![vec!["email".to_owned()]]);

    let lines = catalog.table(&TableName::new(Some("sales ]x"), "Order Lines")).unwrap();
    assert_eq!(lines.primary_key, ["order_id", "line"]);
    assert_eq!(lines.unique_keys, vec![vec!["guid".to_owned()]]);
    assert_eq!(lines.column("guid").unwrap().data_type, DataType::Uuid);
    assert_eq!(lines.column("variant").unwrap().data_type, DataType::Other("sql_variant".into()));
    let fk = &lines.foreign_keys[0];
    assert_eq!(fk.name, "FK_lines_customers");
    assert_eq!(fk.referenced_table, TableName::new(Some("dbo"), "customers"));
    assert_eq!(
        (fk.columns.as_slice(), fk.referenced_columns.as_slice()),
        (&["customer_id".to_owned()][..], &["id".to_owned()][..])
    );
    assert!(!fk.enforced, "a disabled foreign key is not enforced");
    assert!(customers.foreign_keys[0].enforced);
}

#[tokio::test]
async fn dmf_core_orders_the_tables_read_from_sql_server() {
    let (script, db) = scripted(MssqlOptions::default());
    script_catalog(&script);
    let catalog = db.read_catalog().await.unwrap();
    // customers references Order Lines (enforced); Order Lines references customers through
    // a disabled key, which does not order them: no cycle, Order Lines first.
    let order = LoadOrder::plan(&catalog.tables).unwrap();
    let names: Vec<String> = order.steps.iter().map(|s| s.table.to_string()).collect();
    assert_eq!(names, ["sales ]x.Order Lines", "dbo.customers"]);
    assert!(order.steps.iter().all(|s| s.deferred.is_empty()));
}

#[tokio::test]
async fn a_catalog_error_names_the_server() {
    let (script, db) = scripted(MssqlOptions::default());
    script.on(pattern::CATALOG_COLUMNS, Response::Fail(dmf_mssql::SqlError::server(229, "SELECT permission denied")));
    let error = db.read_catalog().await.unwrap_err();
    assert_eq!(error.kind(), dmf_core::ErrorKind::Fatal);
    assert!(error.to_string().contains("reading the catalog of sa@test:1433/Sales: SQL Server error 229"), "{error}");
}
