"""Remote config on a running Panel: decode the gateway's retained config, merge it over
/config.json, persist it to /remote.json and apply it; at boot, re-apply /remote.json.

Used only at boot and when a config message arrives (at most once per connect, as it is
retained), so app.Panel imports it for that and unloads it after (firmware.unload) together
with firmware.config and protocol.config: none of this code stays in the panel's heap.

    remote.load_saved(panel, text)  # Panel.__init__: /remote.json's text -> panel.cfg (or cfg_err)
    remote.on_config(panel, msg)  # Panel._on_config: the config topic's payload
"""

from firmware.app import REMOTE_FILE
from protocol import config as pconfig

MAX_ERR = 200  # protocol's MAX_TEXT for cfg_err


def load_saved(panel, text):
    hal = panel.hal
    from firmware import config

    cfg, err = config.load_remote(panel.cfg, text)
    if err:
        panel.cfg_err = str(err)[:MAX_ERR]
        hal.log("panel: saved remote config ignored: %s" % err)
    else:
        panel.cfg = cfg


def on_config(panel, msg):
    try:
        remote = pconfig.decode_config(msg)
    except Exception as e:
        _error(panel, e)
        return
    if remote == panel.cfg.get("remote"):
        return  # the retained config again after a reconnect: nothing to write
    from firmware import config

    cfg, err = config.merge_remote(panel.cfg, remote)
    if err:
        _error(panel, err)
        return
    hal = panel.hal
    try:
        _write(hal.path(REMOTE_FILE), config.persist_remote(cfg))
    except Exception as e:
        panel._fault("cfg_write")
        hal.log("panel: remote config not persisted: %s" % e)
    panel.cfg = cfg
    panel.cfg_err = None
    t = cfg["timings"]
    panel.buttons.set_timings(debounce_ms=t["debounce_ms"], long_ms=t["long_ms"], stuck_ms=t["stuck_ms"])
    panel.link.set_timings(t)
    panel.ui.brightness = cfg["led_brightness"]
    panel._leds = None
    panel._ui_next = panel.up
    hal.log("panel: remote config ver %s applied" % remote.get("ver"))
    panel.link.publish_state_soon()


def _error(panel, err):
    err = str(err)[:MAX_ERR]
    panel.hal.log("panel: remote config ignored: %s" % err)
    if err != panel.cfg_err:
        panel.cfg_err = err
        panel.link.publish_state_soon()


def _write(path, text):
    # write-then-rename: a power cut leaves the old file or the new one, never half of one
    import os

    with open(path + ".tmp", "wb" if isinstance(text, bytes) else "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)
