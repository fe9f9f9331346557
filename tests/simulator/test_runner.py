"""The runner's wait and parking rules (simulator/runner.py), without processes: how long a
parked panel's ack may take before its ack timeout is let fire, and how a parked panel's items
wait for it while simulated time goes on."""

import os
import time

from simulator import runner, scenario

SCEN = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "simulator", "scenarios"
)


def _runner(tmp_path):
    return runner.Runner(scenario.load(os.path.join(SCEN, "smoke-day.toml")), str(tmp_path), progress=False)


def test_hold_limit_follows_how_slowly_the_gateway_acks(tmp_path):
    r = _runner(tmp_path)
    r.ack_rtt = 0.002  # a quiet machine: the floor
    assert r._hold_limit() == runner.Runner.HOLD_ACK_S
    r.ack_rtt = 0.2  # a loaded one: 20x the smoothed publish -> ack time, not a resend per ack
    assert r._hold_limit() == 0.2 * runner.Runner.ACK_SLACK
    r.ack_rtt = 60.0  # bounded
    assert r._hold_limit() == runner.Runner.HOLD_MAX_S


def test_hold_limit_is_short_while_the_broker_is_down(tmp_path):
    r = _runner(tmp_path)
    r.ack_rtt = 0.2
    r.broker_down_until = r.now + 60000
    assert r._hold_limit() == runner.Runner.HOLD_FAULT_S


class _Panel:
    """What the heap bookkeeping reads of a virtual panel: its key, its socket (none here)."""

    def __init__(self, key):
        self.key = key

    def socket(self):
        return None


def test_a_parked_panels_item_is_set_aside_and_its_time_counts_as_reached(tmp_path):
    r = _runner(tmp_path)
    vp, other = _Panel(("s1", "p1")), _Panel(("s1", "p2"))
    r.track = {vp.key: runner.Track(), other.key: runner.Track()}
    r.parked[vp.key] = vp
    r.track[vp.key].parked_at = r.now = 1000
    r._push(2000, "edge", (vp, "yes", 1, None))
    r._push(3000, "edge", (other, "yes", 1, None))
    assert r._defer("edge", (vp, "yes", 1, None))
    assert [item[0] for item in r.track[vp.key].deferred] == [2000]
    assert r.now == 2000  # a catch-up runs the parked panel up to here
    assert r._inputs == 2  # still to be handled: the run is not over
    assert not r._defer("edge", (other, "yes", 1, None))  # not parked: runs now


def test_what_a_catching_up_panel_schedules_before_simulated_time_stays_its_own(tmp_path):
    r = _runner(tmp_path)
    vp, other = _Panel(("s1", "p1")), _Panel(("s1", "p2"))
    r.track = {vp.key: runner.Track(), other.key: runner.Track()}
    r._catching, r._caught_to = vp, 10000
    r._push(5000, "boot", (vp, None))  # its power back before simulated time: its own queue
    r._push(15000, "wifi_up", vp)  # after: the shared heap
    r._push(6000, "boot", (other, None))  # another panel's: the shared heap
    assert [item[0] for item in r.track[vp.key].deferred] == [5000]
    assert sorted(item[0] for item in r.heap) == [6000, 15000]


def test_simulated_time_runs_at_most_lag_max_ahead_of_a_parked_panel(tmp_path):
    """Flow control: a gateway that acks slowly holds the panels back instead of a flood."""
    r = _runner(tmp_path)
    vp = _Panel(("s1", "p1"))
    r.track = {vp.key: runner.Track()}
    r.parked[vp.key] = vp
    r.track[vp.key].parked_at = r.now = 1000
    r.track[vp.key].parked_since = time.monotonic()
    r.track[vp.key].last_pub_real = time.monotonic()
    late = 1000 + runner.Runner.LAG_MAX_MS + 1
    r._push(late, "edge", (vp, "yes", 1, None))
    assert r._defer("edge", (vp, "yes", 1, None))
    assert r.heap[0][0] == late and not r.track[vp.key].deferred  # not set aside: awaited
    assert vp.key in r._arrived  # no socket (link down): caught up at once, timeout fires
