"""`rating status`: what it lists (panels known only through dead-lettered events too)."""

from gw_ingest_support import GRACE, ROOT, T0, acks_of, bad_event, ev_topic

from gateway import cli_gateway, ingest, times


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


# ---- honest status: heartbeat, never seen, config, firmware, signal, reset, problems first ----

import json as _json  # noqa: E402

from gw_site_support import SITE_TOML, apply_site, sqlite_db  # noqa: E402

from gateway import configpush, status  # noqa: E402
from protocol import messages  # noqa: E402

NOW = 1736150400000  # 2025-01-06T08:00Z = 11:00 in Moscow
MINUTE = 60000


def state_msg(cfg=2, rssi=-60, fw="1.4.0"):
    return messages.encode_state(
        {
            "online": True,
            "boot": 3,
            "up": 1000,
            "t": NOW,
            "fw": fw,
            "seq": 0,
            "pending": 0,
            "dropped": 0,
            "heap": 40000,
            "rssi": rssi,
            "faults": [],
            "cfg": cfg,
            "cfg_err": None,
        }
    )


def office(tmp_path, extra=""):
    """The msk office of the site file (desk-1, exit, door; heartbeat of door 600 s), with desk-1
    heard 18 minutes ago, door 18 minutes ago, exit never."""
    db = sqlite_db(tmp_path)
    text = SITE_TOML.replace('question = "loyalty"', 'question = "loyalty"\nheartbeat_s = 600', 1) + extra
    apply_site(db, text, NOW - 60 * MINUTE)
    ing = ingest.Ingestor(db, ROOT)
    for device, cfg, rssi in (("desk-1", 2, -60), ("door", 1, -88)):
        ing.handle("%s/msk/%s/state" % (ROOT, device), state_msg(cfg, rssi), NOW - 18 * MINUTE)
    ing.flush()
    for topic, payload in configpush.due(db, NOW - 30 * MINUTE):
        configpush.mark_pushed(db, topic, payload, NOW - 30 * MINUTE)
    return db


def test_a_panel_silent_for_three_heartbeats_is_stale_and_a_configured_one_never_seen_is_listed(tmp_path):
    db = office(tmp_path)
    report = status.report(db, NOW, GRACE)
    by = {p["device"]: p for p in report["panels"]}
    assert set(by) == {"desk-1", "door", "exit"}
    # desk-1 said it was online 18 min ago, heartbeat 60 s: that is not online any more
    assert by["desk-1"]["state"] == "stale" and "stale" in by["desk-1"]["problems"]
    assert by["desk-1"]["heartbeat_s"] == status.DEFAULT_HEARTBEAT_S
    # the door panel's heartbeat is 600 s (site file): 18 min is within 3 heartbeats
    assert by["door"]["state"] == "online" and by["door"]["heartbeat_s"] == 600
    assert by["exit"]["state"] == "never_seen" and by["exit"]["problems"] == ["never_seen"]
    assert by["exit"]["configured"] and by["exit"]["last_seen_ms"] is None


def test_status_shows_config_pushed_against_applied_firmware_signal_and_sorts_problems_first(tmp_path):
    db = office(tmp_path)
    report = status.report(db, NOW - 17 * MINUTE, GRACE)
    by = {p["device"]: p for p in report["panels"]}
    assert by["desk-1"]["state"] == "online" and by["desk-1"]["fw"] == "1.4.0"
    assert (by["desk-1"]["cfg"], by["desk-1"]["cfg_pushed"]) == (2, 1) and by["desk-1"]["problems"] == []
    assert (by["door"]["cfg"], by["door"]["cfg_pushed"]) == (1, 1)
    assert by["door"]["rssi"] == -88 and by["door"]["problems"] == ["weak_signal"]
    db.execute("UPDATE panel_state SET cfg = 0 WHERE device = 'door'")
    by = {p["device"]: p for p in status.report(db, NOW - 17 * MINUTE, GRACE)["panels"]}
    assert by["door"]["problems"] == ["config_pending", "weak_signal"]
    order = [p["device"] for p in status.report(db, NOW - 17 * MINUTE, GRACE)["panels"]]
    assert order == ["exit", "door", "desk-1"]  # never seen, then config/signal, then the healthy one


def test_status_judges_reset_cause_and_will():
    base = {"last_seen_ms": NOW, "online": 1, "cfg": 1, "rssi": -50, "faults": "[]"}
    assert status.judge(dict(base, reset="watchdog"), True, 60, 1, NOW) == ("online", ["watchdog"])
    assert status.judge(dict(base, reset="power_on"), True, 60, 1, NOW) == ("online", [])
    assert status.judge(dict(base, online=0), True, 60, 1, NOW) == ("offline", ["offline"])
    assert status.judge({}, False, 60, None, NOW) == ("never_seen", [])  # known only by dead letters
    assert status.judge(dict(base, faults='["stuck:yes"]', cfg_err="bad"), True, 60, 1, NOW)[1] == [
        "config_error",
        "faults",
    ]


def test_the_status_table_shows_times_in_the_offices_zone_and_the_problems(tmp_path, capsys):
    from rating import cli

    office(tmp_path)
    url = "sqlite:///%s" % (tmp_path / "rating.db")
    assert cli.main(["status", "--db", url, "--lang", "en"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[2].startswith("msk/exit ") and "NEVER SEEN" in lines[2] and "configured, never seen" in lines[2]
    desk = [line for line in lines if line.startswith("msk/desk-1")][0]
    # 18 minutes before the wall clock of this run, in Moscow time and saying so
    assert "MSK" in desk and "1.4.0" in desk and "-60 dBm" in desk
    seen = json_status(cli, url, capsys)
    desk_ms = [p for p in seen["panels"] if p["device"] == "desk-1"][0]["last_seen_ms"]
    assert times.format_time(desk_ms, times.zone("Europe/Moscow")) in desk


def json_status(cli, url, capsys):
    assert cli.main(["status", "--db", url, "--format", "json"]) == 0
    return _json.loads(capsys.readouterr().out)


def test_the_gateway_knows_the_firmwares_default_heartbeat():
    from firmware import config

    assert config.DEFAULTS["timings"]["heartbeat_s"] == status.DEFAULT_HEARTBEAT_S


# ---- status at chain scale: no walk over every stored event ------------------------------------

import re as _re  # noqa: E402

from gw_site_support import Panel, store_events  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from gateway import derive, store  # noqa: E402


def _statements(db, call):
    seen = []
    db.conn.set_trace_callback(seen.append)
    try:
        call()
    finally:
        db.conn.set_trace_callback(None)
    return [s for s in seen if "raw_events" in s]


def test_status_reads_only_the_events_above_what_derivation_knows_complete(tmp_path):
    """A derived panel's events up to the seq derivation fed complete are not read again: every
    statement on raw_events is an index seek (LIMIT 1 / one seq) or a range above that seq."""
    db = sqlite_db(tmp_path)
    apply_site(db, SITE_TOML, NOW)
    p = Panel()
    for i in range(50):
        p.poll(NOW + i * 60000, "yes")
    store_events(db, p.events)
    derive.update(db, [("msk", "desk-1")], NOW + 3600000)
    report = status.report(db, NOW + 3600000, 60000)
    assert [(x["device"], x["lost"]) for x in report["panels"] if x["device"] == "desk-1"] == [("desk-1", 0)]
    statements = _statements(db, lambda: status.report(db, NOW + 3600000, 60000))
    for sql in statements:
        if "device = 'desk-1'" not in sql and "site = 'msk' AND device" in sql:
            continue  # the configured panels that never sent anything
        seek = (
            "LIMIT 1" in sql
            or sql.startswith("SELECT MAX(seq) FROM raw_events WHERE site = ")
            or "r.seq = d.seq" in sql  # one lookup per dead-lettered seq
            or ("MAX(r.seq)" in sql and "r.seq >= t.through" in sql)  # store.gapless: seeks + range above
        )
        above = _re.search(r"seq (>=|=|>) (\d+)", sql)
        assert seek or (above and int(above.group(2)) > 1), sql


@settings(max_examples=40, deadline=None)
@given(
    present=st.lists(st.booleans(), min_size=1, max_size=40),
    fed=st.integers(0, 40),
)
def test_gaps_read_from_the_complete_prefix_are_the_gaps_of_every_event(tmp_path_factory, present, fed):
    db = sqlite_db(tmp_path_factory.mktemp("g"))
    p = Panel()
    for i in range(len(present)):
        p.press(NOW + i * 1000, "yes")
    store_events(db, [e for e, keep in zip(p.events, present, strict=True) if keep])
    # derivation's knowledge: the longest stored prefix 1..k, at most `fed` (it may lag behind)
    k = 0
    while k < min(fed, len(present)) and present[k]:
        k += 1
    full = store.gaps(db, "msk", "desk-1", NOW + 10**7, 1000)
    assert store.gaps(db, "msk", "desk-1", NOW + 10**7, 1000, stored_through=k) == full
    assert (("msk", "desk-1") in store.gapless(db, {("msk", "desk-1"): k})) == (full == [])
    assert store.event_panels(db) == ([("msk", "desk-1")] if any(present) else [])


def test_panels_and_gapless_panels_on_either_database(any_db):
    panels = [("aaa", "x"), ("msk", "desk-1"), ("msk", "desk-2"), ("zzz", "a")]
    for site_id, device in panels:
        p = Panel(site_id, device)
        for i in range(5):
            p.press(NOW + i * 1000, "yes")
        store_events(any_db, p.events[:3] + (p.events[4:] if device == "desk-2" else p.events[3:]))
    assert store.event_panels(any_db) == panels
    assert store.gapless(any_db, dict.fromkeys(panels, 3)) == set(panels) - {("msk", "desk-2")}
    assert store.gapless(any_db, {}) == set()


# ---- one judgement: `rating status` and the console's fleet page ----

from gateway import fleet, panelhealth  # noqa: E402
from gateway import site as site_mod  # noqa: E402


def test_the_fleet_page_and_status_judge_every_panel_alike(tmp_path):
    """The console's fleet rows and `rating status` come from one module (gateway/panelhealth.py):
    the door panel with a 600 s heartbeat silent for 18 minutes is online in both, desk-1
    (60 s) stale in both, exit never seen in both, with the same problems."""
    db = office(tmp_path)
    rows = fleet.add_gaps(db, fleet.rows(db, site_mod.load(db), NOW), NOW, GRACE)
    by_fleet = {p["device"]: (p["state"], p["problems"], p["cfg"], p["cfg_pushed"]) for p in rows}
    by_status = {
        p["device"]: (p["state"], p["problems"], p["cfg"], p["cfg_pushed"])
        for p in status.report(db, NOW, GRACE)["panels"]
    }
    assert by_fleet == by_status
    assert by_fleet["door"][0] == "online" and by_fleet["desk-1"][0] == "stale"
    assert by_fleet["exit"][:2] == ("never_seen", ["never_seen"])
    assert panelhealth.summary(rows)["stale"] == 1 and panelhealth.summary(rows)["never_seen"] == 1


def test_a_watchdog_reset_reported_in_the_state_message_shows_in_status(tmp_path):
    """The reset cause lives in the stored state message (no column of its own)."""
    db = office(tmp_path)
    payload = _json.loads(state_msg())
    payload["reset"] = "watchdog"
    ing = ingest.Ingestor(db, ROOT)
    ing.handle("%s/msk/desk-1/state" % ROOT, _json.dumps(payload).encode(), NOW - MINUTE)
    ing.flush()
    (desk,) = [p for p in status.report(db, NOW, GRACE)["panels"] if p["device"] == "desk-1"]
    assert desk["reset"] == "watchdog" and desk["problems"] == ["watchdog"]
