"""The gateway's login and TLS settings towards its broker (gateway/brokerlink.py): what cannot
work is refused at load with a line naming the setting, a password never comes from the command
line, and mqtts:// means TLS on port 8883 by default. The live TLS connection:
test_broker_security.py."""

import pytest

from gateway import brokerlink, service


def settings(tmp_path, **kw):
    return service.load_settings(None, db="sqlite:///%s" % (tmp_path / "s.db"), **kw)


def test_a_password_on_the_command_line_is_refused_and_never_echoed(tmp_path):
    with pytest.raises(service.SettingsError, match="visible to every user") as e:
        settings(tmp_path, broker="mqtt://gateway:hunter2secret@127.0.0.1:1883")
    assert "hunter2secret" not in str(e.value)
    # a settings file may still hold one (it is not in the process listing), but not with a file too
    conf = tmp_path / "gw.toml"
    secret = tmp_path / "gw.secret"
    secret.write_text("from-the-file\n")
    conf.write_text('broker = "mqtt://gateway:in-url@127.0.0.1"\nbroker_password_file = "%s"\n' % secret)
    with pytest.raises(service.SettingsError, match="keep only the file") as e:
        service.load_settings(str(conf))
    assert "in-url" not in str(e.value)
    conf.write_text('broker = "mqtt://gateway@127.0.0.1"\nbroker_password_file = "%s"\n' % secret)
    assert brokerlink.login(service.load_settings(str(conf))) == ("gateway", "from-the-file")


@pytest.mark.parametrize(
    "kw, words",
    [
        (dict(broker="mqtt://127.0.0.1", broker_password_file="/etc/passwd"), "names no user"),
        (dict(broker="mqtt://gw@127.0.0.1", broker_cafile="/etc/hostname"), "write mqtts://"),
        (dict(broker="mqtts://gw@127.0.0.1", broker_keyfile="/etc/hostname"), "broker_certfile"),
        (dict(broker="mqtts://gw@127.0.0.1", broker_cafile="/no/such/ca.crt"), "cannot read /no/such/ca.crt"),
        (dict(broker_cafile="/etc/hostname"), "only for a broker"),
        (dict(broker="https://gw:pw@example.com"), "mqtts://HOST:PORT"),
    ],
)
def test_login_settings_that_cannot_work_name_the_setting(tmp_path, kw, words):
    with pytest.raises(service.SettingsError, match=words) as e:
        service.GatewaySettings(db="x", **kw).check()
    assert ":pw@" not in str(e.value)


def test_mqtts_is_tls_on_port_8883_by_default():
    assert service.broker_address("mqtts://gw@broker.example.com") == ("broker.example.com", 8883, "gw", None)
    assert service.broker_address("mqtt://127.0.0.1") == ("127.0.0.1", 1883, None, None)
    assert brokerlink.uses_tls("mqtts://h:1") and not brokerlink.uses_tls("mqtt://h:1")


def test_a_bad_ca_file_is_one_clear_line(tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("not a certificate\n")
    s = service.GatewaySettings(db="x", broker="mqtts://gw@localhost", broker_cafile=str(ca)).check()
    with pytest.raises(OSError, match="are they PEM files"):
        brokerlink.tls_context(s)
