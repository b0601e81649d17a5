//! A small BPv6 (RFC 5050) reader for the runner's `fragment` property
//! checks on manifests with `"bundle_version": 6`. Written from RFC 5050
//! §4.1 (SDNV), §4.5.1 (primary block, dictionary), §4.5.2 (canonical
//! blocks) and RFC 6260 (CBHE); it shares no code with any implementation
//! under test (the bp6 plugin is a standalone crate). It reads only what the
//! checks need and is not a validator: error classes are not its business.

/// The fields of one BPv6 bundle that §5.8 talks about.
#[derive(Debug, Clone)]
pub(crate) struct Bundle6 {
    pub flags: u64,
    pub destination: String,
    pub source: String,
    pub report_to: String,
    pub creation_time: u64,
    pub sequence_number: u64,
    pub lifetime: u64,
    /// (fragment offset, total ADU length), present when flag 0x01 is set.
    pub fragment: Option<(u64, u64)>,
    /// Canonical blocks in wire order: (type, flags, data).
    pub blocks: Vec<(u8, u64, Vec<u8>)>,
}

pub(crate) const FRAGMENT: u64 = 0x01;
pub(crate) const REPLICATE: u64 = 0x01;
const LAST_BLOCK: u64 = 0x08;
const EID_REFERENCES: u64 = 0x40;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, crate::Mismatch> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| format!("input ends at {}", self.pos))?;
        self.pos += 1;
        Ok(b)
    }

    /// §4.1: base 128, most significant group first, top bit on all but the last octet.
    fn sdnv(&mut self) -> Result<u64, crate::Mismatch> {
        let mut value: u64 = 0;
        loop {
            let b = self.byte()?;
            if value >> 57 != 0 {
                return Err(format!("SDNV over 64 bits at {}", self.pos - 1).into());
            }
            value = (value << 7) | u64::from(b & 0x7f);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
    }

    fn take(&mut self, n: u64) -> Result<&[u8], crate::Mismatch> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| format!("{n} bytes at {} run past the end", self.pos))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }
}

fn dict_string(dict: &[u8], offset: u64) -> Result<String, crate::Mismatch> {
    let start = usize::try_from(offset)
        .ok()
        .filter(|s| *s < dict.len())
        .ok_or_else(|| format!("dictionary offset {offset} past {} bytes", dict.len()))?;
    let len = dict[start..]
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| format!("dictionary string at {offset} has no NUL"))?;
    String::from_utf8(dict[start..start + len].to_vec())
        .map_err(|_| format!("dictionary string at {offset} is not UTF-8").into())
}

/// Parses one BPv6 bundle (the whole input).
pub(crate) fn parse(buf: &[u8]) -> Result<Bundle6, crate::Mismatch> {
    let mut r = Reader { buf, pos: 0 };
    let version = r.byte()?;
    if version != 6 {
        return Err(format!("version {version}, not 6").into());
    }
    let flags = r.sdnv()?;
    let length = r.sdnv()?;
    let end = r.pos as u64 + length;
    let mut offsets = [0u64; 8];
    for o in &mut offsets {
        *o = r.sdnv()?;
    }
    let creation_time = r.sdnv()?;
    let sequence_number = r.sdnv()?;
    let lifetime = r.sdnv()?;
    let dict_len = r.sdnv()?;
    let dict = r.take(dict_len)?.to_vec();
    let fragment = if flags & FRAGMENT != 0 {
        Some((r.sdnv()?, r.sdnv()?))
    } else {
        None
    };
    if r.pos as u64 != end {
        return Err(format!("primary block length {length} does not match its fields").into());
    }
    let mut eids = Vec::with_capacity(4);
    for pair in offsets.chunks(2) {
        eids.push(if dict.is_empty() {
            // RFC 6260 CBHE: the offsets are ipn node and service numbers.
            match (pair[0], pair[1]) {
                (0, 0) => "dtn:none".to_string(),
                (n, s) => format!("ipn:{n}.{s}"),
            }
        } else {
            format!(
                "{}:{}",
                dict_string(&dict, pair[0])?,
                dict_string(&dict, pair[1])?
            )
        });
    }
    let mut blocks = Vec::new();
    loop {
        let block_type = r.byte()?;
        let block_flags = r.sdnv()?;
        if block_flags & EID_REFERENCES != 0 {
            let count = r.sdnv()?;
            for _ in 0..count {
                dict_string(&dict, r.sdnv()?)?;
                dict_string(&dict, r.sdnv()?)?;
            }
        }
        let len = r.sdnv()?;
        blocks.push((block_type, block_flags, r.take(len)?.to_vec()));
        if block_flags & LAST_BLOCK != 0 {
            break;
        }
    }
    if r.pos != buf.len() {
        return Err(format!("{} bytes after the last block", buf.len() - r.pos).into());
    }
    if blocks.iter().filter(|b| b.0 == 1).count() != 1 {
        return Err("not exactly one payload block".into());
    }
    let mut eids = eids.into_iter();
    let mut next = || eids.next().unwrap_or_default();
    Ok(Bundle6 {
        flags,
        destination: next(),
        source: next(),
        report_to: next(),
        creation_time,
        sequence_number,
        lifetime,
        fragment,
        blocks,
    })
}

impl Bundle6 {
    pub(crate) fn payload(&self) -> &[u8] {
        self.blocks
            .iter()
            .find(|b| b.0 == 1)
            .map(|b| b.2.as_slice())
            .unwrap_or_default()
    }

    pub(crate) fn payload_index(&self) -> usize {
        self.blocks.iter().position(|b| b.0 == 1).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5050 §4.1's own examples: 0xABC -> 95 3C, 0x1234 -> A4 34,
    /// 0x4234 -> 81 84 34, 0x7F -> 7F.
    #[test]
    fn sdnv_examples_of_the_rfc() {
        for (bytes, value) in [
            (&[0x95, 0x3c][..], 0xabc),
            (&[0xa4, 0x34], 0x1234),
            (&[0x81, 0x84, 0x34], 0x4234),
            (&[0x7f], 0x7f),
        ] {
            assert_eq!(Reader { buf: bytes, pos: 0 }.sdnv(), Ok(value));
        }
        let over = [0x82, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
        assert!(Reader { buf: &over, pos: 0 }.sdnv().is_err());
    }

    #[test]
    fn reads_a_dictionary_bundle_and_a_cbhe_bundle() {
        // ipn:2.25 <- ipn:1.0, report-to and custodian dtn:none, payload "hi".
        let dict = b"ipn\x002.25\x00ipn\x001.0\x00dtn\x00none\x00dtn\x00none\x00";
        let mut body = vec![0, 4, 9, 13, 17, 21, 26, 30, 5, 0, 10, dict.len() as u8];
        body.extend_from_slice(dict);
        let mut b = vec![6, 0x81, 0x10, body.len() as u8];
        b.extend(&body);
        b.extend([1, 0x08, 2, b'h', b'i']);
        let p = parse(&b).unwrap();
        assert_eq!(
            (
                p.destination.as_str(),
                p.source.as_str(),
                p.report_to.as_str()
            ),
            ("ipn:2.25", "ipn:1.0", "dtn:none")
        );
        assert_eq!((p.creation_time, p.lifetime, p.flags), (5, 10, 0x90));
        assert_eq!(p.payload(), b"hi");
        // CBHE: block length 12 (8 offsets, time, sequence, lifetime, dictionary length 0).
        let cbhe = [6, 0, 12, 2, 25, 1, 0, 0, 0, 0, 0, 5, 0, 10, 0, 1, 8, 0];
        let p = parse(&cbhe).unwrap();
        assert_eq!(
            (p.destination.as_str(), p.report_to.as_str()),
            ("ipn:2.25", "dtn:none")
        );
        assert!(parse(&cbhe[..cbhe.len() - 1]).is_err());
    }
}
