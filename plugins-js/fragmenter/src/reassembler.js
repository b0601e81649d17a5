// Reassembly (RFC 9171 §5.9): fragments in any order, duplicates and
// agreeing overlaps accepted, bounded by the caller's limits.

import { fail } from './errors.js';
import { parseBundle } from './bundle.js';
import { eidString } from './eid.js';

const U64_MAX = 0xffffffffffffffffn;
// A wasm32 instance cannot hold more than this in one ADU anyway.
const MAX_HELD = 0xffffffff;

function idKey(source, creationTime, seq) {
  return `${source} ${creationTime} ${seq}`;
}

// When a bundle's lifetime ends, or an `expired` error if it already has
// (§4.3.1: the age exceeds the lifetime; at equality it is still live).
function deadline(pr, age, now) {
  if (pr.creationTime !== 0n) {
    let end = pr.creationTime + pr.lifetime;
    if (end > U64_MAX) end = U64_MAX;
    if (end < now) {
      fail('expired', `created at ${pr.creationTime} with lifetime ${pr.lifetime} ms, so it expired at ${end}, before now (${now}) (§4.3.1)`);
    }
    return end;
  }
  const a = age ?? 0n;
  if (a > pr.lifetime) fail('expired', `bundle age ${a} ms exceeds its lifetime of ${pr.lifetime} ms (§4.4.2)`);
  let end = now + (pr.lifetime - a);
  if (end > U64_MAX) end = U64_MAX;
  return end;
}

export class Reassembler {
  constructor(limits) {
    this.maxAdu = BigInt(limits.maxAduBytes);
    this.maxPendingBytes = BigInt(limits.maxPendingBytes);
    this.maxPendingBundles = Number(limits.maxPendingBundles);
    this.pendingMap = new Map(); // key -> entry
    this.bytes = 0; // payload bytes held for incomplete ADUs
    this.delivered = new Map(); // key -> deadline, to absorb late duplicates
  }

  checkAduSize(total) {
    if (total > this.maxAdu || total > BigInt(MAX_HELD)) {
      fail('limit-exceeded', `ADU of ${total} bytes is larger than the max_adu_bytes limit of ${this.maxAdu}`);
    }
  }

  checkPendingBytes(more) {
    if (BigInt(this.bytes + more) > this.maxPendingBytes) {
      fail('limit-exceeded', `holding ${more} more bytes would take pending data from ${this.bytes} past the max_pending_bytes limit of ${this.maxPendingBytes}`);
    }
  }

  push(bundle, now) {
    const p = parseBundle(bundle);
    const pr = p.primary;
    const end = deadline(pr, p.age, now);
    const source = eidString(pr.source);
    const payload = bundle.subarray(p.payload.dataStart, p.payload.dataEnd);
    const delivered = (adu, fragments) => ({
      source,
      destination: eidString(pr.destination),
      creationTime: pr.creationTime,
      sequenceNumber: pr.sequenceNumber,
      fragments,
      adu,
    });
    if (!pr.isFragment) {
      this.checkAduSize(BigInt(payload.length));
      return delivered(payload.slice(), 1);
    }
    const totalBig = pr.totalAduLength;
    this.checkAduSize(totalBig);
    const total = Number(totalBig);
    const offset = Number(pr.fragmentOffset);
    const len = payload.length;
    const key = idKey(source, pr.creationTime, pr.sequenceNumber);
    if (this.delivered.has(key)) return undefined;
    const entry = this.pendingMap.get(key);
    if (!entry) {
      if (len === total) return delivered(payload.slice(), 1);
      if (this.pendingMap.size >= this.maxPendingBundles) {
        fail('limit-exceeded', `already holding ${this.pendingMap.size} incomplete ADUs, the max_pending_bundles limit`);
      }
      this.checkPendingBytes(len);
      this.pendingMap.set(key, {
        id: { source, creationTime: pr.creationTime, sequenceNumber: pr.sequenceNumber },
        destination: eidString(pr.destination),
        total,
        deadline: end,
        chunks: [{ start: offset, end: offset + len, data: payload.slice() }],
        held: len,
        fragments: 1,
      });
      this.bytes += len;
      return undefined;
    }
    if (entry.total !== total) {
      fail('inconsistent-total-length', `fragment says the ADU is ${total} bytes but earlier fragments of ${key} said ${entry.total} (§5.9)`);
    }
    const gaps = this.gaps(entry, offset, payload);
    let added = 0;
    for (const [a, b] of gaps) added += b - a;
    const completes = entry.held + added === total;
    if (!completes) this.checkPendingBytes(added);
    for (const [a, b] of gaps) {
      insertChunk(entry.chunks, { start: a, end: b, data: payload.slice(a - offset, b - offset) });
    }
    entry.held += added;
    if (end < entry.deadline) entry.deadline = end;
    if (added > 0) entry.fragments++;
    this.bytes += added;
    if (!completes) return undefined;
    this.pendingMap.delete(key);
    this.bytes -= entry.held;
    this.rememberDelivered(key, entry.deadline);
    const adu = new Uint8Array(total);
    for (const c of entry.chunks) adu.set(c.data, c.start);
    return {
      source: entry.id.source,
      destination: entry.destination,
      creationTime: entry.id.creationTime,
      sequenceNumber: entry.id.sequenceNumber,
      fragments: entry.fragments,
      adu,
    };
  }

  // Compares `data` at `offset` with what is held; returns the gaps it fills.
  gaps(entry, offset, data) {
    const chunks = entry.chunks;
    const end = offset + data.length;
    let i = firstEndingAfter(chunks, offset);
    const out = [];
    let cursor = offset;
    for (; i < chunks.length && chunks[i].start < end; i++) {
      const c = chunks[i];
      const lo = Math.max(c.start, offset);
      const hi = Math.min(c.end, end);
      const held = c.data;
      for (let k = lo; k < hi; k++) {
        if (held[k - c.start] !== data[k - offset]) {
          fail('overlap-mismatch', `fragment disagrees with bytes already held at ADU offset ${k} (§5.9)`);
        }
      }
      if (c.start > cursor) out.push([cursor, c.start]);
      if (c.end > cursor) cursor = c.end;
    }
    if (cursor < end) out.push([cursor, end]);
    return out;
  }

  rememberDelivered(key, end) {
    const cap = Math.max(64, this.maxPendingBundles * 4);
    if (this.delivered.size >= cap) {
      let oldest = null;
      let min = null;
      for (const [k, d] of this.delivered) {
        if (min === null || d < min) {
          min = d;
          oldest = k;
        }
      }
      if (oldest !== null) this.delivered.delete(oldest);
    }
    this.delivered.set(key, end);
  }

  expire(now) {
    const gone = [];
    for (const [key, e] of this.pendingMap) {
      if (e.deadline < now) {
        gone.push(e.id);
        this.pendingMap.delete(key);
        this.bytes -= e.held;
      }
    }
    for (const [key, d] of this.delivered) if (d < now) this.delivered.delete(key);
    return gone;
  }

  pending() {
    return { bundles: this.pendingMap.size, bytes: BigInt(this.bytes) };
  }
}

// Index of the first chunk (sorted, disjoint) whose end is past `offset`.
function firstEndingAfter(chunks, offset) {
  let lo = 0;
  let hi = chunks.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (chunks[mid].end <= offset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function insertChunk(chunks, c) {
  const n = chunks.length;
  if (n === 0 || chunks[n - 1].start < c.start) {
    chunks.push(c);
    return;
  }
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (chunks[mid].start < c.start) lo = mid + 1;
    else hi = mid;
  }
  chunks.splice(lo, 0, c);
}
