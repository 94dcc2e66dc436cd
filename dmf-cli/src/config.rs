//! The config file, `dmf.toml`: the settings of `dmf sync` and the other subcommands, below the
//! flags and the `DMF_*` environment variables in precedence.
//!
//! ```toml
//! source = "postgres://reader@prod.example/shop"    # the password from PGPASSWORD or ~/.pgpass
//! target = "${TEST_DATABASE_URL}"                     # ${VAR}: the environment variable VAR
//! mode = "upsert"
//! batch_size = 5000
//! jobs = 4
//! tables = ["public.*", "!public.audit_*"]           # globs; `!` excludes
//! exclude = ["public.tmp_*"]
//! rules = ["public.orders: check(total >= 0)"]
//! backup = "/var/backups/dmf"
//!
//! [notify]
//! webhook = "https://hooks.example/dmf"
//! ```
//!
//! Unknown keys are refused, naming the key; `${VAR}` with VAR unset is refused, naming VAR
//! and the key (write `$${` for a literal `${`), in `source` and `target` only when the
//! command needs that connection.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cli::{CopyFormat, FkChecks};
use crate::exit::CliError;

/// The file read when `--config` and `DMF_CONFIG` give none, if it exists.
pub const DEFAULT_FILE: &str = "dmf.toml";

/// The contents of the config file; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub source: Option<String>,
    pub target: Option<String>,
    pub mode: Option<String>,
    pub batch_size: Option<u64>,
    pub jobs: Option<u64>,
    pub range_readers: Option<u64>,
    pub max_rejects: Option<u64>,
    pub max_rows_per_sec: Option<u32>,
    #[serde(default)]
    pub tables: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub rules: Vec<String>,
    pub backup: Option<PathBuf>,
    pub undo: Option<bool>,
    pub verify: Option<bool>,
    pub snapshot: Option<bool>,
    pub fk_checks: Option<FkChecks>,
    pub skip_target_triggers: Option<bool>,
    pub copy_format: Option<CopyFormat>,
    pub write_timeout: Option<String>,
    pub lease_ttl: Option<String>,
    pub wait_for_lease: Option<String>,
    #[serde(default)]
    pub notify: Notify,
    /// `source` or `target` left out because a variable they refer to is not set, with the
    /// error to give when the command needs them (`dmf runs` needs no source).
    #[serde(skip)]
    pub unresolved: Vec<(String, String)>,
}

/// `[notify]`: where the run summary is sent when a sync ends.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(not(feature = "webhook"), allow(dead_code))]
#[serde(deny_unknown_fields)]
pub struct Notify {
    pub webhook: Option<String>,
    pub ca: Option<PathBuf>,
    pub insecure: Option<bool>,
}

impl FileConfig {
    /// Reads `explicit` (which must exist), else `./dmf.toml` when it exists, else nothing.
    pub fn load(explicit: Option<&Path>) -> Result<Self, CliError> {
        let path = match explicit {
            Some(path) => path.to_owned(),
            None if Path::new(DEFAULT_FILE).is_file() => PathBuf::from(DEFAULT_FILE),
            None => return Ok(Self::default()),
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| CliError::usage(format!("cannot read the config file {}: {e}", path.display())))?;
        Self::parse(&text, |name| std::env::var(name).ok())
            .map_err(|e| CliError::usage(format!("config file {}: {e}", path.display())))
    }

    /// Parses `text`, replacing `${VAR}` in every string by `env(VAR)`.
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut value: toml::Table =
            toml::from_str(text).map_err(|e| dmf::redact_secrets(&e.to_string()).into_owned())?;
        let mut unresolved = Vec::new();
        for (key, item) in value.iter_mut() {
            if let Err(error) = expand(item, key, &env) {
                // A connection only one side of the commands needs is an error when needed.
                match key.as_str() {
                    "source" | "target" => unresolved.push((key.clone(), error)),
                    _ => return Err(error),
                }
            }
        }
        for (key, _) in &unresolved {
            value.remove(key);
        }
        // The message names the key (`unknown field `batchsize`, expected one of …`); the
        // values are not shown (a URL's password could be one).
        let mut config = FileConfig::deserialize(toml::Value::Table(value))
            .map_err(|e| dmf::redact_secrets(&e.to_string()).into_owned())?;
        config.unresolved = unresolved;
        Ok(config)
    }

    /// A duration key (`write_timeout = "5m"`).
    pub fn duration(&self, key: &str, value: Option<&String>) -> Result<Option<std::time::Duration>, CliError> {
        value
            .map(|text| crate::cli::duration(text).map_err(|e| CliError::usage(format!("config key `{key}`: {e}"))))
            .transpose()
    }
}

/// Replaces `${VAR}` in every string under `value`.
fn expand(value: &mut toml::Value, key: &str, env: &impl Fn(&str) -> Option<String>) -> Result<(), String> {
    match value {
        toml::Value::String(text) => *text = substitute(text, key, env)?,
        toml::Value::Array(items) => {
            for item in items {
                expand(item, key, env)?;
            }
        }
        toml::Value::Table(table) => {
            for (inner, item) in table.iter_mut() {
                expand(item, &format!("{key}.{inner}"), env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// `text` with each `${VAR}` replaced by VAR's value and `$${` by `${`.
fn substitute(text: &str, key: &str, env: &impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(literal) = after.strip_prefix("${") {
            out.push_str("${");
            rest = literal;
        } else if let Some(reference) = after.strip_prefix('{') {
            let end = reference.find('}').ok_or_else(|| format!("key `{key}`: `${{` without a closing `}}`"))?;
            let name = &reference[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("key `{key}`: `${{{name}}}` is not a variable name"));
            }
            let value = env(name).ok_or_else(|| format!("key `{key}`: the environment variable {name} is not set"))?;
            out.push_str(&value);
            rest = &reference[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PROD" => Some("postgres://reader:S3cret@prod/shop".into()),
            "DIR" => Some("/backups".into()),
            _ => None,
        }
    }

    #[test]
    fn variables_are_replaced_in_every_string() {
        let config = FileConfig::parse(
            r#"
            source = "${PROD}"
            target = "sqlite://test.db"
            tables = ["public.*", "!audit_$${x}"]
            backup = "${DIR}/dmf"
            batch_size = 100
            [notify]
            webhook = "https://hooks.example/${DIR}"
            "#,
            env,
        )
        .unwrap();
        assert_eq!(config.source.as_deref(), Some("postgres://reader:S3cret@prod/shop"));
        assert_eq!(config.tables, ["public.*", "!audit_${x}"]);
        assert_eq!(config.backup, Some(PathBuf::from("/backups/dmf")));
        assert_eq!(config.batch_size, Some(100));
        assert_eq!(config.notify.webhook.as_deref(), Some("https://hooks.example//backups"));
    }

    #[test]
    fn errors_name_the_key_or_the_variable() {
        let error = FileConfig::parse("mode = \"${NOPE}\"", env).unwrap_err();
        assert_eq!(error, "key `mode`: the environment variable NOPE is not set");
        // A connection is resolved when a command needs it.
        let config = FileConfig::parse("target = \"${NOPE}\"", env).unwrap();
        assert_eq!(config.target, None);
        assert_eq!(
            config.unresolved,
            [("target".into(), "key `target`: the environment variable NOPE is not set".into())]
        );
        let error = FileConfig::parse("batchsize = 3", env).unwrap_err();
        assert!(error.contains("unknown field `batchsize`"), "{error}");
        let error = FileConfig::parse("[notify]\nhook = \"x\"", env).unwrap_err();
        assert!(error.contains("unknown field `hook`"), "{error}");
        let error = FileConfig::parse("batch_size = \"many\"", env).unwrap_err();
        assert!(error.contains("batch_size"), "{error}");
    }

    #[test]
    fn a_broken_file_never_shows_a_password() {
        let error = FileConfig::parse("source = \"postgres://u:S3cret@h/db\"\nsource = 1", env).unwrap_err();
        assert!(!error.contains("S3cret"), "{error}");
    }
}
