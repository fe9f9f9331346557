"""count_polls: poll records in, PollCounts out - one way of counting for gateway and simulator.

A poll record is an object or a dict with:
  answer     None (silent) | "yes" | "no" | "unsure"
  opened_at  the poll's opening time (ms, same time base as the periods)
  identity   "id" if present; else site/device/open_seq, shown as "site/device/seq"
             (docs/architecture.md); else open_seq alone. Pass key=... to choose otherwise.
It may also carry "site" and "device": a force-majeure period that names a site/device
then only covers polls of that panel.

A force-majeure period is an object, a dict (start, end[, site, device]) or a (start, end)
pair, covering start <= opened_at < end. Pass CONFIRMED periods only: an unconfirmed report
excludes nothing (METHOD.md decision 3).
"""

from collections.abc import Callable, Iterable
from typing import Any

from kpi_core.counts import PollCounts

ANSWERS = ("yes", "no", "unsure")


def _get(record, name, default=None):
    if isinstance(record, dict):
        return record.get(name, default)
    return getattr(record, name, default)


def _has(record, name):
    return (name in record) if isinstance(record, dict) else hasattr(record, name)


def poll_id(record: Any) -> Any:
    """The identity a verdict refers to (see module note)."""
    if _has(record, "id"):
        return _get(record, "id")
    seq = _get(record, "open_seq")
    site, device = _get(record, "site"), _get(record, "device")
    if site is not None and device is not None and seq is not None:
        return "%s/%s/%s" % (site, device, seq)
    if seq is None:
        raise ValueError(
            "poll record %r has no identity: give it id, or site/device/open_seq, or pass key=" % (record,)
        )
    return seq


def _period(p):
    if isinstance(p, (tuple, list)):
        if len(p) != 2:
            raise ValueError("force-majeure period %r: expected (start, end)" % (p,))
        return p[0], p[1], None, None
    start, end = _get(p, "start"), _get(p, "end")
    if start is None or end is None:
        raise ValueError("force-majeure period %r: needs start and end" % (p,))
    return start, end, _get(p, "site"), _get(p, "device")


def _covered(record, at, periods):
    for start, end, site, device in periods:
        if not start <= at < end:
            continue
        if site is not None and _get(record, "site") not in (None, site):
            continue
        if device is not None and _get(record, "device") not in (None, device):
            continue
        return True
    return False


def count_polls(
    polls: Iterable[Any],
    fm_periods: Iterable[Any] = (),
    invalid: Iterable[Any] = (),
    key: Callable[[Any], Any] = poll_id,
) -> PollCounts:
    """Count valid polls by answer; No/silent polls opened inside a confirmed force-majeure
    period are also counted into fm_no/fm_silent. Invalid polls (by identity) are dropped."""
    periods = [_period(p) for p in fm_periods]
    invalid = set(invalid)
    tally = {"yes": 0, "no": 0, "unsure": 0, "silent": 0, "fm_no": 0, "fm_silent": 0}
    for record in polls:
        answer = _get(record, "answer")
        if answer is not None and answer not in ANSWERS:
            raise ValueError(
                "poll %r: answer must be None (silent), 'yes', 'no' or 'unsure', got %r" % (key(record), answer)
            )
        if invalid and key(record) in invalid:
            continue
        name = answer or "silent"
        tally[name] += 1
        if name in ("no", "silent") and periods:
            at = _get(record, "opened_at")
            if at is None:
                raise ValueError("poll %r: opened_at is needed to apply force-majeure periods" % (key(record),))
            if _covered(record, at, periods):
                tally["fm_" + name] += 1
    return PollCounts(**tally)
