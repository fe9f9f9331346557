"""`rating status`: what it lists (panels known only through dead-lettered events too)."""

from gw_ingest_support import GRACE, ROOT, T0, acks_of, bad_event, ev_topic

from gateway import cli_gateway, ingest


def test_status_lists_a_panel_known_only_by_dead_letters(any_db):
    """A panel whose events all fail validation (a protocol the gateway does not know); its
    losses must show in status even without a stored event or state. (Without a state saying
    it journaled those seqs, the ack does not pass them: test_ack_rule.py.)"""
    ing = ingest.Ingestor(any_db, ROOT)
    for seq in (1, 2):
        ing.handle(ev_topic("p9"), bad_event(seq), T0 + seq)
    assert acks_of(ing.flush()) == {}
    report = cli_gateway.status_report(any_db, T0 + 10, GRACE)
    (p,) = [p for p in report["panels"] if p["device"] == "p9"]
    assert (p["lost"], p["lost_ranges"], p["acked_seq"]) == (2, "1-2", None)
