//! Where and how to connect: a parsed tokio-postgres configuration with libpq's TLS settings
//! (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`, which tokio-postgres does not know), the
//! server's name as shown to people (never the password), and opening a connection.

use std::path::PathBuf;
use std::time::Duration;

use dmf_core::{Error, ErrorKind, Result, Stage, redact_secrets};
use tokio_postgres::config::{Host, SslMode as WireMode};
use tokio_postgres::{Client, Config, NoTls};

use crate::error::to_dmf_error;
use crate::tls::{SslMode, Tls, TlsFailure, TlsSettings};

/// How long opening a connection may take when the URL does not say (`connect_timeout`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection may be idle before TCP keepalive probes start, unless the URL says.
pub const DEFAULT_KEEPALIVES_IDLE: Duration = Duration::from_secs(60);

/// tokio-postgres' own default, which DMF replaces with [`DEFAULT_KEEPALIVES_IDLE`].
const TOKIO_POSTGRES_KEEPALIVES_IDLE: Duration = Duration::from_secs(2 * 60 * 60);

/// libpq's TLS keys, read by DMF and taken out of the string tokio-postgres parses.
const TLS_KEYS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// Opens connections to one database. Shared by a database's extractors, loaders and run
/// store; each of them keeps its own connection.
#[derive(Debug)]
pub(crate) struct Connector {
    config: Config,
    name: String,
    tls: Tls,
}

/// Parses a `postgres://` URL or a `key=value` string: tokio-postgres' configuration and the
/// TLS settings (the string's keys over `PGSSLMODE` and the other variables). The error never
/// shows the password, even for a URL of another scheme (`postgress://…`), which
/// tokio-postgres would read, and quote, as a key.
pub(crate) fn parse_url(url: &str) -> Result<(Config, Tls)> {
    let shown = redact_secrets(url);
    if let Some(scheme) = foreign_scheme(url) {
        return Err(Error::Config(format!(
            "invalid PostgreSQL URL `{shown}`: the scheme `{scheme}` is not postgres:// or postgresql://"
        )));
    }
    let (rest, pairs) = split_tls_keys(url);
    let mut config: Config = rest
        .parse()
        .map_err(|e| Error::Config(format!("invalid PostgreSQL URL `{shown}`: {}", redact_secrets(&error_text(&e)))))?;
    let mut settings = TlsSettings::default();
    for (key, value) in &pairs {
        settings.set(key, value).map_err(|e| Error::Config(format!("invalid PostgreSQL URL `{shown}`: {e}")))?;
    }
    let tls = TlsSettings::from_env()?.overridden_by(settings).resolve(home().as_deref())?;
    crate::passfile::fill_password(&mut config);
    Ok((config, tls))
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|home| !home.is_empty()).map(PathBuf::from)
}

impl Connector {
    /// Parses a `postgres://user:password@host:port/dbname?options` URL (or a `key=value`
    /// connection string), with libpq's TLS keys ([`parse_url`]).
    pub(crate) fn parse(url: &str) -> Result<Self> {
        let (config, tls) = parse_url(url)?;
        Ok(Self::new(config, tls))
    }

    /// A configuration built by hand: its `ssl_mode` (disable, prefer or require), with the
    /// certificates of `PGSSLROOTCERT`, `PGSSLCERT` and `PGSSLKEY`, or those of `settings`.
    pub(crate) fn from_config(mut config: Config, settings: TlsSettings) -> Result<Self> {
        crate::passfile::fill_password(&mut config);
        let mode = match config.get_ssl_mode() {
            WireMode::Disable => SslMode::Disable,
            WireMode::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        };
        let tls = TlsSettings::from_env()?.overridden_by(settings).default_mode(mode).resolve(home().as_deref())?;
        Ok(Self::new(config, tls))
    }

    /// Uses `config`, adding DMF's defaults: `application_name=dmf` (so a DBA sees who is
    /// connected) and a connect timeout.
    fn new(mut config: Config, tls: Tls) -> Self {
        if config.get_application_name().is_none() {
            config.application_name("dmf");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        // TCP keepalive after a minute of silence (tokio-postgres' default waits two hours), so
        // that a peer that vanished is noticed on an idle connection. `keepalives_idle` in the
        // URL overrides it.
        if config.get_keepalives_idle() == TOKIO_POSTGRES_KEEPALIVES_IDLE {
            config.keepalives_idle(DEFAULT_KEEPALIVES_IDLE);
        }
        let name = display_name(&config);
        Self { config, name, tls }
    }

    /// `user@host:port/dbname`.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Opens a connection; its I/O runs on a task of its own until the client is dropped.
    ///
    /// TLS as libpq's `sslmode` says: `allow` tries without TLS first and again with TLS when
    /// the server refuses the connection; `prefer` tries with TLS when the server offers it,
    /// and again without when that attempt fails; Unix sockets never use TLS (as libpq).
    ///
    /// The connect timeout bounds the whole of it, TCP, TLS and authentication: a server that
    /// accepts the connection and never answers fails it as a transient error within that
    /// time (tokio-postgres' own timeout covers only the TCP connect).
    pub(crate) async fn connect(&self, stage: Stage) -> Result<Client> {
        let limit = self.config.get_connect_timeout().copied().unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        tokio::time::timeout(limit, self.connect_as_configured(stage)).await.map_err(|_| {
            Error::transient(
                stage,
                format!(
                    "no answer from PostgreSQL at {} within {} s of connecting (the connect timeout: TCP, \
                     TLS and authentication)",
                    self.name,
                    limit.as_secs_f32()
                ),
            )
        })?
    }

    async fn connect_as_configured(&self, stage: Stage) -> Result<Client> {
        let unix_only =
            !self.config.get_hosts().is_empty() && self.config.get_hosts().iter().all(|h| !matches!(h, Host::Tcp(_)));
        let mode = if unix_only { SslMode::Disable } else { self.tls.mode };
        let (first, fallback) = match mode {
            SslMode::Disable => (WireMode::Disable, None),
            SslMode::Allow => (WireMode::Disable, Some(WireMode::Require)),
            SslMode::Prefer => (WireMode::Prefer, Some(WireMode::Disable)),
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => (WireMode::Require, None),
        };
        let error = match self.attempt(first).await {
            Ok(client) => return Ok(client),
            Err(error) => error,
        };
        // libpq's second attempt: after a refusal by the server (`allow`), or after a failure
        // over TLS (`prefer`; a server that offers no TLS was already read without it).
        let retry = match (fallback, mode) {
            (Some(_), SslMode::Allow) => error.as_db_error().is_some(),
            (Some(_), SslMode::Prefer) => error.as_db_error().is_some() || TlsFailure::of(&error).is_some(),
            _ => false,
        };
        let error = match fallback.filter(|_| retry) {
            Some(second) => match self.attempt(second).await {
                Ok(client) => return Ok(client),
                Err(error) => error,
            },
            None => error,
        };
        Err(self.connect_error(error, stage))
    }

    async fn attempt(&self, mode: WireMode) -> std::result::Result<Client, tokio_postgres::Error> {
        let mut config = self.config.clone();
        config.ssl_mode(mode);
        let server = self.name.clone();
        let client = match (mode, self.tls.connector()) {
            (WireMode::Disable, _) | (_, None) => {
                let (client, connection) = config.connect(NoTls).await?;
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%server, %error, "PostgreSQL connection ended with an error");
                    }
                });
                client
            }
            (_, Some(tls)) => {
                let (client, connection) = config.connect(tls).await?;
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%server, %error, "PostgreSQL connection ended with an error");
                    }
                });
                client
            }
        };
        Ok(client)
    }

    /// A failed connection as DMF's error: a TLS failure (a certificate refused, TLS refused
    /// by the server) is fatal, since trying again cannot help, and names the server, the
    /// TLS settings and the reason; anything else is classified as any PostgreSQL error.
    fn connect_error(&self, error: tokio_postgres::Error, stage: Stage) -> Error {
        match TlsFailure::of(&error) {
            Some(failure) => {
                let message = failure.describe(&self.name, &self.tls.describe());
                Error::with_source(stage, ErrorKind::Fatal, message, error)
            }
            None => to_dmf_error(error, stage, format!("cannot connect to PostgreSQL at {}", self.name)),
        }
    }
}

/// `text` without libpq's TLS keys, and those keys with their values: from the query of a
/// `postgres://` URL (values percent-decoded), or from a `key=value` string (values quoted
/// or not, as libpq writes them). Text it cannot read is left for tokio-postgres to refuse.
pub(crate) fn split_tls_keys(text: &str) -> (String, Vec<(String, String)>) {
    let trimmed = text.trim_start();
    let lower = trimmed.get(..13).unwrap_or(trimmed).to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        let Some((base, query)) = trimmed.split_once('?') else { return (text.to_owned(), Vec::new()) };
        let mut kept = Vec::new();
        let mut found = Vec::new();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(key);
            if TLS_KEYS.contains(&key.as_str()) {
                found.push((key, percent_decode(value)));
            } else {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
        return (rest, found);
    }
    split_keyword_pairs(text)
}

fn split_keyword_pairs(text: &str) -> (String, Vec<(String, String)>) {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let offset = |i: usize| chars.get(i).map_or(text.len(), |&(o, _)| o);
    let mut kept = String::new();
    let mut found = Vec::new();
    let mut i = 0;
    loop {
        while at(i).is_some_and(char::is_whitespace) {
            i += 1;
        }
        if at(i).is_none() {
            break;
        }
        let start = i;
        while at(i).is_some_and(|c| !c.is_whitespace() && c != '=') {
            i += 1;
        }
        let key = text[offset(start)..offset(i)].to_owned();
        while at(i).is_some_and(char::is_whitespace) {
            i += 1;
        }
        if at(i) != Some('=') {
            kept.push_str(&text[offset(start)..]);
            return (kept, found);
        }
        i += 1;
        while at(i).is_some_and(char::is_whitespace) {
            i += 1;
        }
        let mut value = String::new();
        if at(i) == Some('\'') {
            i += 1;
            loop {
                match at(i) {
                    None => {
                        kept.push_str(&text[offset(start)..]);
                        return (kept, found);
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some('\\') if at(i + 1).is_some() => {
                        value.extend(at(i + 1));
                        i += 2;
                    }
                    Some(c) => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            while let Some(c) = at(i).filter(|c| !c.is_whitespace()) {
                if c == '\\' && at(i + 1).is_some() {
                    value.extend(at(i + 1));
                    i += 2;
                } else {
                    value.push(c);
                    i += 1;
                }
            }
        }
        if TLS_KEYS.contains(&key.as_str()) {
            found.push((key, value));
        } else {
            kept.push_str(&text[offset(start)..offset(i)]);
            kept.push(' ');
        }
    }
    (kept.trim_end().to_owned(), found)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn error_text(error: &tokio_postgres::Error) -> String {
    match std::error::Error::source(error) {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    }
}

/// `user@host:port/dbname` from a configuration: hosts and ports as given (several hosts
/// separated by commas), the user and database where set.
pub(crate) fn display_name(config: &Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or_else(|| ports.first()).copied().unwrap_or(5432);
            match host {
                Host::Tcp(name) if name.contains(':') => format!("[{name}]:{port}"),
                Host::Tcp(name) => format!("{name}:{port}"),
                #[cfg(unix)]
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    let hosts = if hosts.is_empty() {
        format!("localhost:{}", ports.first().copied().unwrap_or(5432))
    } else {
        hosts.join(",")
    };
    let mut name = String::new();
    if let Some(user) = config.get_user() {
        name.push_str(user);
        name.push('@');
    }
    name.push_str(&hosts);
    if let Some(dbname) = config.get_dbname().or(config.get_user()) {
        name.push('/');
        name.push_str(dbname);
    }
    name
}

/// The scheme of `url` when it is written as a URL (`scheme://`) of another scheme than
/// `postgres` or `postgresql`.
fn foreign_scheme(url: &str) -> Option<&str> {
    let (scheme, _) = url.trim_start().split_once("://")?;
    let is_scheme = !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    (is_scheme && !scheme.eq_ignore_ascii_case("postgres") && !scheme.eq_ignore_ascii_case("postgresql"))
        .then_some(scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_of(url: &str) -> String {
        Connector::parse(url).unwrap().name().to_owned()
    }

    #[test]
    fn display_names_never_show_the_password() {
        assert_eq!(name_of("postgres://app:s3cret@db.example:6432/shop"), "app@db.example:6432/shop");
        assert_eq!(name_of("postgres://app@127.0.0.1/shop"), "app@127.0.0.1:5432/shop");
        assert_eq!(name_of("postgresql://app:pw@h1:5433,h2:5434/shop"), "app@h1:5433,h2:5434/shop");
        assert_eq!(name_of("host=db user=app password=hunter2 dbname=shop port=5555"), "app@db:5555/shop");
        assert_eq!(name_of("postgres://app:pw@db"), "app@db:5432/app");
        assert!(!name_of("postgres://app:s3cret@db/shop").contains("s3cret"));
    }

    #[test]
    fn unparseable_urls_are_shown_without_the_password() {
        for (url, shown) in [
            ("postgres://app:s3cret@db:notaport/shop", "`postgres://app:***@db:notaport/shop`"),
            ("postgres://app:s3/c@ret@db:x/shop", "`postgres://app:***@db:x/shop`"),
            (
                "postgres://app@db/shop?password=s3cret&sslmode=maybe",
                "`postgres://app@db/shop?password=***&sslmode=maybe`",
            ),
            ("host=db password=s3cret port=x", "`host=db password=*** port=x`"),
            ("postgress://app:s3cret@db/shop", "the scheme `postgress` is not postgres://"),
            ("postgresql+x://app:s3cret@db/shop?sslmode=require", "`postgresql+x://app:***@db/shop?sslmode=require`"),
            // Not a URL to tokio-postgres: a key it quotes back, whole.
            ("postgress:/app:s3cret@db/shop?sslmode=require", "`postgress:/app:***@db/shop?sslmode=require`"),
        ] {
            let error = Connector::parse(url).unwrap_err();
            for text in [error.to_string(), format!("{error:?}")] {
                assert!(text.contains(shown), "{url}: {text}");
                assert!(!text.contains("s3"), "{url}: {text}");
            }
        }
    }

    #[test]
    fn invalid_urls_are_configuration_errors_without_the_password() {
        let error = Connector::parse("postgres://app:s3cret@db:notaport/shop").unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with("invalid configuration: invalid PostgreSQL URL `postgres://app:***@db:notaport/shop`"),
            "{text}"
        );
        assert!(!text.contains("s3cret"), "{text}");
    }

    #[test]
    fn tls_keys_are_taken_out_of_urls_and_the_rest_is_left_as_written() {
        let (rest, keys) = split_tls_keys(
            "postgres://app:p%40ss@db:5433/shop?sslmode=verify-full&application_name=etl&sslrootcert=%2Fetc%2Fca%20x.crt&sslcert=c.crt&sslkey=c.key",
        );
        assert_eq!(rest, "postgres://app:p%40ss@db:5433/shop?application_name=etl");
        let keys: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            keys,
            [("sslmode", "verify-full"), ("sslrootcert", "/etc/ca x.crt"), ("sslcert", "c.crt"), ("sslkey", "c.key")]
        );
        let (rest, keys) = split_tls_keys("postgresql://db/shop?sslmode=require");
        assert_eq!((rest.as_str(), keys.len()), ("postgresql://db/shop", 1));
        let (rest, keys) = split_tls_keys("postgres://db/shop");
        assert_eq!((rest.as_str(), keys.len()), ("postgres://db/shop", 0));
    }

    #[test]
    fn tls_keys_are_taken_out_of_key_value_strings_quoted_or_not() {
        let (rest, keys) = split_tls_keys(
            r"host=db sslmode = verify-ca password='it\'s \\ x' sslrootcert='/etc/my ca.crt' sslkey=a\ b dbname=shop",
        );
        assert_eq!(rest, r"host=db password='it\'s \\ x' dbname=shop");
        let keys: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(keys, [("sslmode", "verify-ca"), ("sslrootcert", "/etc/my ca.crt"), ("sslkey", "a b")]);
        // What it cannot read is left whole, for tokio-postgres to refuse.
        let (rest, keys) = split_tls_keys("host=db sslmode='require");
        assert_eq!((rest.as_str(), keys.len()), ("host=db sslmode='require", 0));
    }

    #[test]
    fn url_tls_settings_are_read_and_checked_when_parsed() {
        let connector = Connector::parse("postgres://a@h/d?sslmode=require").unwrap();
        assert_eq!(connector.tls.mode, SslMode::Require);
        assert_eq!(connector.config.get_dbname(), Some("d"));
        let error = Connector::parse("postgres://a:s3cret@h/d?sslmode=verify-full&sslrootcert=/nonexistent.crt")
            .unwrap_err()
            .to_string();
        assert!(error.contains("cannot read sslrootcert=/nonexistent.crt"), "{error}");
        let error = Connector::parse("postgres://a:s3cret@h/d?sslmode=on").unwrap_err().to_string();
        assert!(error.contains("`postgres://a:***@h/d?sslmode=on`: invalid sslmode `on`"), "{error}");
    }

    #[test]
    fn defaults_are_added_but_never_override_the_url() {
        let connector = Connector::parse("postgres://a@h/d?application_name=etl&connect_timeout=3").unwrap();
        assert_eq!(connector.config.get_application_name(), Some("etl"));
        assert_eq!(connector.config.get_connect_timeout(), Some(&Duration::from_secs(3)));
        let connector = Connector::parse("postgres://a@h/d").unwrap();
        assert_eq!(connector.config.get_application_name(), Some("dmf"));
        assert_eq!(connector.config.get_connect_timeout(), Some(&DEFAULT_CONNECT_TIMEOUT));
    }
}
