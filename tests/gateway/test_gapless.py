"""store.gapless: the panels for which store.gaps finds nothing, in a few statements for all
panels (what the report's lost-event check asks before reading any panel's gaps), exactly
those: also a panel whose events derivation fed are no longer all stored, or one it never fed."""

from gw_site_support import Panel, sqlite_db, store_events
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import store

NOW = 1736150400000


@settings(max_examples=60, deadline=None)
@given(
    present=st.lists(st.booleans(), max_size=30),
    through=st.integers(0, 35),
    journal=st.one_of(st.none(), st.tuples(st.integers(0, 40), st.integers(0, 40))),
    dead=st.lists(st.integers(1, 35), max_size=2),
)
def test_gapless_panels_are_those_store_gaps_finds_nothing_for(tmp_path_factory, present, through, journal, dead):
    db = sqlite_db(tmp_path_factory.mktemp("g"))
    p = Panel()
    for i in range(len(present)):
        p.press(NOW + i * 1000, "yes")
    stored = [e for e, keep in zip(p.events, present, strict=True) if keep]
    if stored:
        store_events(db, stored)
    if journal is not None:  # the panel's own word on the seqs it still holds
        last, pending = journal
        db.execute(
            "INSERT INTO panel_state (site, device, last_seq, pending) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (site, device) DO UPDATE SET last_seq = excluded.last_seq, pending = excluded.pending",
            ("msk", "desk-1", last, pending),
        )
    for seq in dead:
        db.execute(
            "INSERT INTO dead_seqs (site, device, seq, msg_key, inferred, received_ms) VALUES (?, ?, ?, 'k', 0, ?)"
            " ON CONFLICT DO NOTHING",
            ("msk", "desk-1", seq, NOW),
        )
    panel = ("msk", "desk-1")
    found = store.gaps(db, "msk", "desk-1", NOW + 10**7, 1000, stored_through=through)
    assert (panel in store.gapless(db, {panel: through})) == (found == []), found
    assert store.gapless(db, {}) == set()


def test_gapless_on_either_database_takes_a_fed_panel_whose_events_are_gone_and_leaves_a_hole(any_db):
    panels = [("aaa", "x"), ("msk", "desk-1"), ("msk", "desk-2"), ("zzz", "a")]
    for site_id, device in panels[:3]:
        p = Panel(site_id, device)
        for i in range(5):
            p.press(NOW + i * 1000, "yes")
        store_events(any_db, p.events[:3] + (p.events[4:] if device == "desk-2" else p.events[3:]))
    # zzz/a: derivation fed 7 events, none of which is stored any more (archived); aaa/x: never fed
    through = {("aaa", "x"): 0, ("msk", "desk-1"): 3, ("msk", "desk-2"): 3, ("zzz", "a"): 7}
    assert store.gapless(any_db, through) == set(panels) - {("msk", "desk-2")}
    for (site_id, device), seq in through.items():
        found = store.gaps(any_db, site_id, device, NOW + 10**7, 1000, stored_through=seq)
        assert (found == []) == ((site_id, device) != ("msk", "desk-2"))
