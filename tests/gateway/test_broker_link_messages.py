"""`rating gateway run` says what is wrong with its broker link: a broker it cannot reach (which
URL, which error, retrying) and when it is back; two clients with one client id knocking each
other off; the embedded broker listening beyond loopback (`--host`), never anonymously."""

import io
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway import service
from gateway.broker import EmbeddedBroker, _port_free
from gateway.broker import main as broker_main
from simulator.services import free_port

pytestmark = pytest.mark.e2e  # brokers, a gateway's MQTT client


class Lines(io.StringIO):
    def wait_for(self, text, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.getvalue():
                return True
            time.sleep(0.05)
        return False


def serve(settings):
    out = Lines()
    svc = service.GatewayService(settings, out=out).start()
    thread = threading.Thread(target=svc.run, daemon=True)
    thread.start()
    return svc, thread, out


def stop(svc, thread):
    svc.stop()
    thread.join(15)
    assert not thread.is_alive()


def test_an_unreachable_broker_is_reported_with_its_url_and_error_and_its_return(tmp_path, mqtt_root):
    port = free_port()
    settings = service.load_settings(
        None, broker="mqtt://127.0.0.1:%d" % port, db="sqlite:///%s" % (tmp_path / "g.db"), root=mqtt_root
    )
    svc, thread, out = serve(settings)
    broker = None
    try:
        assert out.wait_for("unreachable ("), out.getvalue()
        line = [x for x in out.getvalue().splitlines() if "unreachable (" in x][0]
        assert "mqtt://127.0.0.1:%d" % port in line and "Connection refused" in line and "retrying" in line
        time.sleep(2.5)  # further failed attempts with the same error do not repeat the line
        assert out.getvalue().count("unreachable (") == 1
        broker = EmbeddedBroker("127.0.0.1", port, allow_anonymous=True).start()
        assert out.wait_for("reachable again"), out.getvalue()
        assert svc.connected.wait(10)
    finally:
        stop(svc, thread)
        if broker:
            broker.stop()


def test_two_gateways_with_one_client_id_are_told_why_they_keep_losing_the_broker(broker, mqtt_root, tmp_path):
    def settings(name):
        return service.load_settings(
            None,
            broker=broker.url,
            db="sqlite:///%s" % (tmp_path / ("%s.db" % name)),
            root=mqtt_root,
            client_id="gw-twin-" + mqtt_root.replace("/", "-"),
        )

    first = serve(settings("a"))
    assert first[0].connected.wait(10)
    second = serve(settings("b"))
    try:
        explained = [svc_out for svc_out in (first[2], second[2])]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any("another client" in o.getvalue() for o in explained):
            time.sleep(0.1)
        said = "".join(o.getvalue() for o in explained)
        assert "another client is probably connected with the client id 'gw-twin-" in said, said
        assert "--client-id" in said
    finally:
        stop(*first[:2])
        stop(*second[:2])


def test_the_embedded_broker_listens_beyond_loopback_only_with_accounts(tmp_path, mqtt_root):
    port = free_port()
    settings = service.load_settings(
        None, broker_host="0.0.0.0", broker_port=port, db="sqlite:///%s" % (tmp_path / "e.db"), root=mqtt_root
    )
    svc, thread, out = serve(settings)
    try:
        assert svc.connected.wait(15), out.getvalue()
        assert not _port_free("0.0.0.0", port)  # bound on every interface, not 127.0.0.1 only
        assert "listens on 0.0.0.0:%d" % port in out.getvalue() and "no anonymous access" in out.getvalue()
        refused = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="anon-%d" % port)

        def on_connect(c, u, f, rc, p):
            if rc.is_failure:
                refused.set()

        client.on_connect = on_connect
        client.connect_async("127.0.0.1", port)
        client.loop_start()
        try:
            assert refused.wait(10), "an anonymous client got in"
        finally:
            client.loop_stop()
    finally:
        stop(svc, thread)


def test_a_throwaway_anonymous_broker_stays_on_loopback(capsys):
    with pytest.raises(SystemExit) as exc:
        broker_main(["--host", "0.0.0.0", "--port", str(free_port()), "--allow-anonymous"])
    assert exc.value.code == 2 and "loopback" in capsys.readouterr().err


def test_broker_host_is_for_the_embedded_broker_only():
    with pytest.raises(service.SettingsError, match="broker_host: only for the embedded broker"):
        service.load_settings(None, broker="mqtt://127.0.0.1:1883", broker_host="0.0.0.0")


def test_the_broker_lines_speak_the_operators_language(tmp_path, mqtt_root):
    from gateway import i18n

    port = free_port()
    settings = service.load_settings(
        None, broker="mqtt://127.0.0.1:%d" % port, db="sqlite:///%s" % (tmp_path / "ru.db"), root=mqtt_root
    )
    with i18n.cli_language("ru"):
        i18n.activate("ru", explicit=True)
        svc, thread, out = serve(settings)
        try:
            assert out.wait_for("недоступен ("), out.getvalue()
            assert "шлюз: брокер mqtt://127.0.0.1:%d, база" % port in out.getvalue()
        finally:
            stop(svc, thread)
