"""Auxiliary KPIs: how representative the polls are (METHOD.md "Auxiliary KPIs").

exact conversion = polls / transactions, visitor coverage = polls / visitors,
force-majeure rate = force-majeure reports / polls. The bases (transactions, visitors)
are external counts; None means "not known for this scope".
"""

from kpi_core import _check
from kpi_core.figure import Figure, missing
from kpi_core.interval import Z95, wilson

# Reasons and caveats; flags.py keys on the figure values, not on these texts.
NO_TRANSACTIONS = "no transactions counted"
NO_VISITORS = "no visitors counted"
NO_POLLS = "no polls"
UNKNOWN_TRANSACTIONS = "transaction count not available"
UNKNOWN_VISITORS = "visitor count not available"
MORE_THAN_TRANSACTIONS = "more polls than transactions"
MORE_THAN_VISITORS = "more polls than visitors"
MORE_FM_THAN_POLLS = "more force-majeure reports than polls"


def _ratio(part, base, z, zero_reason, unknown_reason, over_reason, part_name, base_name):
    _check.count(part, part_name)
    if base is None:
        return missing(0, unknown_reason)
    _check.count(base, base_name)
    if base == 0:
        return missing(0, zero_reason)
    if part > base:
        # Not a share any more (double-counted polls, a missed till, counts from another
        # period): the ratio is still shown so the mismatch is visible, without an interval.
        return Figure(part / base, None, None, base, over_reason)
    low, high = wilson(part, base, z)
    return Figure(part / base, low, high, base)


def exact_conversion(polls: int, transactions: int | None, z: float = Z95) -> Figure:
    """Polls per transaction (sale) in the same scope and period."""
    return _ratio(
        polls, transactions, z, NO_TRANSACTIONS, UNKNOWN_TRANSACTIONS, MORE_THAN_TRANSACTIONS, "polls", "transactions"
    )


def visitor_coverage(polls: int, visitors: int | None, z: float = Z95) -> Figure:
    """Polls per visitor counted at the door in the same scope and period."""
    return _ratio(polls, visitors, z, NO_VISITORS, UNKNOWN_VISITORS, MORE_THAN_VISITORS, "polls", "visitors")


def fm_rate(fm_reports: int, polls: int | None, z: float = Z95) -> Figure:
    """Force-majeure reports per poll. Counts every report the sellers made (confirmed or
    not): the rate is an audit of how often the excuse is used."""
    return _ratio(fm_reports, polls, z, NO_POLLS, NO_POLLS, MORE_FM_THAN_POLLS, "fm_reports", "polls")
