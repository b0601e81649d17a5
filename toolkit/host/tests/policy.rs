//! The policy stage through the real component: `builtin:basic-policy`
//! loaded by the host, called across the WIT boundary at MAIL, RCPT and end
//! of DATA, with its settings, its refusals, its configuration errors and
//! the host's limits.

use std::time::Duration;

use deepmail_host::types::{Envelope, ForwardPath, SmtpParam};
use deepmail_host::{Host, HostConfig, LoadError, PluginSource, Policy, Refusal, Stage, Verdict};

fn host(memory: usize) -> Host {
    Host::new(HostConfig {
        memory_limit_bytes: memory,
        call_timeout: Duration::from_secs(30),
        cache_dir: Some(
            std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("deepmail-cache"),
        ),
        pool_size: 2,
    })
    .expect("host starts")
}

fn policy(host: &Host, config: &[(&str, &str)]) -> Policy {
    let config = config
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Policy::load(host, &PluginSource::Builtin("basic-policy".into()), config)
        .expect("basic-policy loads")
}

fn rcpt(mailbox: &str) -> ForwardPath {
    ForwardPath {
        mailbox: mailbox.into(),
        parameters: vec![],
    }
}

fn envelope(from: &str, to: &[&str]) -> Envelope {
    Envelope {
        reverse_path: from.into(),
        mail_parameters: vec![],
        forward_paths: to.iter().map(|m| rcpt(m)).collect(),
    }
}

fn message(extra_headers: &str) -> Vec<u8> {
    format!(
        "{extra_headers}From: Ada <ada@earth.example>\r\nTo: bob@moon.example\r\n\
         Subject: greetings\r\n\r\nHello, Moon.\r\n"
    )
    .into_bytes()
}

fn rejected(v: &Verdict) -> &Refusal {
    match v {
        Verdict::Reject(r) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

const TRUSTED: (&str, &str) = ("authserv-id", "mx.earth.example");

#[test]
fn default_policy_is_basic_policy_and_accepts_ordinary_mail() {
    assert_eq!(
        PluginSource::default_for(Stage::Policy),
        Some(PluginSource::Builtin("basic-policy".into()))
    );
    assert_eq!("policy".parse::<Stage>().unwrap(), Stage::Policy);
    let host = host(256 << 20);
    let p = policy(&host, &[]);
    assert_eq!(p.info().name, "basic-policy");
    assert_eq!(p.info().world, "policy-plugin");
    assert_eq!(p.info().interface, "deepmail:stages/policy@0.1.0");
    p.check_config()
        .expect("no settings is a valid configuration");
    assert_eq!(
        p.check_sender("ada@earth.example", &[]).unwrap(),
        Verdict::Accept
    );
    assert_eq!(
        p.check_recipient("ada@earth.example", &rcpt("bob@moon.example"))
            .unwrap(),
        Verdict::Accept
    );
    assert_eq!(
        p.check_message(
            &envelope("ada@earth.example", &["bob@moon.example"]),
            &message("")
        )
        .unwrap(),
        Verdict::Accept
    );
}

#[test]
fn size_limit_at_mail_and_at_end_of_data() {
    let host = host(256 << 20);
    let p = policy(&host, &[("max-message-bytes", "1KiB")]);
    let size = |n: &str| SmtpParam {
        keyword: "SIZE".into(),
        value: Some(n.into()),
    };
    assert!(p
        .check_sender("ada@earth.example", &[size("1024")])
        .unwrap()
        .is_accept());
    let v = p
        .check_sender("ada@earth.example", &[size("1025")])
        .unwrap();
    let r = rejected(&v);
    assert_eq!((r.code, r.enhanced.as_str()), (552, "5.3.4"));
    assert!(
        r.reason.contains("1025") && r.reason.contains("1024"),
        "{r}"
    );

    let env = envelope("ada@earth.example", &["bob@moon.example"]);
    let mut big = message("");
    big.resize(1025, b'x');
    let v = p.check_message(&env, &big).unwrap();
    assert_eq!(
        rejected(&v).reply(),
        "552 5.3.4 message size 1025 bytes exceeds the limit of 1024 bytes"
    );
    big.truncate(1024);
    assert!(p.check_message(&env, &big).unwrap().is_accept());
}

#[test]
fn domain_lists_for_senders_and_recipients() {
    let host = host(256 << 20);
    let p = policy(
        &host,
        &[
            ("sender-domains", "earth.example, .ops.earth.example"),
            ("recipient-domains", "moon.example,.mars.example"),
        ],
    );
    assert!(p
        .check_sender("ada@Earth.Example", &[])
        .unwrap()
        .is_accept());
    assert!(p
        .check_sender("cron@host1.ops.earth.example", &[])
        .unwrap()
        .is_accept());
    assert!(
        p.check_sender("", &[]).unwrap().is_accept(),
        "the null reverse-path of a DSN is always accepted"
    );
    let v = p.check_sender("spam@spam.example", &[]).unwrap();
    let r = rejected(&v);
    assert_eq!((r.code, r.enhanced.as_str()), (550, "5.7.1"));
    assert!(r.reason.contains("spam.example"), "{r}");

    assert!(p
        .check_recipient("ada@earth.example", &rcpt("bob@moon.example"))
        .unwrap()
        .is_accept());
    assert!(p
        .check_recipient("ada@earth.example", &rcpt("rover@jezero.mars.example"))
        .unwrap()
        .is_accept());
    let v = p
        .check_recipient("ada@earth.example", &rcpt("eve@venus.example"))
        .unwrap();
    assert!(rejected(&v).reason.contains("venus.example"));

    // End of DATA repeats the envelope checks for paths that skip MAIL/RCPT.
    let v = p
        .check_message(
            &envelope(
                "ada@earth.example",
                &["bob@moon.example", "eve@venus.example"],
            ),
            &message(""),
        )
        .unwrap();
    assert!(rejected(&v).reason.contains("venus.example"));
    let v = p
        .check_message(
            &envelope("spam@spam.example", &["bob@moon.example"]),
            &message(""),
        )
        .unwrap();
    assert!(rejected(&v).reason.contains("spam.example"));
}

#[test]
fn failed_authentication_from_the_trusted_authserv_id_rejects() {
    let host = host(256 << 20);
    let p = policy(&host, &[TRUSTED]);
    let env = envelope("ada@earth.example", &["bob@moon.example"]);
    let forged = message(
        "Authentication-Results: mx.earth.example;\r\n\
         \tspf=pass smtp.mailfrom=earth.example;\r\n\
         \tdmarc=fail (p=reject dis=none) header.from=earth.example\r\n",
    );
    let v = p.check_message(&env, &forged).unwrap();
    let r = rejected(&v);
    assert_eq!((r.code, r.enhanced.as_str()), (550, "5.7.1"));
    assert!(r.reason.contains("dmarc=fail"), "names the method: {r}");
    assert!(r.reason.contains("earth.example"), "names the domain: {r}");

    let spf = message(
        "Authentication-Results: mx.earth.example; spf=fail smtp.mailfrom=x@forged.example\r\n",
    );
    let v = p.check_message(&env, &spf).unwrap();
    assert!(rejected(&v).reason.contains("spf=fail for forged.example"));

    let passed = message(
        "Authentication-Results: mx.earth.example; spf=pass smtp.mailfrom=earth.example;\r\n \
         dkim=pass header.d=earth.example; dmarc=pass header.from=earth.example\r\n",
    );
    assert!(p.check_message(&env, &passed).unwrap().is_accept());
}

#[test]
fn the_same_results_from_another_authserv_id_are_ignored() {
    let host = host(256 << 20);
    let env = envelope("ada@earth.example", &["bob@moon.example"]);
    let elsewhere = message(
        "Authentication-Results: mx.elsewhere.example;\r\n\
         \tspf=pass smtp.mailfrom=earth.example;\r\n\
         \tdmarc=fail (p=reject dis=none) header.from=earth.example\r\n",
    );
    let p = policy(&host, &[TRUSTED]);
    assert!(
        p.check_message(&env, &elsewhere).unwrap().is_accept(),
        "only the configured authserv-id is trusted (RFC 8601 §5)"
    );
    let trusting_nobody = policy(&host, &[]);
    let ours = message(
        "Authentication-Results: mx.earth.example; dmarc=fail header.from=earth.example\r\n",
    );
    assert!(
        trusting_nobody
            .check_message(&env, &ours)
            .unwrap()
            .is_accept(),
        "without authserv-id no Authentication-Results is trusted"
    );
}

#[test]
fn configuration_errors_name_the_key() {
    let host = host(256 << 20);
    for (key, value) in [
        ("max-message-bytes", "lots"),
        ("sender-domains", "not a domain"),
        ("recipient-domains", "bob@moon.example"),
        ("reject-auth-failures", "spf=fail"),
        ("authserv-id", "mx earth"),
        ("dmarc-policy", "sometimes"),
        ("max-mesage-bytes", "1"),
    ] {
        let p = policy(&host, &[(key, value)]);
        let err = p.check_config().unwrap_err();
        assert_eq!(err.code, "invalid-config", "{err}");
        assert!(err.message.contains(&format!("`{key}`")), "{err}");
        assert!(!err.is_plugin_fault());
        // Every check refuses to judge with a bad configuration.
        let err = p.check_sender("ada@earth.example", &[]).unwrap_err();
        assert!(err.message.contains(key), "{err}");
        let err = p
            .check_recipient("ada@earth.example", &rcpt("bob@moon.example"))
            .unwrap_err();
        assert_eq!(err.code, "invalid-config");
        let err = p
            .check_message(
                &envelope("ada@earth.example", &["bob@moon.example"]),
                &message(""),
            )
            .unwrap_err();
        assert_eq!(err.code, "invalid-config");
        assert_eq!(err.plugin, "builtin:basic-policy");
    }
}

#[test]
fn hostile_headers_do_not_break_the_plugin() {
    let host = host(256 << 20);
    let p = policy(&host, &[TRUSTED]);
    let env = envelope("ada@earth.example", &["bob@moon.example"]);
    let mut hostile = b"Authentication-Results: mx.earth.example; dmarc=fail ".to_vec();
    hostile.extend(std::iter::repeat_n(b'(', 500_000));
    hostile.extend_from_slice(b"\r\n\r\nbody\r\n");
    assert!(
        p.check_message(&env, &hostile).unwrap().is_accept(),
        "an unterminated comment makes the field malformed, hence ignored"
    );
    let junk: Vec<u8> = (0..=255u8).cycle().take(64 * 1024).collect();
    assert!(p.check_message(&env, &junk).is_ok());
}

#[test]
fn a_message_beyond_the_memory_limit_is_a_clean_error_and_the_plugin_recovers() {
    let host = host(16 << 20);
    let p = policy(&host, &[]);
    let env = envelope("ada@earth.example", &["bob@moon.example"]);
    let huge = vec![b'x'; 32 << 20];
    let err = p.check_message(&env, &huge).unwrap_err();
    assert_eq!(err.code, "plugin-out-of-memory", "{err}");
    assert!(err.is_plugin_fault());
    assert!(p.check_message(&env, &message("")).unwrap().is_accept());
}

#[test]
fn other_worlds_are_refused_as_policy_and_policy_as_others() {
    let host = host(256 << 20);
    let err = match Policy::load(&host, &PluginSource::Builtin("bsmtp-codec".into()), vec![]) {
        Err(e) => e,
        Ok(_) => panic!("a codec must not load as a policy"),
    };
    assert!(
        matches!(
            err,
            LoadError::WrongWorld {
                stage: "policy",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("deepmail:stages/policy@0.1.0"),
        "{err}"
    );
    let err = match deepmail_host::Codec::load(&host, &PluginSource::Builtin("basic-policy".into()))
    {
        Err(e) => e,
        Ok(_) => panic!("a policy must not load as a codec"),
    };
    assert!(
        err.to_string().contains("deepmail:stages/policy@0.1.0"),
        "names what it does export: {err}"
    );
}
