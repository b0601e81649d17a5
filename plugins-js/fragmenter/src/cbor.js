// The slice of CBOR (RFC 8949) that BPv7 needs: unsigned integers, byte and
// text strings, arrays. Reading reports `truncated` when the input ends
// early and `malformed-cbor` for anything else that is wrong; integers are
// BigInt (fields are u64), lengths and positions are numbers.

import { fail } from './errors.js';

export const BREAK = 0xff;
export const MAJOR_UINT = 0;
export const MAJOR_BYTES = 2;
export const MAJOR_TEXT = 3;
export const MAJOR_ARRAY = 4;

const NAMES = ['unsigned integer', 'negative integer', 'byte string', 'text string',
  'array', 'map', 'tag', 'simple value or float'];

export class Reader {
  constructor(buf) {
    this.buf = buf;
    this.pos = 0;
  }

  remaining() {
    return this.buf.length - this.pos;
  }

  peek() {
    return this.pos < this.buf.length ? this.buf[this.pos] : -1;
  }

  // One item head: { major, value (BigInt), indefinite, at }.
  head(what) {
    const buf = this.buf;
    const at = this.pos;
    if (at >= buf.length) fail('truncated', `input ends before ${what}`, at);
    const ib = buf[at];
    const major = ib >> 5;
    const ai = ib & 31;
    let value = 0n;
    let n = 0;
    let indefinite = false;
    if (ai < 24) {
      value = BigInt(ai);
    } else if (ai <= 27) {
      n = 1 << (ai - 24);
      if (at + 1 + n > buf.length) fail('truncated', `input ends inside the head of ${what}`, at);
      if (n <= 4) {
        let v = 0;
        for (let i = 1; i <= n; i++) v = v * 256 + buf[at + i];
        value = BigInt(v);
      } else {
        for (let i = 1; i <= n; i++) value = (value << 8n) | BigInt(buf[at + i]);
      }
    } else if (ai === 31) {
      if (major === 7) fail('malformed-cbor', `unexpected break (0xff) where ${what} should be`, at);
      if (major !== MAJOR_BYTES && major !== MAJOR_TEXT && major !== MAJOR_ARRAY && major !== 5) {
        fail('malformed-cbor', `${what}: initial byte 0x${ib.toString(16)} has no indefinite form`, at);
      }
      indefinite = true;
    } else {
      fail('malformed-cbor', `${what}: initial byte 0x${ib.toString(16)} uses reserved additional information ${ai}`, at);
    }
    this.pos = at + 1 + n;
    return { major, value, indefinite, at };
  }

  expect(major, what) {
    const h = this.head(what);
    if (h.major !== major) {
      fail('malformed-cbor', `${what} should be a ${NAMES[major]} but is a ${NAMES[h.major]}`, h.at);
    }
    return h;
  }

  uint(what) {
    return this.expect(MAJOR_UINT, what).value;
  }

  // A definite-length string's bounds: { start, end } in buf.
  string(major, what) {
    const h = this.expect(major, what);
    if (h.indefinite) {
      fail('malformed-cbor', `${what} is an indefinite-length string; BPv7 (§4.1) uses definite lengths`, h.at);
    }
    if (h.value > BigInt(this.remaining())) {
      fail('truncated', `${what} declares ${h.value} bytes but only ${this.remaining()} remain`, h.at);
    }
    const start = this.pos;
    this.pos = start + Number(h.value);
    return { start, end: this.pos, at: h.at };
  }

  bytes(what) {
    return this.string(MAJOR_BYTES, what);
  }

  text(what) {
    const s = this.string(MAJOR_TEXT, what);
    const t = utf8(this.buf, s.start, s.end);
    if (t === null) fail('malformed-cbor', `${what} is not valid UTF-8`, s.at);
    return t;
  }

  array(what) {
    const h = this.expect(MAJOR_ARRAY, what);
    return new Items(h.indefinite ? null : h.value, h.at);
  }
}

// Walks the items of an array, definite or indefinite.
export class Items {
  constructor(declared, at) {
    this.declared = declared; // BigInt, or null when indefinite
    this.left = declared;
    this.at = at;
  }

  // The next item must be there.
  need(r, what, field) {
    if (this.left !== null) {
      if (this.left === 0n) fail('malformed-cbor', `${what} has no ${field}`, this.at);
      this.left -= 1n;
      return;
    }
    const b = r.peek();
    if (b < 0) fail('truncated', `input ends inside ${what}, before its ${field}`, r.pos);
    if (b === BREAK) fail('malformed-cbor', `${what} ends before its ${field}`, r.pos);
  }

  // Whether another item follows (consumes the break of an indefinite array).
  more(r, what) {
    if (this.left !== null) {
      if (this.left === 0n) return false;
      this.left -= 1n;
      return true;
    }
    const b = r.peek();
    if (b < 0) fail('truncated', `input ends inside ${what}`, r.pos);
    if (b === BREAK) {
      r.pos++;
      return false;
    }
    return true;
  }

  end(r, what) {
    if (this.left !== null) {
      if (this.left !== 0n) fail('malformed-cbor', `${what} has ${this.left} more items than expected`, this.at);
      return;
    }
    const b = r.peek();
    if (b < 0) fail('truncated', `input ends inside ${what}`, r.pos);
    if (b !== BREAK) fail('malformed-cbor', `${what} has more items than expected`, r.pos);
    r.pos++;
  }
}

// Strict UTF-8 decoding (no overlongs, no surrogates); null when invalid.
export function utf8(buf, start, end) {
  let s = '';
  let i = start;
  while (i < end) {
    const b = buf[i];
    if (b < 0x80) {
      s += String.fromCharCode(b);
      i++;
      continue;
    }
    let n, cp, min;
    if (b >= 0xc2 && b <= 0xdf) { n = 1; cp = b & 0x1f; min = 0x80; }
    else if (b >= 0xe0 && b <= 0xef) { n = 2; cp = b & 0x0f; min = 0x800; }
    else if (b >= 0xf0 && b <= 0xf4) { n = 3; cp = b & 0x07; min = 0x10000; }
    else return null;
    if (i + n >= end) return null;
    for (let k = 1; k <= n; k++) {
      const c = buf[i + k];
      if ((c & 0xc0) !== 0x80) return null;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return null;
    s += String.fromCodePoint(cp);
    i += n + 1;
  }
  return s;
}

export function utf8Encode(s) {
  return new TextEncoder().encode(s);
}

// Bytes of a CBOR head with the shortest argument.
export function headLen(v) {
  v = BigInt(v);
  if (v < 24n) return 1;
  if (v < 0x100n) return 2;
  if (v < 0x10000n) return 3;
  if (v < 0x100000000n) return 5;
  return 9;
}

// Writes a head at out[pos]; returns the position after it.
export function putHead(out, pos, major, v) {
  if (typeof v === 'number' && v < 0x100000000) {
    const m = major << 5;
    if (v < 24) { out[pos] = m | v; return pos + 1; }
    if (v < 0x100) { out[pos] = m | 24; out[pos + 1] = v; return pos + 2; }
    if (v < 0x10000) { out[pos] = m | 25; out[pos + 1] = v >>> 8; out[pos + 2] = v & 0xff; return pos + 3; }
    out[pos] = m | 26;
    out[pos + 1] = v >>> 24; out[pos + 2] = (v >>> 16) & 0xff; out[pos + 3] = (v >>> 8) & 0xff; out[pos + 4] = v & 0xff;
    return pos + 5;
  }
  v = BigInt(v);
  if (v < 0x100000000n) return putHead(out, pos, major, Number(v));
  out[pos] = (major << 5) | 27;
  for (let i = 8; i >= 1; i--) {
    out[pos + i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return pos + 9;
}

// A growable byte list for the small parts (EIDs, primary block fields).
export class Bytes {
  constructor() {
    this.a = [];
  }
  head(major, v) {
    const tmp = new Uint8Array(9);
    const n = putHead(tmp, 0, major, v);
    for (let i = 0; i < n; i++) this.a.push(tmp[i]);
    return this;
  }
  uint(v) {
    return this.head(MAJOR_UINT, v);
  }
  text(s) {
    const b = utf8Encode(s);
    this.head(MAJOR_TEXT, b.length);
    for (const x of b) this.a.push(x);
    return this;
  }
  raw(b) {
    for (const x of b) this.a.push(x);
    return this;
  }
  done() {
    return Uint8Array.from(this.a);
  }
}
