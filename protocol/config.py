"""The config payload (gateway -> panel, retained): remote knobs, their ranges, and the codec.

Split from protocol.panel because the panel needs it only while it handles a config message
(and at boot, to re-apply /remote.json): it imports this module then and unloads it after
(firmware.unload), so the code is not held in the panel's heap. protocol.messages re-exports
everything here. Runs on MicroPython and CPython: only builtins and protocol.checks.
"""

from protocol import VERSION
from protocol.checks import MAX_BYTES, _choice, _dumps, _get, _given, _int, _load, _text

CONFIG_KINDS = ("staff", "office", "loyalty")
MAX_QUESTION = 200  # characters, not bytes (Russian text is 2 bytes a char in UTF-8)

# Remote config knobs: name -> (low, high), both inclusive.
CONFIG_RANGES = {
    "window_s": (5, 600),
    "rearm_s": (0, 60),
    "fm_minutes": (1, 240),
    "long_ms": (500, 10000),
    "debounce_ms": (5, 200),
    "heartbeat_s": (10, 3600),
    "brightness": (0, 100),
}

# Checked in this order (a dict's order differs on MicroPython, and with several bad knobs the
# first one named must be the same on both VMs).
CONFIG_KNOBS = ("window_s", "rearm_s", "fm_minutes", "long_ms", "debounce_ms", "heartbeat_s", "brightness")


def _check_config(obj):
    out = {"v": VERSION, "ver": _int("ver", _get(obj, "ver"), 1)}
    question = _get(obj, "question", False)
    if question is not None:
        out["question"] = _text("question", question, 1, MAX_QUESTION)
    kind = _get(obj, "kind", False)
    if kind is not None:
        out["kind"] = _choice("kind", kind, CONFIG_KINDS)
    for key in CONFIG_KNOBS:
        lo, hi = CONFIG_RANGES[key]
        value = _get(obj, key, False)
        if value is not None:
            out[key] = _int(key, value, lo, hi)
    return out


def encode_config(config):
    """A config dict ("ver" required, knobs optional) -> compact JSON bytes (UTF-8 text kept)."""
    return _dumps(_check_config(_given(config)))


def decode_config(data):
    """-> {"v", "ver", and only the knobs present}; an absent knob means "keep the panel's own"."""
    return _check_config(_load(data, MAX_BYTES))
