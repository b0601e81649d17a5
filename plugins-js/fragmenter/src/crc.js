// CRC-16/X.25 and CRC-32C (RFC 9171 §4.2.1), table-driven, slice-by-8.
// Both are reflected CRCs, so one table construction serves both.

function tables(poly, bits) {
  const t = new Int32Array(8 * 256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1;
    t[i] = c;
  }
  for (let k = 1; k < 8; k++) {
    for (let i = 0; i < 256; i++) {
      const p = t[(k - 1) * 256 + i];
      t[k * 256 + i] = (p >>> 8) ^ t[p & 0xff];
    }
  }
  if (bits === 16) for (let i = 0; i < t.length; i++) t[i] &= 0xffff;
  return t;
}

const T32 = tables(0x82f63b78, 32);
const T16 = tables(0x8408, 16);

// Continues the raw register `c` over buf[start, end).
function update(T, c, buf, start, end) {
  let i = start;
  const end8 = start + ((end - start) & ~7);
  while (i < end8) {
    const a = c ^ (buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24));
    c = T[1792 + (a & 0xff)] ^ T[1536 + ((a >>> 8) & 0xff)] ^
        T[1280 + ((a >>> 16) & 0xff)] ^ T[1024 + (a >>> 24)] ^
        T[768 + buf[i + 4]] ^ T[512 + buf[i + 5]] ^ T[256 + buf[i + 6]] ^ T[buf[i + 7]];
    i += 8;
  }
  while (i < end) c = T[(c ^ buf[i++]) & 0xff] ^ (c >>> 8);
  return c;
}

const ZEROS = new Uint8Array(4);

// The host's CRC-32C (deepmail:stages/host-checksum), when the component
// imports it: (state, bytes) -> state, raw register in and out.
let hostCrc32c = null;

export function useHostCrc32c(f) {
  hostCrc32c = f;
}

// Below this many bytes the JS tables beat a call into the host.
const HOST_MIN = 256;

// The register after buf[start, end) from register r, using the host.
// componentize-js 0.22 mangles u32 arguments >= 2^31 on the way to an
// import (it passes the low word of the double), and a CRC register is
// usually that large. So the host only ever starts from register 0, and
// the register we have is carried over the piece here: the CRC is linear,
// R(r, d) = R(r, zeros(len d)) ^ R(0, d), and R(r, zeros(n)) is r times
// x^(8n) mod P (zlib's crc32_combine method).
function hostPiece(r, buf, start, end) {
  const n = end - start;
  if (n <= 0) return r;
  if (n < 64) return update(T32, r, buf, start, end);
  const fresh = hostCrc32c(0, buf.subarray(start, end));
  return multmodp(x8nmodp(n), r >>> 0) ^ fresh;
}

const POLY32 = 0x82f63b78;

// a * b mod P, polynomials in reflected bit order (x^0 is the top bit).
function multmodp(a, b) {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY32 : b >>> 1;
  }
  return p >>> 0;
}

// X2N[k] = x^(2^k) mod P.
const X2N = new Array(32);
{
  let p = 0x40000000; // x^1
  X2N[0] = p;
  for (let k = 1; k < 32; k++) X2N[k] = p = multmodp(p, p);
}

// x^(8n) mod P.
function x8nmodp(n) {
  let xp = 0x80000000; // x^0
  let k = 3;
  while (n > 0) {
    if (n & 1) xp = multmodp(X2N[k & 31], xp);
    n = Math.floor(n / 2);
    k++;
  }
  return xp;
}

// CRC of buf[start, end) with the value bytes [vStart, vEnd) read as zero.
// kind: 1 = CRC-16/X.25, 2 = CRC-32C. Returns an unsigned number.
export function blockCrc(kind, buf, start, end, vStart, vEnd) {
  if (kind === 2 && hostCrc32c !== null && end - start >= HOST_MIN) {
    let r = -1;
    r = hostPiece(r, buf, start, vStart);
    r = hostPiece(r, ZEROS, 0, vEnd - vStart);
    r = hostPiece(r, buf, vEnd, end);
    return (r ^ -1) >>> 0;
  }
  const T = kind === 1 ? T16 : T32;
  let c = kind === 1 ? 0xffff : -1;
  c = update(T, c, buf, start, vStart);
  c = update(T, c, ZEROS, 0, vEnd - vStart);
  c = update(T, c, buf, vEnd, end);
  return kind === 1 ? (c ^ 0xffff) & 0xffff : (c ^ -1) >>> 0;
}

export function crcOf(kind, bytes) {
  return blockCrc(kind, bytes, 0, bytes.length, 0, 0);
}
