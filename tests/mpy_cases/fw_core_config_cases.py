"""firmware.config under a real MicroPython VM, -X heapsize=100k (run by tests/firmware/test_core_on_micropython.py)."""

from mpytest import raises

from firmware import config


def _example():
    with open("firmware/config.example.json") as f:
        return f.read()


def test_config_example_and_errors():
    cfg = config.load(_example())
    assert cfg["pins"]["led_status"] == 23 and cfg["timings"]["long_ms"] == 1500
    e = raises(config.ConfigError, config.load, _example().replace('"port": 1883', '"port": 0'))
    assert str(e) == "mqtt.port: must be an integer 1..65535, got 0", str(e)
    e = raises(config.ConfigError, config.load, _example().replace('"led_rate": 18', '"led_rate": 36'))
    assert e.field == "pins.led_rate" and "input-only" in e.problem


def test_config_remote_round_trip():
    cfg = config.load(_example())
    new, err = config.merge_remote(cfg, {"v": 1, "ver": 2, "long_ms": 2000, "question": "Всё хорошо?"})
    assert err is None and new["timings"]["long_ms"] == 2000
    again, err = config.load_remote(cfg, config.persist_remote(new))
    assert err is None and again["remote"]["question"] == "Всё хорошо?"
    same, err = config.merge_remote(new, {"v": 1, "ver": 3, "brightness": 500})
    assert same is new and err.startswith("brightness:")
