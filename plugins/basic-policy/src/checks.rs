//! The decisions: sender, recipient and message checks over [`Settings`],
//! returning a [`Verdict`] with the SMTP reply code (RFC 5321 §4.2.2) and
//! enhanced status code (RFC 3463) a refusal should carry.

use crate::auth_results::{self, MethodResult};
use crate::header;
use crate::settings::{DmarcPolicy, Settings};

/// Why something is refused (the WIT `refusal`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// SMTP reply code: 5xx.
    pub code: u16,
    /// Enhanced status code, e.g. `5.7.1`.
    pub enhanced: &'static str,
    /// One line of text for the reply.
    pub reason: String,
}

/// The decision (the WIT `verdict`). `basic-policy` never defers: every
/// rule it applies gives the same answer on a retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on.
    Accept,
    /// Permanent refusal.
    Reject(Refusal),
}

/// 550 5.7.1: delivery not authorized, message refused (RFC 3463 §3.8).
fn not_authorized(reason: String) -> Verdict {
    Verdict::Reject(Refusal {
        code: 550,
        enhanced: "5.7.1",
        reason,
    })
}

/// 552 5.3.4: message too big for system (RFC 3463 §3.5, RFC 1870 §6.1).
fn too_big(size: u64, limit: u64) -> Verdict {
    Verdict::Reject(Refusal {
        code: 552,
        enhanced: "5.3.4",
        reason: format!("message size {size} bytes exceeds the limit of {limit} bytes"),
    })
}

/// The domain of a mailbox: what follows its last `@`, so source routes
/// and quoted local parts containing `@` are handled. `None` without one.
pub fn domain_of(mailbox: &str) -> Option<&str> {
    mailbox.rsplit_once('@').map(|(_, domain)| domain)
}

/// At MAIL: the reverse-path's domain must be in `sender-domains`, and a
/// declared `SIZE=` (RFC 1870) must not exceed `max-message-bytes`. The
/// null reverse-path `<>` (empty) is always accepted: delivery status
/// notifications must get through (RFC 5321 §4.5.5). `parameters` are
/// (keyword, value) pairs; a malformed `SIZE` is left to the SMTP layer.
pub fn check_sender(
    settings: &Settings,
    reverse_path: &str,
    parameters: &[(&str, Option<&str>)],
) -> Verdict {
    let declared = parameters
        .iter()
        .find(|(keyword, _)| keyword.eq_ignore_ascii_case("SIZE"))
        .and_then(|(_, value)| value.as_ref())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(size) = declared.filter(|s| *s > settings.max_message_bytes) {
        return too_big(size, settings.max_message_bytes);
    }
    sender_domain(settings, reverse_path)
}

fn sender_domain(settings: &Settings, reverse_path: &str) -> Verdict {
    if reverse_path.is_empty() || settings.sender_domains.is_any() {
        return Verdict::Accept;
    }
    match domain_of(reverse_path) {
        Some(domain) if settings.sender_domains.admits(domain) => Verdict::Accept,
        Some(domain) => not_authorized(format!(
            "sender domain {domain} is not permitted to send through this gateway"
        )),
        None => not_authorized(format!(
            "sender {reverse_path} has no domain; this gateway takes mail from permitted domains only"
        )),
    }
}

/// At RCPT: the recipient's domain must be in `recipient-domains`.
pub fn check_recipient(settings: &Settings, _reverse_path: &str, recipient: &str) -> Verdict {
    if settings.recipient_domains.is_any() {
        return Verdict::Accept;
    }
    match domain_of(recipient) {
        Some(domain) if settings.recipient_domains.admits(domain) => Verdict::Accept,
        Some(domain) => not_authorized(format!(
            "recipient domain {domain} is not served by this gateway"
        )),
        None => not_authorized(format!(
            "recipient {recipient} has no domain; this gateway relays to permitted domains only"
        )),
    }
}

/// At the end of DATA: the sender and every recipient again (for paths
/// that never called the per-command checks), then the size, then the
/// trusted `Authentication-Results`. The first refusal wins.
pub fn check_message(
    settings: &Settings,
    reverse_path: &str,
    recipients: &[&str],
    content: &[u8],
) -> Verdict {
    let sender = sender_domain(settings, reverse_path);
    if sender != Verdict::Accept {
        return sender;
    }
    for recipient in recipients {
        let verdict = check_recipient(settings, reverse_path, recipient);
        if verdict != Verdict::Accept {
            return verdict;
        }
    }
    let size = u64::try_from(content.len()).unwrap_or(u64::MAX);
    if size > settings.max_message_bytes {
        return too_big(size, settings.max_message_bytes);
    }
    check_authentication(settings, content)
}

/// Rejects when a trusted `Authentication-Results` field reports `fail`
/// for a method in `reject-auth-failures` and no trusted field reports
/// `pass` for that method. (A message may carry several DKIM signatures;
/// RFC 6376 §6.1 treats one that fails as absent when another verifies.)
///
/// Only fields whose authserv-id is configured in `authserv-id` count:
/// anyone can write an `Authentication-Results` field, and the border MTA
/// removes forged ones bearing its own authserv-id (RFC 8601 §5, §7.1).
/// Fields that do not parse are ignored.
pub fn check_authentication(settings: &Settings, content: &[u8]) -> Verdict {
    if settings.authserv_ids.is_empty() || settings.reject_auth_failures.is_empty() {
        return Verdict::Accept;
    }
    let trusted: Vec<auth_results::AuthResults> =
        header::field_values(content, "Authentication-Results")
            .iter()
            .filter_map(|value| auth_results::parse(value).ok())
            .filter(|field| settings.trusts(&field.authserv_id))
            .collect();
    for method in &settings.reject_auth_failures {
        let statements = trusted.iter().flat_map(|field| {
            field
                .results
                .iter()
                .filter(|r| r.method == *method)
                .map(move |r| (field.authserv_id.as_str(), r))
        });
        let mut failed = None;
        let mut passed = false;
        for (by, statement) in statements {
            match statement.result.as_str() {
                "pass" => passed = true,
                "fail" if failed.is_none() => failed = Some((by, statement)),
                _ => {}
            }
        }
        let Some((by, statement)) = failed.filter(|_| !passed) else {
            continue;
        };
        if method == "dmarc"
            && settings.dmarc_policy == DmarcPolicy::Published
            && published_dmarc_policy(statement).as_deref() == Some("none")
        {
            continue;
        }
        let domain = match subject_domain(statement) {
            Some(d) => format!(" for {d}"),
            None => String::new(),
        };
        return not_authorized(format!(
            "authentication failed: {}={}{domain} (Authentication-Results from {by})",
            statement.method, statement.result
        ));
    }
    Verdict::Accept
}

/// The domain a statement is about: `header.from` for DMARC,
/// `smtp.mailfrom` (else `smtp.helo`) for SPF, `header.d` (else
/// `header.i`) for DKIM; otherwise the first property that holds one.
fn subject_domain(statement: &MethodResult) -> Option<String> {
    let wanted: &[(&str, &str)] = match statement.method.as_str() {
        "dmarc" => &[("header", "from")],
        "spf" => &[("smtp", "mailfrom"), ("smtp", "helo")],
        "dkim" => &[("header", "d"), ("header", "i")],
        _ => &[],
    };
    let value = wanted
        .iter()
        .find_map(|(ptype, property)| statement.property(ptype, property))
        .or_else(|| {
            statement
                .properties
                .iter()
                .find(|p| !p.property.is_empty())
                .map(|p| p.value.as_str())
        })?;
    let domain = domain_of(value).unwrap_or(value).trim();
    (!domain.is_empty()).then(|| domain.to_string())
}

/// The DMARC policy the domain publishes, when the statement records it:
/// `policy.dmarc=` or `policy.published-domain-policy=` properties, or
/// `p=` in a comment (`dmarc=fail (p=NONE sp=NONE dis=NONE)`). Lower-cased.
fn published_dmarc_policy(statement: &MethodResult) -> Option<String> {
    statement
        .property("policy", "dmarc")
        .or_else(|| statement.property("policy", "published-domain-policy"))
        .map(str::to_string)
        .or_else(|| {
            statement.comments.iter().find_map(|comment| {
                comment.split_whitespace().find_map(|word| {
                    let (name, value) = word.split_once('=')?;
                    name.eq_ignore_ascii_case("p").then(|| value.to_string())
                })
            })
        })
        .map(|p| {
            p.trim_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_ascii_lowercase()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let config: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match Settings::parse(&config) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    fn refusal(v: &Verdict) -> &Refusal {
        match v {
            Verdict::Reject(r) => r,
            Verdict::Accept => panic!("expected a rejection"),
        }
    }

    const TRUSTED: &[(&str, &str)] = &[("authserv-id", "mx.earth.example")];

    fn message(headers: &str) -> Vec<u8> {
        format!("{headers}From: a@example.com\r\nSubject: t\r\n\r\nbody\r\n").into_bytes()
    }

    #[test]
    fn domain_of_mailboxes() {
        assert_eq!(domain_of("a@b.example"), Some("b.example"));
        assert_eq!(domain_of("\"a@x\"@b.example"), Some("b.example"));
        assert_eq!(domain_of("@relay.example:a@b.example"), Some("b.example"));
        assert_eq!(domain_of("postmaster"), None);
    }

    #[test]
    fn sender_domains_and_null_path() {
        let s = settings(&[("sender-domains", "earth.example,.ops.example")]);
        let p: &[(&str, Option<&str>)] = &[];
        assert_eq!(check_sender(&s, "ada@earth.example", p), Verdict::Accept);
        assert_eq!(check_sender(&s, "ada@EARTH.example", p), Verdict::Accept);
        assert_eq!(check_sender(&s, "bot@x.ops.example", p), Verdict::Accept);
        assert_eq!(check_sender(&s, "", p), Verdict::Accept, "DSNs get through");
        let v = check_sender(&s, "spam@spam.example", p);
        let r = refusal(&v);
        assert_eq!((r.code, r.enhanced), (550, "5.7.1"));
        assert!(r.reason.contains("spam.example"), "{}", r.reason);
        assert!(refusal(&check_sender(&s, "nodomain", p))
            .reason
            .contains("no domain"));
        assert_eq!(
            check_sender(&settings(&[]), "anyone@anywhere.example", p),
            Verdict::Accept
        );
    }

    #[test]
    fn declared_size_is_refused_at_mail() {
        let s = settings(&[("max-message-bytes", "1000")]);
        let v = check_sender(&s, "a@b.example", &[("size", Some("1001"))]);
        let r = refusal(&v);
        assert_eq!((r.code, r.enhanced), (552, "5.3.4"));
        assert!(r.reason.contains("1001") && r.reason.contains("1000"));
        assert_eq!(
            check_sender(&s, "a@b.example", &[("SIZE", Some("1000"))]),
            Verdict::Accept
        );
        assert_eq!(
            check_sender(
                &s,
                "a@b.example",
                &[("SIZE", Some("junk")), ("BODY", Some("8BITMIME"))]
            ),
            Verdict::Accept,
            "the SMTP layer reports syntax"
        );
        assert_eq!(
            check_sender(&s, "a@b.example", &[("SIZE", None)]),
            Verdict::Accept
        );
    }

    #[test]
    fn recipient_domains() {
        let s = settings(&[("recipient-domains", "moon.example, .mars.example")]);
        assert_eq!(check_recipient(&s, "", "ada@moon.example"), Verdict::Accept);
        assert_eq!(
            check_recipient(&s, "", "x@base.mars.example"),
            Verdict::Accept
        );
        let v = check_recipient(&s, "", "x@venus.example");
        assert!(refusal(&v).reason.contains("venus.example"));
        assert!(matches!(
            check_recipient(&s, "", "postmaster"),
            Verdict::Reject(_)
        ));
    }

    #[test]
    fn message_repeats_envelope_checks_then_size() {
        let s = settings(&[
            ("recipient-domains", "moon.example"),
            ("max-message-bytes", "100"),
        ]);
        let small = b"Subject: x\r\n\r\nhi\r\n";
        assert_eq!(
            check_message(&s, "a@b.example", &["ada@moon.example"], small),
            Verdict::Accept
        );
        let v = check_message(
            &s,
            "a@b.example",
            &["ada@moon.example", "x@venus.example"],
            small,
        );
        assert!(refusal(&v).reason.contains("venus.example"));
        let big = vec![b'x'; 101];
        let v = check_message(&s, "a@b.example", &["ada@moon.example"], &big);
        assert_eq!(refusal(&v).code, 552);
        let exact = vec![b'x'; 100];
        assert_eq!(
            check_message(&s, "a@b.example", &["ada@moon.example"], &exact),
            Verdict::Accept
        );
    }

    #[test]
    fn trusted_failures_reject_naming_method_and_domain() {
        let s = settings(TRUSTED);
        let msg = message("Authentication-Results: mx.earth.example;\r\n\tdmarc=fail header.from=spoofed.example\r\n");
        let v = check_authentication(&s, &msg);
        let r = refusal(&v);
        assert_eq!((r.code, r.enhanced), (550, "5.7.1"));
        assert!(r.reason.contains("dmarc=fail"), "{}", r.reason);
        assert!(r.reason.contains("spoofed.example"), "{}", r.reason);
        assert!(r.reason.contains("mx.earth.example"), "{}", r.reason);

        let spf = message("Authentication-Results: MX.EARTH.EXAMPLE; spf=fail smtp.mailfrom=bob@forged.example\r\n");
        let v = check_authentication(&s, &spf);
        assert!(refusal(&v).reason.contains("spf=fail for forged.example"));

        let dkim = message(
            "Authentication-Results: mx.earth.example; dkim=fail header.i=@signer.example\r\n",
        );
        let v = check_authentication(&s, &dkim);
        assert!(refusal(&v).reason.contains("dkim=fail for signer.example"));
    }

    #[test]
    fn untrusted_or_unconfigured_results_are_ignored() {
        let forged = message(
            "Authentication-Results: mx.other.example; dmarc=fail header.from=x.example\r\n",
        );
        assert_eq!(
            check_authentication(&settings(TRUSTED), &forged),
            Verdict::Accept
        );
        let ours = message(
            "Authentication-Results: mx.earth.example; dmarc=fail header.from=x.example\r\n",
        );
        assert_eq!(
            check_authentication(&settings(&[]), &ours),
            Verdict::Accept,
            "without authserv-id nothing is trusted"
        );
        let mut off = TRUSTED.to_vec();
        off.push(("reject-auth-failures", "none"));
        assert_eq!(
            check_authentication(&settings(&off), &ours),
            Verdict::Accept
        );
        let mut spf_only = TRUSTED.to_vec();
        spf_only.push(("reject-auth-failures", "spf"));
        assert_eq!(
            check_authentication(&settings(&spf_only), &ours),
            Verdict::Accept
        );
        // The same field in the body is not a header field.
        let in_body = b"Subject: x\r\n\r\nAuthentication-Results: mx.earth.example; dmarc=fail\r\n";
        assert_eq!(
            check_authentication(&settings(TRUSTED), in_body),
            Verdict::Accept
        );
        // A malformed trusted field is ignored as a whole.
        let broken = message("Authentication-Results: mx.earth.example; dmarc=fail (oops\r\n");
        assert_eq!(
            check_authentication(&settings(TRUSTED), &broken),
            Verdict::Accept
        );
    }

    #[test]
    fn a_pass_for_the_same_method_outweighs_a_fail() {
        let msg = message("Authentication-Results: mx.earth.example;\r\n dkim=fail header.d=list.example;\r\n dkim=pass header.d=origin.example\r\n");
        assert_eq!(
            check_authentication(&settings(TRUSTED), &msg),
            Verdict::Accept
        );
        let split = message("Authentication-Results: mx.earth.example; dkim=fail header.d=a.example\r\nAuthentication-Results: mx.earth.example; dkim=pass header.d=b.example\r\n");
        assert_eq!(
            check_authentication(&settings(TRUSTED), &split),
            Verdict::Accept
        );
        // An untrusted pass does not rescue a trusted fail.
        let forged = message("Authentication-Results: mx.evil.example; dkim=pass header.d=a.example\r\nAuthentication-Results: mx.earth.example; dkim=fail header.d=a.example\r\n");
        assert!(matches!(
            check_authentication(&settings(TRUSTED), &forged),
            Verdict::Reject(_)
        ));
    }

    #[test]
    fn dmarc_p_none_is_respected_unless_always() {
        let msg = message("Authentication-Results: mx.earth.example; dmarc=fail (p=NONE sp=NONE dis=NONE) header.from=lax.example\r\n");
        assert_eq!(
            check_authentication(&settings(TRUSTED), &msg),
            Verdict::Accept
        );
        let mut always = TRUSTED.to_vec();
        always.push(("dmarc-policy", "always"));
        assert!(matches!(
            check_authentication(&settings(&always), &msg),
            Verdict::Reject(_)
        ));
        let property = message("Authentication-Results: mx.earth.example; dmarc=fail policy.dmarc=none header.from=lax.example\r\n");
        assert_eq!(
            check_authentication(&settings(TRUSTED), &property),
            Verdict::Accept
        );
        let strict = message("Authentication-Results: mx.earth.example; dmarc=fail (p=reject dis=none) header.from=strict.example\r\n");
        assert!(matches!(
            check_authentication(&settings(TRUSTED), &strict),
            Verdict::Reject(_)
        ));
    }

    #[test]
    fn other_results_do_not_reject() {
        for result in [
            "softfail",
            "neutral",
            "none",
            "temperror",
            "permerror",
            "policy",
        ] {
            let msg = message(&format!(
                "Authentication-Results: mx.earth.example; spf={result} smtp.mailfrom=a@b.example\r\n"
            ));
            assert_eq!(
                check_authentication(&settings(TRUSTED), &msg),
                Verdict::Accept,
                "{result}"
            );
        }
    }

    proptest! {
        #[test]
        fn any_content_never_panics(
            content in proptest::collection::vec(any::<u8>(), 0..400),
            prefix in "(Authentication-Results: mx.earth.example;[ -~]{0,60}\r\n){0,3}",
        ) {
            let mut msg = prefix.into_bytes();
            msg.extend_from_slice(&content);
            let s = settings(TRUSTED);
            let _ = check_message(&s, "a@b.example", &["c@d.example"], &msg);
        }
    }
}
