// Endpoint IDs (RFC 9171 §4.2.5): dtn:none, dtn://node/demux, ipn:node.service.

import { fail, StageError } from './errors.js';
import { Bytes, MAJOR_ARRAY, MAJOR_TEXT, MAJOR_UINT } from './cbor.js';

const U64_MAX = 0xffffffffffffffffn;

export const NULL_EID = Object.freeze({ kind: 'null' });

export function eidString(e) {
  if (e.kind === 'null') return 'dtn:none';
  if (e.kind === 'dtn') return 'dtn:' + e.ssp;
  return `ipn:${e.node}.${e.service}`;
}

const REG_NAME_EXTRA = "-._~!$&'()*+,;=";

// Why a dtn scheme-specific part is not `//node/demux`, or null if it is.
function dtnSspProblem(ssp) {
  if (!ssp.startsWith('//')) return 'scheme-specific part must be "none" or start with "//"';
  const rest = ssp.slice(2);
  const slash = rest.indexOf('/');
  if (slash < 0) return 'a "/" must follow the node name (dtn://node/demux)';
  const node = rest.slice(0, slash);
  const demux = rest.slice(slash + 1);
  if (node.length === 0) return 'node name is empty';
  for (let i = 0; i < node.length; i++) {
    const c = node.charCodeAt(i);
    if (c === 0x25) {
      if (!/^[0-9A-Fa-f]{2}$/.test(node.slice(i + 1, i + 3))) return 'bad percent-encoding in node name';
      i += 2;
      continue;
    }
    const alnum = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
    if (!alnum && !REG_NAME_EXTRA.includes(node[i])) return 'node name has a character reg-name (RFC 3986) does not allow';
  }
  for (let i = 0; i < demux.length; i++) {
    const c = demux.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return 'demux must be visible US-ASCII characters (VCHAR)';
  }
  return null;
}

// Text form -> EID; throws `code` (invalid-spec for build) when it is not one.
export function parseEid(s, code, what) {
  if (typeof s !== 'string') fail(code, `${what} EID is not a string`);
  if (s.startsWith('dtn:')) {
    const ssp = s.slice(4);
    if (ssp === 'none') return NULL_EID;
    const why = dtnSspProblem(ssp);
    if (why) fail(code, `${what} EID ${JSON.stringify(s)}: ${why} (RFC 9171 §4.2.5.1.1)`);
    return { kind: 'dtn', ssp };
  }
  if (s.startsWith('ipn:')) {
    const m = /^ipn:([0-9]+)\.([0-9]+)$/.exec(s);
    if (!m) fail(code, `${what} EID ${JSON.stringify(s)}: expected ipn:node.service (RFC 9171 §4.2.5.1.2)`);
    const node = BigInt(m[1]);
    const service = BigInt(m[2]);
    if (node > U64_MAX || service > U64_MAX) {
      fail(code, `${what} EID ${JSON.stringify(s)}: ipn numbers must fit in 64 bits`);
    }
    return { kind: 'ipn', node, service };
  }
  fail(code, `${what} EID ${JSON.stringify(s)}: scheme must be dtn: or ipn: (RFC 9171 §4.2.5.1)`);
}

export function encodeEid(e, out = new Bytes()) {
  out.head(MAJOR_ARRAY, 2);
  if (e.kind === 'null') return out.uint(1).uint(0);
  if (e.kind === 'dtn') return out.uint(1).text(e.ssp);
  return out.uint(2).head(MAJOR_ARRAY, 2).uint(e.node).uint(e.service);
}

// Decodes an EID at r; malformed structure inside it is `invalid-eid`.
export function decodeEid(r, what) {
  const start = r.pos;
  const invalid = (why) => fail('invalid-eid', `${what}: ${why}`, start);
  try {
    const items = r.array(what);
    if (items.declared !== null && items.declared !== 2n) {
      invalid(`an EID is an array of 2 items, found ${items.declared}`);
    }
    items.need(r, what, 'URI scheme code');
    const scheme = r.uint(`${what} URI scheme code`);
    items.need(r, what, 'scheme-specific part');
    let eid;
    if (scheme === 1n) {
      const b = r.peek();
      if (b < 0) fail('truncated', `input ends inside ${what}`, r.pos);
      const major = b >> 5;
      if (major === MAJOR_UINT) {
        const v = r.uint(what);
        if (v !== 0n) invalid(`dtn scheme-specific part is the integer ${v}; only 0 (dtn:none) is allowed`);
        eid = NULL_EID;
      } else if (major === MAJOR_TEXT) {
        const ssp = r.text(what);
        const why = dtnSspProblem(ssp);
        if (why) invalid(`dtn:${ssp}: ${why}`);
        eid = { kind: 'dtn', ssp };
      } else {
        invalid('dtn scheme-specific part must be a text string or 0');
      }
    } else if (scheme === 2n) {
      const nums = r.array(`${what} ipn scheme-specific part`);
      const v = [];
      while (nums.more(r, what)) {
        if (v.length === 2) invalid('ipn scheme-specific part is [node, service]; found more than 2 numbers');
        v.push(r.uint(`${what} ipn number`));
      }
      if (v.length !== 2) invalid(`ipn scheme-specific part is [node, service], found ${v.length} numbers`);
      eid = { kind: 'ipn', node: v[0], service: v[1] };
    } else {
      invalid(`unknown URI scheme code ${scheme} (1 = dtn, 2 = ipn)`);
    }
    items.end(r, what);
    return eid;
  } catch (e) {
    if (e instanceof StageError && e.code === 'malformed-cbor') {
      e.code = 'invalid-eid';
      if (e.offset === undefined) e.offset = start;
    }
    throw e;
  }
}

export function sameEid(a, b) {
  return eidString(a) === eidString(b);
}
