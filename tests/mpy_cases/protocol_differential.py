"""Decode every payload of a JSON-lines file and print one JSON line per payload:
["ok", decoded] or ["err", field]. Run under MicroPython and CPython; the outputs must match.

    micropython protocol_differential.py PAYLOADS.jsonl
Each input line: [decoder name, payload text].
"""

import json
import sys

from protocol import ProtocolError, messages


def main(path):
    with open(path) as f:
        for line in f:
            name, payload = json.loads(line)
            try:
                out = ["ok", getattr(messages, name)(payload.encode())]
            except ProtocolError as e:
                out = ["err", e.field]
            except Exception as e:  # must never happen: printed so the comparison shows it
                out = ["crash", "%s: %s" % (type(e).__name__, e)]
            print(json.dumps(out))


main(sys.argv[1])
