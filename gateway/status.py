"""What `rating status` says about each panel: the fleet's rows (gateway/fleet.py, judged by
gateway/panelhealth.py, the same as the web console's fleet page) for every panel, problems
first, and the dead letters. States and problem codes: gateway/panelhealth.py."""

from gateway import fleet, panelhealth, store
from gateway import site as site_mod

DEFAULT_HEARTBEAT_S = panelhealth.DEFAULT_HEARTBEAT_S
judge = panelhealth.judge


def report(db, now_ms, grace_ms):
    """Every panel configured or ever heard of, judged, problems first; and the dead letters."""
    panels = fleet.add_gaps(db, fleet.rows(db, site_mod.load(db), now_ms), now_ms, grace_ms)
    panels.sort(key=panelhealth.sort_key)
    return {
        "now_ms": now_ms,
        "panels": panels,
        "dead_letters": store.dead_letter_count(db, distinct=True),
        "dead_letter_messages": store.dead_letter_count(db),
    }
