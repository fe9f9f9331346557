"""`rating gateway run` (GatewayService) against the real broker: messages that arrive while a
publish waits for room are buffered and committed like any other."""

import time


def test_message_taken_while_publish_waits_before_first_batch(broker, mqtt_root, tmp_path):
    """_publish, waiting for room under max_unconfirmed, dispatches arriving messages into the
    Ingestor. If that happens before the main loop's first batch (e.g. re-publishing many acks
    on connect), the loop's batch age was computed from None: TypeError, the gateway died."""
    import threading

    from gateway import service
    from protocol import messages

    settings = service.load_settings(
        None,
        broker=broker.url,
        db="sqlite:///%s" % (tmp_path / "s.db"),
        root=mqtt_root,
        client_id="gw-rv-" + mqtt_root.replace("/", "-"),
        max_unconfirmed=1,
    )
    svc = service.GatewayService(settings).start()
    errors = []
    try:
        body = b'{"v":1,"seq":1,"boot":1,"up":1,"t":null,"ev":"yes"}'
        svc._unconfirmed[-1] = ("x", b"", "ack")  # one publish the broker has not confirmed yet
        svc.q.put(("msg", "%s/s1/p1/event" % mqtt_root, body, 1717000000000, 0, 1, 0))
        svc.q.put(("puback", -1))
        svc._publish("%s/s1/p9/ack" % mqtt_root, messages.encode_ack(0), "ack")
        assert len(svc.ingestor) == 1

        def serve():
            try:
                svc.run()
            except BaseException as exc:  # noqa: BLE001 - the test reports it
                errors.append(exc)
                svc.close()

        t = threading.Thread(target=serve)
        t.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not errors and svc.ingestor.stats["events"] < 1:
            time.sleep(0.02)
        svc.stop()
        t.join(15)
        assert not t.is_alive()
    finally:
        if svc.client:
            svc.close()
    assert not errors, errors
    assert svc.ingestor.stats["events"] == 1
