"""The panel's lean payload code (protocol/panel.py) agrees with the checking one
(protocol.messages): on CPython here, on the MicroPython VM through mpytest. And the firmware's
own state message, built by a running Panel, passes the gateway's checks."""

import sys

import pytest
from mpy_support import CASES_DIR, check_mpy_cases

sys.path.insert(0, CASES_DIR)
import protocol_panel_cases as cases  # noqa: E402  (shared with the MicroPython run)


def test_protocol_panel_decode_ack_agrees_with_messages():
    cases.test_decode_ack_agrees_with_messages_on_every_vector()


def test_protocol_panel_encoders_match_messages():
    cases.test_encode_event_same_bytes_as_messages()
    cases.test_encode_state_and_will_decode_as_sent()


@pytest.mark.e2e
def test_protocol_panel_cases_micropython():
    proc = check_mpy_cases("protocol_panel_cases")
    assert "3 passed, 0 failed" in proc.stdout
