// deepmail fragmenter stage in JavaScript: the `fragmenter-plugin` world of
// wit/deepmail.wit (plugin-info + fragmenter), built with `jco componentize`.
//
// jco's conventions: each exported interface is an exported object named
// after it in camelCase; the resource `reassembler` is a class `Reassembler`
// on that object; u64 is BigInt, u32 a number, list<u8> a Uint8Array,
// enums are their case names as strings, option<T> is T or undefined, and a
// `result<T, stage-error>` function returns T for ok and throws the
// stage-error record for err.

import { StageError } from './src/errors.js';
import { build, fragmentAdu, fragment, parseBundle, bundleInfo } from './src/bundle.js';
import { Reassembler as Inner } from './src/reassembler.js';

const VERSION = '0.1.0';

// Runs f; a StageError becomes the WIT `stage-error` thrown as the err case.
// Anything else (a bug, or an allocation the engine refused) is reported as
// `internal-error` rather than trapping the host's instance.
function guard(f) {
  try {
    return f();
  } catch (e) {
    if (e instanceof StageError) {
      throw {
        code: e.code,
        message: e.detail,
        offset: e.offset === undefined ? undefined : BigInt(e.offset),
      };
    }
    throw {
      code: 'internal-error',
      message: `js-fragmenter: ${e && e.name ? e.name + ': ' : ''}${e && e.message ? e.message : String(e)}`,
      offset: undefined,
    };
  }
}

export const pluginInfo = {
  describe() {
    return {
      name: 'js-fragmenter',
      version: VERSION,
      description: 'BPv7 (RFC 9171) build, inspect, fragment and reassemble, in JavaScript (jco componentize / StarlingMonkey)',
    };
  },
};

class Reassembler {
  #inner;
  constructor(limits) {
    this.#inner = new Inner(limits);
  }
  push(bundle, now) {
    return guard(() => this.#inner.push(bundle, BigInt(now)));
  }
  expire(now) {
    return this.#inner.expire(BigInt(now));
  }
  pending() {
    return this.#inner.pending();
  }
}

export const fragmenter = {
  build(adu, spec) {
    return guard(() => build(adu, spec));
  },
  fragmentAdu(adu, spec, mtu) {
    return guard(() => fragmentAdu(adu, spec, mtu));
  },
  fragment(bundle, mtu) {
    return guard(() => fragment(bundle, mtu));
  },
  inspect(bundle) {
    return guard(() => bundleInfo(parseBundle(bundle)));
  },
  Reassembler,
};
