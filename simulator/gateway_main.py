"""`python -m simulator.gateway_main gateway run ...`: the real `rating gateway run`, with the
one tunable a simulation needs changed.

The gateway coalesces acks (GatewayService.ACK_COALESCE_MS, 100 ms: under load a panel gets
one ack per round). A panel waits seconds for its ack, but simulated time runs ~10^4 x real
time, so a 100 ms ack costs the runner a real wait at nearly every event. For the same reason
the gateway's socket gets TCP_NODELAY (with the embedded amqtt broker, Nagle's algorithm and
delayed ACKs add ~40 ms to each ack round trip). Everything else is the deployment code path.
"""
import socket
import sys

from gateway import service

ACK_COALESCE_MS = 5


def _nodelay(on_connect):
    def wrapped(self, client, *args):
        sock = client.socket()
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        return on_connect(self, client, *args)
    return wrapped


def main(argv=None):
    if hasattr(service.GatewayService, "ACK_COALESCE_MS"):
        service.GatewayService.ACK_COALESCE_MS = ACK_COALESCE_MS
    service.GatewayService._on_connect = _nodelay(service.GatewayService._on_connect)
    from gateway.cli import main as rating
    return rating(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
