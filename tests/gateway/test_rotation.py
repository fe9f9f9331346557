"""The gateway's part of a password rotated over the air (gateway/rotation.py): the config's
password tail and the decisions per panel. The whole rotation against real brokers and the real
firmware: test_password_rotation.py."""

import json

import pytest

from gateway import accounts as acc
from gateway import rotation
from protocol import messages

KEY = ("s1", "a")
PW = "Yq3cL0mX9v_2kT8rWbN5pE1sZa7dHu4J"


def test_the_password_tail_rides_on_the_config_and_comes_off_byte_for_byte():
    base = messages.encode_config({"ver": 3, "question": "Довольны ли Вы?", "kind": "office", "window_s": 30})
    carried = rotation.with_password(base, 4, PW)
    assert json.loads(carried)["pwv"] == 4 and json.loads(carried)["pw"] == PW
    assert messages.decode_config(carried) == messages.decode_config(base)  # the knobs are the same
    # what the panel does (firmware/app.py): cut at the marker, close the object
    i = carried.find(b',"pwv":')
    assert carried[:i] + b"}" == base
    assert rotation.without_password(carried) == (base, True) and rotation.without_password(base) == (base, False)
    # a newer password replaces the tail, never stacks a second one
    assert rotation.with_password(carried, 5, PW[::-1]) == rotation.with_password(base, 5, PW[::-1])
    for ver, pw in ((0, PW), (4, 'a"b'), (4, "")):
        with pytest.raises(ValueError):
            rotation.with_password(base, ver, pw)


@pytest.mark.parametrize(
    "pending, state, delivered, active, want",
    [
        # asked for, panel offline: nothing (it keeps its password until it is back)
        ({KEY: (2, False)}, (False, None, None), {}, {KEY: 1}, []),
        # asked for, panel online: deliver
        ({KEY: (2, False)}, (True, None, None), {}, {KEY: 1}, [("deliver", KEY, 2)]),
        # delivered by this run, not held yet: wait
        ({KEY: (2, True)}, (True, None, None), {KEY: 2}, {KEY: 1}, []),
        # delivered before a restart of the gateway, not held: a fresh one
        ({KEY: (2, True)}, (True, None, None), {}, {KEY: 1}, [("deliver", KEY, 2)]),
        # held: switch the broker, but only while it is online
        ({KEY: (2, True)}, (True, None, 2), {KEY: 2}, {KEY: 1}, [("confirm", KEY, 2)]),
        ({KEY: (2, True)}, (False, None, 2), {KEY: 2}, {KEY: 1}, []),
        # an older delivery's version reported held: not this one's
        ({KEY: (3, True)}, (True, None, 2), {KEY: 3}, {KEY: 1}, []),
        # switched; logged in with it: the config goes back without the password
        ({}, (True, 2, None), {KEY: 2}, {KEY: 2}, [("finish", KEY, 2)]),
        # switched, not seen with it yet: the password stays on the config
        ({}, (False, None, 2), {KEY: 2}, {KEY: 2}, []),
        # cancelled (a USB password, a revoke): the password comes off the config
        ({}, (True, None, 2), {KEY: 2}, {KEY: 3}, [("finish", KEY, 2)]),
        ({}, (True, None, 2), {KEY: 2}, {}, [("finish", KEY, 2)]),
    ],
)
def test_a_rotation_delivers_to_online_panels_confirms_what_they_hold_and_finishes_once_used(
    pending, state, delivered, active, want
):
    assert rotation.decide(pending, {KEY: state}, delivered, active) == want


def test_where_mosquittos_files_are_is_remembered_and_new_panels_get_accounts(any_db):
    assert acc.broker_files(any_db) is None
    acc.remember_broker_files(any_db, "/etc/mosquitto/rating", "rating/v1", "mosquitto", "/run/m.pid", 1)
    acc.remember_broker_files(any_db, "/srv/m", "r/v1", None, None, 2)
    assert acc.broker_files(any_db) == {"folder": "/srv/m", "root": "r/v1", "group": None, "pid_file": None}
    assert acc.new_panels(any_db, [("s1", "a"), ("s1", "b")], 3) == ["panel.s1.a", "panel.s1.b"]
    assert acc.new_panels(any_db, [("s1", "a"), ("s1", "c")], 4) == ["panel.s1.c"]
    acc.revoke(any_db, "panel.s1.a", 5)
    assert acc.new_panels(any_db, [("s1", "a")], 6) == ["panel.s1.a"]  # brought back, no password
    assert acc.accounts(any_db) == []


def test_each_delivery_has_its_own_version(any_db):
    acc.issue_for_usb(any_db, "s1", "a", 1)
    assert acc.rotate(any_db, "s1", "a", 2) == 2
    first, v1 = acc.begin_delivery(any_db, "s1", "a", 3)
    second, v2 = acc.begin_delivery(any_db, "s1", "a", 4)  # a gateway restarted before it was held
    assert (v1, v2) == (2, 3) and first != second
    assert not acc.confirm(any_db, "s1", "a", 2, 5)  # the first delivery's report confirms nothing
    assert acc.confirm(any_db, "s1", "a", 3, 6)
    assert acc.rules_from_db(any_db, "rating/v1").check_password("panel.s1.a", second)
