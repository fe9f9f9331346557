"""What the report remembers for rows that repeat it (figure texts, flag texts, period bounds)
is what it would make anew: equal values of another type stay apart (JSON writes 1 and 1.0,
"%s" writes 1 and True apart)."""

import json

from gateway import report_core, report_export
from kpi_core import Figure


def test_a_figure_of_an_int_and_of_an_equal_float_give_their_own_dicts():
    as_int = report_core.fig_dict(Figure(1, 1, 1, 5))
    as_float = report_core.fig_dict(Figure(1.0, 1.0, 1.0, 5))
    assert json.dumps(as_int) != json.dumps(as_float)
    assert json.dumps(report_core.fig_dict(Figure(1, 1, 1, 5))) == json.dumps(as_int)
    as_int["value"] = 7  # a row's dict is its own: the next row's is not changed
    assert report_core.fig_dict(Figure(1, 1, 1, 5))["value"] == 1


def test_a_flag_made_again_is_the_same_and_its_own_dict():
    first = report_core.flag("ru", "fm_pending", "force-majeure rate", n=2)
    again = report_core.flag("ru", "fm_pending", "force-majeure rate", n=2)
    assert first == again and first is not again
    assert "2" in first["message_en"] and first["message"] == first["message_ru"]
    other = report_core.flag("en", "fm_pending", "force-majeure rate", n=3)
    assert "3" in other["message"] and other["message"] == other["message_en"]


def test_local_texts_of_period_bounds():
    assert report_export.local_text("2025-01-06T00:00:00+03:00") == "2025-01-06"
    assert report_export.local_text("2025-01-06T10:30:00+03:00") == "2025-01-06 10:30"
    assert report_export.local_text(None) == ""
