//! A [`Notifier`] that POSTs the run summary as JSON to an HTTP endpoint, with a timeout per
//! attempt and retries with exponential backoff.
//!
//! The HTTP client is reqwest (a well-kept client on hyper) with rustls: `https://` endpoints
//! are verified against the platform's trusted roots, or a CA file of your own. Behind the
//! crate feature `webhook`, so that a program without webhooks compiles no HTTP client.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{StatusCode, Url};

use super::Notifier;
use crate::engine::{RetryPolicy, backoff};
use crate::error::{Error, ErrorKind, Result, Stage};
use crate::migration::Counts;
use crate::names::{MigrationName, RunId};
use crate::orchestrator::{BackupRecord, MigrationRecord, MigrationStatus, RunStatus, RunSummary};

/// How much of an error response's body goes into the error message.
const BODY_EXCERPT: usize = 200;

/// POSTs a [`WebhookPayload`] (JSON) to an `https://` URL when a run finishes.
///
/// The server's certificate is verified against the platform's trusted roots, or only against
/// the CA certificates of a file ([`WebhookBuilder::ca_file`]). Plain `http://` is accepted to
/// a loopback address (`localhost`, `127.0.0.0/8`, `::1`: a relay on the same host); to any
/// other host it is refused unless [`WebhookBuilder::insecure_http`] says otherwise, since the
/// summary (and any `Authorization` header) would cross the network in clear.
///
/// Each attempt has a timeout (10 s unless set with [`timeout`](Self::timeout)). Connection
/// failures, timeouts, `5xx` and `429 Too Many Requests` are retried
/// ([`retries`](Self::retries), 3 unless set) after an exponential backoff with jitter
/// ([`backoff`](Self::backoff), 0.5 s doubling up to 8 s unless set); any other `4xx` is not
/// retried, and redirects are not followed (a redirected POST would turn into a GET). The
/// errors are [`Error`]s of [`Stage::Notify`] naming the URL without its user, password and
/// query (the path is shown, so keep secrets in a [`header`](Self::header) or the query), the
/// status code or the cause, and [`Error::RetriesExhausted`] when every attempt failed.
///
/// Like every notifier, a failing webhook is logged by the orchestrator and does not fail the
/// run. The orchestrator waits for it, though: with the defaults an endpoint that never answers
/// holds the end of a run for about 45 s (4 attempts of 10 s plus the delays).
///
/// Needs the crate feature `webhook`.
///
/// ```no_run
/// # use std::time::Duration;
/// # use std::sync::Arc;
/// # use dmf_core::{Orchestrator, RunStore, WebhookNotifier};
/// # fn demo(store: Arc<dyn RunStore>, token: &str) -> dmf_core::Result<()> {
/// let webhook = WebhookNotifier::builder("https://alerts.internal/dmf")
///     .ca_file("/etc/dmf/internal-ca.pem") // the company's CA; the platform's roots otherwise
///     .build()?
///     .timeout(Duration::from_secs(5))
///     .retries(5)
///     .header("Authorization", &format!("Bearer {token}"))?;
/// let orchestrator = Orchestrator::builder(store).notifier(webhook).build()?;
/// # let _ = orchestrator;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct WebhookNotifier {
    url: Url,
    /// The URL as errors and logs show it: no credentials, no query.
    shown: String,
    headers: HeaderMap,
    timeout: Duration,
    retry: RetryPolicy,
    client: reqwest::Client,
}

/// Builds a [`WebhookNotifier`]: the TLS choices, made before the HTTP client is created.
#[derive(Debug, Clone)]
pub struct WebhookBuilder {
    url: String,
    insecure_http: bool,
    ca_file: Option<PathBuf>,
}

impl WebhookBuilder {
    /// Accepts a plain `http://` URL to a host that is not a loopback address (default: refused).
    /// The summary and the headers then cross the network unencrypted.
    pub fn insecure_http(mut self, allow: bool) -> Self {
        self.insecure_http = allow;
        self
    }

    /// Trusts only the CA certificates of this PEM file for `https://`, instead of the
    /// platform's roots: for an endpoint whose certificate your own CA signed.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// The notifier. Fails with [`Error::Config`] when the URL does not parse, is neither
    /// `https://` nor `http://`, is `http://` to a host that is not a loopback address without
    /// [`insecure_http`](Self::insecure_http), when the CA file cannot be read or holds no
    /// certificate, or when the HTTP client cannot be created.
    pub fn build(self) -> Result<WebhookNotifier> {
        let url = Url::parse(&self.url)
            .map_err(|error| Error::Config(format!("the webhook URL is not a valid URL: {error}")))?;
        let shown = redacted(&url);
        match url.scheme() {
            "https" => {}
            "http" if self.insecure_http || is_loopback(&url) => {}
            "http" => {
                return Err(Error::Config(format!(
                    "webhook {shown}: plain http:// to a host that is not this machine would send the run summary \
                     (and any Authorization header) unencrypted: use https://, or allow it explicitly \
                     (WebhookBuilder::insecure_http, dmf sync --notify-insecure)"
                )));
            }
            other => {
                return Err(Error::Config(format!(
                    "webhook {shown}: scheme `{other}` is not supported, use https:// (or http:// to this machine)"
                )));
            }
        }
        let mut client = reqwest::Client::builder()
            .user_agent(concat!("dmf/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &self.ca_file {
            client = client.tls_certs_only(read_ca_file(path, &shown)?);
        }
        let client = client
            .build()
            .map_err(|error| Error::Config(format!("webhook {shown}: cannot create the HTTP client: {error}")))?;
        Ok(WebhookNotifier {
            url,
            shown,
            headers: HeaderMap::new(),
            timeout: Duration::from_secs(10),
            retry: RetryPolicy {
                max_attempts: 4,
                initial_delay: Duration::from_millis(500),
                max_delay: Duration::from_secs(8),
                factor: 2.0,
                jitter: true,
            },
            client,
        })
    }
}

/// True when `url`'s host is this machine: `localhost`, `127.0.0.0/8` or `::1`.
fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else { return false };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Why the endpoint's certificate was refused, when that is why the request failed.
fn certificate_refusal(error: &reqwest::Error) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        // An I/O error wraps its cause (io errors within io errors, as hyper and rustls nest
        // them), which `source()` skips: look inside it first.
        if let Some(inner) = current.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            cause = Some(inner as &(dyn std::error::Error + 'static));
            continue;
        }
        if let Some(rustls::Error::InvalidCertificate(reason)) = current.downcast_ref::<rustls::Error>() {
            return Some(match reason {
                rustls::CertificateError::UnknownIssuer => {
                    "unknown CA: no trusted root signed it (give the CA that did with WebhookBuilder::ca_file, \
                     dmf sync --notify-ca)"
                        .to_owned()
                }
                rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. } => {
                    "wrong host name: it is not issued for the URL's host".to_owned()
                }
                rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. } => {
                    "expired".to_owned()
                }
                other => format!("{other:?}"),
            });
        }
        cause = current.source();
    }
    None
}

fn read_ca_file(path: &Path, shown: &str) -> Result<Vec<reqwest::Certificate>> {
    let pem = std::fs::read(path).map_err(|error| {
        Error::Config(format!("webhook {shown}: cannot read the CA file {}: {error}", path.display()))
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| {
        Error::Config(format!("webhook {shown}: the CA file {} is not PEM certificates: {error}", path.display()))
    })?;
    if certs.is_empty() {
        return Err(Error::Config(format!("webhook {shown}: the CA file {} holds no certificate", path.display())));
    }
    Ok(certs)
}

impl WebhookNotifier {
    /// A notifier posting to `url` with the defaults: `https://`, verified against the
    /// platform's roots, or `http://` to a loopback address. Same as
    /// `WebhookNotifier::builder(url).build()`; see [`WebhookBuilder::build`] for the errors.
    pub fn new(url: impl AsRef<str>) -> Result<Self> {
        Self::builder(url).build()
    }

    /// A builder for the TLS choices: [`insecure_http`](WebhookBuilder::insecure_http),
    /// [`ca_file`](WebhookBuilder::ca_file).
    pub fn builder(url: impl AsRef<str>) -> WebhookBuilder {
        WebhookBuilder { url: url.as_ref().to_owned(), insecure_http: false, ca_file: None }
    }

    /// The longest one attempt may take, from connecting to reading the whole answer
    /// (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many times a failed attempt is retried (default 3, so 4 attempts in all; 0 sends once).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retry.max_attempts = retries.saturating_add(1);
        self
    }

    /// The delay before the first retry and the cap of every delay; each delay doubles, plus up
    /// to as much again of random jitter (default 0.5 s and 8 s). `min` is capped at `max`.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.retry.initial_delay = min.min(max);
        self.retry.max_delay = max;
        self
    }

    /// Sends `name: value` with every request, for example an `Authorization` token. The value
    /// is never logged nor shown by `Debug`.
    ///
    /// Fails with [`Error::Config`] (naming the header, not its value) when the name or value is
    /// not valid in HTTP.
    pub fn header(mut self, name: &str, value: &str) -> Result<Self> {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::Config(format!("webhook {}: `{name}` is not a valid header name", self.shown)))?;
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            Error::Config(format!("webhook {}: the value of header `{name}` is not a valid header value", self.shown))
        })?;
        value.set_sensitive(true);
        self.headers.insert(header, value);
        Ok(self)
    }

    /// The URL as errors and logs show it: without user, password and query.
    pub fn shown_url(&self) -> &str {
        &self.shown
    }

    /// Posts `payload` once.
    async fn attempt(&self, payload: &WebhookPayload) -> Result<()> {
        let response = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .timeout(self.timeout)
            .json(payload)
            .send()
            .await
            .map_err(|error| self.transport_error(error))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // The answer's body often says why (bad token, unknown channel); keep the start of it.
        let body = response.text().await.unwrap_or_default();
        let body = body.trim();
        let excerpt = match body.char_indices().nth(BODY_EXCERPT) {
            Some((end, _)) => format!(": {}…", &body[..end]),
            None if body.is_empty() => String::new(),
            None => format!(": {body}"),
        };
        let shown = &self.shown;
        Err(if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            Error::transient(Stage::Notify, format!("webhook {shown} answered {status}{excerpt}"))
        } else if status.is_redirection() {
            Error::fatal(
                Stage::Notify,
                format!(
                    "webhook {shown} answered {status}{excerpt}; redirects are not followed (a redirected POST \
                     becomes a GET): use the final URL"
                ),
            )
        } else {
            Error::fatal(
                Stage::Notify,
                format!(
                    "webhook {shown} answered {status}{excerpt}; not retried: a 4xx other than 429 means the \
                     endpoint refuses the request itself"
                ),
            )
        })
    }

    fn transport_error(&self, error: reqwest::Error) -> Error {
        // reqwest's message would repeat the full URL, query included; ours names it redacted.
        let error = error.without_url();
        let shown = &self.shown;
        let (kind, message) = if let Some(reason) = certificate_refusal(&error) {
            (ErrorKind::Fatal, format!("webhook {shown}: its TLS certificate was refused: {reason}"))
        } else if error.is_timeout() {
            (ErrorKind::Transient, format!("webhook {shown} did not answer within {:?}", self.timeout))
        } else if error.is_connect() {
            (ErrorKind::Transient, format!("could not connect to webhook {shown}"))
        } else if error.is_builder() {
            (ErrorKind::Fatal, format!("could not build the request to webhook {shown}"))
        } else {
            (ErrorKind::Transient, format!("the request to webhook {shown} failed"))
        };
        Error::with_source(Stage::Notify, kind, message, error)
    }
}

#[async_trait]
impl Notifier for WebhookNotifier {
    async fn notify(&self, summary: &RunSummary) -> Result<()> {
        let payload = WebhookPayload::from(summary);
        let mut delays = backoff(&self.retry);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let error = match self.attempt(&payload).await {
                Ok(()) => {
                    tracing::info!(run = %summary.run, url = %self.shown, attempts, "webhook delivered");
                    return Ok(());
                }
                Err(error) => error,
            };
            if !error.is_transient() {
                return Err(error);
            }
            let Some(delay) = delays.next() else {
                return Err(Error::RetriesExhausted { stage: Stage::Notify, attempts, source: Box::new(error) });
            };
            tracing::warn!(
                run = %summary.run, url = %self.shown, attempt = attempts, ?delay, error = %error.chain(),
                "webhook failed, retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }
}

impl fmt::Debug for WebhookNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<String> = self.headers.keys().map(|name| format!("{name}: <redacted>")).collect();
        f.debug_struct("WebhookNotifier")
            .field("url", &self.shown)
            .field("headers", &headers)
            .field("timeout", &self.timeout)
            .field("retries", &self.retry.max_attempts.saturating_sub(1))
            .field("backoff", &(self.retry.initial_delay, self.retry.max_delay))
            .finish_non_exhaustive()
    }
}

/// `url` without user, password, query and fragment (a hidden query shows as `?<redacted>`).
fn redacted(url: &Url) -> String {
    let mut shown = url.clone();
    // Both only fail for URLs that cannot have credentials, which then have none to hide.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    let mut text = shown.to_string();
    if url.query().is_some() {
        text.push_str("?<redacted>");
    }
    text
}

/// The JSON body a [`WebhookNotifier`] posts, built from a [`RunSummary`].
///
/// The shape is stable: fields may be added, none renamed or removed. Every field is always
/// present; absent values are `null`. Times are RFC 3339 in UTC, durations whole milliseconds.
///
/// ```json
/// {
///   "event": "run.failed",
///   "run": 42,
///   "status": "failed",
///   "duration_ms": 1520,
///   "error": "migration `orders` failed\ncaused by: load failed: …",
///   "backup": {"method": "pg_dump", "location": "/backups/run-42.dump",
///              "taken_at": "2025-01-31T22:04:11Z", "size_bytes": 1048576},
///   "migrations": [
///     {"name": "customers", "status": "completed", "started_at": "2025-01-31T22:04:12Z",
///      "finished_at": "2025-01-31T22:04:13Z", "duration_ms": 900, "resumed": false,
///      "rows_read": 1000, "rows_inserted": 990, "rows_updated": 0, "rows_unchanged": 0,
///      "rows_deleted": 0, "rows_skipped": 8, "rows_rejected": 2, "error": null}
///   ],
///   "totals": {"rows_read": 1000, "rows_inserted": 990, "rows_updated": 0, "rows_unchanged": 0,
///              "rows_deleted": 0, "rows_skipped": 8, "rows_rejected": 2},
///   "text": "run 42 failed in 1.5 s\n…"
/// }
/// ```
///
/// `status` is the run's [`RunStatus`] (`completed` or `failed` for a finished run); a
/// migration's `status` is its [`MigrationStatus`]. `text` is the summary's `Display`, ready
/// for chat hooks.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct WebhookPayload {
    /// `run.completed` or `run.failed`.
    pub event: WebhookEvent,
    /// The run's id.
    pub run: RunId,
    /// How the run ended.
    pub status: RunStatus,
    /// Wall time of the run, in milliseconds.
    pub duration_ms: u64,
    /// Why the run failed, with the error's whole chain (one cause per line).
    #[serde(default)]
    pub error: Option<String>,
    /// The backup taken before the first write, if any.
    #[serde(default)]
    pub backup: Option<WebhookBackup>,
    /// Each selected migration, in plan order.
    pub migrations: Vec<WebhookMigration>,
    /// The sum of every migration's counts.
    pub totals: WebhookCounts,
    /// The summary as readable text (its `Display`), for hooks that post a message.
    pub text: String,
}

/// Whether the run completed, the `event` of a [`WebhookPayload`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum WebhookEvent {
    /// `run.completed`: every selected migration completed or was already complete.
    #[serde(rename = "run.completed")]
    RunCompleted,
    /// `run.failed`: pre-flight, the backup or a migration failed.
    #[serde(rename = "run.failed")]
    RunFailed,
}

/// One migration of a [`WebhookPayload`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct WebhookMigration {
    /// The migration's name.
    pub name: MigrationName,
    /// Where it stands after the run.
    pub status: MigrationStatus,
    /// When it started, if it did.
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished, if it did.
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    /// Its wall time in this run, in milliseconds.
    pub duration_ms: u64,
    /// True when it resumed from an earlier run's checkpoint.
    pub resumed: bool,
    /// Its row counts in this run.
    #[serde(flatten)]
    pub counts: WebhookCounts,
    /// Its error with the whole chain, or why it was skipped.
    #[serde(default)]
    pub error: Option<String>,
}

/// Row counts in a [`WebhookPayload`] (a migration's, or the run's totals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct WebhookCounts {
    /// Records read from the source.
    pub rows_read: u64,
    /// New rows in the target.
    pub rows_inserted: u64,
    /// Existing rows changed.
    pub rows_updated: u64,
    /// Existing rows found equal and left alone.
    pub rows_unchanged: u64,
    /// Rows removed from the target.
    pub rows_deleted: u64,
    /// Records deliberately not migrated.
    pub rows_skipped: u64,
    /// Records set aside in the reject quarantine.
    pub rows_rejected: u64,
}

/// The backup of a [`WebhookPayload`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct WebhookBackup {
    /// What took it (`pg_dump`, `sqlite-online-backup`…).
    pub method: String,
    /// A path or URL to restore from.
    pub location: String,
    /// When it was taken.
    #[serde(default)]
    pub taken_at: Option<DateTime<Utc>>,
    /// Its size, when known.
    #[serde(default)]
    pub size_bytes: Option<u64>,
}

impl From<&RunSummary> for WebhookPayload {
    fn from(summary: &RunSummary) -> Self {
        Self {
            event: if summary.succeeded() { WebhookEvent::RunCompleted } else { WebhookEvent::RunFailed },
            run: summary.run,
            status: summary.status,
            duration_ms: millis(summary.duration),
            error: summary.error.clone(),
            backup: summary.backup.as_ref().map(WebhookBackup::from),
            migrations: summary.migrations.iter().map(WebhookMigration::from).collect(),
            totals: WebhookCounts::from(&summary.totals()),
            text: summary.to_string(),
        }
    }
}

impl From<&MigrationRecord> for WebhookMigration {
    fn from(record: &MigrationRecord) -> Self {
        Self {
            name: record.migration.clone(),
            status: record.status,
            started_at: record.started_at.and_then(utc),
            finished_at: record.finished_at.and_then(utc),
            duration_ms: millis(record.duration),
            resumed: record.resumed,
            counts: WebhookCounts::from(&record.counts),
            error: record.error.clone(),
        }
    }
}

impl From<&Counts> for WebhookCounts {
    fn from(counts: &Counts) -> Self {
        Self {
            rows_read: counts.read,
            rows_inserted: counts.inserted,
            rows_updated: counts.updated,
            rows_unchanged: counts.unchanged,
            rows_deleted: counts.deleted,
            rows_skipped: counts.skipped,
            rows_rejected: counts.rejected,
        }
    }
}

impl From<&BackupRecord> for WebhookBackup {
    fn from(record: &BackupRecord) -> Self {
        Self {
            method: record.method.clone(),
            location: record.location.clone(),
            taken_at: utc(record.taken_at),
            size_bytes: record.size_bytes,
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `time` in UTC; `None` before 1970 or beyond chrono's range.
fn utc(time: SystemTime) -> Option<DateTime<Utc>> {
    let since_epoch = time.duration_since(UNIX_EPOCH).ok()?;
    DateTime::from_timestamp(i64::try_from(since_epoch.as_secs()).ok()?, since_epoch.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_and_plain_http_only_to_this_machine_unless_allowed() {
        assert!(WebhookNotifier::new("https://user:secret@hooks.example.com/x?token=abc").is_ok());
        for local in ["http://127.0.0.1:9/hook", "http://127.8.9.10/h", "http://localhost:8080/h", "http://[::1]:9/h"] {
            assert!(WebhookNotifier::new(local).is_ok(), "{local}");
        }
        let plain = WebhookNotifier::new("http://user:secret@hooks.example.com/x?token=abc").unwrap_err();
        let text = plain.to_string();
        assert!(matches!(plain, Error::Config(_)));
        assert!(text.contains("http://hooks.example.com/x?<redacted>") && text.contains("unencrypted"), "{text}");
        assert!(text.contains("--notify-insecure"), "{text}");
        assert!(!text.contains("secret") && !text.contains("abc"), "{text}");
        assert!(WebhookNotifier::new("http://10.0.0.8/h").is_err());
        assert!(WebhookNotifier::builder("http://hooks.example.com/x").insecure_http(true).build().is_ok());
        let ftp = WebhookNotifier::new("ftp://example.com/").unwrap_err().to_string();
        assert!(ftp.contains("scheme `ftp`"), "{ftp}");
        let junk = WebhookNotifier::new("not a url").unwrap_err();
        assert!(matches!(junk, Error::Config(_)), "{junk}");
    }

    #[test]
    fn a_ca_file_that_cannot_be_read_or_holds_no_certificate_is_refused_naming_it() {
        let text = WebhookNotifier::builder("https://h/x").ca_file("/nonexistent/ca.pem").build().unwrap_err();
        assert!(text.to_string().contains("cannot read the CA file /nonexistent/ca.pem"), "{text}");
        let empty = std::env::temp_dir().join(format!("dmf-empty-ca-{}.pem", std::process::id()));
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let text = WebhookNotifier::builder("https://h/x").ca_file(&empty).build().unwrap_err().to_string();
        assert!(text.contains("holds no certificate"), "{text}");
        let _ = std::fs::remove_file(empty);
    }

    #[test]
    fn credentials_query_and_header_values_are_never_shown() {
        let notifier = WebhookNotifier::new("https://bot:hunter2@example.com:8080/hook?key=sesame#frag")
            .unwrap()
            .header("Authorization", "Bearer t0ken")
            .unwrap();
        assert_eq!(notifier.shown_url(), "https://example.com:8080/hook?<redacted>");
        let debug = format!("{notifier:?}");
        assert!(debug.contains("authorization: <redacted>"), "{debug}");
        for secret in ["hunter2", "bot", "sesame", "t0ken", "frag"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
    }

    #[test]
    fn invalid_headers_are_refused_without_echoing_the_value() {
        let notifier = WebhookNotifier::new("https://example.com/").unwrap();
        let name = notifier.clone().header("bad name", "x").unwrap_err().to_string();
        assert!(name.contains("`bad name` is not a valid header name"), "{name}");
        let value = notifier.header("X-Token", "line\nbreak-secret").unwrap_err().to_string();
        assert!(value.contains("`X-Token`") && !value.contains("secret"), "{value}");
    }

    #[test]
    fn retries_and_backoff_shape_the_delays() {
        let notifier = WebhookNotifier::new("https://example.com/")
            .unwrap()
            .retries(2)
            .backoff(Duration::from_millis(30), Duration::from_millis(10));
        assert_eq!(notifier.retry.max_attempts, 3);
        let delays: Vec<_> = backoff(&notifier.retry).collect();
        assert_eq!(delays.len(), 2);
        assert!(
            delays.iter().all(|d| *d >= Duration::from_millis(10) && *d <= Duration::from_millis(20)),
            "{delays:?}"
        );
    }
}
