"""Gateway settings (TOML + command line) and the errors a user sees."""

import subprocess

import pytest
from gw_ingest_support import RATING, REPO

from gateway import service


def write(tmp_path, text):
    p = tmp_path / "gateway.toml"
    p.write_text(text)
    return str(p)


def test_gw_ingest_settings_file_and_overrides(tmp_path):
    path = write(
        tmp_path,
        'broker = "mqtt://10.0.0.5:1884"\nbatch_max = 200\nconfig_push_s = 2\ndata_dir = "%s"\n' % (tmp_path / "data"),
    )
    s = service.load_settings(path, batch_max=None, root="shop/v1")
    assert (s.broker, s.batch_max, s.config_push_s, s.root) == ("mqtt://10.0.0.5:1884", 200, 2, "shop/v1")
    assert s.db_url() == "sqlite:///%s" % (tmp_path / "data" / "rating.db")
    assert service.broker_address("mqtt://u:p@h:1") == ("h", 1, "u", "p")
    assert service.broker_address("mqtt://h") == ("h", 1883, None, None)


def test_gw_ingest_quiet_and_reconnect_default_to_a_deployment_and_take_the_simulators_values(tmp_path):
    s = service.load_settings(write(tmp_path, ""))
    assert (s.batch_quiet_ms, s.reconnect_min_s, s.reconnect_max_s) == (2.0, 1.0, 10)
    s = service.load_settings(write(tmp_path, "batch_quiet_ms = 0\nreconnect_min_s = 0.05\nreconnect_max_s = 1\n"))
    assert (s.batch_quiet_ms, s.reconnect_min_s, s.reconnect_max_s) == (0, 0.05, 1)


@pytest.mark.parametrize(
    "text, words",
    [
        ("batch_size = 3", ["unknown setting 'batch_size'", "batch_max"]),
        ('batch_max = "500"', ["batch_max must be a whole number"]),
        ("batch_max = 0", ["batch_max: must be a whole number >= 1"]),
        ("inflight = 5000", ["inflight: must be 1..1000"]),
        ("max_unconfirmed = 70000", ["max_unconfirmed", "65535"]),
        ('root = "Rating/#"', ["root:"]),
        ('broker = "http://x"', ["broker:", "mqtt://HOST:PORT"]),
        ("broker = [", ["not valid TOML"]),
        ("batch_quiet_ms = -1", ["batch_quiet_ms: must be a number of ms from 0 to batch_ms"]),
        ("batch_quiet_ms = 60", ["batch_quiet_ms: must be a number of ms from 0 to batch_ms, got 60"]),
        ('batch_quiet_ms = "0"', ["batch_quiet_ms must be a number"]),
        ("reconnect_min_s = 0", ["reconnect_min_s: must be a number of seconds from 0.01 to reconnect_max_s (10)"]),
        ("reconnect_min_s = 11", ["reconnect_min_s: must be", "(10), got 11"]),
        ("reconnect_min_s = 3\nreconnect_max_s = 2", ["reconnect_min_s: must be", "(2), got 3"]),
        ("reconnect_max_s = 0.5", ["reconnect_max_s must be a whole number"]),
        ("reconnect_max_s = 0", ["reconnect_max_s: must be a whole number of seconds from 1 to 3600"]),
    ],
)
def test_gw_ingest_settings_errors_name_the_field(tmp_path, text, words):
    path = write(tmp_path, text + "\n")
    with pytest.raises(service.SettingsError) as e:
        service.load_settings(path)
    for w in words:
        assert w in str(e.value)
    assert path in str(e.value)


@pytest.mark.e2e
def test_gw_ingest_cli_errors_say_what_to_do(tmp_path):
    out = subprocess.run(
        [RATING, "gateway", "run", "--config", str(tmp_path / "missing.toml")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and "missing.toml not found" in out.stderr
    out = subprocess.run(
        [RATING, "gateway", "run", "--broker", "mqtt://127.0.0.1:1", "--db", "mysql://x"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and "sqlite:///" in out.stderr and "--db" in out.stderr
    out = subprocess.run(
        [RATING, "deadletter", "list", "--db", str(tmp_path / "d.db"), "--since", "yesterday"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and "--since 'yesterday'" in out.stderr


def test_the_broker_password_never_shows_in_errors_or_the_start_line(tmp_path):
    import io

    # a password in --broker is refused outright (ps shows it); a settings file may hold one
    bad = tmp_path / "bad.toml"
    bad.write_text('broker = "mqtt://rating:s3cret@h:port"\n')
    with pytest.raises(service.SettingsError) as e:
        service.load_settings(str(bad))
    assert "s3cret" not in str(e.value) and "rating:***@h" in str(e.value)
    good = tmp_path / "good.toml"
    good.write_text('broker = "mqtt://rating:s3cret@127.0.0.1:9"\ndb = "sqlite:///%s"\n' % (tmp_path / "g.db"))
    settings = service.load_settings(str(good))
    out = io.StringIO()
    svc = service.GatewayService(settings, out=out).start()  # connects in the background (and fails)
    svc.close()
    line = out.getvalue()
    assert "mqtt://rating:***@127.0.0.1:9" in line and "s3cret" not in line


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("batch_quiet_ms = 60", "batch_quiet_ms: нужно число миллисекунд от 0 до batch_ms, получено 60"),
        ("reconnect_max_s = 0", "reconnect_max_s: нужно целое число секунд от 1 до 3600, получено 0"),
        ("inflight = 5000", "inflight: нужно от 1 до 1000"),
        ("batch_max = 0", "batch_max: нужно целое число не меньше 1, получено 0"),
        ("raw_keep_months = 3", "raw_keep_months и raw_archive_dir задаются вместе"),
    ],
)
def test_gw_ingest_settings_errors_speak_russian(tmp_path, text, words):
    from gateway.i18n import speaking

    with speaking("ru"), pytest.raises(service.SettingsError) as e:
        service.load_settings(write(tmp_path, text + "\n"))
    assert words in str(e.value)
