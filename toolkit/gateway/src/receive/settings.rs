//! The endpoint's settings as `deepmail receive` takes them: each from a
//! flag or from a TOML file with the same keys (flags win), merged and
//! checked into a [`ReceiverConfig`] with every error naming where the
//! value came from.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ReceiverConfig, DEFAULT_MAX_BODY_BYTES, DEFAULT_PATH};
use crate::tls::{load_certs, load_private_key, TlsError};

/// Where the endpoint listens unless told: HTTPS on loopback.
const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

/// One source of settings: the flags, or the TOML file (whose keys are
/// these in kebab case; relative paths are relative to its directory).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ReceiveSettings {
    /// TCP address for HTTPS.
    pub listen: Option<String>,
    /// UDP address for HTTP/3.
    pub h3_listen: Option<String>,
    /// Spool directory.
    pub spool: Option<PathBuf>,
    /// Server certificate chain, PEM.
    pub cert: Option<PathBuf>,
    /// Server private key, PEM.
    pub key: Option<PathBuf>,
    /// CA of accepted client certificates, PEM.
    pub client_ca: Option<PathBuf>,
    /// Accepted bearer tokens.
    #[serde(default)]
    pub token: Vec<String>,
    /// The route that takes the POSTs.
    pub path: Option<String>,
    /// Largest batch accepted, MiB.
    pub max_body_mib: Option<u64>,
}

/// Settings that do not make an endpoint; each names the flag or the
/// file's key.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveSettingsError {
    /// The TOML file could not be read.
    #[error("cannot read --config {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        error: std::io::Error,
    },
    /// The TOML file does not parse, or has unknown keys.
    #[error("{}: {error}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        error: toml::de::Error,
    },
    /// Not ADDR:PORT.
    #[error("{origin} = {value:?}: expected ADDR:PORT, e.g. 127.0.0.1:8443")]
    Address {
        /// The flag or key.
        origin: String,
        /// The value given.
        value: String,
        /// Why it does not parse.
        #[source]
        error: std::net::AddrParseError,
    },
    /// A route not starting with `/`.
    #[error("{origin} = {value:?}: the path must start with `/`, e.g. /inboundmail")]
    Path {
        /// The flag or key.
        origin: String,
        /// The value given.
        value: String,
    },
    /// A size limit of 0 MiB.
    #[error("{origin}: must be at least 1")]
    MaxBody {
        /// The flag or key.
        origin: String,
    },
    /// A required setting is neither a flag nor in the file.
    #[error("--{0} is required (or `{0}` in the --config file)")]
    Missing(&'static str),
    /// An empty bearer token or one with a space (1-based).
    #[error("token #{0}: a bearer token may not be empty or contain spaces")]
    Token(usize),
    /// Certificates, key or client CA unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// What the settings make: the endpoint's configuration, its spool, and
/// how clients authenticate, in words.
#[derive(Debug)]
pub struct ReceiveSetup {
    /// The endpoint's configuration, certificates and key loaded.
    pub config: ReceiverConfig,
    /// The spool directory.
    pub spool: PathBuf,
    /// How clients authenticate, e.g. `2 bearer token(s)`.
    pub auth: String,
}

impl ReceiveSettings {
    /// Reads the TOML file at `path`.
    pub fn load(path: &Path) -> Result<ReceiveSettings, ReceiveSettingsError> {
        let text = std::fs::read_to_string(path).map_err(|error| ReceiveSettingsError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        toml::from_str(&text).map_err(|error| ReceiveSettingsError::Parse {
            path: path.to_path_buf(),
            error,
        })
    }

    /// Merges `flags` over the file at `file` (if any), checks every
    /// value and loads the certificates and key.
    pub fn setup(
        flags: ReceiveSettings,
        file_path: Option<&Path>,
    ) -> Result<ReceiveSetup, ReceiveSettingsError> {
        let file = match file_path {
            None => ReceiveSettings::default(),
            Some(path) => ReceiveSettings::load(path)?,
        };
        let base = file_path
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let from_file = |p: Option<PathBuf>| p.map(|p| base.join(p));

        let pick =
            |flag: Option<String>, file: Option<String>, key: &str| -> (Option<String>, String) {
                let from_flag = flag.is_some();
                (flag.or(file), origin(from_flag, key, file_path))
            };
        let (listen, listen_origin) = pick(flags.listen, file.listen, "listen");
        let listen = parse_addr(listen.as_deref().unwrap_or(DEFAULT_LISTEN), &listen_origin)?;
        let (h3_listen, h3_origin) = pick(flags.h3_listen, file.h3_listen, "h3-listen");
        let h3_listen = h3_listen.map(|a| parse_addr(&a, &h3_origin)).transpose()?;
        let (path, path_origin) = pick(flags.path, file.path, "path");
        let path = path.unwrap_or_else(|| DEFAULT_PATH.to_string());
        if !path.starts_with('/') {
            return Err(ReceiveSettingsError::Path {
                origin: path_origin,
                value: path,
            });
        }
        let max_body = match flags.max_body_mib.or(file.max_body_mib) {
            None => DEFAULT_MAX_BODY_BYTES,
            Some(0) => {
                return Err(ReceiveSettingsError::MaxBody {
                    origin: origin(flags.max_body_mib.is_some(), "max-body-mib", file_path),
                })
            }
            Some(mib) => mib.saturating_mul(1 << 20),
        };
        let required = |flag: Option<PathBuf>, file: Option<PathBuf>, key: &'static str| {
            flag.or(from_file(file))
                .ok_or(ReceiveSettingsError::Missing(key))
        };
        let spool = required(flags.spool, file.spool, "spool")?;
        let cert_path = required(flags.cert, file.cert, "cert")?;
        let key_path = required(flags.key, file.key, "key")?;
        let client_ca_path = flags.client_ca.or(from_file(file.client_ca));
        let tokens = if flags.token.is_empty() {
            file.token
        } else {
            flags.token
        };
        if let Some(empty) = tokens
            .iter()
            .position(|t| t.trim().is_empty() || t.contains(' '))
        {
            return Err(ReceiveSettingsError::Token(empty + 1));
        }

        let cert_chain = load_certs(&cert_path)?;
        let key = load_private_key(&key_path)?;
        let client_ca = client_ca_path.as_deref().map(load_certs).transpose()?;

        let mut config = ReceiverConfig::new(cert_chain, key);
        config.https_listen = Some(listen);
        config.h3_listen = h3_listen;
        config.path = path;
        config.max_body_bytes = max_body;
        config.client_ca = client_ca;
        config.tokens = tokens;
        let auth = match (&client_ca_path, config.tokens.len()) {
            (None, 0) => "none (anyone who can connect may post)".to_string(),
            (Some(ca), 0) => format!("client certificates from {}", ca.display()),
            (None, n) => format!("{n} bearer token(s)"),
            (Some(ca), n) => format!(
                "client certificates from {} or {n} bearer token(s)",
                ca.display()
            ),
        };
        Ok(ReceiveSetup {
            config,
            spool,
            auth,
        })
    }
}

/// Where a setting came from, for error messages.
fn origin(from_flag: bool, key: &str, file: Option<&Path>) -> String {
    match (from_flag, file) {
        (true, _) | (false, None) => format!("--{key}"),
        (false, Some(f)) => format!("{}: key `{key}`", f.display()),
    }
}

fn parse_addr(value: &str, origin: &str) -> Result<SocketAddr, ReceiveSettingsError> {
    value
        .parse()
        .map_err(|error| ReceiveSettingsError::Address {
            origin: origin.to_string(),
            value: value.to_string(),
            error,
        })
}
