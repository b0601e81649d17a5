#!/usr/bin/env python3
"""Regenerate every deepmail vector manifest (deterministic).

    python3 vectors/tools/gen_all.py [--out DIR] [--quiet]

Runs gen_bsmtp_vectors.py, gen_bundle_vectors.py, gen_bpsec_vectors.py,
gen_bp6_vectors.py and gen_resolver_vectors.py with the same arguments.
Check the result with `python3 vectors/tools/check_vectors.py --check`.
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    for gen in ("gen_bsmtp_vectors.py", "gen_bundle_vectors.py", "gen_bpsec_vectors.py",
                "gen_bp6_vectors.py", "gen_resolver_vectors.py"):
        subprocess.run([sys.executable, os.path.join(HERE, gen)] + sys.argv[1:], check=True)


if __name__ == "__main__":
    main()
