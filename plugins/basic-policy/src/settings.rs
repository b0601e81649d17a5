//! The plugin's settings, read from the key/value pairs the gateway passes
//! on every call. Every bad value is a [`ConfigError`] that names the key,
//! shows the value and says what was expected.

/// Default `max-message-bytes`: 50 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 50 << 20;

/// Default `reject-auth-failures`.
pub const DEFAULT_REJECT_AUTH_FAILURES: &[&str] = &["spf", "dkim", "dmarc"];

/// Every setting `basic-policy` reads.
pub const KEYS: &[&str] = &[
    "max-message-bytes",
    "sender-domains",
    "recipient-domains",
    "reject-auth-failures",
    "authserv-id",
    "dmarc-policy",
];

/// A setting with a value the plugin cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A key `basic-policy` does not read (likely a typo).
    #[error("basic-policy has no setting `{key}`; its settings are {}", KEYS.join(", "))]
    UnknownKey {
        /// The key as given.
        key: String,
    },
    /// A known key with a value that does not parse.
    #[error("basic-policy setting `{key}` = `{value}`: {expected}")]
    BadValue {
        /// The key.
        key: &'static str,
        /// The value as given.
        value: String,
        /// What a good value looks like.
        expected: String,
    },
}

impl ConfigError {
    /// The key the error is about.
    pub fn key(&self) -> &str {
        match self {
            ConfigError::UnknownKey { key } => key,
            ConfigError::BadValue { key, .. } => key,
        }
    }
}

/// How a trusted `dmarc=fail` is treated (when `dmarc` is in
/// `reject-auth-failures`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmarcPolicy {
    /// Reject, unless the result records that the domain's published
    /// policy is `p=none` (RFC 7489 §6.3: the owner asks for no action),
    /// in a `policy.dmarc` / `policy.published-domain-policy` property or
    /// a `p=none` comment. The default.
    Published,
    /// Reject every `dmarc=fail`, whatever the domain published.
    Always,
}

/// A list of mail domains (`sender-domains`, `recipient-domains`).
/// Empty means "any domain".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainList {
    /// Domains matched exactly, lower-cased, without a trailing dot.
    exact: Vec<String>,
    /// Parents whose subdomains match (from `.example.com`), lower-cased,
    /// without the leading dot.
    parents: Vec<String>,
}

impl DomainList {
    /// Whether the list is empty, i.e. admits every domain.
    pub fn is_any(&self) -> bool {
        self.exact.is_empty() && self.parents.is_empty()
    }

    /// Whether `domain` is admitted: the list is empty, or names it
    /// exactly, or names a parent of it with a leading dot. ASCII letters
    /// compare case-insensitively; a trailing dot is ignored.
    pub fn admits(&self, domain: &str) -> bool {
        if self.is_any() {
            return true;
        }
        let domain = normalise_domain(domain);
        self.exact.contains(&domain)
            || self.parents.iter().any(|parent| {
                domain.len() > parent.len()
                    && domain.ends_with(parent.as_str())
                    && domain.as_bytes()[domain.len() - parent.len() - 1] == b'.'
            })
    }

    fn add(&mut self, key: &'static str, list: &str) -> Result<(), ConfigError> {
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = |why: &str| ConfigError::BadValue {
                key,
                value: list.to_string(),
                expected: format!(
                    "`{entry}` {why}; expected a comma-separated list of domains, \
                     `.example.com` for every subdomain of example.com"
                ),
            };
            let (parent, name) = match entry.strip_prefix('.') {
                Some(rest) => (true, rest),
                None => (false, entry),
            };
            let name = normalise_domain(name);
            if name.is_empty() || name.starts_with('.') {
                return Err(bad("is not a domain"));
            }
            if name.contains("..") {
                return Err(bad("has an empty label"));
            }
            if let Some(c) = name
                .chars()
                .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '@' | '<' | '>' | ';'))
            {
                return Err(bad(&format!("contains {c:?}")));
            }
            if parent {
                self.parents.push(name);
            } else {
                self.exact.push(name);
            }
        }
        Ok(())
    }
}

/// Lower-cases ASCII and drops one trailing dot (`Example.COM.` ->
/// `example.com`).
fn normalise_domain(domain: &str) -> String {
    domain
        .strip_suffix('.')
        .unwrap_or(domain)
        .to_ascii_lowercase()
}

/// The settings of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Largest message accepted, in bytes (`max-message-bytes`).
    pub max_message_bytes: u64,
    /// Reverse-path domains accepted (`sender-domains`).
    pub sender_domains: DomainList,
    /// Recipient domains accepted (`recipient-domains`).
    pub recipient_domains: DomainList,
    /// Methods whose trusted `fail` rejects (`reject-auth-failures`),
    /// lower-cased, in the order given.
    pub reject_auth_failures: Vec<String>,
    /// The authserv-ids whose `Authentication-Results` are trusted
    /// (`authserv-id`), lower-cased. Empty: none is.
    pub authserv_ids: Vec<String>,
    /// How `dmarc=fail` is treated (`dmarc-policy`).
    pub dmarc_policy: DmarcPolicy,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            sender_domains: DomainList::default(),
            recipient_domains: DomainList::default(),
            reject_auth_failures: DEFAULT_REJECT_AUTH_FAILURES
                .iter()
                .map(|m| m.to_string())
                .collect(),
            authserv_ids: Vec::new(),
            dmarc_policy: DmarcPolicy::Published,
        }
    }
}

impl Settings {
    /// Reads the settings. List settings (`sender-domains`,
    /// `recipient-domains`, `authserv-id`) accumulate when repeated; for
    /// the others the last occurrence wins, so a later layer of
    /// configuration overrides an earlier one.
    pub fn parse(config: &[(String, String)]) -> Result<Settings, ConfigError> {
        let mut settings = Settings::default();
        for (key, value) in config {
            match key.as_str() {
                "max-message-bytes" => settings.max_message_bytes = byte_count(value)?,
                "sender-domains" => settings.sender_domains.add("sender-domains", value)?,
                "recipient-domains" => {
                    settings.recipient_domains.add("recipient-domains", value)?
                }
                "reject-auth-failures" => settings.reject_auth_failures = methods(value)?,
                "authserv-id" => settings.authserv_ids.extend(authserv_ids(value)?),
                "dmarc-policy" => {
                    settings.dmarc_policy = match value.trim().to_ascii_lowercase().as_str() {
                        "published" => DmarcPolicy::Published,
                        "always" => DmarcPolicy::Always,
                        _ => {
                            return Err(ConfigError::BadValue {
                                key: "dmarc-policy",
                                value: value.clone(),
                                expected: "expected `published` (reject dmarc=fail unless the \
                                           domain publishes p=none) or `always`"
                                    .into(),
                            })
                        }
                    }
                }
                other => {
                    return Err(ConfigError::UnknownKey {
                        key: other.to_string(),
                    })
                }
            }
        }
        Ok(settings)
    }

    /// Whether `Authentication-Results` from `authserv_id` are trusted.
    pub fn trusts(&self, authserv_id: &str) -> bool {
        self.authserv_ids
            .iter()
            .any(|id| id.eq_ignore_ascii_case(authserv_id))
    }
}

/// `52428800`, `50MiB`, `512 KiB`, `1GiB` (binary units; case-insensitive).
fn byte_count(value: &str) -> Result<u64, ConfigError> {
    let bad = |why: &str| ConfigError::BadValue {
        key: "max-message-bytes",
        value: value.to_string(),
        expected: format!("{why}; expected a byte count such as 52428800 or 50MiB"),
    };
    let text = value.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(bad("not a number"));
    }
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "kib" => 10,
        "mib" => 20,
        "gib" => 30,
        _ => return Err(bad("unknown unit (use KiB, MiB or GiB)")),
    };
    let n: u64 = digits.parse().map_err(|_| bad("too large"))?;
    let bytes = n.checked_mul(1 << shift).ok_or_else(|| bad("too large"))?;
    if bytes == 0 {
        return Err(bad("must be at least 1"));
    }
    Ok(bytes)
}

/// A comma list of method keywords; empty or `none` for no method.
fn methods(value: &str) -> Result<Vec<String>, ConfigError> {
    if value.trim().eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for m in value.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        if !m.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(ConfigError::BadValue {
                key: "reject-auth-failures",
                value: value.to_string(),
                expected: format!(
                    "`{m}` is not a method name; expected a comma-separated list of \
                     authentication methods such as spf,dkim,dmarc (or `none`)"
                ),
            });
        }
        let m = m.to_ascii_lowercase();
        if !out.contains(&m) {
            out.push(m);
        }
    }
    Ok(out)
}

/// A comma list of authserv-ids (host names, normally).
fn authserv_ids(value: &str) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::new();
    for id in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        if let Some(c) = id
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || matches!(c, ';' | '(' | ')' | '"'))
        {
            return Err(ConfigError::BadValue {
                key: "authserv-id",
                value: value.to_string(),
                expected: format!(
                    "`{id}` contains {c:?}; expected the authserv-id your border MTA writes \
                     in Authentication-Results, e.g. mx.earth.example (comma-separated if several)"
                ),
            });
        }
        out.push(id.to_ascii_lowercase());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn err(pairs: &[(&str, &str)]) -> ConfigError {
        match Settings::parse(&cfg(pairs)) {
            Err(e) => e,
            Ok(s) => panic!("{pairs:?} should be refused, got {s:?}"),
        }
    }

    #[test]
    fn defaults() {
        let s = Settings::parse(&[]).unwrap();
        assert_eq!(s.max_message_bytes, 50 * 1024 * 1024);
        assert!(s.sender_domains.is_any() && s.recipient_domains.is_any());
        assert_eq!(s.reject_auth_failures, ["spf", "dkim", "dmarc"]);
        assert!(
            s.authserv_ids.is_empty(),
            "no Authentication-Results trusted"
        );
        assert!(!s.trusts("anything"));
        assert_eq!(s.dmarc_policy, DmarcPolicy::Published);
    }

    #[test]
    fn byte_counts() {
        for (text, want) in [
            ("1", 1),
            (" 52428800 ", 52_428_800),
            ("50MiB", 50 << 20),
            ("512 kib", 512 << 10),
            ("2GiB", 2 << 30),
            ("7b", 7),
        ] {
            let s = Settings::parse(&cfg(&[("max-message-bytes", text)])).unwrap();
            assert_eq!(s.max_message_bytes, want, "{text}");
        }
        for text in [
            "",
            "lots",
            "-1",
            "0",
            "10 MB",
            "99999999999999999999",
            "17179869184GiB",
        ] {
            let e = err(&[("max-message-bytes", text)]);
            assert_eq!(e.key(), "max-message-bytes");
            let msg = e.to_string();
            assert!(
                msg.contains("`max-message-bytes`") && msg.contains("50MiB"),
                "{msg}"
            );
        }
    }

    #[test]
    fn domain_lists_accumulate_and_match() {
        let s = Settings::parse(&cfg(&[
            ("sender-domains", "Earth.Example., .ops.example"),
            ("sender-domains", "third.example,"),
        ]))
        .unwrap();
        let d = &s.sender_domains;
        assert!(d.admits("earth.example"));
        assert!(d.admits("EARTH.EXAMPLE."));
        assert!(d.admits("third.example"));
        assert!(
            !d.admits("sub.earth.example"),
            "exact entries match exactly"
        );
        assert!(d.admits("a.ops.example") && d.admits("b.a.OPS.example"));
        assert!(
            !d.admits("ops.example"),
            "a leading dot means subdomains only"
        );
        assert!(!d.admits("evilops.example"), "label boundary");
        assert!(!d.admits(""));
        assert!(s.recipient_domains.is_any());
        assert!(Settings::parse(&cfg(&[("recipient-domains", " , ")]))
            .unwrap()
            .recipient_domains
            .is_any());
    }

    #[test]
    fn bad_domains_name_the_key() {
        for (key, value) in [
            ("sender-domains", "a b.example"),
            ("recipient-domains", "user@moon.example"),
            ("recipient-domains", "."),
            ("recipient-domains", "..moon.example"),
            ("sender-domains", "a..b"),
        ] {
            let e = err(&[(key, value)]);
            assert_eq!(e.key(), key);
            assert!(e.to_string().contains(&format!("`{key}`")), "{e}");
        }
    }

    #[test]
    fn methods_and_authserv_ids() {
        let s = Settings::parse(&cfg(&[
            ("reject-auth-failures", "DMARC, spf,dmarc"),
            ("authserv-id", "MX.Earth.Example, mx2.earth.example"),
        ]))
        .unwrap();
        assert_eq!(s.reject_auth_failures, ["dmarc", "spf"]);
        assert!(s.trusts("mx.earth.example") && s.trusts("MX2.earth.example"));
        assert!(!s.trusts("mx.other.example"));
        for off in ["", "none", "NONE"] {
            let s = Settings::parse(&cfg(&[("reject-auth-failures", off)])).unwrap();
            assert!(s.reject_auth_failures.is_empty(), "{off:?}");
        }
        assert_eq!(
            err(&[("reject-auth-failures", "spf=fail")]).key(),
            "reject-auth-failures"
        );
        assert_eq!(err(&[("authserv-id", "mx earth")]).key(), "authserv-id");
        assert_eq!(err(&[("authserv-id", "mx;x")]).key(), "authserv-id");
    }

    #[test]
    fn dmarc_policy_values() {
        let s = Settings::parse(&cfg(&[("dmarc-policy", "Always")])).unwrap();
        assert_eq!(s.dmarc_policy, DmarcPolicy::Always);
        let e = err(&[("dmarc-policy", "quarantine")]);
        assert_eq!(e.key(), "dmarc-policy");
        assert!(e.to_string().contains("published"), "{e}");
    }

    #[test]
    fn last_scalar_wins_and_unknown_keys_are_named() {
        let s = Settings::parse(&cfg(&[
            ("max-message-bytes", "1"),
            ("max-message-bytes", "2"),
        ]))
        .unwrap();
        assert_eq!(s.max_message_bytes, 2);
        let e = err(&[("max-mesage-bytes", "1")]);
        assert_eq!(e.key(), "max-mesage-bytes");
        assert!(
            e.to_string().contains("max-message-bytes"),
            "lists the real keys: {e}"
        );
    }
}
