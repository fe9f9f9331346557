"""protocol.mqtturl: the one broker-URL parser (gateway, simulator, technician), on both VMs."""

import json

import pytest
from mpy_support import run_micropython

from protocol import ProtocolError, mqtturl

GOOD = [
    ("mqtt://h", ["h", 1883, None, None, False]),
    ("mqtt://u:p@h:1", ["h", 1, "u", "p", False]),
    ("tcp://10.0.0.5:1884", ["10.0.0.5", 1884, None, None, False]),
    ("mqtts://gw.example", ["gw.example", 8883, None, None, True]),
    ("ssl://gw.example:8884", ["gw.example", 8884, None, None, True]),
    ("192.168.1.10", ["192.168.1.10", 1883, None, None, False]),
    ("localhost:1884", ["localhost", 1884, None, None, False]),
    ("mqtt://[::1]:1885", ["::1", 1885, None, None, False]),
    ("mqtt://user@h", ["h", 1883, "user", None, False]),
    ("mqtt://u:p@ss:w@h:2", ["h", 2, "u", "p@ss:w", False]),
    ("MQTT://h:3/", ["h", 3, None, None, False]),
]
BAD = [
    "http://x",
    "mqtt://",
    "mqtt://h:0",
    "mqtt://h:70000",
    "mqtt://h:port",
    "mqtt://h/path",
    "mqtt://u:secret@h:x",
    "mqtt://[::1",
    "mqtt://a b",
    "",
]


@pytest.mark.parametrize("url, want", GOOD)
def test_a_broker_url_gives_host_port_user_password_and_tls(url, want):
    assert list(mqtturl.parse(url)) == want


@pytest.mark.parametrize("url", BAD)
def test_a_bad_broker_url_is_a_protocol_error_naming_the_broker(url):
    with pytest.raises(ProtocolError) as e:
        mqtturl.parse(url)
    assert e.value.field == "broker"


def test_a_password_never_appears_in_the_error_or_the_redacted_url():
    with pytest.raises(ProtocolError) as e:
        mqtturl.parse("mqtt://rating:s3cret@h:x")
    assert "s3cret" not in str(e.value) and "rating:***@h:x" in str(e.value)
    assert mqtturl.redact("mqtt://rating:s3cret@h:1883") == "mqtt://rating:***@h:1883"
    assert mqtturl.redact("mqtt://h:1883") == "mqtt://h:1883"


def test_tls_is_refused_where_it_is_not_supported():
    with pytest.raises(ProtocolError, match="TLS"):
        mqtturl.parse("mqtts://h", tls=False)


@pytest.mark.e2e
def test_the_parser_gives_the_same_answers_on_micropython():
    code = """
import json
from protocol import ProtocolError, mqtturl
out = []
for url in json.loads(%r):
    try:
        out.append(list(mqtturl.parse(url)))
    except ProtocolError as exc:
        out.append(str(exc))
print(json.dumps(out))
""" % json.dumps([u for u, _ in GOOD] + BAD)
    proc = run_micropython(code)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    want = [w for _, w in GOOD]
    for url in BAD:
        try:
            mqtturl.parse(url)
        except ProtocolError as exc:
            want.append(str(exc))
    assert got == want
