//! Test-only DNS response builder, written from RFC 1035 §4.1 independently
//! of the crate's own encoding. It uses `std` only, so the integration
//! tests include the same file with `#[path]`.
#![allow(dead_code)]

use std::collections::HashMap;

pub(crate) const QR: u16 = 0x8000;
pub(crate) const AA: u16 = 0x0400;
pub(crate) const TC: u16 = 0x0200;
pub(crate) const RD: u16 = 0x0100;
pub(crate) const RA: u16 = 0x0080;
pub(crate) const AD: u16 = 0x0020;

pub(crate) const T_CNAME: u16 = 5;
pub(crate) const T_SOA: u16 = 6;
pub(crate) const T_TXT: u16 = 16;
pub(crate) const T_OPT: u16 = 41;
pub(crate) const T_URI: u16 = 256;

/// RDATA of a test record.
#[derive(Clone, Debug)]
pub(crate) enum RData {
    /// Priority, weight, target.
    Uri(u16, u16, String),
    /// A name (CNAME), compressed like the owner names.
    Name(String),
    /// MNAME, RNAME, and MINIMUM (serial etc. fixed).
    Soa(String, String, u32),
    /// Octets as given.
    Raw(Vec<u8>),
}

#[derive(Clone, Debug)]
pub(crate) struct Rec {
    pub owner: String,
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    pub rdata: RData,
}

/// A response message under construction.
#[derive(Clone, Debug)]
pub(crate) struct Response {
    pub id: u16,
    pub flags: u16,
    /// Name, type, class.
    pub questions: Vec<(String, u16, u16)>,
    pub answers: Vec<Rec>,
    pub authority: Vec<Rec>,
    pub additional: Vec<Rec>,
    /// Use compression pointers for repeated name suffixes.
    pub compress: bool,
}

impl Response {
    /// QR RD RA, NOERROR, the question `name` URI IN.
    pub(crate) fn to(id: u16, name: &str) -> Self {
        Response {
            id,
            flags: QR | RD | RA,
            questions: vec![(name.to_owned(), T_URI, 1)],
            answers: vec![],
            authority: vec![],
            additional: vec![],
            compress: true,
        }
    }

    pub(crate) fn rcode(mut self, rcode: u16) -> Self {
        self.flags = (self.flags & !0xF) | (rcode & 0xF);
        self
    }

    pub(crate) fn flag(mut self, flag: u16) -> Self {
        self.flags |= flag;
        self
    }

    pub(crate) fn uri(
        mut self,
        owner: &str,
        ttl: u32,
        priority: u16,
        weight: u16,
        target: &str,
    ) -> Self {
        self.answers.push(Rec {
            owner: owner.into(),
            rtype: T_URI,
            class: 1,
            ttl,
            rdata: RData::Uri(priority, weight, target.into()),
        });
        self
    }

    pub(crate) fn cname(mut self, owner: &str, ttl: u32, target: &str) -> Self {
        self.answers.push(Rec {
            owner: owner.into(),
            rtype: T_CNAME,
            class: 1,
            ttl,
            rdata: RData::Name(target.into()),
        });
        self
    }

    pub(crate) fn soa(mut self, zone: &str, ttl: u32, minimum: u32) -> Self {
        self.authority.push(Rec {
            owner: zone.into(),
            rtype: T_SOA,
            class: 1,
            ttl,
            rdata: RData::Soa(format!("ns1.{zone}"), format!("hostmaster.{zone}"), minimum),
        });
        self
    }

    /// An OPT record: UDP payload size and the upper 8 bits of the RCODE.
    pub(crate) fn opt(mut self, udp_size: u16, rcode_high: u8) -> Self {
        self.additional.push(Rec {
            owner: ".".into(),
            rtype: T_OPT,
            class: udp_size,
            ttl: u32::from(rcode_high) << 24,
            rdata: RData::Raw(vec![]),
        });
        self
    }

    pub(crate) fn build(&self) -> Vec<u8> {
        let mut m = Vec::new();
        let mut table = HashMap::new();
        m.extend_from_slice(&self.id.to_be_bytes());
        m.extend_from_slice(&self.flags.to_be_bytes());
        for n in [
            self.questions.len(),
            self.answers.len(),
            self.authority.len(),
            self.additional.len(),
        ] {
            m.extend_from_slice(&(n as u16).to_be_bytes());
        }
        for (name, t, c) in &self.questions {
            self.name(&mut m, &mut table, name);
            m.extend_from_slice(&t.to_be_bytes());
            m.extend_from_slice(&c.to_be_bytes());
        }
        for rec in self
            .answers
            .iter()
            .chain(&self.authority)
            .chain(&self.additional)
        {
            self.name(&mut m, &mut table, &rec.owner);
            m.extend_from_slice(&rec.rtype.to_be_bytes());
            m.extend_from_slice(&rec.class.to_be_bytes());
            m.extend_from_slice(&rec.ttl.to_be_bytes());
            let len_at = m.len();
            m.extend_from_slice(&[0, 0]);
            match &rec.rdata {
                RData::Uri(p, w, t) => {
                    m.extend_from_slice(&p.to_be_bytes());
                    m.extend_from_slice(&w.to_be_bytes());
                    m.extend_from_slice(t.as_bytes());
                }
                RData::Name(n) => self.name(&mut m, &mut table, n),
                RData::Soa(mname, rname, minimum) => {
                    self.name(&mut m, &mut table, mname);
                    self.name(&mut m, &mut table, rname);
                    for v in [2_026_041_501_u32, 7200, 3600, 1_209_600, *minimum] {
                        m.extend_from_slice(&v.to_be_bytes());
                    }
                }
                RData::Raw(b) => m.extend_from_slice(b),
            }
            let len = (m.len() - len_at - 2) as u16;
            m[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
        }
        m
    }

    /// Writes `name` (dotted, "." for the root), pointing at an earlier
    /// copy of its longest known suffix when compressing.
    fn name(&self, m: &mut Vec<u8>, table: &mut HashMap<String, usize>, name: &str) {
        let body = name.trim_end_matches('.');
        let labels: Vec<&str> = if body.is_empty() {
            vec![]
        } else {
            body.split('.').collect()
        };
        for i in 0..labels.len() {
            let suffix = labels[i..].join(".").to_ascii_lowercase();
            if self.compress {
                if let Some(&at) = table.get(&suffix) {
                    m.push(0xC0 | (at >> 8) as u8);
                    m.push(at as u8);
                    return;
                }
                if m.len() < 0x4000 {
                    table.insert(suffix, m.len());
                }
            }
            m.push(labels[i].len() as u8);
            m.extend_from_slice(labels[i].as_bytes());
        }
        m.push(0);
    }
}

/// Parses the hex text format of `testdata/*.hex`: `#` starts a comment to
/// the end of the line, everything else is hex digits and whitespace.
pub(crate) fn hex_file(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.bytes())
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).expect("hex digit"))
        .collect()
}
