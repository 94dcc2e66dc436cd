//! Where and how to connect: a parsed tokio-postgres configuration, the server's name as
//! shown to people (never the password), and opening a connection.

use std::time::Duration;

use dmf_core::{Error, Result, Stage, redact_secrets};
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls};

use crate::error::to_dmf_error;

/// How long opening a connection may take when the URL does not say (`connect_timeout`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection may be idle before TCP keepalive probes start, unless the URL says.
pub const DEFAULT_KEEPALIVES_IDLE: Duration = Duration::from_secs(60);

/// tokio-postgres' own default, which DMF replaces with [`DEFAULT_KEEPALIVES_IDLE`].
const TOKIO_POSTGRES_KEEPALIVES_IDLE: Duration = Duration::from_secs(2 * 60 * 60);

/// Opens connections to one database. Shared by a database's extractors, loaders and run
/// store; each of them keeps its own connection.
#[derive(Debug)]
pub(crate) struct Connector {
    config: Config,
    name: String,
}

impl Connector {
    /// Parses a `postgres://user:password@host:port/dbname?options` URL (or a `key=value`
    /// connection string). The error never shows the password, even for a URL of another
    /// scheme (`postgress://…`), which tokio-postgres would read, and quote, as a key.
    pub(crate) fn parse(url: &str) -> Result<Self> {
        let shown = redact_secrets(url);
        if let Some(scheme) = foreign_scheme(url) {
            return Err(Error::Config(format!(
                "invalid PostgreSQL URL `{shown}`: the scheme `{scheme}` is not postgres:// or postgresql://"
            )));
        }
        let config: Config = url.parse().map_err(|e| {
            Error::Config(format!("invalid PostgreSQL URL `{shown}`: {}", redact_secrets(&error_text(&e))))
        })?;
        Ok(Self::new(config))
    }

    /// Uses `config`, adding DMF's defaults: `application_name=dmf` (so a DBA sees who is
    /// connected) and a connect timeout.
    pub(crate) fn new(mut config: Config) -> Self {
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
        Self { config, name }
    }

    /// `user@host:port/dbname`.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Opens a connection; its I/O runs on a task of its own until the client is dropped.
    ///
    /// The connect timeout bounds the whole of it, TCP, TLS and authentication: a server that
    /// accepts the connection and never answers fails it as a transient error within that
    /// time (tokio-postgres' own timeout covers only the TCP connect).
    pub(crate) async fn connect(&self, stage: Stage) -> Result<Client> {
        let limit = self.config.get_connect_timeout().copied().unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let connecting = tokio::time::timeout(limit, self.config.connect(NoTls)).await.map_err(|_| {
            Error::transient(
                stage,
                format!(
                    "no answer from PostgreSQL at {} within {} s of connecting (the connect timeout: TCP, \
                     TLS and authentication)",
                    self.name,
                    limit.as_secs_f32()
                ),
            )
        })?;
        let (client, connection) =
            connecting.map_err(|e| to_dmf_error(e, stage, format!("cannot connect to PostgreSQL at {}", self.name)))?;
        let server = self.name.clone();
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%server, %error, "PostgreSQL connection ended with an error");
            }
        });
        Ok(client)
    }
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
    fn defaults_are_added_but_never_override_the_url() {
        let connector = Connector::parse("postgres://a@h/d?application_name=etl&connect_timeout=3").unwrap();
        assert_eq!(connector.config.get_application_name(), Some("etl"));
        assert_eq!(connector.config.get_connect_timeout(), Some(&Duration::from_secs(3)));
        let connector = Connector::parse("postgres://a@h/d").unwrap();
        assert_eq!(connector.config.get_application_name(), Some("dmf"));
        assert_eq!(connector.config.get_connect_timeout(), Some(&DEFAULT_CONNECT_TIMEOUT));
    }
}
