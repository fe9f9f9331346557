"""MQTT topic names of protocol v1: build them, check ids, parse what arrives.

    <root>/<site>/<device>/event    panel -> gateway   QoS 0 or 1 (firmware: 0), not retained
    <root>/<site>/<device>/state    panel -> gateway   QoS 0 or 1 (firmware: 0), retained (+ last will, QoS 1)
    <root>/<site>/<device>/ack      gateway -> panel   QoS 1, retained
    <root>/<site>/<device>/config   gateway -> panel   QoS 1, retained
    <root>/<site>/counts            POS / people counter -> gateway   QoS 1, not retained
    <root>/<site>/transactions      POS -> gateway (one sale a message)  QoS 1, not retained

Every subscriber (gateway, panel) subscribes with QoS 1 (SUBSCRIBE_QOS). Event delivery does
not rest on MQTT QoS but on the panel's journal, the gateway's retained cumulative ack and the
panel's resend on ack timeout (README.md, "Delivery and QoS").

Ids are checked with plain character loops: MicroPython's `re` is too limited to rely on.
"""

from protocol import ProtocolError

DEFAULT_ROOT = "rating/v1"
KINDS = ("event", "state", "ack", "config")  # per-device topics
COUNTS = "counts"  # the per-site counts topic's last segment (parse() reports it as the kind)
TRANSACTIONS = "transactions"  # the per-site sales topic's (the same)

# (qos, retained) per kind: how our publishers send it. A panel may publish event/state with
# QoS 0 or 1 (the firmware uses 0: a PUBACK per event would cost a round trip each, and the
# end-to-end ack makes it redundant); the panel's last will is QoS 1, retained.
PUBLISH = {
    "event": (0, False),
    "state": (0, True),
    "ack": (1, True),
    "config": (1, True),
    "counts": (1, False),
    "transactions": (1, False),
}
SUBSCRIBE_QOS = 1  # the gateway (event, state, counts) and the panel (ack, config)

MAX_ID = 32
MAX_ROOT = 100
_ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-"
_ROOT_CHARS = _ID_CHARS + "_."


def _text(value, field):
    # the panel's MQTT client hands topics over as bytes; paho as str
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode()
        except Exception:
            raise ProtocolError(field, "not valid UTF-8")
    if not isinstance(value, str):
        raise ProtocolError(field, "must be a string, got %s" % type(value).__name__)
    return value


def check_id(value, field):
    """Return `value` if it is a site/device id: 1..32 chars of a-z 0-9 '-'; else ProtocolError."""
    if not isinstance(value, str):
        raise ProtocolError(field, "must be a string id (a-z, 0-9, '-'), got %s" % type(value).__name__)
    if not 1 <= len(value) <= MAX_ID:
        raise ProtocolError(field, "must be 1..%d characters long, got %d" % (MAX_ID, len(value)))
    for ch in value:
        if ch not in _ID_CHARS:
            raise ProtocolError(field, "may only contain a-z, 0-9 and '-', got %r in %r" % (ch, value))
    return value


def check_root(root):
    """Return `root` if it is a usable topic root ("rating/v1"): '/'-separated non-empty segments
    of a-z 0-9 '-' '_' '.'; no wildcards, no leading/trailing '/'. Else ProtocolError("root")."""
    if not isinstance(root, str) or not root:
        raise ProtocolError("root", "must be a non-empty string like %r" % DEFAULT_ROOT)
    if len(root) > MAX_ROOT:
        raise ProtocolError("root", "must be at most %d characters, got %d" % (MAX_ROOT, len(root)))
    for segment in root.split("/"):
        if not segment:
            raise ProtocolError("root", "has an empty segment in %r (no leading, trailing or double '/')" % root)
        for ch in segment:
            if ch not in _ROOT_CHARS:
                raise ProtocolError(
                    "root", "may only contain a-z, 0-9, '-', '_', '.' and '/', got %r in %r" % (ch, root)
                )
    return root


def _check_kind(kind):
    if kind not in KINDS:
        raise ProtocolError("kind", "must be one of %s, got %r" % (", ".join(KINDS), kind))


def device_topic(root, site, device, kind):
    """'<root>/<site>/<device>/<kind>' for kind in KINDS."""
    check_root(root)
    check_id(site, "site")
    check_id(device, "device")
    _check_kind(kind)
    return "%s/%s/%s/%s" % (root, site, device, kind)


def counts_topic(root, site):
    """'<root>/<site>/counts': where a POS or people counter reports a site's counts."""
    check_root(root)
    check_id(site, "site")
    return "%s/%s/%s" % (root, site, COUNTS)


def transactions_topic(root, site):
    """'<root>/<site>/transactions': where a POS reports a site's sales, one a message."""
    check_root(root)
    check_id(site, "site")
    return "%s/%s/%s" % (root, site, TRANSACTIONS)


def gateway_subscriptions(root):
    """The topic filters the gateway subscribes to (what panels, counters and POS publish)."""
    check_root(root)
    return [root + "/+/+/event", root + "/+/+/state", root + "/+/" + COUNTS, root + "/+/" + TRANSACTIONS]


def parse(root, topic):
    """(site, device, kind) of a topic under `root`; device is None for the per-site topics
    (counts, transactions).

    Raises ProtocolError: field "topic" for a foreign root or wrong shape, "site"/"device" for
    bad ids, "kind" for an unknown last segment. Accepts bytes (the panel's client) or str.
    """
    check_root(root)
    topic = _text(topic, "topic")
    prefix = root + "/"
    if not topic.startswith(prefix):
        raise ProtocolError("topic", "%r is not under root %r" % (topic, root))
    parts = topic[len(prefix) :].split("/")
    if len(parts) == 2 and parts[1] in (COUNTS, TRANSACTIONS):
        return check_id(parts[0], "site"), None, parts[1]
    if len(parts) != 3:
        raise ProtocolError("topic", "%r must be <root>/<site>/<device>/<kind> or <root>/<site>/counts" % topic)
    check_id(parts[0], "site")
    check_id(parts[1], "device")
    _check_kind(parts[2])
    return parts[0], parts[1], parts[2]
