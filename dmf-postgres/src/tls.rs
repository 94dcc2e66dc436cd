//! TLS to PostgreSQL as libpq does it: `sslmode`, `sslrootcert`, `sslcert` and `sslkey` (or
//! `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`), over rustls with DMF's own
//! certificate verifier, and the errors that say why a server's certificate was refused.
//!
//! tokio-postgres knows `disable`, `prefer` and `require` only, and verifies nothing itself:
//! the verification libpq's modes ask for is done here, in [`Verifier`], on the connection
//! tokio-postgres-rustls makes.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use dmf_core::{Error, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`: whether a connection uses TLS and what it checks of the server.
///
/// | mode | TLS | the server's certificate |
/// |---|---|---|
/// | `disable` | never | — |
/// | `allow` | only when the server refuses the connection without it | checked against the root certificate when there is one (as `verify-ca`), else not |
/// | `prefer` (the default) | when the server offers it; a connection that fails over TLS is tried again without | the same |
/// | `require` | always | the same |
/// | `verify-ca` | always | signed by a trusted root (`sslrootcert`, needed), and valid now |
/// | `verify-full` | always | as `verify-ca`, and issued for the host name connected to |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// Without TLS first; with TLS when the server refuses that.
    Allow,
    /// With TLS when the server offers it (libpq's default).
    #[default]
    Prefer,
    /// With TLS, or not at all.
    Require,
    /// With TLS, the server's certificate signed by a trusted root.
    VerifyCa,
    /// With TLS, the server's certificate signed by a trusted root and issued for the host.
    VerifyFull,
}

impl SslMode {
    /// The mode as libpq spells it (`verify-full`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    fn verifies(self) -> bool {
        matches!(self, Self::VerifyCa | Self::VerifyFull)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        parse_mode(text).map_err(Error::Config)
    }
}

fn parse_mode(text: &str) -> std::result::Result<SslMode, String> {
    Ok(match text {
        "disable" => SslMode::Disable,
        "allow" => SslMode::Allow,
        "prefer" => SslMode::Prefer,
        "require" => SslMode::Require,
        "verify-ca" => SslMode::VerifyCa,
        "verify-full" => SslMode::VerifyFull,
        other => {
            return Err(format!(
                "invalid sslmode `{other}`: expected disable, allow, prefer, require, verify-ca or verify-full"
            ));
        }
    })
}

/// The certificates a server's certificate must chain to (`sslrootcert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// The CA certificates in this PEM file.
    File(PathBuf),
    /// The platform's trusted roots (`sslrootcert=system`; only with `verify-full`, as libpq).
    System,
}

impl fmt::Display for RootCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::System => f.write_str("system"),
        }
    }
}

/// The TLS settings of a PostgreSQL connection, as libpq takes them. What is not set is read
/// from the environment as libpq reads it ([`from_env`](Self::from_env)) or takes libpq's
/// defaults: `sslmode=prefer` (`verify-full` with `sslrootcert=system`), and the files
/// `~/.postgresql/root.crt`, `~/.postgresql/postgresql.crt` and `~/.postgresql/postgresql.key`
/// when they exist. A file that is named but missing is an error (libpq would go on without
/// it: a typo would turn verification off).
///
/// A connection URL takes the same settings as keys (`?sslmode=verify-full&sslrootcert=ca.crt`),
/// which override the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    mode: Option<SslMode>,
    root_cert: Option<RootCert>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

impl TlsSettings {
    /// The settings of `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT` and `PGSSLKEY`.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Sets `sslmode`.
    pub fn mode(mut self, mode: SslMode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Sets `sslrootcert`.
    pub fn root_cert(mut self, root: RootCert) -> Self {
        self.root_cert = Some(root);
        self
    }

    /// Sets `sslcert` and `sslkey`: the client certificate (PEM, its chain may follow) and its
    /// private key (PEM: PKCS #8, PKCS #1 or SEC1), for `cert` authentication.
    pub fn client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.cert = Some(cert.into());
        self.key = Some(key.into());
        self
    }

    pub(crate) fn from_lookup(env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let mut settings = Self::default();
        for (key, variable) in [
            ("sslmode", "PGSSLMODE"),
            ("sslrootcert", "PGSSLROOTCERT"),
            ("sslcert", "PGSSLCERT"),
            ("sslkey", "PGSSLKEY"),
        ] {
            if let Some(value) = env(variable).filter(|value| !value.is_empty()) {
                settings.set(key, &value).map_err(|e| Error::Config(format!("{variable}: {e}")))?;
            }
        }
        Ok(settings)
    }

    /// Sets one of libpq's keys (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`); the error
    /// says what is wrong with the value.
    pub(crate) fn set(&mut self, key: &str, value: &str) -> std::result::Result<(), String> {
        match key {
            "sslmode" => self.mode = Some(parse_mode(value)?),
            "sslrootcert" if value == "system" => self.root_cert = Some(RootCert::System),
            "sslrootcert" => self.root_cert = Some(RootCert::File(value.into())),
            "sslcert" => self.cert = Some(value.into()),
            "sslkey" => self.key = Some(value.into()),
            other => return Err(format!("`{other}` is not a TLS setting")),
        }
        Ok(())
    }

    /// The mode when none was set: the one tokio-postgres' configuration holds.
    pub(crate) fn default_mode(mut self, mode: SslMode) -> Self {
        self.mode.get_or_insert(mode);
        self
    }

    /// `self` with what `other` sets on top (URL keys over the environment).
    pub(crate) fn overridden_by(self, other: Self) -> Self {
        Self {
            mode: other.mode.or(self.mode),
            root_cert: other.root_cert.or(self.root_cert),
            cert: other.cert.or(self.cert),
            key: other.key.or(self.key),
        }
    }

    /// Checks the settings, reads the files and builds the rustls configuration. `home` is
    /// where libpq's default files are looked for (`$HOME/.postgresql`).
    pub(crate) fn resolve(&self, home: Option<&Path>) -> Result<Tls> {
        let defaults = home.map(|home| home.join(".postgresql"));
        let default_file = |name: &str| defaults.as_ref().map(|dir| dir.join(name)).filter(|path| path.is_file());
        let root = self.root_cert.clone().or_else(|| default_file("root.crt").map(RootCert::File));
        let mode =
            self.mode.unwrap_or(if root == Some(RootCert::System) { SslMode::VerifyFull } else { SslMode::Prefer });
        if root == Some(RootCert::System) && mode != SslMode::VerifyFull && mode != SslMode::Disable {
            return Err(Error::Config(format!(
                "sslmode={mode} may not be used with sslrootcert=system: the platform's roots trust any public \
                 certificate, so they mean something only with the host name checked (use sslmode=verify-full)"
            )));
        }
        if mode.verifies() && root.is_none() {
            return Err(Error::Config(format!(
                "sslmode={mode} needs a root certificate to check the server's against, and there is none: give \
                 sslrootcert=PATH (the CA that signed the server's certificate), sslrootcert=system for the \
                 platform's trusted roots, or put it in ~/.postgresql/root.crt; or use sslmode=require to encrypt \
                 without verifying"
            )));
        }
        let client = match (&self.cert, &self.key) {
            (None, Some(key)) if default_file("postgresql.crt").is_none() => {
                return Err(Error::Config(format!(
                    "sslkey={} is given without sslcert (the client certificate it belongs to)",
                    key.display()
                )));
            }
            (Some(cert), key) => {
                let key = key.clone().or_else(|| default_file("postgresql.key")).ok_or_else(|| {
                    Error::Config(format!(
                        "sslcert={} needs its private key: give sslkey=PATH (~/.postgresql/postgresql.key does not exist)",
                        cert.display()
                    ))
                })?;
                Some((cert.clone(), key))
            }
            (None, key) => default_file("postgresql.crt")
                .and_then(|cert| key.clone().or_else(|| default_file("postgresql.key")).map(|key| (cert, key))),
        };
        let connector = if mode == SslMode::Disable {
            None
        } else {
            let roots = match &root {
                None => None,
                Some(RootCert::File(path)) => Some(read_roots(path)?),
                Some(RootCert::System) => Some(system_roots()?),
            };
            let verifier = Verifier {
                roots: roots.map(Arc::new),
                check_name: mode == SslMode::VerifyFull,
                provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
            };
            Some(MakeRustlsConnect::new(client_config(verifier, client.as_ref())?))
        };
        Ok(Tls { mode, root, client, connector })
    }
}

/// Settings checked, files read: what a connection uses.
#[derive(Clone)]
pub(crate) struct Tls {
    pub(crate) mode: SslMode,
    root: Option<RootCert>,
    client: Option<(PathBuf, PathBuf)>,
    /// None with `sslmode=disable`.
    connector: Option<MakeRustlsConnect>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Tls {
    /// The rustls connector, None with `sslmode=disable`.
    pub(crate) fn connector(&self) -> Option<MakeRustlsConnect> {
        self.connector.clone()
    }

    /// `sslmode=verify-full, sslrootcert=/etc/ca.crt`, for messages.
    pub(crate) fn describe(&self) -> String {
        let mut text = format!("sslmode={}", self.mode);
        if let Some(root) = &self.root {
            text.push_str(&format!(", sslrootcert={root}"));
        }
        if let Some((cert, _)) = &self.client {
            text.push_str(&format!(", sslcert={}", cert.display()));
        }
        text
    }

    /// The same settings for libpq's tools (`pg_dump`, `pg_restore`), as environment variables.
    pub(crate) fn libpq_env(&self) -> Vec<(&'static str, OsString)> {
        let mut env = vec![("PGSSLMODE", OsString::from(self.mode.as_str()))];
        if let Some(root) = &self.root {
            env.push((
                "PGSSLROOTCERT",
                match root {
                    RootCert::File(path) => path.clone().into_os_string(),
                    RootCert::System => "system".into(),
                },
            ));
        }
        if let Some((cert, key)) = &self.client {
            env.push(("PGSSLCERT", cert.clone().into_os_string()));
            env.push(("PGSSLKEY", key.clone().into_os_string()));
        }
        env
    }
}

fn read_roots(path: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    let certs = read_certs(path, "sslrootcert")?;
    let (added, ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(Error::Config(format!(
            "sslrootcert={}: none of its {ignored} certificates is a usable CA certificate",
            path.display()
        )));
    }
    Ok(roots)
}

fn read_certs(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| Error::Config(format!("cannot read {key}={}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Config(format!("{key}={} holds no PEM certificate", path.display())));
    }
    Ok(certs)
}

fn system_roots() -> Result<RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
        return Err(Error::Config(format!(
            "sslrootcert=system: the platform has no trusted root certificates to load ({})",
            if errors.is_empty() { "none found".to_owned() } else { errors.join("; ") }
        )));
    }
    Ok(roots)
}

fn client_config(verifier: Verifier, client: Option<&(PathBuf, PathBuf)>) -> Result<ClientConfig> {
    let provider = Arc::clone(&verifier.provider);
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS to PostgreSQL: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    match client {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let chain = read_certs(cert, "sslcert")?;
            let private = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| Error::Config(format!("cannot read sslkey={}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(chain, private)
                .map_err(|e| Error::Config(format!("sslcert={} with sslkey={}: {e}", cert.display(), key.display())))
        }
    }
}

/// libpq's checks of the server's certificate: none without a root certificate (`require`
/// and weaker), the chain to the roots and the validity dates (`verify-ca`, and the weaker
/// modes when a root certificate is there), and the host name too (`verify-full`). The
/// handshake's signatures are always checked.
#[derive(Debug)]
struct Verifier {
    roots: Option<Arc<RootCertStore>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(roots) = &self.roots else {
            return Ok(ServerCertVerified::assertion());
        };
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        if self.check_name {
            verify_server_name(&cert, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Why a connection failed in its TLS part, when it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TlsFailure {
    /// The server answered the TLS request with "no".
    Refused,
    /// The server's certificate did not pass the checks: the reason, said for people.
    Certificate(String),
    /// Another failure of the handshake (an alert from the server, no common protocol…).
    Handshake(String),
}

impl TlsFailure {
    /// The TLS failure behind `error`, if that is what it is.
    pub(crate) fn of(error: &tokio_postgres::Error) -> Option<Self> {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(current) = cause {
            // An I/O error wraps its cause (sometimes another I/O error), which `source()`
            // skips: look inside it first.
            if let Some(inner) = current.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
                cause = Some(inner as &(dyn std::error::Error + 'static));
                continue;
            }
            if let Some(rustls) = current.downcast_ref::<rustls::Error>() {
                return Some(Self::from_rustls(rustls));
            }
            if current.to_string() == "server does not support TLS" {
                return Some(Self::Refused);
            }
            cause = current.source();
        }
        None
    }

    fn from_rustls(error: &rustls::Error) -> Self {
        match error {
            rustls::Error::InvalidCertificate(reason) => Self::Certificate(certificate_reason(reason)),
            other => Self::Handshake(other.to_string()),
        }
    }

    /// The message: what failed, under which settings, and what to do.
    pub(crate) fn describe(&self, server: &str, tls: &str) -> String {
        match self {
            Self::Refused => format!(
                "cannot connect to PostgreSQL at {server} ({tls}): the server refused TLS (it does not accept \
                 encrypted connections, and this sslmode requires one): turn `ssl` on in the server's \
                 postgresql.conf, or connect with sslmode=prefer or disable"
            ),
            Self::Certificate(reason) => format!(
                "cannot connect to PostgreSQL at {server} ({tls}): the server's certificate was refused: {reason}"
            ),
            Self::Handshake(reason) => {
                format!("cannot connect to PostgreSQL at {server} ({tls}): the TLS handshake failed: {reason}")
            }
        }
    }
}

/// A certificate error, said for people, with what to do.
fn certificate_reason(error: &CertificateError) -> String {
    match error {
        CertificateError::UnknownIssuer => "unknown CA: it is not signed by a root certificate given in sslrootcert \
             (give the CA that signed the server's certificate)"
            .to_owned(),
        CertificateError::NotValidForName => "wrong host name: it is not issued for the host connected to (connect by \
             a name it lists, or use sslmode=verify-ca to check the chain only)"
            .to_owned(),
        CertificateError::NotValidForNameContext { expected, presented } => format!(
            "wrong host name: it is not issued for `{}` but for {} (connect by a name it lists, or use \
             sslmode=verify-ca to check the chain only)",
            expected.to_str(),
            if presented.is_empty() {
                "no name".to_owned()
            } else {
                presented.iter().map(|name| presented_name(name)).collect::<Vec<_>>().join(", ")
            }
        ),
        CertificateError::Expired => "expired: it is past its end of validity".to_owned(),
        CertificateError::ExpiredContext { time, not_after } => format!(
            "expired: it was valid until {} and it is now {} (the server needs a new certificate)",
            timestamp(not_after),
            timestamp(time)
        ),
        CertificateError::NotValidYet => "not valid yet: its validity starts later (check the clocks)".to_owned(),
        CertificateError::NotValidYetContext { time, not_before } => format!(
            "not valid yet: it is valid from {} and it is now {} (check the clocks)",
            timestamp(not_before),
            timestamp(time)
        ),
        other => format!("{other:?}"),
    }
}

/// A name rustls lists as it found it in the certificate (`DnsName("db.example")`,
/// `IpAddress(10.0.0.1)`), as people write it.
fn presented_name(name: &str) -> &str {
    name.strip_prefix("DnsName(\"")
        .and_then(|rest| rest.strip_suffix("\")"))
        .or_else(|| name.strip_prefix("IpAddress(").and_then(|rest| rest.strip_suffix(')')))
        .unwrap_or(name)
}

fn timestamp(time: &UnixTime) -> String {
    i64::try_from(time.as_secs())
        .ok()
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .map_or_else(|| format!("{} s after 1970", time.as_secs()), |at| at.to_rfc3339())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> TlsSettings {
        let mut settings = TlsSettings::default();
        for (key, value) in pairs {
            settings.set(key, value).unwrap();
        }
        settings
    }

    #[test]
    fn every_libpq_mode_parses_and_prints_as_libpq_spells_it() {
        for mode in ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] {
            assert_eq!(mode.parse::<SslMode>().unwrap().as_str(), mode);
        }
        let error = "verify_full".parse::<SslMode>().unwrap_err().to_string();
        assert!(error.contains("invalid sslmode `verify_full`"), "{error}");
    }

    #[test]
    fn the_default_mode_is_prefer_and_disable_builds_no_tls_connector() {
        let none = TlsSettings::default().resolve(None).unwrap();
        assert_eq!(none.mode, SslMode::Prefer);
        assert!(none.connector().is_some());
        assert_eq!(
            settings(&[("sslmode", "disable")]).resolve(None).unwrap().connector().map(|_| ()),
            None,
            "disable builds no TLS connector"
        );
    }

    #[test]
    fn weak_modes_with_the_system_roots_are_refused_as_libpq_does() {
        for mode in ["allow", "prefer", "require", "verify-ca"] {
            let error = settings(&[("sslmode", mode), ("sslrootcert", "system")]).resolve(None).unwrap_err();
            assert!(error.to_string().contains(&format!("sslmode={mode} may not be used with sslrootcert=system")));
        }
    }

    #[test]
    fn verifying_modes_without_a_root_certificate_say_what_to_give() {
        let home = tempfile_dir("no-root");
        for mode in ["verify-ca", "verify-full"] {
            let error = settings(&[("sslmode", mode)]).resolve(Some(&home)).unwrap_err().to_string();
            assert!(error.contains(&format!("sslmode={mode} needs a root certificate")), "{error}");
            assert!(error.contains("sslrootcert=PATH"), "{error}");
        }
    }

    #[test]
    fn named_files_that_are_missing_are_errors_naming_them() {
        let error = settings(&[("sslmode", "require"), ("sslrootcert", "/nonexistent/ca.crt")])
            .resolve(None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("cannot read sslrootcert=/nonexistent/ca.crt"), "{error}");
        let error = settings(&[("sslcert", "/nonexistent/c.crt")]).resolve(None).unwrap_err().to_string();
        assert!(error.contains("sslcert=/nonexistent/c.crt needs its private key"), "{error}");
        let error = settings(&[("sslkey", "/nonexistent/c.key")]).resolve(None).unwrap_err().to_string();
        assert!(error.contains("sslkey=/nonexistent/c.key is given without sslcert"), "{error}");
    }

    #[test]
    fn libpq_default_root_certificate_is_used_when_it_exists() {
        let home = tempfile_dir("default-root");
        std::fs::create_dir_all(home.join(".postgresql")).unwrap();
        std::fs::write(home.join(".postgresql/root.crt"), TEST_CA).unwrap();
        let tls = settings(&[("sslmode", "verify-full")]).resolve(Some(&home)).unwrap();
        assert_eq!(tls.root, Some(RootCert::File(home.join(".postgresql/root.crt"))));
        assert_eq!(
            tls.libpq_env(),
            vec![
                ("PGSSLMODE", OsString::from("verify-full")),
                ("PGSSLROOTCERT", home.join(".postgresql/root.crt").into_os_string())
            ]
        );
    }

    #[test]
    fn the_environment_is_read_and_url_keys_override_it() {
        let env = |name: &str| match name {
            "PGSSLMODE" => Some("verify-ca".to_owned()),
            "PGSSLROOTCERT" => Some("/env/ca.crt".to_owned()),
            "PGSSLCERT" => Some("/env/c.crt".to_owned()),
            "PGSSLKEY" => Some("/env/c.key".to_owned()),
            _ => None,
        };
        let from_env = TlsSettings::from_lookup(&env).unwrap();
        assert_eq!(
            from_env,
            TlsSettings::default()
                .mode(SslMode::VerifyCa)
                .root_cert(RootCert::File("/env/ca.crt".into()))
                .client_cert("/env/c.crt", "/env/c.key")
        );
        let merged = from_env.overridden_by(settings(&[("sslmode", "verify-full"), ("sslrootcert", "system")]));
        assert_eq!(merged.mode, Some(SslMode::VerifyFull));
        assert_eq!(merged.root_cert, Some(RootCert::System));
        assert_eq!(merged.cert, Some(PathBuf::from("/env/c.crt")));
        let error = TlsSettings::from_lookup(&|name| (name == "PGSSLMODE").then(|| "on".to_owned())).unwrap_err();
        assert!(error.to_string().contains("PGSSLMODE: invalid sslmode `on`"), "{error}");
    }

    #[test]
    fn certificate_errors_say_which_check_failed_and_what_to_do() {
        assert!(certificate_reason(&CertificateError::UnknownIssuer).starts_with("unknown CA"));
        let wrong = CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("127.0.0.1").unwrap(),
            presented: vec!["DnsName(\"db.other.example\")".to_owned()],
        };
        let text = certificate_reason(&wrong);
        assert!(text.starts_with("wrong host name: it is not issued for `127.0.0.1`"), "{text}");
        assert!(text.contains("but for db.other.example (connect by a name it lists"), "{text}");
        let expired = CertificateError::ExpiredContext {
            time: UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_800_000_000)),
            not_after: UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_700_000_000)),
        };
        let text = certificate_reason(&expired);
        assert!(text.starts_with("expired: it was valid until 2023-11-14T22:13:20+00:00"), "{text}");
    }

    #[test]
    fn a_refusal_of_tls_says_so_and_what_to_change() {
        let text = TlsFailure::Refused.describe("app@db:5432/shop", "sslmode=require");
        assert!(text.contains("app@db:5432/shop (sslmode=require): the server refused TLS"), "{text}");
        assert!(text.contains("turn `ssl` on"), "{text}");
    }

    /// A directory of its own under the system's temp dir, empty.
    fn tempfile_dir(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dmf-tls-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A self-signed CA certificate (the tests only parse it).
    const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBkjCCATegAwIBAgIUMMTIqv3UydgdSjgxrEaT3WebWP0wCgYIKoZIzj0EAwIw
FjEUMBIGA1UEAwwLRE1GIHRlc3QgQ0EwHhcNMjYxMjA3MjEzOTM4WhcNMzYxMjA0
MjEzOTM4WjAWMRQwEgYDVQQDDAtETUYgdGVzdCBDQTBZMBMGByqGSM49AgEGCCqG
SM49AwEHA0IABFGmys3hstx5/ZAGfe/gNnyvOUFKoEuSSMPbJlEWHO0LNlDZmjiF
cC4q9ugt9JiLuKl3VpZiLQhSOlC7uS6hzT2jYzBhMB0GA1UdDgQWBBTYA+ZqJ0rk
5vl/ibB+vk2/Pqn6rTAfBgNVHSMEGDAWgBTYA+ZqJ0rk5vl/ibB+vk2/Pqn6rTAP
BgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwIBBjAKBggqhkjOPQQDAgNJADBG
AiEAmqJ30FhbDbzCRbTXRFOy2ZS2H44Wvc64j3yKWL6+6OkCIQDWaugZ/su3K/Qe
itINlromUmFPUNaHWgNcv5HNEhJpHQ==
-----END CERTIFICATE-----
";
}
