//! The SQLite adapter of DMF (being built).
