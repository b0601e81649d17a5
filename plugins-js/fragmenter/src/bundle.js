// BPv7 bundles (RFC 9171 §4): parsing with every check of §4 that applies
// to a received bundle, the canonical encoding of new bundles, and
// fragmentation (§5.8).

import { fail } from './errors.js';
import { blockCrc } from './crc.js';
import { Reader, Bytes, BREAK, MAJOR_ARRAY, MAJOR_BYTES, headLen, putHead } from './cbor.js';
import { decodeEid, encodeEid, parseEid, eidString, NULL_EID } from './eid.js';

export const FLAG_IS_FRAGMENT = 0x01n;
export const FLAG_ADMIN_RECORD = 0x02n;
export const FLAG_MUST_NOT_FRAGMENT = 0x04n;
export const FLAGS_STATUS_REPORTS = 0x004000n | 0x010000n | 0x020000n | 0x040000n;
export const BLOCK_REPLICATE = 0x01n;
export const BLOCK_REPORT_IF_UNPROCESSABLE = 0x02n;
export const BLOCK_DELETE_IF_UNPROCESSABLE = 0x04n;

export const PAYLOAD_BLOCK = 1n;
export const PREVIOUS_NODE_BLOCK = 6n;
export const BUNDLE_AGE_BLOCK = 7n;
export const HOP_COUNT_BLOCK = 10n;
export const INTEGRITY_BLOCK = 11n;
export const CONFIDENTIALITY_BLOCK = 12n;

export const CRC_NAMES = ['none', 'crc16', 'crc32c'];
const CRC_LEN = [0, 2, 4];
// Bytes a CRC field takes in a block: byte-string head + value.
const CRC_FIELD = [0, 3, 5];

export function crcCode(name, what, code = 'invalid-spec') {
  const i = CRC_NAMES.indexOf(name);
  if (i < 0) fail(code, `${what}: unknown CRC type ${name}`);
  return i;
}

function readCrcType(r, what) {
  const at = r.pos;
  const v = r.uint(what);
  if (v > 2n) fail('invalid-crc-type', `${what} is ${v}; §4.2.1 defines 0 (none), 1 (CRC-16) and 2 (CRC-32C)`, at);
  return Number(v);
}

function readCrc(r, kind, what) {
  const s = r.bytes(what);
  if (s.end - s.start !== CRC_LEN[kind]) {
    fail('malformed-cbor', `${what} is ${s.end - s.start} bytes; a ${CRC_NAMES[kind]} value is ${CRC_LEN[kind]}`, s.at);
  }
  return s;
}

function verifyCrc(buf, kind, start, end, value, what) {
  if (kind === 0) return;
  const want = blockCrc(kind, buf, start, end, value.start, value.end);
  let got = 0;
  for (let i = value.start; i < value.end; i++) got = got * 256 + buf[i];
  if (got !== want) {
    const w = kind === 1 ? 4 : 8;
    fail('crc-mismatch', `${what}: ${CRC_NAMES[kind]} is 0x${got.toString(16).padStart(w, '0')} but the block's bytes give 0x${want.toString(16).padStart(w, '0')}`, value.start);
  }
}

function parsePrimary(buf, r) {
  const W = 'primary block';
  const start = r.pos;
  const items = r.array(W);
  const n = items.declared;
  if (n !== null && (n < 8n || n > 11n)) fail('malformed-cbor', `${W} has ${n} items; §4.3.1 allows 8 to 11`, start);
  items.need(r, W, 'version');
  const versionAt = r.pos;
  const version = r.uint('primary block version');
  if (version !== 7n) fail('unsupported-version', `primary block says version ${version}; this is BPv7 (RFC 9171)`, versionAt);
  items.need(r, W, 'bundle processing control flags');
  const flags = r.uint('bundle processing control flags');
  items.need(r, W, 'CRC type');
  const crc = readCrcType(r, 'primary block CRC type');
  const isFragment = (flags & FLAG_IS_FRAGMENT) !== 0n;
  const expected = 8n + (isFragment ? 2n : 0n) + (crc !== 0 ? 1n : 0n);
  if (n !== null && n !== expected) {
    fail('malformed-cbor', `${W} has ${n} items but its flags (${isFragment ? 'fragment' : 'not a fragment'}) and CRC type (${crc}) call for ${expected} (§4.3.1)`, start);
  }
  const fieldsStart = r.pos;
  items.need(r, W, 'destination EID');
  const destination = decodeEid(r, 'destination EID');
  items.need(r, W, 'source node ID');
  const source = decodeEid(r, 'source node ID');
  items.need(r, W, 'report-to EID');
  const reportTo = decodeEid(r, 'report-to EID');
  items.need(r, W, 'creation timestamp');
  const ts = r.array('creation timestamp');
  if (ts.declared !== null && ts.declared !== 2n) fail('malformed-cbor', `creation timestamp has ${ts.declared} items, not 2 (§4.2.7)`, ts.at);
  ts.need(r, 'creation timestamp', 'time');
  const creationTime = r.uint('creation timestamp time');
  ts.need(r, 'creation timestamp', 'sequence number');
  const sequenceNumber = r.uint('creation timestamp sequence number');
  ts.end(r, 'creation timestamp');
  items.need(r, W, 'lifetime');
  const lifetime = r.uint('lifetime');
  const fieldsEnd = r.pos;
  let fragmentOffset = null;
  let totalAduLength = null;
  let fragmentAt = 0;
  if (isFragment) {
    items.need(r, W, 'fragment offset');
    fragmentAt = r.pos;
    fragmentOffset = r.uint('fragment offset');
    items.need(r, W, 'total ADU length');
    const totalAt = r.pos;
    totalAduLength = r.uint('total application data unit length');
    if (totalAduLength === 0n) fail('invalid-fragment', 'fragment declares a total ADU length of 0 (§5.8)', totalAt);
  }
  let crcValue = null;
  if (crc !== 0) {
    items.need(r, W, 'CRC');
    crcValue = readCrc(r, crc, 'primary block CRC');
  }
  items.end(r, W);
  verifyCrc(buf, crc, start, r.pos, crcValue, W);

  // §4.2.3: administrative records and anonymous bundles request no reports.
  if ((flags & FLAG_ADMIN_RECORD) !== 0n && (flags & FLAGS_STATUS_REPORTS) !== 0n) {
    fail('invalid-flags', `flags 0x${flags.toString(16)} mark an administrative record but also request status reports (§4.2.3)`, start);
  }
  if (source.kind === 'null') {
    if ((flags & FLAG_MUST_NOT_FRAGMENT) === 0n) {
      fail('invalid-flags', `source is dtn:none but flags 0x${flags.toString(16)} do not set must-not-fragment (§4.2.3)`, start);
    }
    if ((flags & FLAGS_STATUS_REPORTS) !== 0n) {
      fail('invalid-flags', `source is dtn:none but flags 0x${flags.toString(16)} request status reports (§4.2.3)`, start);
    }
  }
  return {
    version, flags, isFragment, crc, destination, source, reportTo,
    creationTime, sequenceNumber, lifetime, fragmentOffset, totalAduLength,
    fieldsStart, fieldsEnd, fragmentAt, end: r.pos,
  };
}

function parseCanonical(buf, r) {
  const W = 'canonical block';
  const start = r.pos;
  const items = r.array(W);
  const n = items.declared;
  if (n !== null && (n < 5n || n > 6n)) fail('malformed-cbor', `${W} has ${n} items; §4.3.2 allows 5 or 6`, start);
  items.need(r, W, 'block type');
  const type = r.uint('block type code');
  items.need(r, W, 'block number');
  const number = r.uint('block number');
  items.need(r, W, 'block processing control flags');
  const flags = r.uint('block processing control flags');
  items.need(r, W, 'CRC type');
  const crc = readCrcType(r, 'block CRC type');
  if (n !== null) {
    const expected = crc !== 0 ? 6n : 5n;
    if (n !== expected) fail('malformed-cbor', `block ${number} has ${n} items but CRC type ${crc} calls for ${expected} (§4.3.2)`, start);
  }
  items.need(r, W, 'block-type-specific data');
  const data = r.bytes('block-type-specific data');
  let crcValue = null;
  if (crc !== 0) {
    items.need(r, W, 'CRC');
    crcValue = readCrc(r, crc, 'block CRC');
  }
  items.end(r, W);
  verifyCrc(buf, crc, start, r.pos, crcValue, `block ${number} (type ${type})`);
  return { type, number, flags, crc, start, end: r.pos, dataStart: data.start, dataEnd: data.end };
}

// The data of a known extension block must be exactly one item of the
// right shape (§4.4). Returns the bundle age for a bundle age block.
function checkExtension(buf, b) {
  if (b.type !== BUNDLE_AGE_BLOCK && b.type !== HOP_COUNT_BLOCK && b.type !== PREVIOUS_NODE_BLOCK) return null;
  const r = new Reader(buf.subarray(b.dataStart, b.dataEnd));
  const base = b.dataStart;
  let age = null;
  try {
    if (b.type === BUNDLE_AGE_BLOCK) {
      age = r.uint('bundle age');
    } else if (b.type === HOP_COUNT_BLOCK) {
      const items = r.array('hop count');
      items.need(r, 'hop count', 'hop limit');
      const limit = r.uint('hop limit');
      items.need(r, 'hop count', 'hop count');
      r.uint('hop count');
      items.end(r, 'hop count');
      if (limit < 1n || limit > 255n) fail('malformed-cbor', `hop limit ${limit} is outside 1..255 (§4.4.3)`, 0);
    } else {
      const node = decodeEid(r, 'previous node ID');
      if (node.kind === 'null') {
        fail('invalid-eid', 'previous node ID is dtn:none, which is not a node ID (§4.4.1, §4.2.5.2)', 0);
      }
    }
    if (r.remaining() !== 0) fail('malformed-cbor', `block ${b.number} has bytes after its data item`, r.pos);
  } catch (e) {
    if (e.offset !== undefined) e.offset += base;
    if (e.code === 'truncated') {
      e.code = 'malformed-cbor';
      e.message = e.detail = `block ${b.number}: ${e.detail}`;
    }
    throw e;
  }
  return age;
}

function bibTargetsPrimary(buf, b) {
  try {
    const r = new Reader(buf.subarray(b.dataStart, b.dataEnd));
    const items = r.array('security targets');
    while (items.more(r, 'security targets')) {
      if (r.uint('security target') === 0n) return true;
    }
  } catch (e) {
    return false;
  }
  return false;
}

// Parses and validates one bundle. Throws StageError.
export function parseBundle(buf) {
  if (buf.length === 0) fail('truncated', 'input is empty', 0);
  if (buf[0] !== 0x9f) {
    const detail = buf[0] >> 5 === MAJOR_ARRAY
      ? 'a bundle is an indefinite-length array (0x9f ... 0xff); found a definite-length array'
      : `a bundle is an indefinite-length array starting 0x9f; found initial byte 0x${buf[0].toString(16)}`;
    fail('malformed-cbor', detail + ' (§4.1)', 0);
  }
  const r = new Reader(buf);
  r.pos = 1;
  const p0 = r.peek();
  if (p0 < 0) fail('truncated', 'input ends before the primary block', buf.length);
  if (p0 === BREAK) fail('malformed-cbor', 'bundle has no primary block (§4.1: the first item must be one)', 1);
  const primaryStart = r.pos;
  const primary = parsePrimary(buf, r);
  const adminOrAnonymous = (primary.flags & FLAG_ADMIN_RECORD) !== 0n || primary.source.kind === 'null';
  const numbers = new Set();
  const once = new Set();
  const blocks = [];
  let payload = null;
  let age = null;
  let bibProtectsPrimary = false;
  for (;;) {
    const at = r.pos;
    const b0 = r.peek();
    if (b0 < 0) fail('truncated', "input ends before the bundle's closing break", buf.length);
    if (b0 === BREAK) {
      r.pos++;
      break;
    }
    if (payload) fail('payload-not-last', 'a block follows the payload block (§4.1)', at);
    const b = parseCanonical(buf, r);
    const n = b.number;
    if (n === 0n) fail('invalid-block-number', `block of type ${b.type} has number 0, which is the primary block's (§4.3.2)`, at);
    if (b.type === PAYLOAD_BLOCK && n !== 1n) fail('invalid-block-number', `payload block has number ${n}; it must be 1 (§4.3.3)`, at);
    if (b.type !== PAYLOAD_BLOCK && n === 1n) fail('invalid-block-number', `block of type ${b.type} has number 1, which is the payload block's (§4.3.2)`, at);
    if (numbers.has(n)) fail('duplicate-block', `block number ${n} appears twice (§4.3.2)`, at);
    numbers.add(n);
    if (b.type === PREVIOUS_NODE_BLOCK || b.type === BUNDLE_AGE_BLOCK || b.type === HOP_COUNT_BLOCK) {
      if (once.has(b.type)) fail('duplicate-block', `a second block of type ${b.type}; §4.4 allows one`, at);
      once.add(b.type);
    }
    if (adminOrAnonymous && (b.flags & BLOCK_REPORT_IF_UNPROCESSABLE) !== 0n) {
      fail('invalid-flags', `block ${n} asks for a status report, but the bundle is ${primary.source.kind === 'null' ? 'anonymous' : 'an administrative record'} (§4.2.4)`, at);
    }
    const known = b.type === PAYLOAD_BLOCK || b.type === PREVIOUS_NODE_BLOCK || b.type === BUNDLE_AGE_BLOCK ||
      b.type === HOP_COUNT_BLOCK || b.type === INTEGRITY_BLOCK || b.type === CONFIDENTIALITY_BLOCK;
    if (!known && (b.flags & BLOCK_DELETE_IF_UNPROCESSABLE) !== 0n) {
      fail('unprocessable-block', `block ${n} has unknown type ${b.type} and flags 0x${b.flags.toString(16)} ask to delete the bundle if it can't be processed (§4.2.4)`, at);
    }
    const a = checkExtension(buf, b);
    if (a !== null) age = a;
    if (b.type === INTEGRITY_BLOCK && bibTargetsPrimary(buf, b)) bibProtectsPrimary = true;
    if (b.type === PAYLOAD_BLOCK) payload = b;
    blocks.push(b);
  }
  if (r.remaining() !== 0) fail('trailing-bytes', `${r.remaining()} bytes follow the bundle's closing break`, r.pos);
  if (!payload) fail('missing-payload', 'the bundle has no payload block (type 1, §4.1)', buf.length - 1);
  if (primary.crc === 0 && !bibProtectsPrimary) {
    fail('missing-primary-crc', 'primary block has CRC type 0 and no block integrity block targets it (§4.3.1)', 1);
  }
  if (primary.creationTime === 0n && !once.has(BUNDLE_AGE_BLOCK)) {
    fail('missing-bundle-age', 'creation time is 0 (no clock) but there is no bundle age block (§4.4.2)', 1);
  }
  const payloadLength = payload.dataEnd - payload.dataStart;
  if (primary.isFragment) {
    const offset = primary.fragmentOffset;
    const total = primary.totalAduLength;
    const len = BigInt(payloadLength);
    if (len === 0n) fail('invalid-fragment', "a fragment's payload is empty (§5.8: 0 < N < M)", primary.fragmentAt);
    if (offset >= total) fail('invalid-fragment', `fragment offset ${offset} is not inside the total ADU length ${total}`, primary.fragmentAt);
    if (offset + len > total) fail('offset-out-of-range', `fragment at offset ${offset} with ${len} payload bytes runs past the total ADU length ${total}`, primary.fragmentAt);
  }
  return { bytes: buf, primary, primaryStart, blocks, payload, payloadLength, age };
}

export function bundleInfo(p) {
  const pr = p.primary;
  return {
    version: pr.version,
    flags: pr.flags,
    isFragment: pr.isFragment,
    mustNotFragment: (pr.flags & FLAG_MUST_NOT_FRAGMENT) !== 0n,
    crc: CRC_NAMES[pr.crc],
    destination: eidString(pr.destination),
    source: eidString(pr.source),
    reportTo: eidString(pr.reportTo),
    creationTime: pr.creationTime,
    sequenceNumber: pr.sequenceNumber,
    lifetimeMs: pr.lifetime,
    fragmentOffset: pr.isFragment ? pr.fragmentOffset : undefined,
    totalAduLength: pr.isFragment ? pr.totalAduLength : undefined,
    payloadLength: BigInt(p.payloadLength),
    blocks: p.blocks.map((b) => ({
      blockType: b.type,
      blockNumber: b.number,
      flags: b.flags,
      crc: CRC_NAMES[b.crc],
      dataLength: BigInt(b.dataEnd - b.dataStart),
    })),
  };
}

// What every bundle made from one original shares: the primary block's
// fields, extension blocks as encoded, the payload block's flags and CRC.
export class Template {
  static fromSpec(spec) {
    const crc = crcCode(spec.crc, 'primary CRC type');
    const blockCrcKind = crcCode(spec.blockCrc, 'block CRC type');
    if (crc === 0) {
      fail('invalid-spec', 'the primary block needs a CRC (crc16 or crc32c); none is allowed only with a block integrity block (RFC 9171 §4.3.1)');
    }
    const source = parseEid(spec.source, 'invalid-spec', 'source');
    const destination = parseEid(spec.destination, 'invalid-spec', 'destination');
    const reportTo = parseEid(spec.reportTo, 'invalid-spec', 'report-to');
    if (source.kind === 'null' && !spec.mustNotFragment) {
      fail('invalid-spec', 'an anonymous bundle (source dtn:none) must set must-not-fragment (RFC 9171 §4.2.3)');
    }
    const f = new Bytes();
    encodeEid(destination, f);
    encodeEid(source, f);
    encodeEid(reportTo, f);
    f.head(MAJOR_ARRAY, 2).uint(spec.creationTime).uint(spec.sequenceNumber).uint(spec.lifetimeMs);
    const t = new Template();
    t.flags = spec.mustNotFragment ? FLAG_MUST_NOT_FRAGMENT : 0n;
    t.crc = crc;
    t.fields = f.done();
    t.extensions = [];
    if (BigInt(spec.creationTime) === 0n) {
      // §4.4.2: a bundle without a clock carries its age; every fragment too.
      const ext = new Bytes();
      ext.head(MAJOR_ARRAY, blockCrcKind !== 0 ? 6 : 5).uint(7).uint(2).uint(1).uint(blockCrcKind)
        .head(MAJOR_BYTES, 1).uint(0);
      if (blockCrcKind !== 0) ext.head(MAJOR_BYTES, CRC_LEN[blockCrcKind]).raw(new Uint8Array(CRC_LEN[blockCrcKind]));
      const raw = ext.done();
      seal(raw, 0, raw.length, blockCrcKind);
      t.extensions.push({ raw, replicate: true });
    }
    t.payloadFlags = 0n;
    t.payloadCrc = blockCrcKind;
    t.source = source;
    return t;
  }

  static fromBundle(p) {
    const buf = p.bytes;
    const pr = p.primary;
    const t = new Template();
    t.flags = pr.flags;
    t.crc = pr.crc;
    t.fields = buf.subarray(pr.fieldsStart, pr.fieldsEnd);
    const noClock = pr.creationTime === 0n;
    t.extensions = p.blocks.filter((b) => b !== p.payload).map((b) => ({
      raw: buf.subarray(b.start, b.end),
      replicate: (b.flags & BLOCK_REPLICATE) !== 0n || (noClock && b.type === BUNDLE_AGE_BLOCK),
    }));
    t.payloadFlags = p.payload.flags;
    t.payloadCrc = p.payload.crc;
    return t;
  }

  primaryFlags(frag) {
    return frag ? this.flags | FLAG_IS_FRAGMENT : this.flags & ~FLAG_IS_FRAGMENT;
  }

  primaryLen(frag) {
    let n = 1 + 1 + headLen(this.primaryFlags(frag)) + 1 + this.fields.length;
    if (frag) n += headLen(frag.offset) + headLen(frag.total);
    return n + CRC_FIELD[this.crc];
  }

  payloadLen(len) {
    return 1 + 1 + 1 + headLen(this.payloadFlags) + 1 + headLen(len) + len + CRC_FIELD[this.payloadCrc];
  }

  extLen(all) {
    let n = 0;
    for (const x of this.extensions) if (all || x.replicate) n += x.raw.length;
    return n;
  }

  bundleLen(frag, all, len) {
    return 1 + this.primaryLen(frag) + this.extLen(all) + this.payloadLen(len) + 1;
  }

  // One bundle: frag is null or { offset, total } (BigInt); data[ds, de).
  write(frag, all, data, ds, de) {
    const len = de - ds;
    const out = new Uint8Array(this.bundleLen(frag, all, len));
    let pos = 0;
    out[pos++] = 0x9f;
    const ps = pos;
    pos = putHead(out, pos, MAJOR_ARRAY, 8 + (frag ? 2 : 0) + (this.crc !== 0 ? 1 : 0));
    out[pos++] = 7;
    pos = putHead(out, pos, 0, this.primaryFlags(frag));
    out[pos++] = this.crc;
    out.set(this.fields, pos);
    pos += this.fields.length;
    if (frag) {
      pos = putHead(out, pos, 0, frag.offset);
      pos = putHead(out, pos, 0, frag.total);
    }
    pos = crcField(out, pos, this.crc);
    seal(out, ps, pos, this.crc);
    for (const x of this.extensions) {
      if (all || x.replicate) {
        out.set(x.raw, pos);
        pos += x.raw.length;
      }
    }
    const bs = pos;
    pos = putHead(out, pos, MAJOR_ARRAY, this.payloadCrc !== 0 ? 6 : 5);
    out[pos++] = 1;
    out[pos++] = 1;
    pos = putHead(out, pos, 0, this.payloadFlags);
    out[pos++] = this.payloadCrc;
    pos = putHead(out, pos, MAJOR_BYTES, len);
    out.set(ds === 0 && de === data.length ? data : data.subarray(ds, de), pos);
    pos += len;
    pos = crcField(out, pos, this.payloadCrc);
    seal(out, bs, pos, this.payloadCrc);
    out[pos++] = 0xff;
    if (pos !== out.length) throw new Error(`internal: wrote ${pos} of ${out.length} bytes`);
    return out;
  }

  whole(adu) {
    return this.write(null, true, adu, 0, adu.length);
  }

  // Splits payload[0, len) into fragments of at most mtu bytes; base and
  // total (BigInt) place it in the original ADU.
  fragment(payload, base, total, mtu) {
    if (payload.length === 0) {
      fail('mtu-too-small', `the bundle is larger than the MTU of ${mtu} bytes and its payload is empty, so it cannot be split`);
    }
    const out = [];
    let pos = 0;
    while (pos < payload.length) {
      const first = pos === 0;
      const frag = { offset: base + BigInt(pos), total };
      const fixed = this.bundleLen(frag, first, 0) - 1;
      const room = mtu - fixed;
      const fit = maxData(room);
      if (fit === 0) {
        fail('mtu-too-small', `a fragment at offset ${frag.offset} needs ${fixed} bytes of blocks and headers, so an MTU of ${mtu} bytes holds no payload; use at least ${fixed + 2}`);
      }
      const len = Math.min(fit, payload.length - pos);
      out.push(this.write(frag, first, payload, pos, pos + len));
      pos += len;
    }
    return out;
  }
}

// Writes a zeroed CRC field (byte-string head + value) of `kind`.
function crcField(out, pos, kind) {
  if (kind === 0) return pos;
  out[pos] = 0x40 | CRC_LEN[kind];
  return pos + 1 + CRC_LEN[kind];
}

// Fills in the CRC value that ends the block out[start, end).
function seal(out, start, end, kind) {
  if (kind === 0) return;
  const vs = end - CRC_LEN[kind];
  const c = blockCrc(kind, out, start, end, vs, end);
  if (kind === 1) {
    out[vs] = c >>> 8;
    out[vs + 1] = c & 0xff;
  } else {
    out[vs] = c >>> 24;
    out[vs + 1] = (c >>> 16) & 0xff;
    out[vs + 2] = (c >>> 8) & 0xff;
    out[vs + 3] = c & 0xff;
  }
}

// Largest payload length whose byte string (head + bytes) fits in `room`.
function maxData(room) {
  if (!(room >= 2)) return 0;
  let len = room - 1;
  while (headLen(len) + len > room) len--;
  return len;
}

// MTUs arrive as u64 (BigInt); anything past 2^53 is as good as unlimited.
export function mtuNumber(mtu) {
  const m = BigInt(mtu);
  return m > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(m);
}

export function build(adu, spec) {
  return Template.fromSpec(spec).whole(adu);
}

export function fragmentAdu(adu, spec, mtu) {
  const m = mtuNumber(mtu);
  const t = Template.fromSpec(spec);
  const whole = t.bundleLen(null, true, adu.length);
  if (whole <= m) return [t.whole(adu)];
  if (spec.mustNotFragment) {
    fail('must-not-fragment', `the bundle is ${whole} bytes, more than the MTU of ${m}, and the spec sets must-not-fragment (§4.2.3)`);
  }
  return t.fragment(adu, 0n, BigInt(adu.length), m);
}

export function fragment(bundle, mtu) {
  const m = mtuNumber(mtu);
  const p = parseBundle(bundle);
  if (bundle.length <= m) return [bundle];
  const pr = p.primary;
  if ((pr.flags & FLAG_MUST_NOT_FRAGMENT) !== 0n) {
    fail('must-not-fragment', `the bundle is ${bundle.length} bytes, more than the MTU of ${m}, and its flags 0x${pr.flags.toString(16)} say it must not be fragmented (§4.2.3)`, 1);
  }
  const base = pr.isFragment ? pr.fragmentOffset : 0n;
  const total = pr.isFragment ? pr.totalAduLength : BigInt(p.payloadLength);
  const payload = bundle.subarray(p.payload.dataStart, p.payload.dataEnd);
  return Template.fromBundle(p).fragment(payload, base, total, m);
}

export { NULL_EID };
