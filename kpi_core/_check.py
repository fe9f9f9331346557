"""Argument checks shared by kpi_core: one clear message per wrong field.

Messages read like `k: must be a number from 0 to 1, got 1.5` so a report builder can show
them to the person who typed the setting.
"""

import math


def count(value, field):
    """A count of things: an int >= 0 (bools refused: True is not a count)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("%s: must be a whole number >= 0, got %r" % (field, value))
    return value


def number(value, field, low=None, high=None, low_open=False):
    """A finite real number, optionally inside [low, high] (or (low, high] with low_open)."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        if low is not None and high is not None:
            want = "a number from %s to %s" % (low, high)
            if low_open:
                want = "a number above %s and at most %s" % (low, high)
        elif low is not None:
            want = "a number %s %s" % (">" if low_open else ">=", low)
        else:
            want = "a finite number"
        raise ValueError("%s: must be %s, got %r" % (field, want, value))
    return value
