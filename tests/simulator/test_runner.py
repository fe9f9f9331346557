"""The runner's wait rules (simulator/runner.py), without processes: how long a parked panel's
ack may take before its ack timeout is let fire."""

import os

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
