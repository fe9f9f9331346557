"""A new MQTT password delivered over the air (docs/security.md, "Panel credentials").

The gateway appends `,"pwv":N,"pw":"..."` to the panel's retained config (only this panel and
the gateway may read that topic), and only after the panel logged in with its current password.
Panel._on_config cuts that tail off (the rest is the config as always) and hands it here; this
module is loaded for it and unloaded after, so none of it stays in the panel's heap.

Files next to /config.json, each `{"pwv":N,"pw":"..."}`, written to a .tmp file and renamed
(a power cut leaves the old file or the new one, never half of one):
    pw.new   delivered, not proven yet: tried first at every connect (firmware/link.py); a
             refused login falls back to the current password at once
    pw.json  proven by a login: used instead of /config.json's mqtt.password from then on
The password in use stays on flash until the new one worked; a delivery that is already held
writes nothing (the retained config comes again after every connect: no flash wear).
"""

import json

NEW = "pw.new"
CURRENT = "pw.json"
_MIN = 16  # a generated password is 32 URL-safe characters
_MAX = 64


def take(panel, tail):
    """`tail` is the config payload from `,"pwv":` to its end."""
    link = panel.link
    try:
        d = json.loads(b"{" + bytes(tail[1:]))
        pair = (d["pwv"], d["pw"])
        if type(pair[0]) is not int or pair[0] < 1 or type(pair[1]) is not str or not _MIN <= len(pair[1]) <= _MAX:
            raise ValueError("pwv/pw")
    except Exception as e:
        panel.hal.log("panel: new password ignored: %r" % e)
        return
    if pair == link.pw_new or pair == link.pw:
        return  # held already
    if link.pw is not None and pair[0] <= link.pw[0]:
        return  # older than the one in use (a stale retained config)
    try:
        write(panel.hal.path(NEW), pair)
    except Exception as e:  # not kept: not reported as held, so the gateway does not switch
        panel._fault("pw_write")
        panel.hal.log("panel: new password not kept: %s" % e)
        return
    link.pw_new = pair
    link.pw_old = False
    panel.hal.log("panel: password v%d received" % pair[0])
    link.publish_state_soon()  # state pwn: the gateway may switch the broker to it


def load(cfg, hal):
    """At boot: cfg["pw"] = (the pair in use or None, the pair delivered or None)."""
    cur = _read(hal.path(CURRENT))
    new = _read(hal.path(NEW))
    if new is not None and cur is not None and new[0] <= cur[0]:
        new = None  # already in use (a power cut between the login and the rename's cleanup)
    if cur is not None or new is not None:
        cfg["pw"] = (cur, new)


def _read(path):
    try:
        with open(path) as f:
            d = json.loads(f.read())
        return (d["pwv"], d["pw"])
    except Exception:  # none (the usual case) or unreadable: /config.json's password then
        return None


def write(path, pair):
    import os

    with open(path + ".tmp", "w") as f:
        f.write(json.dumps({"pwv": pair[0], "pw": pair[1]}))
    os.rename(path + ".tmp", path)
