//! Masks passwords in any text the dashboard sends or logs: the password of a URL's user
//! info (`postgres://app:***@db/shop`) and the value of `password=`, `pwd=`, `secret=`,
//! `token=`-like pairs (libpq and ADO connection strings, query strings).
//!
//! Error chains and messages come from drivers and user code, which may quote a connection
//! string; every such text goes through [`redact_secrets`] before it leaves the process.

use std::borrow::Cow;

/// Key names (or endings of key names, case-insensitive) whose values are secrets.
const SECRET_KEYS: [&str; 6] = ["password", "passwd", "pwd", "secret", "token", "apikey"];

const MASK: &str = "***";

/// `text` with every password it contains replaced by `***`.
///
/// ```
/// use dmf_dashboard::redact_secrets;
/// assert_eq!(redact_secrets("connecting to postgres://app:s3cret@db/shop"), "connecting to postgres://app:***@db/shop");
/// assert_eq!(redact_secrets("Server=db;User Id=app;Password=s3cret;"), "Server=db;User Id=app;Password=***;");
/// assert_eq!(redact_secrets("nothing to hide"), "nothing to hide");
/// ```
pub fn redact_secrets(text: &str) -> Cow<'_, str> {
    let urls = redact_url_passwords(text);
    match redact_pairs(&urls) {
        Cow::Borrowed(_) => urls,
        Cow::Owned(owned) => Cow::Owned(owned),
    }
}

/// Masks secrets in a JSON value: string values as text, and whole values under secret keys.
pub(crate) fn redact_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) => {
            if let Cow::Owned(masked) = redact_secrets(text) {
                *text = masked;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        serde_json::Value::Object(fields) => {
            for (key, field) in fields.iter_mut() {
                if is_secret_key(key) && !field.is_null() {
                    *field = serde_json::Value::String(MASK.to_owned());
                } else {
                    redact_json(field);
                }
            }
        }
        _ => {}
    }
}

fn is_secret_key(key: &str) -> bool {
    let key: String = key.chars().filter(|c| *c != '_' && *c != '-').collect::<String>().to_ascii_lowercase();
    SECRET_KEYS.iter().any(|secret| key.ends_with(secret))
}

fn ends_authority(c: char) -> bool {
    matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>' | '`' | ')' | ',' | ';') || c.is_whitespace()
}

/// `scheme://user:password@host` → `scheme://user:***@host`.
fn redact_url_passwords(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(at) = rest.find("://") {
        let start = at + 3;
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail.find(ends_authority).unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@').map(|at| &authority[..at]).and_then(|info| info.find(':').map(|c| (info, c))) {
            Some((userinfo, colon)) if colon + 1 < userinfo.len() && &userinfo[colon + 1..] != MASK => {
                out.push_str(&userinfo[..=colon]);
                out.push_str(MASK);
                out.push_str(&authority[userinfo.len()..]);
                changed = true;
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    if changed { Cow::Owned(out) } else { Cow::Borrowed(text) }
}

/// `password=xyz`, `Password = 'x y'`, `PGPASSWORD=xyz`, `access_token=xyz` → value `***`.
fn redact_pairs(text: &str) -> Cow<'_, str> {
    if !text.contains('=') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut changed = false;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'=' {
            i += 1;
            continue;
        }
        // The key: the word just before `=` (spaces allowed in between).
        let before = text[..i].trim_end();
        let key_start =
            before.rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-')).map_or(0, |p| p + 1);
        let key = &before[key_start..];
        // The value: after `=` and spaces, quoted or up to a separator.
        let mut value_start = i + 1;
        while value_start < bytes.len() && bytes[value_start] == b' ' {
            value_start += 1;
        }
        let value_end = match bytes.get(value_start) {
            Some(&quote @ (b'"' | b'\'')) => {
                text[value_start + 1..].find(quote as char).map_or(bytes.len(), |p| value_start + 1 + p + 1)
            }
            _ => text[value_start..]
                .find(|c: char| c.is_whitespace() || matches!(c, ';' | '&' | ',' | ')' | '"' | '\''))
                .map_or(bytes.len(), |p| value_start + p),
        };
        let value = &text[value_start..value_end];
        if !key.is_empty() && is_secret_key(key) && !value.is_empty() && value != MASK {
            out.push_str(&text[copied..value_start]);
            out.push_str(MASK);
            copied = value_end;
            changed = true;
        }
        i = value_end.max(i + 1);
    }
    if !changed {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_masked() {
        assert_eq!(redact_secrets("postgres://app:s3cret@db:5432/shop"), "postgres://app:***@db:5432/shop");
        assert_eq!(
            redact_secrets("a postgresql://u:p%40ss@h1,h2/db?sslmode=require and mysql://x:y@z"),
            "a postgresql://u:***@h1,h2/db?sslmode=require and mysql://x:***@z"
        );
        assert_eq!(redact_secrets("postgres://app@db/shop"), "postgres://app@db/shop");
        assert_eq!(redact_secrets("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
        assert_eq!(redact_secrets("http://127.0.0.1:8080/api"), "http://127.0.0.1:8080/api");
    }

    #[test]
    fn secret_pairs_are_masked() {
        assert_eq!(
            redact_secrets("host=db user=app password=hunter2 dbname=shop"),
            "host=db user=app password=*** dbname=shop"
        );
        assert_eq!(redact_secrets("Server=db;Password = 'a b';x=1"), "Server=db;Password = ***;x=1");
        assert_eq!(redact_secrets("PGPASSWORD=x ./run"), "PGPASSWORD=*** ./run");
        assert_eq!(redact_secrets("url?user=a&access_token=zzz&b=1"), "url?user=a&access_token=***&b=1");
        assert_eq!(redact_secrets("a = b, rows=5"), "a = b, rows=5");
        assert_eq!(redact_secrets("password=***"), "password=***");
        assert_eq!(redact_secrets("élan password=ünïcode é"), "élan password=*** é");
    }

    #[test]
    fn json_values_are_masked() {
        let mut value = serde_json::json!({
            "name": "Ann", "password": "x", "nested": [{"dsn": "postgres://a:b@c/d"}], "apiKey": 5
        });
        redact_json(&mut value);
        assert_eq!(
            value,
            serde_json::json!({
                "name": "Ann", "password": "***", "nested": [{"dsn": "postgres://a:***@c/d"}], "apiKey": "***"
            })
        );
    }
}
