"""What the broker holds retained on the gateway's own topics (each panel's `ack` and `config`)
against what should be there. Pure: the service feeds it messages and publishes its answer.

A broker restarted without persistence (stock Mosquitto, the embedded amqtt) has lost every
retained ack and config: a new or wiped panel then gets no question and a panel that lost its
ack resends what is stored. A client that may write those topics can leave a forged config or
ack there. So on every (re)connect, and every `retained_check_s`, the service subscribes to
`<root>/+/+/ack` and `<root>/+/+/config` (QoS 0), publishes a marker message (not retained)
that the broker delivers after the retained ones, and once the marker (or a timeout) came:

- an ack or config that should be retained and is missing or different is published again;
- a retained ack or config on a topic that should hold none (a panel without an ack, a panel
  not configured) is cleared (an empty retained message).

Only the ack subscription ends there; `+/+/config` stays, so a config published by anyone
else later is corrected at once (`correction()`).
"""

import hashlib
import uuid
from collections.abc import Collection

from protocol import ProtocolError, messages

PASSWORD_TAIL = b',"pwv":'  # gateway/rotation.TAIL
MARKER_SITE = "_gateway"  # not a valid site id: no panel's topic is ever this


def ack_filter(root: str) -> str:
    return root + "/+/+/ack"


def config_filter(root: str) -> str:
    return root + "/+/+/config"


def _digest(kind: str, payload: bytes) -> object:
    """What is compared: the ack's seq, the config's fields, else a hash of the bytes."""
    if kind == "config" and PASSWORD_TAIL in payload:
        # a config carrying a password (gateway/rotation.py): decode_config ignores the tail, so
        # only the bytes tell it from the same config without one
        return ("bytes", hashlib.sha256(payload).hexdigest())
    try:
        if kind == "ack":
            return ("ack", messages.decode_ack(payload))
        config = messages.decode_config(payload)
        return ("config", tuple(sorted((k, repr(v)) for k, v in config.items())))
    except ProtocolError:
        return ("bytes", hashlib.sha256(payload).hexdigest())


def _kind(topic: str) -> str:
    return topic.rsplit("/", 1)[-1]


class Audit:
    """One check of what is retained: feed() what arrives, until done."""

    TIMEOUT_S = 10.0

    def __init__(self, root: str):
        self.root = root
        self.nonce = uuid.uuid4().hex[:12]
        self.marker_topic = "%s/%s/%s/ack" % (root, MARKER_SITE, self.nonce)
        self.marker = b"retained-check " + self.nonce.encode()
        self.seen: dict[str, object] = {}  # topic -> digest of the retained payload
        self.done = False

    def feed(self, topic: str, payload: bytes, retain: bool) -> None:
        """A message on an ack or config topic; returns nothing, sets `done` at the marker."""
        if topic == self.marker_topic:
            if payload == self.marker:
                self.done = True
            return
        if retain and not self.done:
            if payload:
                self.seen[topic] = _digest(_kind(topic), payload)
            else:
                self.seen.pop(topic, None)

    def fixes(self, wanted: dict[str, bytes], skip: Collection[str] = ()) -> tuple[list[tuple[str, bytes]], list[str]]:
        """(publish [(topic, payload)], clear [topic]) to make the retained state what `wanted`
        says; topics in `skip` (our own publishes still in flight) are left alone."""
        publish = [
            (t, p) for t, p in sorted(wanted.items()) if t not in skip and self.seen.get(t) != _digest(_kind(t), p)
        ]
        clear = [t for t in sorted(self.seen) if t not in wanted and t not in skip]
        return publish, clear


def correction(topic: str, payload: bytes, wanted: dict[str, bytes]) -> bytes | None:
    """A config that arrived on `topic` live: the payload to publish over it (ours, or b"" to
    clear it), or None when it is what should be there."""
    want = wanted.get(topic)
    if want is None:
        return b"" if payload else None
    if payload and _digest("config", payload) == _digest("config", want):
        return None
    return want
