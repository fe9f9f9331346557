"""A password delivered over the air on the panel's flash (firmware/secret.py, app.py): kept
whole or not at all, written once however often the retained config comes again, never
replacing the password in use before a login proved it, and read back at boot. The logins
themselves (fallback, switch) against a real broker: test_password_over_the_air.py."""

import json
import os
import types

from panel_rig import Rig

from protocol import messages

NEW = "Yq3cL0mX9v_2kT8rWbN5pE1sZa7dHu4J"
BASE = messages.encode_config({"ver": 1, "window_s": 40})


def carried(ver, pw):
    return BASE[:-1] + b',"pwv":%d,"pw":"%s"}' % (ver, pw.encode())


def rig(tmp_path):
    broker = types.SimpleNamespace(host="127.0.0.1", port=9)  # never connected in these tests
    return Rig(broker, "rating/v1", tmp_path)


def test_a_delivered_password_is_kept_once_and_the_config_is_handled_without_it(tmp_path):
    r = rig(tmp_path)
    panel, flash = r.panel, tmp_path / "flash"
    panel._on_config(carried(2, NEW))
    assert panel.link.pw_new == (2, NEW) and panel.link.pw is None
    assert json.loads((flash / "pw.new").read_text()) == {"pwv": 2, "pw": NEW}
    assert not (flash / "pw.json").exists() and not (flash / "pw.new.tmp").exists()
    assert panel.cfg["remote"]["window_s"] == 40 and "pw" not in panel.cfg["remote"]
    assert panel._cfg_msg == BASE  # the same config without the password changes nothing later
    st = os.stat(flash / "pw.new")
    for _ in range(3):  # the retained config after every connect: no flash write
        panel._on_config(carried(2, NEW))
    assert (os.stat(flash / "pw.new").st_ino, os.stat(flash / "pw.new").st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    panel._on_config(BASE)  # the gateway takes the password off the config
    assert panel.link.pw_new == (2, NEW)


def test_junk_or_an_older_version_changes_nothing(tmp_path):
    r = rig(tmp_path)
    panel, flash = r.panel, tmp_path / "flash"
    for junk in (carried(0, NEW), carried(2, "short"), BASE[:-1] + b',"pwv":2,"pw":7}', BASE[:-1] + b',"pwv":}'):
        panel._on_config(junk)
    assert panel.link.pw_new is None and not (flash / "pw.new").exists()
    panel.link.pw = (5, "x" * 32)
    panel._on_config(carried(4, NEW))  # a stale retained config
    assert panel.link.pw_new is None and not (flash / "pw.new").exists()


def test_at_boot_a_torn_write_leaves_the_password_in_use(tmp_path):
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "pw.json").write_text(json.dumps({"pwv": 3, "pw": "c" * 32}))
    (flash / "pw.new.tmp").write_text('{"pwv": 4, "pw": "dd')  # a power cut while writing
    panel = rig(tmp_path).panel
    assert panel.link.pw == (3, "c" * 32) and panel.link.pw_new is None
    assert "pw" not in json.dumps(panel.state())
    (flash / "pw.new").write_text('{"pwv": 4, "pw"')  # damaged on flash: ignored, never a crash
    panel = rig(tmp_path).panel
    assert panel.link.pw == (3, "c" * 32) and panel.link.pw_new is None
    (flash / "pw.new").write_text(json.dumps({"pwv": 3, "pw": "c" * 32}))  # renamed already
    assert rig(tmp_path).panel.link.pw_new is None
    (flash / "pw.new").write_text(json.dumps({"pwv": 4, "pw": "e" * 32}))
    assert rig(tmp_path).panel.link.pw_new == (4, "e" * 32)
