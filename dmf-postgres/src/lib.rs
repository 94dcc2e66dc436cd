//! The PostgreSQL adapter of DMF (being built).
