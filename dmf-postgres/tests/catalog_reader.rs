//! The catalog reader sees every table, column type, nullability, default, identity and
//! generated column, and every primary, unique and foreign key (with column order) of the rich
//! schema, names exactly as stored; it never sees the `dmf` control schema.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use dmf_core::catalog::{DataType, Table, TableName};
use dmf_core::sync::Database;

fn table<'a>(tables: &'a [Table], schema: &str, name: &str) -> &'a Table {
    tables
        .iter()
        .find(|t| t.name == TableName::new(Some(schema), name))
        .unwrap_or_else(|| panic!("no table {schema}.{name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_every_kind_of_column_and_key_of_the_rich_schema() {
    let (source, _target) = common::rich_pair("catalog").await;
    let database = source.database();
    // Control tables exist in the database, but are never part of its catalog.
    database.create_control_tables().await.unwrap();
    let catalog = database.read_catalog().await.unwrap();

    let names: Vec<String> = catalog.tables.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(
        names,
        [
            "public.odd \"quoted\" table",
            "shop.Order",
            "shop.customers",
            "shop.departments",
            "shop.employees",
            "shop.order_lines"
        ]
    );

    let customers = table(&catalog.tables, "shop", "customers");
    let columns: Vec<(&str, &DataType, &str, bool)> =
        customers.columns.iter().map(|c| (c.name.as_str(), &c.data_type, c.native_type.as_str(), c.nullable)).collect();
    let expected = [
        ("id", DataType::Int64, "bigint", false),
        ("email", DataType::Text { max_len: Some(200) }, "character varying(200)", false),
        ("name", DataType::Text { max_len: None }, "text", false),
        ("bio", DataType::Text { max_len: None }, "text", true),
        ("avatar", DataType::Bytes, "bytea", true),
        ("balance", DataType::Decimal { precision: Some(38), scale: Some(10) }, "numeric(38,10)", false),
        ("rating", DataType::Float32, "real", true),
        ("score", DataType::Float64, "double precision", true),
        ("active", DataType::Bool, "boolean", false),
        ("born", DataType::Date, "date", true),
        ("wake_up", DataType::Time, "time without time zone", true),
        ("created_at", DataType::Timestamp, "timestamp without time zone", false),
        ("updated_at", DataType::TimestampTz, "timestamp with time zone", false),
        ("external_id", DataType::Uuid, "uuid", false),
        ("prefs", DataType::Json, "json", true),
        ("tags", DataType::Json, "jsonb", true),
        ("code", DataType::Text { max_len: Some(4) }, "character(4)", true),
        ("name_upper", DataType::Text { max_len: None }, "text", true),
        ("referred_by", DataType::Int64, "bigint", true),
    ];
    let expected: Vec<(&str, &DataType, &str, bool)> =
        expected.iter().map(|(n, d, t, null)| (*n, d, *t, *null)).collect();
    assert_eq!(columns, expected);

    let column = |name: &str| customers.column(name).unwrap();
    assert!(column("id").identity && !column("id").generated);
    assert!(column("name_upper").generated && !column("name_upper").identity);
    assert_eq!(column("balance").default.as_deref(), Some("0"));
    assert_eq!(column("active").default.as_deref(), Some("true"));
    assert_eq!(column("name_upper").default.as_deref(), Some("upper(name)"));
    assert_eq!(customers.writable_columns().count(), customers.columns.len() - 1);
    assert_eq!(customers.primary_key, ["id"]);
    assert_eq!(customers.unique_keys, vec![vec!["email".to_owned()]]);
    assert_eq!(customers.foreign_keys.len(), 1);
    let self_reference = &customers.foreign_keys[0];
    assert_eq!(self_reference.columns, ["referred_by"]);
    assert_eq!(self_reference.referenced_table, TableName::new(Some("shop"), "customers"));
    assert_eq!(self_reference.referenced_columns, ["id"]);
    assert!(self_reference.enforced);

    let order = table(&catalog.tables, "shop", "Order");
    let order_columns: Vec<&str> = order.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(order_columns, ["Id", "select", "user", "Total", "updated_at"]);
    assert_eq!(order.primary_key, ["Id"]);
    assert_eq!(order.foreign_keys[0].columns, ["user"]);

    let lines = table(&catalog.tables, "shop", "order_lines");
    assert_eq!(lines.primary_key, ["order_id", "line"], "composite key in key order");
    assert_eq!(lines.column("line").unwrap().data_type, DataType::Int16);
    assert_eq!(lines.foreign_keys[0].referenced_table, TableName::new(Some("shop"), "Order"));
    assert_eq!(lines.foreign_keys[0].referenced_columns, ["Id"]);

    // The two-table cycle: one side nullable.
    let departments = table(&catalog.tables, "shop", "departments");
    assert_eq!(departments.foreign_keys[0].name, "departments_head");
    assert_eq!(departments.foreign_keys[0].referenced_table, TableName::new(Some("shop"), "employees"));
    assert!(departments.column("head_id").unwrap().nullable);
    let employees = table(&catalog.tables, "shop", "employees");
    assert_eq!(employees.foreign_keys[0].referenced_table, TableName::new(Some("shop"), "departments"));
    assert!(!employees.column("department_id").unwrap().nullable);

    let odd = table(&catalog.tables, "public", "odd \"quoted\" table");
    assert_eq!(odd.primary_key, ["key \"k\""]);
    assert_eq!(odd.columns[1].name, "Value");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_key_whose_triggers_are_disabled_is_not_enforced() {
    let db = common::TestDb::create("catalog_fk").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE parent (id int PRIMARY KEY);
             CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id));
             CREATE TABLE other (id int PRIMARY KEY, parent_id int);
             ALTER TABLE other ADD FOREIGN KEY (parent_id) REFERENCES parent (id) NOT VALID;
             ALTER TABLE child DISABLE TRIGGER ALL;",
        )
        .await
        .unwrap();
    let catalog = db.database().read_catalog().await.unwrap();
    let child = table(&catalog.tables, "public", "child");
    assert!(!child.foreign_keys[0].enforced, "checks are off: the key does not order the load");
    let other = table(&catalog.tables, "public", "other");
    assert!(other.foreign_keys[0].enforced, "NOT VALID still checks every new row");
}
