"""The config each panel should run (retained on its `config` topic), from the settings history.

The gateway service calls `due(db)` every few seconds, publishes each (topic, payload) retained
with QoS 1 and then calls `mark_pushed(db, topic, payload)`. A panel's desired config is: the key
question text in the deployment's language (with {employee} replaced by the name of the
employee on shift at that panel), the question kind, window_s, rearm_s and fm_minutes. When it
differs from the last one pushed, a new message with `ver` one higher is due.
"""

import json
import time

from gateway import site as site_mod
from protocol import messages, topics

CONFIG_KIND = "config"


def desired(history, site, device, now_ms):
    """The config knobs (without ver) the panel should run at now_ms, or None if it has none."""
    panel = history.panel(site, device, now_ms)
    if panel is None:
        return None
    out = {k: panel[k] for k in ("window_s", "rearm_s", "fm_minutes", "heartbeat_s") if panel.get(k) is not None}
    question = history.question(panel.get("question"), now_ms)
    if question:
        lang = history.deployment(now_ms)["lang"]
        text = question.get("text_" + lang) or question.get("text_ru") or question.get("text_en")
        if "{employee}" in text:
            employee = history.employee_at(site, device, now_ms)
            person = (history.get("employee", employee, now_ms) or {}) if employee else {}
            name = person.get("in_question") or person.get("name") or ""
            text = " ".join(text.replace("{employee}", name).split())
            for mark in "?!.,:;":  # nobody on shift: "менеджера ?" -> "менеджера?"
                text = text.replace(" " + mark, mark)
        out["question"] = text[: messages.MAX_QUESTION]
        out["kind"] = question["kind"]
    return out


def _last_pushed(db):
    """{(site, device): (ver, knobs-without-ver)} of the newest config pushed to each panel."""
    out = {}
    for row in db.query("SELECT site, device, ver, payload FROM config_pushes ORDER BY ver"):
        knobs = json.loads(row["payload"])
        knobs.pop("ver", None)
        knobs.pop("v", None)
        out[(row["site"], row["device"])] = (row["ver"], knobs)
    return out


def pushed(db):
    """{(site, device): (ver, knobs)} of the config last pushed to each panel (`rating status`)."""
    return _last_pushed(db)


def due(db, now_ms=None, root=topics.DEFAULT_ROOT, history=None):
    """[(topic, payload_bytes)] for every panel whose desired config differs from the last pushed."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    history = history or site_mod.load(db)
    last = _last_pushed(db)
    out = []
    for site, device in history.panels(now_ms):
        want = desired(history, site, device, now_ms)
        if not want:
            continue
        ver, knobs = last.get((site, device), (0, None))
        # compare what the panel would decode, so formatting differences never cause a push
        normal = messages.decode_config(messages.encode_config(dict(want, ver=1)))
        normal.pop("ver")
        normal.pop("v")
        if knobs == normal:
            continue
        payload = messages.encode_config(dict(want, ver=ver + 1))
        out.append((topics.device_topic(root, site, device, CONFIG_KIND), payload))
    return out


def mark_pushed(db, topic, payload, now_ms=None):
    """Record that `payload` was published (retained) on `topic`: it is now the panel's config."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    parts = topic.split("/")
    if len(parts) < 4 or parts[-1] != CONFIG_KIND:
        raise ValueError("topic: expected <root>/<site>/<device>/config, got %r" % (topic,))
    site, device = parts[-3], parts[-2]
    config = messages.decode_config(payload)
    text = payload.decode("utf-8") if isinstance(payload, (bytes, bytearray)) else payload
    db.execute(
        "INSERT INTO config_pushes (site, device, ver, payload, pushed_ms) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (site, device, ver) DO NOTHING",
        (site, device, config["ver"], text, now_ms),
    )


def pushed_versions(db):
    """{(site, device): ver} of the newest config pushed to each panel (what `state.cfg` should
    reach once the panel applied it)."""
    return {key: ver for key, (ver, _knobs) in _last_pushed(db).items()}


def in_force(db, root=topics.DEFAULT_ROOT, now_ms=None, history=None):
    """{topic: payload_bytes} of the configs the broker should hold retained: the last one pushed
    to each panel configured at now_ms (gateway/retained.py checks the broker against it)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    history = history or site_mod.load(db)
    configured = set(history.panels(now_ms))
    out = {}
    for row in db.query("SELECT site, device, ver, payload FROM config_pushes ORDER BY ver"):
        key = (row["site"], row["device"])
        if key in configured:
            out[topics.device_topic(root, key[0], key[1], CONFIG_KIND)] = row["payload"].encode("utf-8")
    return out
