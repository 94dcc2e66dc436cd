//! Where and how to connect: an ADO.NET connection string or an `mssql://` URL parsed into
//! [`MssqlConfig`], shown to people without its password, and turned into a
//! [`tiberius::Config`].
//!
//! | ADO.NET key (any case; synonyms) | URL query key | meaning | default |
//! |---|---|---|---|
//! | `Server`, `Data Source`, `Address`, `Addr`, `Network Address` | host and port of the URL | `host`, `host,port`, `host\instance`, `tcp:host,port`; `.` and `(local)` are `localhost` | `localhost,1433` |
//! | `Database`, `Initial Catalog` | the path (`/db`) | the database | `master` |
//! | `User Id`, `UID`, `User` | user of the URL | SQL login | — (required) |
//! | `Password`, `PWD` | password of the URL | its password (never shown) | empty |
//! | `Encrypt` | `encrypt` | `true`/`mandatory` (required), `false`/`optional` (login only), `strict` (TDS 8.0), `off` (no TLS at all) | `true` |
//! | `TrustServerCertificate` | `trust_server_certificate` | accept any server certificate (development only) | `false` |
//! | `TrustServerCertificateCA` | `trust_server_certificate_ca` | a PEM/DER CA file to trust | — |
//! | `HostNameInCertificate` | `hostname_in_certificate` | the name the certificate must carry | the host |
//! | `Application Name`, `App` | `application_name` | shown in `sys.dm_exec_sessions` | `dmf` |
//! | `Connect Timeout`, `Connection Timeout`, `Timeout` | `connect_timeout` | seconds to connect and log in | 15 |
//! | `Command Timeout` | `command_timeout` | seconds a statement may stall; `0` = no limit | 600 |
//! | `ApplicationIntent` | `application_intent` | `ReadOnly` routes to a readable secondary | `ReadWrite` |
//! | `MultiSubnetFailover` | `multi_subnet_failover` | dial every address of an AG listener at once | `false` |
//! | `Packet Size` | `packet_size` | TDS packet size (512–32767) | server's |
//! | — | `instance` | named instance (same as `host\instance`) | — |
//! | `Upsert` | `upsert` | how `upsert`, `diff` and `incremental` write into this target ([`UpsertStrategy`]): `merge`, or `update_insert` (also `UpdateInsert`) for no MERGE | [`MssqlOptions::upsert`](crate::MssqlOptions::upsert), `merge` |
//!
//! `Integrated Security` / `Trusted_Connection` are refused: this build logs in with SQL
//! logins only. Keys DMF has no use for but SqlClient knows (`Pooling`, `Max Pool Size`,
//! `MultipleActiveResultSets`, `Persist Security Info`…) are ignored; any other key is an
//! error naming the key (never its value).

use std::fmt;
use std::time::Duration;

use dmf_core::redact::is_secret_key;
use dmf_core::{Error, Result, redact_secrets};
use tiberius::{AuthMethod, EncryptionLevel};

/// How long connecting and logging in may take when the configuration does not say.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long one statement may stall when the configuration does not say (tiberius's own
/// default, 30 s, is too short for large MERGE batches).
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

/// The default SQL Server port.
pub const DEFAULT_PORT: u16 = 1433;

/// How the connection is encrypted (`Encrypt=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    /// No TLS at all (`Encrypt=off`): only for servers without TLS; the password travels in
    /// clear.
    NotSupported,
    /// TLS for the login only (`Encrypt=false`).
    LoginOnly,
    /// TLS for the whole session (`Encrypt=true`, the default).
    Required,
    /// TDS 8.0 strict encryption (`Encrypt=strict`, SQL Server 2022 and Azure).
    Strict,
}

impl std::fmt::Display for Encryption {
    /// As the connection string spells it (`Encrypt=true`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Encryption::NotSupported => "Encrypt=off",
            Encryption::LoginOnly => "Encrypt=false",
            Encryption::Required => "Encrypt=true",
            Encryption::Strict => "Encrypt=strict",
        })
    }
}

/// How a loader writes the staged rows of `upsert`, `diff` and `incremental` syncs (and their
/// deletes, deferred keys and logged inserts). Both write the same rows, report the same exact
/// counts, and keep the same undo log and checkpoint, in one transaction under `XACT_ABORT`;
/// see the README's SQL Server section for when to pick which.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UpsertStrategy {
    /// One `MERGE … OUTPUT $action INTO #dmf_merge_log` for upserts; `UPDATE`/`DELETE`/`INSERT
    /// … OUTPUT` joined with the stage for the other modes; counts from the log (the default).
    #[default]
    Merge,
    /// No MERGE and no `OUTPUT`: `UPDATE … FROM <table> WITH (UPDLOCK, SERIALIZABLE) JOIN
    /// #dmf_stage` of the rows that differ, then `INSERT … SELECT … WHERE NOT EXISTS` under the
    /// same hints; deletes `DELETE … JOIN #dmf_stage`; each counted by `@@ROWCOUNT`, the undo
    /// log's rows selected under the same locks just before each write. For teams that avoid
    /// MERGE, and for servers without it (Babelfish).
    UpdateInsert,
}

impl UpsertStrategy {
    fn parse(key: &str, value: &str) -> std::result::Result<Self, String> {
        match value.trim().to_ascii_lowercase().replace(['_', '-', ' '], "").as_str() {
            "merge" => Ok(Self::Merge),
            "updateinsert" => Ok(Self::UpdateInsert),
            _ => Err(format!("`{key}` must be merge or update_insert")),
        }
    }
}

/// A password that never shows in `Debug` or `Display`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }

    /// The password itself, for logging in.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Everything needed to connect to one SQL Server database.
///
/// ```
/// use dmf_mssql::MssqlConfig;
/// // A password holding `;` or quotes is quoted, the quote doubled inside.
/// let config = MssqlConfig::parse(
///     "Server=db.example,1433;Database=Sales;User Id=dmf;Password=\"s3;cr'et\";TrustServerCertificate=true",
/// ).unwrap();
/// assert_eq!(config.display_name(), "dmf@db.example:1433/Sales");
/// assert_eq!(config.password.expose(), "s3;cr'et");
/// let url = MssqlConfig::parse("mssql://dmf:p%40ss@db.example/Sales?trust_server_certificate=true").unwrap();
/// assert_eq!(url.display_name(), "dmf@db.example:1433/Sales");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MssqlConfig {
    /// Host name or address.
    pub host: String,
    /// TCP port (`None`: 1433, or the SQL Browser's answer for a named instance).
    pub port: Option<u16>,
    /// Named instance (`host\instance`), found through the SQL Browser (UDP 1434).
    pub instance: Option<String>,
    /// Database.
    pub database: String,
    /// SQL login.
    pub user: String,
    /// Its password.
    pub password: Password,
    /// Encryption.
    pub encryption: Encryption,
    /// Accept any server certificate (development only).
    pub trust_server_certificate: bool,
    /// A CA file to trust.
    pub trust_ca: Option<String>,
    /// The name the certificate must carry, when it differs from `host`.
    pub hostname_in_certificate: Option<String>,
    /// Shown in `sys.dm_exec_sessions.program_name`.
    pub application_name: String,
    /// Connecting and logging in.
    pub connect_timeout: Duration,
    /// How long a statement may stall (`None`: no limit).
    pub command_timeout: Option<Duration>,
    /// `ApplicationIntent=ReadOnly`.
    pub read_only_intent: bool,
    /// Dial every address of an AG listener at once.
    pub multi_subnet_failover: bool,
    /// TDS packet size.
    pub packet_size: Option<u32>,
    /// The upsert strategy the connection string names (`upsert=`); `None`: the one in
    /// [`MssqlOptions`](crate::MssqlOptions) decides. Not a connection setting, but the
    /// connection string is where command-line users say what they want of the target.
    pub upsert: Option<UpsertStrategy>,
}

impl MssqlConfig {
    /// A configuration for `host`, `database` and a SQL login, with DMF's defaults.
    pub fn new(host: &str, database: &str, user: &str, password: &str) -> Self {
        Self {
            host: host.to_owned(),
            port: None,
            instance: None,
            database: database.to_owned(),
            user: user.to_owned(),
            password: Password::new(password),
            encryption: Encryption::Required,
            trust_server_certificate: false,
            trust_ca: None,
            hostname_in_certificate: None,
            application_name: "dmf".to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: Some(DEFAULT_COMMAND_TIMEOUT),
            read_only_intent: false,
            multi_subnet_failover: false,
            packet_size: None,
            upsert: None,
        }
    }

    /// Parses an `mssql://` (or `sqlserver://`) URL, else an ADO.NET connection string.
    /// Errors are [`Error::Config`] and never contain the password.
    pub fn parse(text: &str) -> Result<Self> {
        let trimmed = text.trim();
        let lower = trimmed.to_ascii_lowercase();
        let config = if lower.starts_with("mssql://") || lower.starts_with("sqlserver://") {
            parse_url(trimmed)
        } else if looks_like_url(trimmed) {
            // `mssq://sa:pw@h/db` would otherwise be read as one ADO.NET key, and named.
            Err(format!("`{}` is neither an mssql:// URL nor an ADO.NET string", redact(trimmed)))
        } else {
            parse_ado(trimmed)
        };
        let config = config.map_err(|problem| Error::Config(format!("SQL Server connection: {problem}")))?;
        config.validate().map_err(|problem| Error::Config(format!("SQL Server connection: {problem}")))?;
        Ok(config)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.host.is_empty() {
            return Err("no server given".into());
        }
        if self.user.is_empty() {
            return Err("no user given (User Id=…): DMF logs in with a SQL login".into());
        }
        if self.database.is_empty() {
            return Err("the database name is empty".into());
        }
        if let Some(size) = self.packet_size {
            if !(512..=32767).contains(&size) {
                return Err(format!("packet size {size} is outside 512..=32767"));
            }
        }
        if self.port.is_some() && self.instance.is_some() {
            return Err("give either a port or an instance name, not both (with both, the port is used for \
                        the SQL Browser query)"
                .into());
        }
        if let Some(ca) = &self.trust_ca {
            // tiberius panics when both are set; and trusting every certificate makes the CA moot.
            if self.trust_server_certificate {
                return Err(format!(
                    "TrustServerCertificate=true accepts any certificate, so TrustServerCertificateCA={ca} would \
                     check nothing: give one or the other (the CA file, to verify the server)"
                ));
            }
            if self.encryption == Encryption::NotSupported {
                return Err(format!(
                    "TrustServerCertificateCA={ca} with Encrypt=off: there is no TLS to verify (use Encrypt=true)"
                ));
            }
            let readable = std::fs::metadata(ca).map(|m| m.is_file());
            if !matches!(readable, Ok(true)) {
                return Err(format!(
                    "TrustServerCertificateCA={ca}: {}",
                    match readable {
                        Err(error) => format!("cannot read it: {error}"),
                        Ok(_) => "not a file".to_owned(),
                    }
                ));
            }
            let extension = std::path::Path::new(ca).extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
            if !matches!(extension.as_deref(), Some("pem" | "crt" | "der")) {
                return Err(format!(
                    "TrustServerCertificateCA={ca}: tiberius reads a CA file by its extension, which must be .pem, \
                     .crt or .der"
                ));
            }
        }
        Ok(())
    }

    /// `user@host:port/database` or `user@host\instance/database`: never the password.
    pub fn display_name(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let location = match (&self.instance, self.port) {
            (Some(instance), _) => format!("{host}\\{instance}"),
            (None, port) => format!("{host}:{}", port.unwrap_or(DEFAULT_PORT)),
        };
        format!("{}@{location}/{}", self.user, self.database)
    }

    /// The same configuration for another database of the server (`master` for RESTORE).
    pub fn with_database(&self, database: &str) -> Self {
        Self { database: database.to_owned(), ..self.clone() }
    }

    /// True when connecting needs the SQL Browser (a named instance) or dialling several
    /// addresses at once (multi-subnet failover): tiberius's `connect_named`.
    pub fn needs_browser(&self) -> bool {
        self.instance.is_some() || self.multi_subnet_failover
    }

    /// The tiberius configuration, with `command_timeout` overriding the configured one
    /// (the admin session runs BACKUP and RESTORE without a limit).
    pub fn tiberius_config(&self, command_timeout: Option<Duration>) -> tiberius::Config {
        let mut config = tiberius::Config::new();
        config.host(&self.host);
        if let Some(port) = self.port {
            config.port(port);
        }
        if let Some(instance) = &self.instance {
            config.instance_name(instance);
        }
        config.database(&self.database);
        config.application_name(&self.application_name);
        config.authentication(AuthMethod::sql_server(&self.user, self.password.expose()));
        config.encryption(match self.encryption {
            Encryption::NotSupported => EncryptionLevel::NotSupported,
            Encryption::LoginOnly => EncryptionLevel::Off,
            Encryption::Required => EncryptionLevel::Required,
            Encryption::Strict => EncryptionLevel::Strict,
        });
        if self.trust_server_certificate {
            config.trust_cert();
        }
        if let Some(ca) = &self.trust_ca {
            config.trust_cert_ca(ca);
        }
        if let Some(name) = &self.hostname_in_certificate {
            config.hostname_in_certificate(name);
        }
        config.readonly(self.read_only_intent);
        config.multi_subnet_failover(self.multi_subnet_failover);
        if let Some(size) = self.packet_size {
            config.packet_size(size);
        }
        config.handshake_timeout(Some(self.connect_timeout));
        config.command_timeout(command_timeout);
        config
    }
}

fn parse_bool(key: &str, value: &str) -> std::result::Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        _ => Err(format!("`{key}` must be true or false")),
    }
}

fn parse_encryption(key: &str, value: &str) -> std::result::Result<Encryption, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "mandatory" | "required" => Ok(Encryption::Required),
        "false" | "no" | "optional" => Ok(Encryption::LoginOnly),
        "strict" => Ok(Encryption::Strict),
        "off" | "not_supported" | "notsupported" => Ok(Encryption::NotSupported),
        _ => Err(format!("`{key}` must be true, false, strict or off")),
    }
}

fn parse_seconds(key: &str, value: &str) -> std::result::Result<u64, String> {
    value.trim().parse::<u64>().map_err(|_| format!("`{key}` must be a whole number of seconds"))
}

fn parse_number<T: std::str::FromStr>(key: &str, value: &str) -> std::result::Result<T, String> {
    value.trim().parse::<T>().map_err(|_| format!("`{key}` must be a number"))
}

/// Splits an ADO.NET connection string into `(key, value)` pairs: `;` separates pairs, keys
/// are trimmed (`==` in a key is a literal `=`), a value starting with `"` or `'` runs to the
/// matching quote (the quote doubled inside stands for itself) and may hold `;`.
///
/// Errors never name what follows a password: with an unquoted `;` in it, that is the rest of
/// the password.
pub(crate) fn ado_pairs(text: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let after_password = pairs.last().is_some_and(|(key, _)| is_secret_key(key));
        let no_value = |key: &str| {
            if after_password {
                AFTER_PASSWORD.to_owned()
            } else {
                format!("`{}` has no value (expected key=value)", redact(key.trim()))
            }
        };
        // Key, up to a single `=`.
        let mut key = String::new();
        loop {
            match chars.get(i) {
                None => {
                    if key.trim().is_empty() {
                        return Ok(pairs);
                    }
                    return Err(no_value(&key));
                }
                Some(';') if key.trim().is_empty() => {
                    i += 1;
                }
                Some(';') => return Err(no_value(&key)),
                Some('=') if chars.get(i + 1) == Some(&'=') => {
                    key.push('=');
                    i += 2;
                }
                Some('=') => {
                    i += 1;
                    break;
                }
                Some(c) => {
                    key.push(*c);
                    i += 1;
                }
            }
        }
        let key = key.trim().to_owned();
        if key.is_empty() {
            return Err("a value has no key".into());
        }
        // Value.
        while chars.get(i).is_some_and(|c| *c == ' ' || *c == '\t') {
            i += 1;
        }
        let mut value = String::new();
        match chars.get(i) {
            Some(&quote) if quote == '"' || quote == '\'' => {
                i += 1;
                loop {
                    match chars.get(i) {
                        None if after_password => return Err(AFTER_PASSWORD.to_owned()),
                        None => return Err(format!("the value of `{}` has no closing {quote}", redact(&key))),
                        Some(&c) if c == quote && chars.get(i + 1) == Some(&quote) => {
                            value.push(quote);
                            i += 2;
                        }
                        Some(&c) if c == quote => {
                            i += 1;
                            break;
                        }
                        Some(&c) => {
                            value.push(c);
                            i += 1;
                        }
                    }
                }
                while chars.get(i).is_some_and(|c| c.is_whitespace()) {
                    i += 1;
                }
                match chars.get(i) {
                    None => {}
                    Some(';') => i += 1,
                    Some(_) if after_password => return Err(AFTER_PASSWORD.to_owned()),
                    Some(_) => {
                        return Err(format!("unexpected text after the quoted value of `{}`", redact(&key)));
                    }
                }
            }
            _ => {
                while let Some(&c) = chars.get(i) {
                    i += 1;
                    if c == ';' {
                        break;
                    }
                    value.push(c);
                }
                value = value.trim().to_owned();
            }
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// Why the text after a password did not parse, without showing it.
const AFTER_PASSWORD: &str = "the text after the password is not key=value (not shown: it may be the rest of a \
                              password holding `;`, which must then be quoted: Password=\"…\")";

/// Keys SqlClient knows that DMF ignores (its own pool and settings do their job).
const IGNORED_KEYS: [&str; 11] = [
    "pooling",
    "max pool size",
    "min pool size",
    "multipleactiveresultsets",
    "persist security info",
    "persistsecurityinfo",
    "connection lifetime",
    "load balance timeout",
    "workstation id",
    "wsid",
    "current language",
];

fn parse_ado(text: &str) -> std::result::Result<MssqlConfig, String> {
    let mut config = MssqlConfig::new("", "master", "", "");
    let mut server = None;
    let mut after_password = false;
    for (key, value) in ado_pairs(text)? {
        let normal = key.to_ascii_lowercase().split_whitespace().collect::<Vec<_>>().join(" ");
        match normal.as_str() {
            "server" | "data source" | "address" | "addr" | "network address" => server = Some(value),
            "database" | "initial catalog" => config.database = value,
            "user id" | "uid" | "user" | "userid" => config.user = value,
            "password" | "pwd" => config.password = Password::new(value),
            "encrypt" => config.encryption = parse_encryption(&key, &value)?,
            "trustservercertificate" | "trust server certificate" => {
                config.trust_server_certificate = parse_bool(&key, &value)?;
            }
            "trustservercertificateca" | "trust server certificate ca" => config.trust_ca = Some(value),
            "hostnameincertificate" | "host name in certificate" => config.hostname_in_certificate = Some(value),
            "application name" | "app" | "applicationname" => config.application_name = value,
            "connect timeout" | "connection timeout" | "timeout" | "connecttimeout" => {
                config.connect_timeout = Duration::from_secs(parse_seconds(&key, &value)?);
            }
            "command timeout" | "commandtimeout" => {
                let seconds = parse_seconds(&key, &value)?;
                config.command_timeout = (seconds > 0).then(|| Duration::from_secs(seconds));
            }
            "applicationintent" | "application intent" => {
                config.read_only_intent = match value.trim().to_ascii_lowercase().as_str() {
                    "readonly" => true,
                    "readwrite" => false,
                    _ => return Err(format!("`{key}` must be ReadOnly or ReadWrite")),
                };
            }
            "multisubnetfailover" | "multi subnet failover" => {
                config.multi_subnet_failover = parse_bool(&key, &value)?;
            }
            "packet size" | "packetsize" => config.packet_size = Some(parse_number(&key, &value)?),
            "upsert" => config.upsert = Some(UpsertStrategy::parse(&key, &value)?),
            "integrated security" | "trusted_connection" | "integratedsecurity" => {
                if parse_bool(&key, &value).unwrap_or(true) || value.eq_ignore_ascii_case("sspi") {
                    return Err(format!("`{key}` (Windows authentication) is not supported: use a SQL login"));
                }
            }
            known if IGNORED_KEYS.contains(&known) => {}
            _ if after_password => return Err(AFTER_PASSWORD.to_owned()),
            _ => return Err(format!("unknown connection-string key `{}`", redact(&key))),
        }
        after_password = is_secret_key(&key);
    }
    let server = server.ok_or("no `Server=` given")?;
    let (host, port, instance) = parse_server(&server)?;
    config.host = host;
    config.port = port;
    config.instance = instance;
    Ok(config)
}

/// `tcp:host,port`, `host\instance`, `host`, `[::1],1433`; `.` and `(local)` are localhost.
fn parse_server(server: &str) -> std::result::Result<(String, Option<u16>, Option<String>), String> {
    let mut rest = server.trim();
    if let Some((protocol, after)) = rest.split_once(':') {
        match protocol.to_ascii_lowercase().as_str() {
            "tcp" => rest = after.trim(),
            "np" | "lpc" | "admin" => return Err(format!("protocol `{protocol}:` is not supported: use TCP")),
            _ => {}
        }
    }
    let (host_part, port) = match rest.rsplit_once(',') {
        Some((host, port)) => {
            let port = port.trim().parse::<u16>().map_err(|_| "the port after `,` in `Server=` is not a number")?;
            (host.trim(), Some(port))
        }
        None => (rest, None),
    };
    let (host, instance) = match host_part.split_once('\\') {
        Some((host, instance)) if !instance.trim().is_empty() => (host.trim(), Some(instance.trim().to_owned())),
        Some((host, _)) => (host.trim(), None),
        None => (host_part, None),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = match host.to_ascii_lowercase().as_str() {
        "." | "(local)" | "(localdb)" | "" => "localhost".to_owned(),
        _ => host.to_owned(),
    };
    Ok((host, port, instance))
}

/// Decodes `%XX` escapes (and nothing else: `+` stays `+`).
fn percent_decode(text: &str) -> std::result::Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).ok_or("a `%` escape in the URL is cut short")?;
            let byte = u8::from_str_radix(hex, 16).map_err(|_| "a `%` escape in the URL is not hexadecimal")?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the URL decodes to invalid UTF-8".into())
}

fn parse_url(url: &str) -> std::result::Result<MssqlConfig, String> {
    let (_, rest) = url.split_once("://").ok_or("not a URL")?;
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.split_once('/') {
        Some((authority, path)) => (authority, path),
        None => (before_query, ""),
    };
    // The password may contain `@` only percent-encoded; the last `@` ends the user info.
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => (Some(userinfo), hostport),
        None => (None, authority),
    };
    let mut config = MssqlConfig::new("", "master", "", "");
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (userinfo, None),
        };
        config.user = percent_decode(user)?;
        if let Some(password) = password {
            config.password = Password::new(percent_decode(password)?);
        }
    }
    let hostport = percent_decode(hostport)?;
    let (host, port) = if let Some(after) = hostport.strip_prefix('[') {
        let (host, tail) = after.split_once(']').ok_or("an IPv6 host in the URL has no closing `]`")?;
        let port = match tail.strip_prefix(':') {
            Some(port) => Some(port.parse::<u16>().map_err(|_| "the URL's port is not a number")?),
            None if tail.is_empty() => None,
            None => return Err("unexpected text after the URL's IPv6 host".into()),
        };
        (host.to_owned(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => {
                (host.to_owned(), Some(port.parse::<u16>().map_err(|_| "the URL's port is not a number")?))
            }
            None => (hostport.clone(), None),
        }
    };
    let (host, instance) = match host.split_once('\\') {
        Some((host, instance)) => (host.to_owned(), Some(instance.to_owned()).filter(|i| !i.is_empty())),
        None => (host, None),
    };
    config.host = if host.is_empty() { "localhost".to_owned() } else { host };
    config.port = port;
    config.instance = instance;
    let database = percent_decode(path.trim_end_matches('/'))?;
    if !database.is_empty() {
        config.database = database;
    }
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(key)?;
        let value = percent_decode(value)?;
        match key.to_ascii_lowercase().as_str() {
            "encrypt" => config.encryption = parse_encryption(&key, &value)?,
            "trust_server_certificate" | "trustservercertificate" => {
                config.trust_server_certificate = parse_bool(&key, &value)?;
            }
            "trust_server_certificate_ca" => config.trust_ca = Some(value),
            "hostname_in_certificate" => config.hostname_in_certificate = Some(value),
            "application_name" | "app" => config.application_name = value,
            "connect_timeout" => config.connect_timeout = Duration::from_secs(parse_seconds(&key, &value)?),
            "command_timeout" => {
                let seconds = parse_seconds(&key, &value)?;
                config.command_timeout = (seconds > 0).then(|| Duration::from_secs(seconds));
            }
            "instance" => config.instance = Some(value).filter(|v| !v.is_empty()),
            "application_intent" => config.read_only_intent = value.eq_ignore_ascii_case("readonly"),
            "multi_subnet_failover" => config.multi_subnet_failover = parse_bool(&key, &value)?,
            "packet_size" => config.packet_size = Some(parse_number(&key, &value)?),
            "upsert" => config.upsert = Some(UpsertStrategy::parse(&key, &value)?),
            "password" => return Err("put the password in the URL's user info, not in the query".into()),
            _ => return Err(format!("unknown URL parameter `{key}`")),
        }
    }
    Ok(config)
}

/// A connection string or URL with its password replaced by `***`, for messages about a
/// configuration that did not parse: [`dmf_core::redact_secrets`], which masks every form
/// (URLs of any scheme, ADO.NET strings, quoted or not) whether it parses or not.
pub fn redact(text: &str) -> String {
    redact_secrets(text.trim()).into_owned()
}

/// True for `scheme://…` and `scheme:/…`: a URL, whatever its scheme.
fn looks_like_url(text: &str) -> bool {
    text.split_once(":/").is_some_and(|(scheme, _)| {
        !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file named like a CA certificate (its content is read by tiberius when connecting).
    fn ca_file(name: &str) -> String {
        let path = std::env::temp_dir().join(format!("dmf-mssql-{}-{name}", std::process::id()));
        std::fs::write(&path, "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n").unwrap();
        path.display().to_string()
    }

    #[test]
    fn a_ca_file_verifies_the_server_from_an_ado_string_or_a_url_with_encrypt_true_or_strict() {
        let ca = ca_file("ca.pem");
        let config =
            ado(&format!("Server=db.corp,1433;User Id=dmf;Password=pw;Encrypt=true;TrustServerCertificateCA={ca}"));
        assert_eq!((config.encryption, config.trust_server_certificate), (Encryption::Required, false));
        assert_eq!(config.trust_ca.as_deref(), Some(ca.as_str()));
        let wire = format!("{:?}", config.tiberius_config(None));
        assert!(wire.contains("encryption: Required"), "{wire}");
        // tiberius 0.13 adds the CA to the platform's roots, and checks the certificate.
        assert!(wire.contains(&format!("extra_cas: [File({ca:?})], bypass: false")), "{wire}");

        let config = MssqlConfig::parse(&format!(
            "mssql://dmf:pw@db.corp/Sales?encrypt=strict&trust_server_certificate_ca={ca}&hostname_in_certificate=sql.corp"
        ))
        .unwrap();
        let wire = format!("{:?}", config.tiberius_config(None));
        assert!(wire.contains("encryption: Strict"), "{wire}");
        assert!(wire.contains(&format!("extra_cas: [File({ca:?})], bypass: false")), "{wire}");
        assert!(wire.contains("hostname_in_certificate: Some(\"sql.corp\")"), "{wire}");

        // The default: encrypted and verified against the platform's roots, never trusting all.
        let wire = format!("{:?}", ado("Server=db.corp;User Id=dmf;Password=pw").tiberius_config(None));
        assert!(wire.contains("encryption: Required") && wire.contains("extra_cas: [], bypass: false"), "{wire}");
        let _ = std::fs::remove_file(ca);
    }

    #[test]
    fn a_ca_file_that_cannot_verify_anything_is_refused_saying_why() {
        let ca = ca_file("refusals.crt");
        let both = refused(&format!("Server=h;User=u;TrustServerCertificate=true;TrustServerCertificateCA={ca}"));
        assert!(both.contains("give one or the other"), "{both}");
        let off = refused(&format!("Server=h;User=u;Encrypt=off;TrustServerCertificateCA={ca}"));
        assert!(off.contains("with Encrypt=off: there is no TLS to verify"), "{off}");
        let missing = refused("Server=h;User=u;TrustServerCertificateCA=/nonexistent/ca.pem");
        assert!(missing.contains("TrustServerCertificateCA=/nonexistent/ca.pem: cannot read it"), "{missing}");
        let odd = ca_file("ca.txt");
        let extension = refused(&format!("Server=h;User=u;TrustServerCertificateCA={odd}"));
        assert!(extension.contains("must be .pem, .crt or .der"), "{extension}");
        let _ = std::fs::remove_file(ca);
        let _ = std::fs::remove_file(odd);
    }

    fn ado(text: &str) -> MssqlConfig {
        MssqlConfig::parse(text).unwrap()
    }

    fn refused(text: &str) -> String {
        MssqlConfig::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn ado_strings_with_every_key() {
        let config = ado("Server=tcp:db.example,14330;Database=Sales;User Id=dmf;Password=pw;Encrypt=true;\
             TrustServerCertificate=true;Application Name=nightly sync;Connect Timeout=7;Command Timeout=0;\
             ApplicationIntent=ReadOnly;MultiSubnetFailover=yes;Packet Size=16384");
        assert_eq!(config.host, "db.example");
        assert_eq!(config.port, Some(14330));
        assert_eq!(config.instance, None);
        assert_eq!(config.database, "Sales");
        assert_eq!(config.user, "dmf");
        assert_eq!(config.password.expose(), "pw");
        assert_eq!(config.encryption, Encryption::Required);
        assert!(config.trust_server_certificate);
        assert_eq!(config.application_name, "nightly sync");
        assert_eq!(config.connect_timeout, Duration::from_secs(7));
        assert_eq!(config.command_timeout, None);
        assert!(config.read_only_intent);
        assert!(config.multi_subnet_failover);
        assert_eq!(config.packet_size, Some(16384));
        assert_eq!(config.display_name(), "dmf@db.example:14330/Sales");
    }

    #[test]
    fn synonyms_case_and_defaults() {
        let config = ado("data source=(local);INITIAL CATALOG=shop;uid=sa;pwd=x");
        assert_eq!((config.host.as_str(), config.port, config.database.as_str()), ("localhost", None, "shop"));
        assert_eq!(config.application_name, "dmf");
        assert_eq!(config.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(config.command_timeout, Some(DEFAULT_COMMAND_TIMEOUT));
        assert_eq!(config.encryption, Encryption::Required);
        assert_eq!(config.display_name(), "sa@localhost:1433/shop");
        let config = ado("Server=.;User=sa;Password=x;Encrypt=false;Pooling=true;Max Pool Size=5");
        assert_eq!((config.host.as_str(), config.database.as_str()), ("localhost", "master"));
        assert_eq!(config.encryption, Encryption::LoginOnly);
        assert_eq!(ado("Server=h;User=u;Encrypt=strict").encryption, Encryption::Strict);
        assert_eq!(ado("Server=h;User=u;Encrypt=off").encryption, Encryption::NotSupported);
    }

    #[test]
    fn named_instances() {
        let config = ado("Server=sqlhost\\SQLEXPRESS;Database=db;User Id=u;Password=p");
        assert_eq!(config.host, "sqlhost");
        assert_eq!(config.instance.as_deref(), Some("SQLEXPRESS"));
        assert!(config.needs_browser());
        assert_eq!(config.display_name(), "u@sqlhost\\SQLEXPRESS/db");
        let url = MssqlConfig::parse("mssql://u:p@sqlhost%5CSQLEXPRESS/db").unwrap();
        assert_eq!(url.instance.as_deref(), Some("SQLEXPRESS"));
        let url = MssqlConfig::parse("mssql://u:p@sqlhost/db?instance=INST2").unwrap();
        assert_eq!(url.instance.as_deref(), Some("INST2"));
        assert!(refused("Server=h\\INST,1500;User=u").contains("either a port or an instance name"));
    }

    #[test]
    fn hostile_values_are_kept_exactly() {
        // Quotes, `;`, `=`, spaces, unicode and a doubled quote inside a quoted value.
        let config = ado(r#"Server=h;User Id='O''Brien; x=1';Password="p;w=""'d 🦀";Database=" spaced db ""quoted""""#);
        assert_eq!(config.user, "O'Brien; x=1");
        assert_eq!(config.password.expose(), "p;w=\"'d 🦀");
        assert_eq!(config.database, " spaced db \"quoted\"");
        assert!(!format!("{config:?}").contains("p;w"), "Debug shows the password");
        assert!(!config.display_name().contains("p;w"));
        // `==` in a key is an `=`; an unknown key is named, its value never shown.
        assert!(
            refused("Server=h;User=u;Weird==Key=secret-value").contains("unknown connection-string key `Weird=Key`")
        );
        assert!(!refused("Server=h;User=u;Passwrd=hunter2").contains("hunter2"));
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        assert!(refused("Database=x;User=u").contains("no `Server=` given"));
        assert!(refused("Server=h;Database=x").contains("no user given"));
        assert!(refused("Server=h;User=u;Integrated Security=SSPI").contains("Windows authentication"));
        assert!(refused("Server=np:\\\\.\\pipe\\sql;User=u").contains("protocol `np:` is not supported"));
        assert!(refused("Server=h,port;User=u").contains("not a number"));
        assert!(refused("Server=h;User=u;Password=\"open").contains("no closing \""));
        assert!(refused("Server=h;User=u;Packet Size=99").contains("outside 512..=32767"));
        assert!(refused("Server=h;User=u;Encrypt=maybe").contains("`Encrypt` must be"));
        assert!(refused("Server=h;User=u;Connect Timeout=soon").contains("whole number of seconds"));
        assert!(refused("Server=h;User").contains("`User` has no value"));
        assert!(refused("Server=h;User=u;Password=s3cret;Bogus=1").starts_with("invalid configuration: SQL Server"));
    }

    #[test]
    fn urls() {
        let config = MssqlConfig::parse(
            "mssql://dmf:p%40ss%3Aw%2Fo%23rd@db.example:1444/Sales%20DB?encrypt=strict&trust_server_certificate=true\
             &application_name=dmf%20test&connect_timeout=3&command_timeout=120",
        )
        .unwrap();
        assert_eq!(config.user, "dmf");
        assert_eq!(config.password.expose(), "p@ss:w/o#rd");
        assert_eq!((config.host.as_str(), config.port), ("db.example", Some(1444)));
        assert_eq!(config.database, "Sales DB");
        assert_eq!(config.encryption, Encryption::Strict);
        assert!(config.trust_server_certificate);
        assert_eq!(config.application_name, "dmf test");
        assert_eq!(config.connect_timeout, Duration::from_secs(3));
        assert_eq!(config.command_timeout, Some(Duration::from_secs(120)));
        assert_eq!(config.display_name(), "dmf@db.example:1444/Sales DB");

        let ipv6 = MssqlConfig::parse("sqlserver://sa:x@[::1]:1433/db").unwrap();
        assert_eq!((ipv6.host.as_str(), ipv6.port), ("::1", Some(1433)));
        assert_eq!(ipv6.display_name(), "sa@[::1]:1433/db");
        let bare = MssqlConfig::parse("mssql://sa@localhost").unwrap();
        assert_eq!((bare.database.as_str(), bare.password.expose()), ("master", ""));

        let unknown = MssqlConfig::parse("mssql://sa:hunter2@h/db?sslmode=require").unwrap_err().to_string();
        assert!(unknown.contains("unknown URL parameter `sslmode`"), "{unknown}");
        assert!(!unknown.contains("hunter2"));
        assert!(MssqlConfig::parse("mssql://sa:x@h:99999/db").is_err());
        assert!(MssqlConfig::parse("mssql://sa:x@h/db?password=x").is_err());
        assert!(MssqlConfig::parse("mssql://sa:%zz@h/db").is_err());
    }

    #[test]
    fn the_upsert_strategy_is_named_in_the_url_or_the_ado_string() {
        let url = |query: &str| MssqlConfig::parse(&format!("mssql://sa:x@h/db{query}"));
        assert_eq!(url("").unwrap().upsert, None, "unnamed: the options decide");
        assert_eq!(url("?upsert=merge").unwrap().upsert, Some(UpsertStrategy::Merge));
        assert_eq!(url("?upsert=update_insert").unwrap().upsert, Some(UpsertStrategy::UpdateInsert));
        assert_eq!(ado("Server=h;User=u;Upsert=UpdateInsert").upsert, Some(UpsertStrategy::UpdateInsert));
        assert_eq!(ado("Server=h;User=u;upsert = Update Insert").upsert, Some(UpsertStrategy::UpdateInsert));
        let refused = url("?upsert=replace").unwrap_err().to_string();
        assert!(refused.contains("`upsert` must be merge or update_insert"), "{refused}");
        assert_eq!(UpsertStrategy::default(), UpsertStrategy::Merge, "MERGE stays the default");
    }

    #[test]
    fn redaction_hides_passwords() {
        assert_eq!(redact("mssql://sa:hunter2@h:1433/db?encrypt=true"), "mssql://sa:***@h:1433/db?encrypt=true");
        assert_eq!(redact("Server=h;Password='a;b';User=u"), "Server=h;Password=***;User=u");
        assert_eq!(redact("Server=h;PWD=x"), "Server=h;PWD=***");
        assert!(!redact("Server=h;Password=\"unterminated").contains("unterminated"));
        assert_eq!(redact("mssql://sa:pa/ss@h/db"), "mssql://sa:***@h/db");
        assert_eq!(redact("Server=h;Pwd={a;b};User=u"), "Server=h;Pwd=***;User=u");
    }

    #[test]
    fn refusals_never_show_the_password() {
        for (text, says) in [
            ("mssq://sa:S3cret@h/db", "`mssq://sa:***@h/db` is neither an mssql:// URL nor an ADO.NET string"),
            ("postgres://sa:S3cret@h/db", "`postgres://sa:***@h/db` is neither"),
            ("sqlserver:/sa:S3cret@h/db", "`sqlserver:/sa:***@h/db` is neither"),
            // A `;` in an unquoted password: what follows it is not named.
            ("Server=h;User Id=sa;Password=ab;S3cret;Database=d", "the text after the password is not key=value"),
            ("Server=h;User Id=sa;Password=ab;S3cret=x;Database=d", "the text after the password is not key=value"),
            ("Server=h;User Id=sa;Password=ab;S3cret=\"x;Database=d", "the text after the password is not key=value"),
            ("Server=h;User Id=sa;Password=ab;S3cret=\"x\"y", "the text after the password is not key=value"),
            ("Server=h;User Id=sa;Pwd=S3cret;Encrypt=maybe", "`Encrypt` must be"),
        ] {
            let error = MssqlConfig::parse(text).unwrap_err();
            for shown in [error.to_string(), format!("{error:?}")] {
                assert!(shown.contains(says), "{text}: {shown}");
                assert!(!shown.contains("S3cret"), "{text}: {shown}");
            }
        }
        // Other keys are still named.
        assert!(
            refused("Server=h;User=u;Password=x;Database=d;Bogus=1").contains("unknown connection-string key `Bogus`")
        );
    }

    #[test]
    fn tiberius_configuration_carries_the_settings() {
        let config = ado("Server=db,1500;Database=d;User=u;Password=p;Packet Size=8192;Connect Timeout=9");
        let tiberius = config.tiberius_config(None);
        assert_eq!(tiberius.get_addr(), "db:1500");
        assert_eq!(tiberius.get_packet_size(), Some(8192));
        assert_eq!(tiberius.get_handshake_timeout(), Some(Duration::from_secs(9)));
        assert_eq!(tiberius.get_command_timeout(), None);
        assert_eq!(
            config.tiberius_config(Some(Duration::from_secs(5))).get_command_timeout(),
            Some(Duration::from_secs(5))
        );
        assert_eq!(config.with_database("master").display_name(), "u@db:1500/master");
    }
}
