//! # dmf-mssql
//!
//! The SQL Server adapter of DMF. This crate is a placeholder that compiles: the adapter
//! (tiberius connection pool, HADR pre-flight, COPY_ONLY backup, catalog reader, MERGE loader)
//! is built under its own issue. It re-exports nothing yet.

#![doc(html_no_source)]
