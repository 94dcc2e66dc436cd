//! Passwords masked out of connection strings, and out of any message that quotes one, before
//! they are shown: every adapter's configuration errors, the examples' command-line errors and
//! the dashboard go through [`redact_secrets`].
//!
//! It recognises the forms by their syntax alone, never by a known scheme, so that a mistyped
//! URL (`postgress://`, `mssq://`, `sqllite://`) or a string no driver accepts is masked too:
//!
//! | form | masked |
//! |---|---|
//! | URL of any scheme: `scheme://user:password@host…`, `scheme:/user:password@host`, `user:password@host/db` | the user info's password, up to the last `@`, so an unencoded `@`, `/`, `?` or `#` in it is masked too |
//! | URL query: `?password=…&`, `sslpassword=`, `pwd=` | the value, up to the next `&name=` |
//! | libpq: `host=h password=secret`, `password='a b\'c'` | the value, up to the next ` name=` |
//! | ADO.NET: `Password=…;`, `Pwd=…`, `Password="a;b"`, `Pwd={a;b}` | the value, up to the next `;Name=` |
//!
//! Keys are matched without regard to case, `_`, `-` and `.`, and by their ending
//! (`PGPASSWORD`, `sslpassword`, `client_secret`, `access_token`). An unquoted value ends at
//! its form's separator only where a new `name=` pair follows (or the line ends), so that a
//! password holding a space or a `;` is masked whole rather than cut at it.
//!
//! What syntax alone cannot tell: an unquoted password that holds its form's separator
//! followed by `name=` (`Pwd=a;b=c`, `?password=a&b=c`) reads as two pairs, to the drivers too,
//! and only its first part is masked; quote or percent-encode such passwords. In a message
//! (rather than a whole connection string), a URL ends at whitespace and a value at the end of
//! its line.

use std::borrow::Cow;
use std::ops::Range;

/// What a masked password is replaced with.
pub const MASK: &str = "***";

/// Key names (or endings of key names) whose values are secrets, compared in lower case
/// without `_`, `-`, `.` and spaces.
const SECRET_KEYS: [&str; 6] = ["password", "passwd", "pwd", "secret", "token", "apikey"];

/// `text` (a connection string of any form, or a message that quotes one) with every password
/// it contains replaced by [`MASK`]; the rest (scheme, user, host, port, database, other
/// parameters) is kept as written. Borrowed when there was nothing to mask.
///
/// The input may be broken in any way (an unknown or misspelled scheme, an unencoded `@` or
/// `/` in the password, an unterminated quote): whatever is masked, the password is never
/// shown. Where a string is ambiguous, more is masked rather than less.
///
/// ```
/// use dmf_core::redact_secrets;
///
/// // Any scheme, known or not.
/// assert_eq!(redact_secrets("postgress://app:s3cret@db:5432/shop"), "postgress://app:***@db:5432/shop");
/// assert_eq!(redact_secrets("mssq://sa:p@ss/w0rd@db/Sales"), "mssq://sa:***@db/Sales");
/// // Query parameters, libpq and ADO.NET strings.
/// assert_eq!(redact_secrets("postgres://app@db/shop?sslpassword=x&sslmode=require"), "postgres://app@db/shop?sslpassword=***&sslmode=require");
/// assert_eq!(redact_secrets("host=db user=app password='a b' dbname=shop"), "host=db user=app password=*** dbname=shop");
/// assert_eq!(redact_secrets("Server=db;User Id=sa;Pwd={a;b};Database=Sales"), "Server=db;User Id=sa;Pwd=***;Database=Sales");
/// // Nothing to hide: the same text, not copied.
/// assert!(matches!(redact_secrets("sqlite://./legacy.db"), std::borrow::Cow::Borrowed(_)));
/// ```
pub fn redact_secrets(text: &str) -> Cow<'_, str> {
    let mut spans = url_password_spans(text);
    spans.extend(pair_value_spans(text));
    if spans.is_empty() {
        return Cow::Borrowed(text);
    }
    spans.sort_by_key(|span| span.start);
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut spans = spans.into_iter().peekable();
    while let Some(mut span) = spans.next() {
        // Overlapping or touching spans (a URL inside a `password=` value) become one mask.
        while let Some(next) = spans.next_if(|next| next.start <= span.end) {
            span.end = span.end.max(next.end);
        }
        out.push_str(&text[copied..span.start]);
        out.push_str(MASK);
        copied = span.end;
    }
    out.push_str(&text[copied..]);
    if out == text { Cow::Borrowed(text) } else { Cow::Owned(out) }
}

/// True when `key` names a secret: `password`, `Pwd`, `PGPASSWORD`, `sslpassword`,
/// `client_secret`, `access_token`, `apiKey`… (see the module documentation).
pub fn is_secret_key(key: &str) -> bool {
    let key: String =
        key.chars().filter(|c| !matches!(c, '_' | '-' | '.' | ' ')).flat_map(char::to_lowercase).collect();
    !key.is_empty() && SECRET_KEYS.iter().any(|secret| key.ends_with(secret))
}

/// The passwords in URLs' user info.
///
/// When the whole text is one URL, it may hold spaces (a password typed with one); otherwise
/// each whitespace-separated word holding `:/` is a URL.
fn url_password_spans(text: &str) -> Vec<Range<usize>> {
    let start = text.len() - text.trim_start().len();
    let end = text.trim_end().len();
    if start < end && is_whole_url(&text[start..end]) {
        return userinfo_password(text, start..end, true).into_iter().collect();
    }
    words(text).filter_map(|word| userinfo_password(text, word, false)).collect()
}

/// `scheme:/…`, `//…` or a bare `user:password@host…` (one word, with no `=` or `;` before
/// its first `:`, so not a key=value string).
fn is_whole_url(text: &str) -> bool {
    if text.starts_with("//") || text.starts_with(":/") {
        return true;
    }
    let scheme_len = text.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))).unwrap_or(0);
    if scheme_len > 0 && text[scheme_len..].starts_with(":/") {
        return true;
    }
    let before_colon = text.split(':').next().unwrap_or_default();
    text.contains('@')
        && text.contains(':')
        && !before_colon.is_empty()
        && !before_colon.contains(['=', ';', '/', '@', '\\'])
        && !text.contains(char::is_whitespace)
}

/// The whitespace-separated words of `text`, as byte ranges.
fn words(text: &str) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut rest = 0;
    std::iter::from_fn(move || {
        let offset = rest + text[rest..].find(|c: char| !c.is_whitespace())?;
        let end = text[offset..].find(char::is_whitespace).map_or(text.len(), |p| offset + p);
        rest = end;
        Some(offset..end)
    })
}

/// In the URL at `range`: from the first `:` of the user info to the last `@`.
///
/// The last `@`, not the first `/` after the scheme, ends the user info: a password typed with
/// an unencoded `/`, `?`, `#` or `@` is masked whole (at worst, with some of the host).
fn userinfo_password(text: &str, range: Range<usize>, whole: bool) -> Option<Range<usize>> {
    let url = &text[range.clone()];
    // After `scheme:/`, `scheme://` or a bare `//`, whichever comes first.
    let slashes = [url.find(":/").map(|colon| colon + 1), url.find("//")].into_iter().flatten().min();
    let authority = match slashes {
        Some(first) => first + url[first..].bytes().take_while(|b| *b == b'/').count(),
        None if whole => 0,
        None => return None,
    };
    let rest = &url[authority..];
    let at = rest.rfind('@')?;
    let colon = rest[..at].find(':')?;
    let span = range.start + authority + colon + 1..range.start + authority + at;
    (!span.is_empty()).then_some(span)
}

/// How the pairs around a `key=value` are separated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// `?a=1&password=…`: `&`.
    Query,
    /// `Server=h;Password=…`: `;`.
    Ado,
    /// `host=h password=…`: whitespace.
    Libpq,
    /// A key at the start of the text: `;` or whitespace, whichever masks more.
    Either,
}

/// The values of `key=value` pairs whose key [names a secret](is_secret_key).
fn pair_value_spans(text: &str) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(eq) = text[from..].find('=').map(|p| from + p) {
        from = eq + 1;
        let before = text[..eq].trim_end_matches([' ', '\t']);
        let key_start =
            before.char_indices().rev().find(|(_, c)| !is_key_char(*c)).map_or(0, |(p, c)| p + c.len_utf8());
        if !is_secret_key(&before[key_start..]) {
            continue;
        }
        let form = match text[..key_start].trim_end_matches([' ', '\t']).chars().next_back() {
            Some('?' | '&') => Form::Query,
            Some(';') => Form::Ado,
            Some(_) => Form::Libpq,
            None => Form::Either,
        };
        let start = eq + 1 + text[eq + 1..].len() - text[eq + 1..].trim_start_matches([' ', '\t']).len();
        let end = value_end(text, start, form);
        if end > start {
            spans.push(start..end);
        }
        // A `=` inside the value is no key's.
        from = end.max(from);
    }
    spans
}

fn is_key_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Where the value starting at `start` ends: after its quotes (`'…'` with `\'` or `''`,
/// `"…"` with `""`, `{…}` with `}}`; an unterminated quote runs to the end), then at the
/// first separator of its form that a new pair follows, at a line break, or at the end.
fn value_end(text: &str, start: usize, form: Form) -> usize {
    let bytes = text.as_bytes();
    let mut from = start;
    if let Some(&quote @ (b'\'' | b'"' | b'{')) = bytes.get(start) {
        let close = if quote == b'{' { b'}' } else { quote };
        let mut i = start + 1;
        from = loop {
            match bytes.get(i) {
                None => break text.len(),
                Some(b'\\') if quote == b'\'' => i += 2,
                Some(&c) if c == close && bytes.get(i + 1) == Some(&close) => i += 2,
                Some(&c) if c == close => break i + 1,
                Some(_) => i += 1,
            }
        };
    }
    let rest = &text[from..];
    let line_end = rest.find(['\n', '\r']).map_or(text.len(), |p| from + p);
    let separated = |is_separator: fn(char) -> bool, ado_keys: bool| {
        text[from..line_end]
            .char_indices()
            .filter(|(_, c)| is_separator(*c))
            .map(|(p, c)| (from + p, from + p + c.len_utf8()))
            .find(|(_, after)| pair_follows(&text[*after..line_end], ado_keys))
            .map(|(at, _)| at)
    };
    let query = || separated(|c| c == '&', false);
    let ado = || separated(|c| c == ';', true);
    let libpq = || separated(char::is_whitespace, false);
    let end = match form {
        // A `#` starts the URL's fragment.
        Form::Query => query().into_iter().chain(rest.find('#').map(|p| from + p)).min(),
        Form::Ado => ado(),
        Form::Libpq => libpq(),
        // `password=a;b host=h` (libpq) and `Password=a b;Server=h` (ADO) both read right.
        Form::Either => ado().into_iter().chain(libpq()).max(),
    };
    end.unwrap_or(line_end).min(line_end)
}

/// True when `rest` (after a separator) is empty, blank, or starts a `name=` pair; with
/// `ado_keys`, names may hold spaces (`User Id=`).
fn pair_follows(rest: &str, ado_keys: bool) -> bool {
    let rest = rest.trim_start();
    if rest.is_empty() {
        return true;
    }
    let key_len = rest.find(|c: char| !(is_key_char(c) || (ado_keys && c == ' '))).unwrap_or(rest.len());
    key_len > 0 && rest[key_len..].trim_start().starts_with('=')
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[track_caller]
    fn masks(text: &str, expected: &str) {
        assert_eq!(redact_secrets(text), expected, "{text}");
        assert_eq!(redact_secrets(expected), expected, "masking twice changes nothing");
    }

    #[test]
    fn url_passwords_are_masked_whatever_the_scheme() {
        masks("postgres://app:s3cret@db:5432/shop", "postgres://app:***@db:5432/shop");
        masks("postgress://u:S3cretPass@h/db", "postgress://u:***@h/db");
        masks("postgresql+x://u:S3cret@h/db", "postgresql+x://u:***@h/db");
        masks("mssq://sa:S3cret@h/db?encrypt=true", "mssq://sa:***@h/db?encrypt=true");
        masks("sqllite://u:S3cret@h/db", "sqllite://u:***@h/db");
        masks("://u:S3cret@h/db", "://u:***@h/db");
        masks("//u:S3cret@h/db", "//u:***@h/db");
        masks("postgres:/u:S3cret@h/db", "postgres:/u:***@h/db");
        masks(
            "postgresql://u:p%40ss%2Fw@h1:5432,h2/db?sslmode=require",
            "postgresql://u:***@h1:5432,h2/db?sslmode=require",
        );
        // No scheme, or no `//`: one word shaped `user:password@host`.
        masks("u:S3cret@h/db", "u:***@h/db");
        masks("postgres:u:S3cret@h/db", "postgres:***@h/db");
    }

    #[test]
    fn unencoded_separators_in_url_passwords_are_masked_whole() {
        masks("postgres://u:pa/ss@h/db", "postgres://u:***@h/db");
        masks("postgres://u:p@ss@h:5432/db", "postgres://u:***@h:5432/db");
        masks("postgres://u:a?b#c@h/db", "postgres://u:***@h/db");
        masks("postgress://u:my secret@h/db", "postgress://u:***@h/db");
        // A `pwd=` in the password: its value (to the end) is masked too.
        masks("mssql://sa:x;Pwd=y@h/db", "mssql://sa:***");
    }

    #[test]
    fn urls_without_a_password_are_kept() {
        for text in [
            "postgres://app@db/shop",
            "sqlite:///tmp/a.db",
            "sqlite://./legacy.db",
            "sqlite:C:/data/x.db",
            "http://127.0.0.1:8080/api",
            "mssql://sa@[::1]:1433/db",
            "postgres://u:@h/db",
            "user@example.com",
        ] {
            assert!(matches!(redact_secrets(text), Cow::Borrowed(_)), "{text}: {}", redact_secrets(text));
        }
    }

    #[test]
    fn urls_inside_messages_are_masked() {
        masks(
            "a postgresql://u:p%40ss@h1,h2/db?sslmode=require and mysql://x:y@z",
            "a postgresql://u:***@h1,h2/db?sslmode=require and mysql://x:***@z",
        );
        masks(
            "cannot parse `postgress://u:S3cret@h/db`: unknown scheme",
            "cannot parse `postgress://u:***@h/db`: unknown scheme",
        );
        masks("mail bob@example.com: sent", "mail bob@example.com: sent");
    }

    #[test]
    fn query_parameters_are_masked() {
        masks(
            "postgres://app@db/shop?password=x&sslmode=disable",
            "postgres://app@db/shop?password=***&sslmode=disable",
        );
        masks(
            "postgres://app@db/shop?sslmode=require&SSLPassword=a%26b",
            "postgres://app@db/shop?sslmode=require&SSLPassword=***",
        );
        masks("mssql://sa@h/db?pwd=a&b&encrypt=true#top", "mssql://sa@h/db?pwd=***&encrypt=true#top");
        masks("url?user=a&access_token=zzz&b=1", "url?user=a&access_token=***&b=1");
    }

    #[test]
    fn libpq_strings_are_masked() {
        masks("host=db user=app password=hunter2 dbname=shop", "host=db user=app password=*** dbname=shop");
        masks("host=db password = 'a b\\' c' port=5432", "host=db password = *** port=5432");
        masks("password=a;b host=h", "password=*** host=h");
        masks("host=h password=a;b user=u", "host=h password=*** user=u");
        // A space no libpq value may hold unquoted: masked up to the next pair.
        masks("host=h password=my secret dbname=d", "host=h password=*** dbname=d");
        masks("PGPASSWORD=x ./run", "PGPASSWORD=***");
        masks("host=h password='unterminated port=1", "host=h password=***");
    }

    #[test]
    fn ado_strings_are_masked() {
        masks("Server=h;User Id=sa;Password=S3cret;", "Server=h;User Id=sa;Password=***;");
        masks("Server=h;PWD=x", "Server=h;PWD=***");
        masks("Server=h; Password = a b c ;User Id=sa", "Server=h; Password = ***;User Id=sa");
        masks("Server=h;Password='a;b';User=u", "Server=h;Password=***;User=u");
        masks("Server=h;Password=\"a\"\";b\";User=u", "Server=h;Password=***;User=u");
        masks("Server=h;Pwd={a}};b};Database=d", "Server=h;Pwd=***;Database=d");
        masks("Server=h;Password=ab;cd;Database=d", "Server=h;Password=***;Database=d");
        masks("Password=S3cret;Server=h", "Password=***;Server=h");
        masks("Server=h;Password=\"unterminated;User=u", "Server=h;Password=***");
    }

    #[test]
    fn messages_keep_what_follows_the_line() {
        masks(
            "cannot restore: Server=db;User Id=app;Password=x;\ncaused by: timeout",
            "cannot restore: Server=db;User Id=app;Password=***;\ncaused by: timeout",
        );
        masks("login failed: password=x\ncaused by: denied", "login failed: password=***\ncaused by: denied");
        masks("a = b, rows=5", "a = b, rows=5");
        masks("élan password=ünïcode é", "élan password=***");
    }

    #[test]
    fn secret_keys() {
        for key in
            ["password", "Password", "PWD", "pwd", "sslpassword", "PGPASSWORD", "client_secret", "apiKey", "x.passwd"]
        {
            assert!(is_secret_key(key), "{key}");
        }
        for key in ["user", "Server", "passfile", "password_file", "", "rows"] {
            assert!(!is_secret_key(key), "{key}");
        }
    }

    /// A password built of chunks `Zx` + one character, so that any part of it left in the
    /// output shows as a `Zx` (which nothing else in the generated strings holds).
    fn password(chars: &'static str) -> impl Strategy<Value = String> {
        proptest::collection::vec(proptest::string::string_regex(chars).expect("a valid regex"), 1..8)
            .prop_map(|chunks| chunks.into_iter().map(|c| format!("Zx{c}")).collect())
    }

    fn percent_encoded(text: &str) -> String {
        text.bytes()
            .map(|b| if b.is_ascii_alphanumeric() { char::from(b).to_string() } else { format!("%{b:02X}") })
            .collect()
    }

    #[track_caller]
    fn assert_hidden(text: &str, password: &str) -> Result<(), TestCaseError> {
        let shown = redact_secrets(text);
        prop_assert!(!shown.contains("Zx"), "{password:?} shows in {shown:?} (from {text:?})");
        prop_assert!(shown.contains(MASK), "{shown:?}");
        Ok(())
    }

    proptest! {
        #[test]
        fn url_passwords_never_show(
            scheme in "[a-z][a-z0-9+.-]{0,12}",
            slashes in "(://|:/|//)",
            user in "[a-z][a-z0-9]{0,7}",
            pw in password("[^\\s]"),
            host in "[a-z0-9.-]{1,12}(:[0-9]{1,5})?",
            rest in "(/[a-z0-9_]{0,8})?(\\?[a-z_]{1,8}=[a-z0-9]{1,8})?",
            encoded in any::<bool>(),
            wrap in 0usize..4,
        ) {
            let pw = if encoded { percent_encoded(&pw) } else { pw };
            let slashes = if slashes == "//" { "//".to_owned() } else { format!("{scheme}{slashes}") };
            let url = format!("{slashes}{user}:{pw}@{host}{rest}");
            let text = match wrap {
                0 => url,
                1 => format!("`{url}`"),
                2 => format!("\"{url}\""),
                _ => format!("cannot parse `{url}`: invalid port\ncaused by: x"),
            };
            assert_hidden(&text, &pw)?;
        }

        #[test]
        fn query_passwords_never_show(
            key in "(password|PASSWORD|sslpassword|Pwd)",
            before in "(\\?sslmode=require&|\\?)",
            pw in password("[^\\s&#]"),
            after in "(&application_name=[a-z]{1,8})?(#[a-z]{0,4})?",
            encoded in any::<bool>(),
        ) {
            let pw = if encoded { percent_encoded(&pw) } else { pw };
            assert_hidden(&format!("postgres://app@db:5432/shop{before}{key}={pw}{after}"), &pw)?;
        }

        #[test]
        fn libpq_passwords_never_show(
            key in "(password|PASSWORD|sslpassword)",
            position in 0usize..3,
            pw in password("[^\\s]"),
            quoted in any::<bool>(),
        ) {
            let value = if quoted {
                format!("'{}'", pw.replace('\\', "\\\\").replace('\'', "\\'"))
            } else {
                pw.clone()
            };
            let mut pairs = vec!["host=db.example".to_owned(), "user=app".to_owned(), "dbname=shop".to_owned()];
            pairs.insert(position, format!("{key}={value}"));
            assert_hidden(&pairs.join(" "), &pw)?;
        }

        #[test]
        fn libpq_passwords_with_spaces_never_show(pw in password("[^\\n\\r]"), position in 0usize..3) {
            let value = format!("'{}'", pw.replace('\\', "\\\\").replace('\'', "\\'"));
            let mut pairs = vec!["host=db".to_owned(), "user=app".to_owned(), "dbname=shop".to_owned()];
            pairs.insert(position, format!("password = {value}"));
            assert_hidden(&pairs.join(" "), &pw)?;
        }

        #[test]
        fn ado_passwords_never_show(
            key in "(Password|PWD|pwd|PassWord)",
            position in 0usize..4,
            pw in password("[^;\\n\\r]"),
            quote in 0usize..3,
            spaced in any::<bool>(),
            trailing in any::<bool>(),
        ) {
            let value = match quote {
                0 => pw.clone(),
                1 => format!("\"{}\"", pw.replace('"', "\"\"")),
                _ => format!("{{{}}}", pw.replace('}', "}}")),
            };
            let eq = if spaced { " = " } else { "=" };
            let mut pairs = vec!["Server=tcp:db.example,1433".to_owned(), "User Id=sa".to_owned(), "Database=Sales".to_owned()];
            pairs.insert(position, format!("{key}{eq}{value}"));
            let text = pairs.join(";") + if trailing { ";" } else { "" };
            assert_hidden(&text, &pw)?;
        }

        #[test]
        fn ado_passwords_with_semicolons_never_show_when_quoted(pw in password("[^\\n\\r]"), position in 0usize..4) {
            let mut pairs = vec!["Server=db".to_owned(), "UID=sa".to_owned(), "Database=Sales".to_owned()];
            pairs.insert(position, format!("Pwd={{{}}}", pw.replace('}', "}}")));
            assert_hidden(&pairs.join(";"), &pw)?;
        }
    }
}
