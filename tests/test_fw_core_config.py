"""firmware.config: /config.json validation with field-named errors, remote config merge."""
import copy
import json
import os

import pytest

from firmware import config
from protocol import messages

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(os.path.dirname(HERE), "firmware", "config.example.json")


def example():
    with open(EXAMPLE) as f:
        return json.load(f)


def load(obj):
    return config.load(json.dumps(obj))


def test_fw_core_example_config_loads_with_defaults():
    cfg = load(example())
    assert cfg["site"] == "office-1" and cfg["pins"]["seller"] == 26
    assert cfg["remote"] == {}
    minimal = {"site": "s1", "device": "d1", "wifi": {"ssid": "x"}, "mqtt": {"host": "h"}}
    cfg = load(minimal)
    assert cfg["timings"] == config.DEFAULTS["timings"]
    assert cfg["mqtt"]["port"] == 1883 and cfg["mqtt"]["user"] is None and cfg["wifi"]["password"] == ""
    assert cfg["journal"]["capacity"] == 20000 and cfg["led_brightness"] == 60


def broken(path, value):
    obj = example()
    node = obj
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[k]
    if value is KeyError:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return obj


@pytest.mark.parametrize("path,value,field,words", [
    ("site", KeyError, "site", "missing"),
    ("site", "Office 1", "site", "a-z"),
    ("device", "", "device", "1..32"),
    ("wifi.ssid", KeyError, "wifi.ssid", "missing"),
    ("wifi.ssid", 5, "wifi.ssid", "string"),
    ("mqtt.host", "", "mqtt.host", "non-empty"),
    ("mqtt.port", 0, "mqtt.port", "1..65535"),
    ("mqtt.port", "1883", "mqtt.port", "integer"),
    ("mqtt.port", True, "mqtt.port", "integer"),
    ("mqtt.root", "rating/#", "mqtt.root", "may only contain"),
    ("mqtt.ssl", "no", "mqtt.ssl", "true or false"),
    ("mqtt.user", 3, "mqtt.user", "or null"),
    ("ntp.resync_h", 0, "ntp.resync_h", "1..168"),
    ("pins.yes", 40, "pins.yes", "0..39"),
    ("pins.no", 7, "pins.no", "flash"),
    ("pins.led_rate", 34, "pins.led_rate", "input-only"),
    ("pins.led_seller", 32, "pins.led_seller", "already used by pins.yes"),
    ("pins.active_low", 1, "pins.active_low", "true or false"),
    ("timings.debounce_ms", 1, "timings.debounce_ms", "5..200"),
    ("timings.long_ms", 20000, "timings.long_ms", "500..10000"),
    ("timings.stuck_ms", 1000, "timings.stuck_ms", "5000"),
    ("timings.heartbeat_s", 1.5, "timings.heartbeat_s", "integer"),
    ("journal.capacity", 10, "journal.capacity", "100..40000"),
    ("led_brightness", 101, "led_brightness", "0..100"),
    ("timings.timming", 3, "timings.timming", "unknown field"),
    ("wifi", "Shop", "wifi", "JSON object"),
])
def test_fw_core_config_errors_name_the_field(path, value, field, words):
    with pytest.raises(config.ConfigError) as e:
        load(broken(path, value))
    assert e.value.field == field
    assert words in e.value.problem
    assert str(e.value).startswith(field + ": ")


def test_fw_core_config_cross_field_rules_and_bad_json():
    obj = broken("timings.stuck_ms", 6000)
    obj["timings"]["long_ms"] = 7000
    with pytest.raises(config.ConfigError, match="timings.stuck_ms: must be longer than timings.long_ms"):
        load(obj)
    with pytest.raises(config.ConfigError, match="config.json: not valid JSON"):
        config.load('{"site": "a",}')
    with pytest.raises(config.ConfigError, match="config.json: must be a JSON object"):
        config.load("[]")


def test_fw_core_merge_remote_overrides_and_reverts():
    cfg = load(example())
    original = copy.deepcopy(cfg)
    remote = messages.decode_config(messages.encode_config(
        {"ver": 3, "question": "Вас обслужили быстро?", "kind": "staff", "long_ms": 2000,
         "brightness": 20, "fm_minutes": 15}))
    new, err = config.merge_remote(cfg, remote)
    assert err is None
    assert new["timings"]["long_ms"] == 2000 and new["led_brightness"] == 20
    assert new["remote"]["question"] == "Вас обслужили быстро?" and new["remote"]["ver"] == 3
    assert cfg == original                      # the old cfg is untouched
    # the next remote config replaces the previous one: knobs it leaves out fall back
    newer, err = config.merge_remote(new, {"v": 1, "ver": 4, "debounce_ms": 50})
    assert err is None
    assert newer["timings"]["long_ms"] == 1500 and newer["timings"]["debounce_ms"] == 50
    assert newer["led_brightness"] == 60 and "question" not in newer["remote"]


def test_fw_core_merge_remote_rejects_and_keeps_old():
    cfg, _ = config.merge_remote(load(broken("timings.stuck_ms", 8000)), {"v": 1, "ver": 2, "long_ms": 2500})
    for bad, words in (({"v": 1, "ver": 5, "long_ms": 20}, "long_ms: must be an integer 500..10000"),
                       ({"v": 1, "long_ms": 2000}, "ver: must be an integer"),
                       ({"v": 1, "ver": 6, "long_ms": 9000}, "timings.stuck_ms: must be longer than timings.long_ms (9000)"),
                       ("nope", "config: must be an object")):
        new, err = config.merge_remote(cfg, bad)
        assert new is cfg and words in err, err


def test_fw_core_remote_persists_across_reboot():
    cfg = load(example())
    assert config.persist_remote(cfg) is None
    new, _ = config.merge_remote(cfg, {"v": 1, "ver": 7, "heartbeat_s": 30, "question": "Ок?"})
    saved = config.persist_remote(new)
    assert isinstance(saved, bytes)
    booted, err = config.load_remote(load(example()), saved)
    assert err is None and booted == new
    same, err = config.load_remote(cfg, b'{"v":1,"ver":"x"}')
    assert same is cfg and err.startswith("remote.json: ver")
