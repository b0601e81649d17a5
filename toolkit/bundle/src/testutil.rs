//! Hand-assembled bundles for tests: every field settable, CRCs computed,
//! so each validation rule can be broken on its own.

use crate::cbor::{put_bytes, put_head, put_uint, BREAK, INDEFINITE_ARRAY, MAJOR_ARRAY};
use crate::checksum::{seal, CrcType};
use crate::eid::Eid;

pub(crate) fn eid(s: &str) -> Vec<u8> {
    let mut v = Vec::new();
    s.parse::<Eid>().unwrap().encode(&mut v);
    v
}

/// A primary block, field by field.
#[derive(Clone)]
pub(crate) struct P {
    pub version: u64,
    pub flags: u64,
    pub crc: u64,
    pub dest: Vec<u8>,
    pub src: Vec<u8>,
    pub report_to: Vec<u8>,
    pub time: u64,
    pub seq: u64,
    pub lifetime: u64,
    pub frag: Option<(u64, u64)>,
}

impl Default for P {
    fn default() -> Self {
        P {
            version: 7,
            flags: 0,
            crc: 2,
            dest: eid("ipn:2.25"),
            src: eid("ipn:1.0"),
            report_to: eid("dtn:none"),
            time: 815_000_000_000,
            seq: 3,
            lifetime: 86_400_000,
            frag: None,
        }
    }
}

impl P {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let crc = CrcType::from_code(self.crc);
        let n = 8 + if self.frag.is_some() { 2 } else { 0 } + u64::from(self.crc != 0);
        put_head(&mut out, MAJOR_ARRAY, n);
        put_uint(&mut out, self.version);
        put_uint(&mut out, self.flags);
        put_uint(&mut out, self.crc);
        out.extend_from_slice(&self.dest);
        out.extend_from_slice(&self.src);
        out.extend_from_slice(&self.report_to);
        put_head(&mut out, MAJOR_ARRAY, 2);
        put_uint(&mut out, self.time);
        put_uint(&mut out, self.seq);
        put_uint(&mut out, self.lifetime);
        if let Some((o, t)) = self.frag {
            put_uint(&mut out, o);
            put_uint(&mut out, t);
        }
        match crc {
            Some(c) => seal(&mut out, 0, c),
            None => put_bytes(&mut out, &[0, 0]),
        }
        out
    }
}

/// A canonical block.
#[derive(Clone)]
pub(crate) struct B {
    pub block_type: u64,
    pub number: u64,
    pub flags: u64,
    pub crc: u64,
    pub data: Vec<u8>,
}

impl B {
    pub(crate) fn payload(data: &[u8]) -> B {
        B {
            block_type: 1,
            number: 1,
            flags: 0,
            crc: 1,
            data: data.to_vec(),
        }
    }
    pub(crate) fn age(number: u64, age: u64) -> B {
        let mut data = Vec::new();
        put_uint(&mut data, age);
        B {
            block_type: 7,
            number,
            flags: 0,
            crc: 2,
            data,
        }
    }
    pub(crate) fn hops(number: u64, limit: u64, count: u64) -> B {
        let mut data = Vec::new();
        put_head(&mut data, MAJOR_ARRAY, 2);
        put_uint(&mut data, limit);
        put_uint(&mut data, count);
        B {
            block_type: 10,
            number,
            flags: 0,
            crc: 0,
            data,
        }
    }
    pub(crate) fn other(block_type: u64, number: u64, flags: u64, data: &[u8]) -> B {
        B {
            block_type,
            number,
            flags,
            crc: 0,
            data: data.to_vec(),
        }
    }
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let crc = CrcType::from_code(self.crc);
        put_head(&mut out, MAJOR_ARRAY, 5 + u64::from(self.crc != 0));
        put_uint(&mut out, self.block_type);
        put_uint(&mut out, self.number);
        put_uint(&mut out, self.flags);
        put_uint(&mut out, self.crc);
        put_bytes(&mut out, &self.data);
        match crc {
            Some(c) => seal(&mut out, 0, c),
            None => put_bytes(&mut out, &[0, 0]),
        }
        out
    }
}

pub(crate) fn bundle(p: &P, blocks: &[B]) -> Vec<u8> {
    let mut out = vec![INDEFINITE_ARRAY];
    out.extend_from_slice(&p.encode());
    for b in blocks {
        out.extend_from_slice(&b.encode());
    }
    out.push(BREAK);
    out
}

/// A valid bundle: primary, hop count, payload.
pub(crate) fn sample() -> Vec<u8> {
    bundle(
        &P::default(),
        &[B::hops(2, 30, 0), B::payload(b"hello, moon")],
    )
}
