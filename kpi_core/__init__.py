"""kpi_core: counts in, figures out. Pure, stdlib only; imports nothing outside itself.

See kpi_core/README.md and docs/kpi.md.
"""

from kpi_core.counts import PollCounts
from kpi_core.diagnosis import Diagnosis, bottleneck
from kpi_core.figure import Figure
from kpi_core.flags import Flag, Thresholds, flags
from kpi_core.indices import DEFAULT_K, di_office, di_staff, eli
from kpi_core.interval import Z95, signed_score_interval, wilson
from kpi_core.ranking import Ranked, rank
from kpi_core.ratios import exact_conversion, fm_rate, visitor_coverage
from kpi_core.scope import ScopeCounts, ScopeFigures, scope_figures
from kpi_core.tally import count_polls, poll_id

__all__ = [
    "PollCounts",
    "Figure",
    "di_staff",
    "di_office",
    "eli",
    "DEFAULT_K",
    "wilson",
    "signed_score_interval",
    "Z95",
    "exact_conversion",
    "visitor_coverage",
    "fm_rate",
    "Thresholds",
    "Flag",
    "flags",
    "Diagnosis",
    "bottleneck",
    "count_polls",
    "poll_id",
    "ScopeCounts",
    "ScopeFigures",
    "scope_figures",
    "Ranked",
    "rank",
]
