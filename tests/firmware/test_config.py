"""firmware.config: /config.json validation with field-named errors, remote config merge."""

import copy
import json
import os

import pytest

from firmware import config
from protocol import messages

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/
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


@pytest.mark.e2e
@pytest.mark.parametrize(
    "path,value,field,words",
    [
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
        ("mqtt.ssl", True, "mqtt.ssl", "TLS is not supported on the panel"),
        ("mqtt.user", 3, "mqtt.user", "or null"),
        ("mqtt.user", "", "mqtt.user", "non-empty"),
        ("pins.external_pull", "yes", "pins.external_pull", "true or false"),
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
    ],
)
def test_fw_core_config_errors_name_the_field(path, value, field, words):
    with pytest.raises(config.ConfigError) as e:
        load(broken(path, value))
    assert e.value.field == field
    assert words in e.value.problem
    assert str(e.value).startswith(field + ": ")


@pytest.mark.e2e
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
    remote = messages.decode_config(
        messages.encode_config(
            {
                "ver": 3,
                "question": "Вас обслужили быстро?",
                "kind": "staff",
                "long_ms": 2000,
                "brightness": 20,
                "fm_minutes": 15,
            }
        )
    )
    new, err = config.merge_remote(cfg, remote)
    assert err is None
    assert new["timings"]["long_ms"] == 2000 and new["led_brightness"] == 20
    assert new["remote"]["question"] == "Вас обслужили быстро?" and new["remote"]["ver"] == 3
    assert cfg == original  # the old cfg is untouched
    # the next remote config replaces the previous one: knobs it leaves out fall back
    newer, err = config.merge_remote(new, {"v": 1, "ver": 4, "debounce_ms": 50})
    assert err is None
    assert newer["timings"]["long_ms"] == 1500 and newer["timings"]["debounce_ms"] == 50
    assert newer["led_brightness"] == 60 and "question" not in newer["remote"]


@pytest.mark.e2e
def test_fw_core_merge_remote_rejects_and_keeps_old():
    cfg, _ = config.merge_remote(load(broken("timings.stuck_ms", 8000)), {"v": 1, "ver": 2, "long_ms": 2500})
    for bad, words in (
        ({"v": 1, "ver": 5, "long_ms": 20}, "long_ms: must be an integer 500..10000"),
        ({"v": 1, "long_ms": 2000}, "ver: must be an integer"),
        ({"v": 1, "ver": 6, "long_ms": 9000}, "timings.stuck_ms: must be longer than timings.long_ms (9000)"),
        ("nope", "config: must be an object"),
    ):
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


# ---- chips: the plain ESP32 and the ESP32-S3 (issue 3) ------------------------------------


def minimal(pins=None):
    obj = {"site": "s1", "device": "d1", "wifi": {"ssid": "x"}, "mqtt": {"host": "h"}}
    if pins is not None:
        obj["pins"] = pins
    return obj


ESP32_MAP = {
    "yes": 32,
    "no": 33,
    "unsure": 25,
    "seller": 26,
    "led_rate": 18,
    "led_thanks": 19,
    "led_status": 23,
    "led_seller": 21,
    "active_low": True,
    "external_pull": False,
}
S3_MAP = {
    "yes": 4,
    "no": 5,
    "unsure": 6,
    "seller": 7,
    "led_rate": 15,
    "led_thanks": 16,
    "led_status": 17,
    "led_seller": 18,
    "active_low": True,
    "external_pull": False,
}


def with_pin(chip, key, p):
    """The chip's default map with `key` on GPIO p (a default already on p takes key's old pin)."""
    pins = dict(S3_MAP if chip == "esp32s3" else ESP32_MAP)
    for other in config.BUTTON_PINS + config.LED_PINS:
        if pins[other] == p:
            pins[other] = pins[key]
    pins[key] = p
    return minimal(pins)


def problem(chip, key, p):
    try:
        config.load(json.dumps(with_pin(chip, key, p)), chip)
    except config.ConfigError as e:
        assert e.field == "pins." + key, str(e)
        return e.problem
    return None


def test_fw_core_config_defaults_per_chip():
    assert config.DEFAULTS["pins"] == ESP32_MAP  # the ESP32 map stays the default
    assert load(minimal())["pins"] == ESP32_MAP
    assert config.load(json.dumps(minimal()), "esp32")["pins"] == ESP32_MAP
    s3 = config.load(json.dumps(minimal()), "esp32s3")
    assert s3["pins"] == S3_MAP
    # partly given: the rest comes from the chip's own map
    s3 = config.load(json.dumps(minimal({"yes": 8, "active_low": False})), "esp32s3")
    assert s3["pins"] == dict(S3_MAP, yes=8, active_low=False)
    # and a clash with a filled-in default still names a field
    with pytest.raises(config.ConfigError) as e:
        config.load(json.dumps(minimal({"yes": 15})), "esp32s3")
    assert e.value.field == "pins.led_rate" and "already used by pins.yes" in e.value.problem
    # each chip's map is wrong for the other one, and says so per field
    with pytest.raises(config.ConfigError, match=r"^pins\.yes: GPIO 32 .*flash"):
        config.load(json.dumps(minimal(ESP32_MAP)), "esp32s3")
    with pytest.raises(config.ConfigError, match=r"^pins\.unsure: GPIO 6 cannot be used"):
        config.load(json.dumps(minimal(S3_MAP)), "esp32")


@pytest.mark.parametrize(
    "key,p,message",
    [
        ("yes", 22, "GPIO 22 does not exist on the ESP32-S3 (0..21, 26..48)"),
        ("led_rate", 25, "GPIO 25 does not exist on the ESP32-S3 (0..21, 26..48)"),
        ("yes", 49, "must be an ESP32-S3 GPIO number 0..48, got 49"),
        ("yes", -1, "must be an ESP32-S3 GPIO number 0..48, got -1"),
        ("seller", True, "must be an ESP32-S3 GPIO number 0..48, got true"),
    ],
)
def test_fw_core_config_s3_exact_messages(key, p, message):
    with pytest.raises(config.ConfigError) as e:
        config.load(json.dumps(with_pin("esp32s3", key, p)), "esp32s3")
    assert str(e.value) == "pins.%s: %s" % (key, message)


@pytest.mark.parametrize(
    "pins,words",
    [
        ((26, 29, 32), ("SPI flash", "26..32")),
        ((33, 35, 37), ("octal", "-R8", "-R16", "WROOM-2", "33..37")),
        ((19, 20), ("USB", "19/20", "console")),
        ((43, 44), ("UART0", "console")),
        ((0,), ("BOOT strapping pin", "flasher")),
        ((3,), ("strapping", "JTAG")),
        ((45,), ("strapping", "flash voltage")),
        ((46,), ("strapping", "boot mode")),
    ],
)
def test_fw_core_config_s3_rules_say_why(pins, words):
    for p in pins:
        for key in ("seller", "led_status"):  # a button and an LED alike
            text = problem("esp32s3", key, p)
            assert text and text.startswith("GPIO %d " % p), (p, key, text)
            for w in words:
                assert w in text, (p, key, text)


def test_fw_core_config_s3_accepts_exactly_the_free_pins():
    free = set(range(1, 3)) | set(range(4, 19)) | {21} | set(range(38, 43)) | {47, 48}
    for p in range(-1, 50):
        assert (problem("esp32s3", "yes", p) is None) == (p in free), (p, problem("esp32s3", "yes", p))
        # no input-only pins on the S3: an LED may go wherever a button may
        assert (problem("esp32s3", "led_rate", p) is None) == (p in free), p


def test_fw_core_config_esp32_rules_unchanged_but_boot_console_and_mtdi():
    gone = {6, 7, 8, 9, 10, 11, 20, 24, 28, 29, 30, 31}
    for p in range(-1, 41):
        button, led = problem("esp32", "yes", p), problem("esp32", "led_rate", p)
        if p < 0 or p > 39:
            assert button == led == "must be an ESP32 GPIO number 0..39, got %d" % p
        elif p in gone:
            assert button == led == ("GPIO %d cannot be used (6..11 are the flash, 20/24/28..31 do not exist)" % p)
        elif p == 0:  # BOOT: low at reset waits for a flasher
            assert "BOOT strapping pin" in button and button == led, button
        elif p in (1, 3):  # UART0: the ESP32's only serial console
            assert "UART0" in button and "console" in button and button == led, button
        elif p == 12:  # MTDI: high at reset = 1.8 V flash, the module does not boot
            assert "strapping" in button and "flash voltage" in button, button
            assert "module does not boot" in button
            assert led is None  # an LED to GND pulls it low, which is the safe level
        elif p >= 34:  # no internal pull resistors: a button floats (see the next test)
            assert button == (
                "GPIO %d has no internal pull-up/down (34..39): a button there floats; "
                "wire a resistor and set pins.external_pull" % p
            )
            assert led == "GPIO %d is input-only (34..39); an LED needs an output pin" % p
        else:
            assert button is None and led is None, (p, button, led)
    # the default chip is the plain ESP32
    with pytest.raises(config.ConfigError, match="0..39"):
        load(with_pin("esp32", "yes", 40))


def test_fw_core_config_s3_remote_config_keeps_the_chip():
    """A remote config re-validates the whole cfg: on an S3 it must use the S3 rules."""
    cfg = config.load(json.dumps(minimal()), "esp32s3")
    new, err = config.merge_remote(cfg, {"v": 1, "ver": 2, "long_ms": 2000})
    assert err is None and new["timings"]["long_ms"] == 2000 and new["pins"] == S3_MAP
    again, err = config.load_remote(config.load(json.dumps(minimal()), "esp32s3"), config.persist_remote(new))
    assert err is None and again == new
    assert config.validate(dict(new), "esp32s3")["pins"] == S3_MAP
    with pytest.raises(config.ConfigError, match="pins.unsure: GPIO 6 cannot be used"):
        config.validate(dict(new), "esp32")  # an explicit chip wins


def test_fw_core_boot_detects_the_chip_from_the_machine_string(tmp_path):
    from firmware import boot

    assert boot.chip("Generic ESP32S3 module with ESP32S3") == "esp32s3"
    assert boot.chip("ESP32S3 module (spiram octal) with ESP32S3") == "esp32s3"
    assert boot.chip("Generic ESP32 module with ESP32") == "esp32"
    # the SPIRAM images run on WROVER modules (PSRAM on 16/17); the ATOM is a PICO-D4 (flash)
    assert boot.chip("Generic ESP32 module with SPIRAM with ESP32") == "esp32wrover"
    assert boot.chip("M5Stack ATOM with ESP32") == "esp32wrover"
    assert boot.chip("M5Stack AtomS3 Lite with ESP32S3") == "esp32s3"
    assert boot.chip("linux [GCC 14.2.1] version") == "esp32"  # the unix port, tests
    assert boot.chip("") == "esp32"
    path = tmp_path / "config.json"
    path.write_text(json.dumps(minimal(S3_MAP)))
    cfg, err = boot.read_config(str(path), "esp32s3")
    assert err is None and cfg["pins"] == S3_MAP
    cfg, err = boot.read_config(str(path))  # plain ESP32 rules
    assert cfg is None and err.startswith("pins.unsure: GPIO 6 cannot be used")
    # the config-error blinker must not touch ESP32 pins on an S3 (32 is its flash there)
    got = []
    boot._hal_for_error(got.append, "esp32s3")
    boot._hal_for_error(got.append)
    assert got == [S3_MAP, ESP32_MAP]


def test_fw_core_deploy_validates_with_the_boards_chip():
    """`rating device deploy` checks the file before copying it, with the probed board's chip."""
    from technician import panelconfig
    from technician.errors import DeviceError

    given = minimal({"yes": 38, "led_rate": 39})
    text, full = panelconfig.validate(given, "esp32s3")
    assert full["pins"] == dict(S3_MAP, yes=38, led_rate=39)
    with pytest.raises(DeviceError, match="pins.yes: GPIO 38 has no internal pull-up"):
        panelconfig.validate(given)  # plain ESP32 rules: a button on 38 floats
    with pytest.raises(DeviceError, match="pins.led_rate: GPIO 39 is input-only"):
        panelconfig.validate(dict(given, pins={"yes": 38, "led_rate": 39, "external_pull": True}))


@pytest.mark.e2e
def test_fw_core_config_s3_on_the_micropython_vm():
    from mpy_support import run_micropython

    code = "\n".join(
        [
            "import json",
            "from firmware import config, boot",
            "c = boot.chip('Generic ESP32S3 module with ESP32S3')",
            "cfg = config.load(json.dumps(%r), c)" % minimal(),
            "print('PINS', sorted(cfg['pins'].items()))",
            "try:",
            "    config.load(json.dumps(%r), c)" % minimal({"led_seller": 35}),
            "except config.ConfigError as e:",
            "    print('ERR', e)",
        ]
    )
    proc = run_micropython(code)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PINS %s" % sorted(S3_MAP.items()) in proc.stdout, proc.stdout
    assert "ERR pins.led_seller: GPIO 35 is the octal" in proc.stdout, proc.stdout


def test_fw_core_selftest_from_the_repl_uses_the_boards_chip(monkeypatch, capsys, tmp_path):
    """`import firmware.selftest as s; s.run()` reads /config.json itself: on an S3 with the
    S3's rules (with the ESP32's it fell back to the ESP32 pins, the S3's flash pins)."""
    import sys

    from firmware import selftest
    from simulator.host_hal import HostHal
    from simulator.services import free_port

    path = tmp_path / "config.json"
    obj = minimal(S3_MAP)
    obj["mqtt"] = {"host": "127.0.0.1", "port": free_port()}
    path.write_text(json.dumps(obj))
    monkeypatch.setattr(sys.implementation, "_machine", "Generic ESP32S3 module with ESP32S3", raising=False)
    selftest.run(seconds=0, hal=HostHal(data_dir=str(tmp_path)), config_path=str(path))
    out = capsys.readouterr().out
    assert "SELFTEST WIFI ok" in out and "fail config:" not in out, out


# ---- rules that match the hardware (issue 11 item 6) ----------------------------------------


def test_fw_core_config_buttons_on_34_to_39_need_external_pull_resistors():
    """GPIO 34..39 have no internal pull-ups: the HAL's PULL_UP request is silently ignored and
    the input floats (tests/mpy/fake_machine.py: phantom presses, see test_hal.py)."""
    for p in range(34, 40):
        text = problem("esp32", "unsure", p)
        assert text and "no internal pull-up" in text and "pins.external_pull" in text, (p, text)
        pins = dict(ESP32_MAP, unsure=p, external_pull=True)
        assert config.load(json.dumps(minimal(pins)))["pins"]["unsure"] == p
        assert problem("esp32", "led_thanks", p).startswith("GPIO %d is input-only" % p)  # LEDs never
    # the flag does not open anything else
    with pytest.raises(config.ConfigError, match="pins.no: GPIO 7 cannot be used"):
        config.load(json.dumps(minimal(dict(ESP32_MAP, no=7, external_pull=True))))


def test_fw_core_config_psram_and_pico_flash_pins_refused_where_known():
    for key in ("yes", "led_rate"):
        for p in (16, 17):
            assert problem("esp32", key, p) is None  # a plain image cannot know the module
            text = problem("esp32wrover", key, p)
            assert text == "GPIO %d is the PSRAM (WROVER) or the flash (PICO-D4) on this board" % p, text
    # the wrover kind keeps every plain ESP32 rule
    assert "cannot be used" in problem("esp32wrover", "yes", 6)
    assert config.load(json.dumps(minimal()), "esp32wrover")["pins"] == ESP32_MAP


@pytest.mark.parametrize(
    "mqtt,field,words",
    [
        ({"user": "panel-1"}, "mqtt.password", "a user needs its password"),
        ({"user": "panel-1", "password": None}, "mqtt.password", "a user needs its password"),
        ({"password": "secret"}, "mqtt.user", "only with a user name"),
        ({"user": "panel-1", "password": ""}, "mqtt.password", "non-empty"),
        ({"ssl": True}, "mqtt.ssl", "set false"),
    ],
)
def test_fw_core_config_refuses_half_credentials_and_tls(mqtt, field, words):
    obj = minimal()
    obj["mqtt"].update(mqtt)
    with pytest.raises(config.ConfigError) as e:
        load(obj)
    assert e.value.field == field and words in e.value.problem, str(e.value)
    assert "secret" not in str(e.value)  # a password never goes to the console


def test_fw_core_config_user_with_password_and_local_broker_accepted():
    obj = minimal()
    obj["mqtt"].update({"user": "office-1-panel-1", "password": "s3cret", "host": "broker.local"})
    cfg = load(obj)
    assert cfg["mqtt"]["user"] == "office-1-panel-1" and cfg["mqtt"]["host"] == "broker.local"
    assert cfg["mqtt"]["ssl"] is False
