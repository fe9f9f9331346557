"""A flood from one client (50,000 hostile messages: junk and made-up seqs on a configured
panel's topics, made-up panels and sites, bad topics, two 5 MB payloads) against the gateway
process: the other panels' events are all stored and acked while it lasts, the database grows
by a bounded amount (dead letters budgeted, the rest counted per panel and window), and the
operator can see it (store.refusals, for `rating status`). Figures: bench/README.md, "Hostile
messages"."""

import time

import pytest
from gw_fault_support import Panels, db_bytes, figures, flood, press_and_wait, rss_kb, site_file
from gw_ingest_support import Gateway

from gateway import schema, site, store

SITE = "s1"


@pytest.mark.parametrize("n", [pytest.param(50000, id="50k"), pytest.param(200000, id="200k", marks=pytest.mark.slow)])
def test_a_flood_from_one_client_neither_stops_other_panels_nor_fills_the_database(broker, mqtt_root, tmp_path, n):
    url = "sqlite:///%s" % (tmp_path / "flood.db")
    probes = ["f%d" % i for i in range(5)]
    db = schema.open_database(url)
    site.apply(db, site.parse(site_file(SITE, probes + ["target"])), int(time.time() * 1000), "flood.toml")
    db.close()
    gw = Gateway(broker.url, url, mqtt_root, "gwflood-" + mqtt_root.replace("/", "-")).start()
    panels = Panels(broker, mqtt_root, len(probes), site=SITE)
    try:
        press_and_wait(panels, 2.0, 5.0)  # the probes' first contact, before the flood
        before = db_bytes(url)
        took = {}
        press_and_wait(
            panels,
            12.0,
            5.0,
            fault=lambda: took.setdefault("s", flood(broker, mqtt_root, SITE, "target", n)),
            fault_at=0.1,
        )
        time.sleep(2.0)  # the gateway works off what the broker still holds
        grown = db_bytes(url) - before
        peak_kb = rss_kb(gw.proc.pid)
        result = figures("flood of %d messages" % n, panels, url)
        assert gw.terminate() == 0
    finally:
        panels.close()
        gw.kill()
    stopped = [line for line in gw.lines if "stopped;" in line]
    d = schema.open_database(url)
    try:
        letters = store.dead_letter_count(d, distinct=True)
        refused = store.refusals(d)
        print(
            "FLOOD %d messages in %.1f s: database +%.0f KB, gateway peak RSS %d MB, %d dead letters stored, "
            "%d refused (%s); %s"
            % (
                n,
                took.get("s", 0),
                grown / 1024,
                peak_kb // 1024,
                letters,
                sum(r["messages"] for r in refused),
                ", ".join("%s/%s %s: %d" % (r["site"], r["device"], r["reason"], r["messages"]) for r in refused),
                stopped[-1] if stopped else "",
            )
        )
        assert result["lost"] == 0 and result["stored"] == result["pressed"] and result["duplicates"] == 0, result
        assert grown < 4 * 1024 * 1024, grown  # two 5 MB payloads alone used to add 10 MB
        assert letters <= 2 * 100 + 10  # the target's budget and the shared one (per window)
        assert {(r["site"], r["device"]) for r in refused} <= {(SITE, "target"), ("", "")}
        assert d.scalar("SELECT COUNT(*) FROM panel_state WHERE device LIKE 'made-up%'") == 0
    finally:
        d.close()
