//! Conversions between the envelope types the gateway handles, in one
//! place: the SMTP envelope (`deepmail_smtp::Envelope`, what the server
//! and the relay client speak), the one it spools (`SpooledEnvelope`) and
//! the host's WIT envelope given to plugins.

use deepmail_host::types::{Envelope as HostEnvelope, ForwardPath, SmtpParam};

use crate::spool::{SpooledEnvelope, SpooledParam, SpooledRecipient};

impl From<&SpooledParam> for SmtpParam {
    fn from(p: &SpooledParam) -> SmtpParam {
        SmtpParam {
            keyword: p.keyword.clone(),
            value: p.value.clone(),
        }
    }
}

impl From<&SpooledEnvelope> for HostEnvelope {
    fn from(envelope: &SpooledEnvelope) -> HostEnvelope {
        HostEnvelope {
            reverse_path: envelope.reverse_path.clone(),
            mail_parameters: envelope.mail_parameters.iter().map(Into::into).collect(),
            forward_paths: envelope
                .forward_paths
                .iter()
                .map(|f| ForwardPath {
                    mailbox: f.mailbox.clone(),
                    parameters: f.parameters.iter().map(Into::into).collect(),
                })
                .collect(),
        }
    }
}

impl From<&deepmail_smtp::Param> for SpooledParam {
    fn from(p: &deepmail_smtp::Param) -> SpooledParam {
        SpooledParam {
            keyword: p.keyword.clone(),
            value: p.value.clone(),
        }
    }
}

impl From<&SpooledParam> for deepmail_smtp::Param {
    fn from(p: &SpooledParam) -> deepmail_smtp::Param {
        deepmail_smtp::Param {
            keyword: p.keyword.clone(),
            value: p.value.clone(),
        }
    }
}

impl From<&deepmail_smtp::Envelope> for SpooledEnvelope {
    fn from(e: &deepmail_smtp::Envelope) -> SpooledEnvelope {
        SpooledEnvelope {
            reverse_path: e.reverse_path.clone(),
            mail_parameters: e.mail_params.iter().map(Into::into).collect(),
            forward_paths: e
                .recipients
                .iter()
                .map(|r| SpooledRecipient {
                    mailbox: r.mailbox.clone(),
                    parameters: r.params.iter().map(Into::into).collect(),
                })
                .collect(),
        }
    }
}

impl From<&SpooledEnvelope> for deepmail_smtp::Envelope {
    fn from(e: &SpooledEnvelope) -> deepmail_smtp::Envelope {
        deepmail_smtp::Envelope {
            reverse_path: e.reverse_path.clone(),
            mail_params: e.mail_parameters.iter().map(Into::into).collect(),
            recipients: e
                .forward_paths
                .iter()
                .map(|f| deepmail_smtp::Recipient {
                    mailbox: f.mailbox.clone(),
                    params: f.parameters.iter().map(Into::into).collect(),
                })
                .collect(),
        }
    }
}

/// The host's parameters from SMTP ones (both types are foreign here, so
/// a function rather than `From`).
pub(crate) fn host_params(p: &[deepmail_smtp::Param]) -> Vec<SmtpParam> {
    p.iter()
        .map(|p| SmtpParam {
            keyword: p.keyword.clone(),
            value: p.value.clone(),
        })
        .collect()
}

/// The host's envelope from the SMTP one.
pub(crate) fn host_envelope(e: &deepmail_smtp::Envelope) -> HostEnvelope {
    HostEnvelope {
        reverse_path: e.reverse_path.clone(),
        mail_parameters: host_params(&e.mail_params),
        forward_paths: e
            .recipients
            .iter()
            .map(|r| ForwardPath {
                mailbox: r.mailbox.clone(),
                parameters: host_params(&r.params),
            })
            .collect(),
    }
}

/// The SMTP envelope from the host's (a message a codec plugin decoded,
/// e.g. a Batch SMTP file given to `deepmail submit --bsmtp`).
pub fn smtp_envelope(e: &HostEnvelope) -> deepmail_smtp::Envelope {
    let params = |p: &[SmtpParam]| {
        p.iter()
            .map(|p| deepmail_smtp::Param {
                keyword: p.keyword.clone(),
                value: p.value.clone(),
            })
            .collect()
    };
    deepmail_smtp::Envelope {
        reverse_path: e.reverse_path.clone(),
        mail_params: params(&e.mail_parameters),
        recipients: e
            .forward_paths
            .iter()
            .map(|f| deepmail_smtp::Recipient {
                mailbox: f.mailbox.clone(),
                params: params(&f.parameters),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SMTP → spooled → SMTP is the identity, and the host's view of
    /// either carries the same fields.
    #[test]
    fn envelopes_convert_both_ways() {
        let smtp = deepmail_smtp::Envelope {
            reverse_path: "ops@earth.example".into(),
            mail_params: vec![deepmail_smtp::Param::new("BODY", Some("8BITMIME"))],
            recipients: vec![deepmail_smtp::Recipient {
                mailbox: "ada@moon.example".into(),
                params: vec![deepmail_smtp::Param::new("NOTIFY", Some("SUCCESS,FAILURE"))],
            }],
        };
        let spooled = SpooledEnvelope::from(&smtp);
        assert_eq!(deepmail_smtp::Envelope::from(&spooled), smtp);
        let (a, b) = (host_envelope(&smtp), HostEnvelope::from(&spooled));
        assert_eq!(a.reverse_path, b.reverse_path);
        assert_eq!(a.forward_paths[0].mailbox, "ada@moon.example");
        assert_eq!(
            a.forward_paths[0].parameters[0].value,
            b.forward_paths[0].parameters[0].value
        );
        assert_eq!(a.mail_parameters[0].keyword, "BODY");
        assert_eq!(b.mail_parameters[0].value.as_deref(), Some("8BITMIME"));
        // And back from the host's: SMTP → host → SMTP is the identity too.
        assert_eq!(smtp_envelope(&a), smtp);
    }
}
