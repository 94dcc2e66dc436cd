//! Which tables a command works on: include and exclude globs over the source's table names.
//!
//! A pattern with a dot (`public.order_*`) is matched against `schema.table`; one without
//! (`order_*`) against the table's name in any schema. Matching ignores case. `!PATTERN` in
//! the include list excludes. An include pattern that matches no table of the source is an
//! error naming it (a typo must not silently sync nothing).

use dmf::catalog::{Catalog, TableName};
use globset::GlobMatcher;

use crate::exit::CliError;

/// Include and exclude patterns.
#[derive(Debug, Default)]
pub struct TableFilter {
    include: Vec<(String, GlobMatcher)>,
    exclude: Vec<(String, GlobMatcher)>,
}

impl TableFilter {
    /// `include` (where `!PATTERN` excludes) and `exclude`.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, CliError> {
        let mut filter = Self::default();
        for pattern in include.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
            match pattern.strip_prefix('!') {
                Some(excluded) => filter.exclude.push(compile(excluded)?),
                None => filter.include.push(compile(pattern)?),
            }
        }
        for pattern in exclude.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
            filter.exclude.push(compile(pattern.trim_start_matches('!'))?);
        }
        Ok(filter)
    }

    /// True when no pattern was given: every table.
    pub fn is_everything(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// The source's tables selected, in the catalog's order; `None` when no pattern was given.
    pub fn select(&self, source: &Catalog) -> Result<Option<Vec<TableName>>, CliError> {
        if self.is_everything() {
            return Ok(None);
        }
        for (pattern, matcher) in &self.include {
            if !source.tables.iter().any(|t| matches(matcher, pattern, &t.name)) {
                let known: Vec<String> = source.tables.iter().take(8).map(|t| t.name.to_string()).collect();
                return Err(CliError::usage(format!(
                    "`--tables {pattern}` matches no table of the source (it has: {}{})",
                    known.join(", "),
                    if source.tables.len() > known.len() { ", …" } else { "" }
                )));
            }
        }
        let chosen: Vec<TableName> = source
            .tables
            .iter()
            .map(|t| &t.name)
            .filter(|name| self.include.is_empty() || self.include.iter().any(|(p, m)| matches(m, p, name)))
            .filter(|name| !self.exclude.iter().any(|(p, m)| matches(m, p, name)))
            .cloned()
            .collect();
        if chosen.is_empty() {
            return Err(CliError::usage("the table selection (--tables, --exclude) leaves no table to work on"));
        }
        Ok(Some(chosen))
    }
}

fn compile(pattern: &str) -> Result<(String, GlobMatcher), CliError> {
    let glob = globset::GlobBuilder::new(pattern)
        .case_insensitive(true)
        .literal_separator(false)
        .build()
        .map_err(|e| CliError::usage(format!("table pattern `{pattern}`: {e}")))?;
    Ok((pattern.to_owned(), glob.compile_matcher()))
}

fn matches(matcher: &GlobMatcher, pattern: &str, name: &TableName) -> bool {
    if pattern.contains('.') { matcher.is_match(name.to_string()) } else { matcher.is_match(&name.name) }
}

#[cfg(test)]
mod tests {
    use dmf::catalog::Table;

    use super::*;

    fn catalog(names: &[&str]) -> Catalog {
        let mut catalog = Catalog::default();
        for name in names {
            catalog.tables.push(Table {
                name: TableName::parse(name),
                columns: Vec::new(),
                primary_key: Vec::new(),
                unique_keys: Vec::new(),
                foreign_keys: Vec::new(),
            });
        }
        catalog
    }

    fn chosen(include: &[&str], exclude: &[&str]) -> Result<Option<Vec<String>>, String> {
        let include: Vec<String> = include.iter().map(|s| s.to_string()).collect();
        let exclude: Vec<String> = exclude.iter().map(|s| s.to_string()).collect();
        let source = catalog(&["public.customers", "public.orders", "public.audit_log", "sales.orders"]);
        TableFilter::new(&include, &exclude)
            .and_then(|f| f.select(&source))
            .map(|tables| tables.map(|t| t.iter().map(ToString::to_string).collect()))
            .map_err(|e| e.message)
    }

    #[test]
    fn globs_include_and_exclude() {
        assert_eq!(chosen(&[], &[]).unwrap(), None);
        assert_eq!(chosen(&["public.*"], &["audit_*"]).unwrap().unwrap(), ["public.customers", "public.orders"]);
        assert_eq!(chosen(&["orders"], &[]).unwrap().unwrap(), ["public.orders", "sales.orders"]);
        assert_eq!(
            chosen(&["*", "!sales.*", "!AUDIT_*"], &[]).unwrap().unwrap(),
            ["public.customers", "public.orders"]
        );
        assert_eq!(chosen(&[], &["public.audit_log"]).unwrap().unwrap().len(), 3);
    }

    #[test]
    fn a_pattern_that_matches_nothing_is_named() {
        let error = chosen(&["public.cutsomers"], &[]).unwrap_err();
        assert!(error.starts_with("`--tables public.cutsomers` matches no table of the source"), "{error}");
        assert!(chosen(&["public.*"], &["*"]).unwrap_err().contains("leaves no table"));
    }
}
