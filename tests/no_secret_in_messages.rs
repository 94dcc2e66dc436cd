//! No password shows in any message about a `--source` or `--target`, whatever went wrong with
//! it: a misspelled scheme, a string no adapter parses, a server that cannot be reached. Each
//! URL goes through [`dmf::open`], the registry every program opens its databases with, and
//! the error's `Display`, `Debug` and whole chain are searched for the password, in clear and
//! percent-encoded.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use dmf::Scheme;
use dmf_core::sync::Database;

/// Opens `url` as `dmf` does, expecting an error; every text of it.
async fn error_texts(url: &str) -> [String; 3] {
    match dmf::open(url).await {
        Ok(database) => panic!("{url} opened {}", database.display_name()),
        Err(error) => [error.to_string(), format!("{error:?}"), dmf_core::error_chain(&error)],
    }
}

/// Asserts that no text shows `secrets` and that each says `expected`.
#[track_caller]
fn assert_hidden(url: &str, texts: &[String], secrets: &[&str], expected: &str) {
    for text in texts {
        for secret in secrets {
            assert!(!text.contains(secret), "`{url}` shows `{secret}` in:\n{text}");
        }
        assert!(text.contains(expected), "`{url}`: expected `{expected}` in:\n{text}");
    }
}

#[tokio::test]
async fn misspelled_schemes_never_show_the_password() {
    for (url, expected) in [
        ("postgress://u:S3cretQz9@h/db", "`postgress://u:***@h/db`: unsupported URL scheme `postgress`"),
        ("postgresql+x://u:S3cretQz9@h/db?sslmode=require", "`postgresql+x://u:***@h/db?sslmode=require`"),
        ("Postgres://u:S3cretQz9@h/db", "`Postgres://u:***@h/db`: unsupported URL scheme `Postgres`"),
        ("postgres:/u:S3cretQz9@h/db", "`postgres:/u:***@h/db`: unsupported URL"),
        ("mssq://sa:S3cretQz9@h/db", "`mssq://sa:***@h/db`: unsupported URL scheme `mssq`"),
        ("sqllite://u:S3cretQz9@h/db", "`sqllite://u:***@h/db`: unsupported URL"),
        ("u:S3cretQz9@h/db", "`u:***@h/db`: unsupported URL ("),
        ("host=h password=S3cretQz9", "`host=h password=***`: unsupported URL"),
        ("host=h password='S3cret Qz9' dbname=d", "`host=h password=*** dbname=d`"),
        ("Sever=h;User Id=sa;Password=S3cretQz9;", "`Sever=h;User Id=sa;Password=***;`: unsupported URL"),
        ("Srv=h;Pwd={S3cret;Qz9};", "`Srv=h;Pwd=***;`: unsupported URL"),
        // An unencoded `/`, `?` or `@` in the password: masked whole.
        ("postgress://u:S3cret/Qz9@h/db", "`postgress://u:***@h/db`"),
        ("mssq://sa:S3cret?Qz9@h/db", "`mssq://sa:***@h/db`"),
    ] {
        let texts = error_texts(url).await;
        assert_hidden(url, &texts, &["S3cret", "Qz9"], expected);
    }
}

#[tokio::test]
async fn percent_encoded_passwords_never_show_encoded_or_decoded() {
    for url in ["postgress://u:S3cret%40Qz9%2F@h:5432/db", "mssql+tds://sa:S3cret%40Qz9%2F@h/db"] {
        let texts = error_texts(url).await;
        assert_hidden(url, &texts, &["S3cret", "Qz9"], ":***@h");
    }
}

#[tokio::test]
async fn known_schemes_that_do_not_parse_never_show_the_password() {
    for (url, expected) in [
        ("postgres://u:S3cretQz9@h:notaport/db", "invalid PostgreSQL URL `postgres://u:***@h:notaport/db`"),
        ("postgresql://u@h/db?password=S3cretQz9&sslmode=maybe", "`postgresql://u@h/db?password=***&sslmode=maybe`"),
        ("mssql://sa:S3cretQz9@h:notaport/db", "SQL Server connection: the URL's port is not a number"),
        ("sqlite://u:S3cretQz9@h/db", "`sqlite://u:***@h/db` holds a password"),
        ("Server=h;User Id=sa;Password=S3cretQz9;Encrypt=maybe", "`Encrypt` must be true"),
        // A `;` in an unquoted password: what follows it is not named either.
        ("Server=h;User Id=sa;Password=S3cret;Qz9;", "the text after the password is not key=value"),
        ("Server=h;User Id=sa;Password=S3cret;Qz9=1;", "the text after the password is not key=value"),
    ] {
        let texts = error_texts(url).await;
        assert_hidden(url, &texts, &["S3cret", "Qz9"], expected);
    }
}

#[tokio::test]
async fn servers_that_cannot_be_reached_are_named_without_the_password() {
    // Port 1 on the loopback refuses at once: each adapter parses, dials and fails.
    for (url, expected) in [
        ("postgres://u:S3cretQz9@127.0.0.1:1/db", "cannot connect to PostgreSQL at u@127.0.0.1:1/db"),
        ("Server=127.0.0.1,1;User Id=sa;Password=S3cretQz9;", "cannot connect to SQL Server at sa@127.0.0.1:1/master"),
        ("mssql://sa:S3cretQz9@127.0.0.1:1/db", "cannot connect to SQL Server at sa@127.0.0.1:1/db"),
    ] {
        assert_ne!(Scheme::of(url).ok(), None, "{url}");
        let texts = error_texts(url).await;
        assert_hidden(url, &texts, &["S3cret"], expected);
    }
}
