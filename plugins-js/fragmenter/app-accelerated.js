// The same plugin, but computing CRC-32C through the host's
// `deepmail:stages/host-checksum` import (world `accelerated-fragmenter`
// in wit-accelerated/). Everything else is app.js.
import { crc32c } from 'deepmail:stages/host-checksum@0.1.0';
import { useHostCrc32c } from './src/crc.js';

useHostCrc32c(crc32c);

export { pluginInfo, fragmenter } from './app.js';
