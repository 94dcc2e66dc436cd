//! The password a connection string leaves out, found where libpq finds it: `PGPASSWORD`, then
//! the password file (`PGPASSFILE`, else `~/.pgpass`), so that a password never has to be
//! written in a URL, on a command line or in a config file.
//!
//! The file has libpq's format: one `hostname:port:database:username:password` line per
//! entry, `*` matching any value in the first four fields, `\:` and `\\` escaping, `#` lines
//! ignored; the first matching line wins. A Unix socket's host matches `localhost`, as in
//! libpq. On Unix a file that its group or others may read is ignored with a warning (libpq
//! does the same).

use std::path::{Path, PathBuf};

use tokio_postgres::Config;
use tokio_postgres::config::Host;

/// The port libpq assumes when none is given.
const DEFAULT_PORT: u16 = 5432;

/// Sets `config`'s password from `PGPASSWORD` or the password file when it has none.
pub(crate) fn fill_password(config: &mut Config) {
    if config.get_password().is_some() {
        return;
    }
    if let Some(password) = std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty()) {
        config.password(password);
        return;
    }
    let Some(file) = password_file() else { return };
    let Ok(text) = std::fs::read_to_string(&file) else { return };
    if !private_enough(&file) {
        tracing::warn!(
            "password file {} has group or world access; ignoring it (chmod 0600 {} to use it)",
            file.display(),
            file.display()
        );
        return;
    }
    let wanted = Wanted::of(config);
    if let Some(password) = find_password(&text, &wanted) {
        config.password(password);
    }
}

/// `PGPASSFILE`, else `~/.pgpass`.
fn password_file() -> Option<PathBuf> {
    if let Some(file) = std::env::var_os("PGPASSFILE").filter(|f| !f.is_empty()) {
        return Some(PathBuf::from(file));
    }
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|home| Path::new(&home).join(".pgpass"))
}

#[cfg(unix)]
fn private_enough(file: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(file).is_ok_and(|meta| meta.permissions().mode() & 0o077 == 0)
}

#[cfg(not(unix))]
fn private_enough(_file: &Path) -> bool {
    true
}

/// What a line must match: the connection's first host, port, database and user.
#[derive(Debug, PartialEq)]
struct Wanted {
    host: String,
    port: String,
    database: String,
    user: String,
}

impl Wanted {
    fn of(config: &Config) -> Self {
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(host)) => host.clone(),
            // A Unix socket (or no host: libpq's default socket) matches `localhost`.
            _ => "localhost".to_owned(),
        };
        let port = config.get_ports().first().copied().unwrap_or(DEFAULT_PORT).to_string();
        let user = config.get_user().unwrap_or_default().to_owned();
        let database = config.get_dbname().map_or_else(|| user.clone(), ToOwned::to_owned);
        Self { host, port, database, user }
    }
}

/// The password of the first line of `text` that matches `wanted`.
fn find_password(text: &str, wanted: &Wanted) -> Option<String> {
    let expected = [&wanted.host, &wanted.port, &wanted.database, &wanted.user];
    text.lines().filter(|line| !line.trim_start().starts_with('#') && !line.trim().is_empty()).find_map(|line| {
        let fields = split_fields(line);
        if fields.len() < 5 {
            return None;
        }
        let matches = fields.iter().zip(expected).all(|(field, value)| field == "*" || field == value);
        // libpq takes the rest of the line as the password, colons included.
        matches.then(|| fields[4..].join(":"))
    })
}

/// Splits a line at unescaped colons, resolving `\:` and `\\`.
fn split_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.trim_end_matches(['\r', '\n']).chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next()
                    && let Some(field) = fields.last_mut()
                {
                    field.push(next);
                }
            }
            ':' => fields.push(String::new()),
            c => {
                if let Some(field) = fields.last_mut() {
                    field.push(c);
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(url: &str) -> Wanted {
        Wanted::of(&url.parse().unwrap())
    }

    #[test]
    fn the_first_matching_line_gives_the_password() {
        let file = "# comment\n\
                    db.example:5432:shop:reader:first\n\
                    *:*:shop:app:sec\\:ret:with colon\n\
                    *:*:*:app:fallback\n";
        assert_eq!(find_password(file, &wanted("postgres://reader@db.example/shop")), Some("first".into()));
        assert_eq!(find_password(file, &wanted("postgres://app@other:6543/shop")), Some("sec:ret:with colon".into()));
        assert_eq!(find_password(file, &wanted("postgres://app@other/crm")), Some("fallback".into()));
        assert_eq!(find_password(file, &wanted("postgres://reader@db.example:5433/shop")), None, "another port");
    }

    #[test]
    fn the_database_defaults_to_the_user_and_a_socket_is_localhost() {
        let w = wanted("host=/var/run/postgresql user=app");
        assert_eq!(
            w,
            Wanted { host: "localhost".into(), port: "5432".into(), database: "app".into(), user: "app".into() }
        );
    }

    #[test]
    fn escapes_keep_colons_and_backslashes_in_a_field() {
        assert_eq!(split_fields("a\\:b:c\\\\d:e"), vec!["a:b", "c\\d", "e"]);
    }
}
