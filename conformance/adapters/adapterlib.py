"""The adapter side of `deepmail-adapter/1` (vectors/README.md, "Adapter
protocol"), shared by the Python adapters: one JSON request per line on
stdin, one JSON answer per line on stdout, flushed at once.
"""

import json
import sys


def serve(answer, bad_request_code):
    """Answers every request line with `answer(request)`; a line that is not
    JSON gets an error answer with `bad_request_code` (id null)."""
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
        except ValueError as e:
            out = {"id": None, "result": "error", "error": {"code": bad_request_code, "message": str(e)}}
        else:
            out = answer(req)
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
