"""Wire contract v1 between panel firmware and gateway (see README.md, the spec).

Runs unchanged on MicroPython and CPython: imports nothing but `json` and builtins.
"""

VERSION = 1


class ProtocolError(ValueError):
    """A message or topic broke the contract. str() reads "seq: must be an integer >= 1, got -3"."""

    def __init__(self, field, problem):
        super().__init__("%s: %s" % (field, problem))
        self.field = field
        self.problem = problem

    def __reduce__(self):  # CPython pickling (multiprocessing) needs both arguments back
        return (ProtocolError, (self.field, self.problem))
