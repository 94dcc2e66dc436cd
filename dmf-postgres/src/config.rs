//! Where and how to connect: a parsed tokio-postgres configuration, the server's name as
//! shown to people (never the password), and opening a connection.

use std::time::Duration;

use dmf_core::{Error, Result, Stage};
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls};

use crate::error::to_dmf_error;

/// How long opening a connection may take when the URL does not say (`connect_timeout`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens connections to one database. Shared by a database's extractors, loaders and run
/// store; each of them keeps its own connection.
#[derive(Debug)]
pub(crate) struct Connector {
    config: Config,
    name: String,
}

impl Connector {
    /// Parses a `postgres://user:password@host:port/dbname?options` URL (or a `key=value`
    /// connection string). The error never shows the password.
    pub(crate) fn parse(url: &str) -> Result<Self> {
        let config: Config = url
            .parse()
            .map_err(|e| Error::Config(format!("invalid PostgreSQL URL `{}`: {}", redact(url), error_text(&e))))?;
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
        let name = display_name(&config);
        Self { config, name }
    }

    /// `user@host:port/dbname`.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Opens a connection; its I/O runs on a task of its own until the client is dropped.
    pub(crate) async fn connect(&self, stage: Stage) -> Result<Client> {
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(|e| to_dmf_error(e, stage, format!("cannot connect to PostgreSQL at {}", self.name)))?;
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

/// A connection URL or string with its password replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        if let Some((userinfo, host)) = authority.rsplit_once('@') {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let masked = if userinfo.contains(':') { format!("{user}:***") } else { user.to_owned() };
            let tail = redact_query(tail);
            return format!("{scheme}://{masked}@{host}{tail}");
        }
        return format!("{scheme}://{authority}{}", redact_query(tail));
    }
    // key=value form.
    url.split_whitespace()
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn redact_query(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else { return tail.to_owned() };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
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
    fn urls_are_redacted() {
        assert_eq!(redact("postgres://app:s3cret@db:5432/shop"), "postgres://app:***@db:5432/shop");
        assert_eq!(
            redact("postgres://app@db/shop?password=x&sslmode=disable"),
            "postgres://app@db/shop?password=***&sslmode=disable"
        );
        assert_eq!(redact("host=db password=hunter2 user=app"), "host=db password=*** user=app");
        assert_eq!(redact("postgres://db/shop"), "postgres://db/shop");
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
