//! Masks passwords in any text the dashboard sends or logs, with dmf-core's
//! [`redact_secrets`]: the password of a URL's user info (`postgres://app:***@db/shop`,
//! whatever the scheme) and the value of `password=`, `pwd=`, `secret=`, `token=`-like pairs
//! (libpq and ADO.NET connection strings, query strings); JSON values under such keys too.
//!
//! Error chains and messages come from drivers and user code, which may quote a connection
//! string; every such text goes through [`redact_secrets`] before it leaves the process.

use std::borrow::Cow;

use dmf_core::redact::{MASK, is_secret_key};
pub use dmf_core::redact_secrets;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_masked() {
        assert_eq!(
            redact_secrets("connecting to postgres://app:s3cret@db/shop"),
            "connecting to postgres://app:***@db/shop"
        );
        assert_eq!(redact_secrets("Server=db;User Id=app;Password=s3cret;"), "Server=db;User Id=app;Password=***;");
        assert_eq!(redact_secrets("nothing to hide"), "nothing to hide");
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
