"""Press physics (pure): a finger on a button as the pin levels the firmware samples.

A press is two contact changes (down at `t`, up at `t + hold`); with bounce on, each change is
a burst of edges shorter than the debounce time, ending on the new level:

    edges(press, rng, faults) -> [(t_ms, level), ...]   level 1 = pressed

The firmware's debouncer must turn every burst into exactly one press / one release.
"""


def _burst(rng, t, level, n_extra, span_ms):
    """Edges starting at t and ending on `level`: level, !level, level, ... within span_ms."""
    out = [(t, level)]
    if n_extra <= 0:
        return out
    pairs = max(1, n_extra // 2)
    times = sorted(rng.randint(1, max(1, span_ms)) for _ in range(2 * pairs))
    # strictly increasing offsets (two edges at the same ms would be one sample)
    last = 0
    fixed = []
    for x in times:
        last = max(last + 1, x)
        fixed.append(last)
    lvl = level
    for off in fixed:
        lvl = 1 - lvl
        out.append((t + off, lvl))
    return out  # an even number of toggles: ends on `level`


def edges(press, rng, faults):
    """[(t_ms, level)] for one press; `faults` is the scenario's [faults] table."""
    down, up = press.t, press.t + press.hold
    if not faults.get("bounce"):
        return [(down, 1), (up, 0)]
    lo, hi = faults["bounce_edges"]
    slo, shi = faults["bounce_span_ms"]
    out = _burst(rng, down, 1, rng.randint(lo, hi), rng.randint(slo, shi))
    # the release burst must start after the press burst settled
    up = max(up, out[-1][0] + 1)
    out += _burst(rng, up, 0, rng.randint(lo, hi), rng.randint(slo, shi))
    return out
