//! Checkpoints written with the control plane's statements.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::SystemTime;

use dmf_core::control::{SqlConnector, SqlRunStore, checkpoints as statements};
use dmf_core::{Checkpoint, MigrationName, Position, RunStore};

/// A checkpoint written on a session of `connector` (as a loader writes it, inside a
/// transaction) is what the run store reads back; a second write replaces it, and clearing it
/// forgets it. The control tables must exist.
pub async fn checkpoints(connector: Arc<dyn SqlConnector>) {
    let store = SqlRunStore::new(Arc::clone(&connector));
    let dialect = connector.dialect();
    let migration = MigrationName::new("shop.\"orders\" ]]'x");
    assert_eq!(store.checkpoint(&migration).await.unwrap(), None);

    let mut session = connector.session().await.unwrap();
    let first = Checkpoint { position: Some(Position::new("[1,\"a'b\"]")), skip: 3, done: false };
    session.batch(dialect.begin()).await.unwrap();
    let params = statements::write_params(&migration, &first, SystemTime::now());
    session.execute(&statements::write_statement(dialect), &params).await.unwrap();
    session.batch(dialect.commit()).await.unwrap();
    assert_eq!(store.checkpoint(&migration).await.unwrap(), Some(first));

    // A rolled-back write leaves the checkpoint as it was.
    let lost = Checkpoint { position: Some(Position::new("[9]")), skip: 0, done: false };
    session.batch(dialect.begin()).await.unwrap();
    let params = statements::write_params(&migration, &lost, SystemTime::now());
    session.execute(&statements::write_statement(dialect), &params).await.unwrap();
    session.batch(dialect.rollback()).await.unwrap();
    assert_ne!(store.checkpoint(&migration).await.unwrap(), Some(lost));

    let last = Checkpoint { position: None, skip: 0, done: true };
    let params = statements::write_params(&migration, &last, SystemTime::now());
    session.execute(&statements::write_statement(dialect), &params).await.unwrap();
    assert_eq!(store.checkpoint(&migration).await.unwrap(), Some(last));
    let name = [dmf_core::Value::Text(migration.as_str().into())];
    let read = session.query(&statements::read_statement(dialect), &name).await.unwrap();
    assert_eq!(read.len(), 1, "replaced, not duplicated");
    assert_eq!(session.execute(&statements::clear_statement(dialect), &name).await.unwrap(), 1);
    assert_eq!(store.checkpoint(&migration).await.unwrap(), None);
}
