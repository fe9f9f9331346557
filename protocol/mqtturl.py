"""Broker URLs: the one parser the gateway, the simulator and the technician tools share.

    mqtt://[user[:password]@]host[:port]     plain MQTT, port 1883 by default ("tcp://" too)
    mqtts://[user[:password]@]host[:port]    MQTT over TLS, port 8883 by default ("ssl://" too)
    host[:port]                              the same as mqtt://host[:port]

`parse(url, tls=True)` -> (host, port, user, password, tls). user and password are None when
the URL has none; a password may contain '@' and ':' (the host starts after the last '@'). An
IPv6 address goes in brackets (mqtt://[::1]:1883). With tls=False a TLS URL is refused (the
gateway has no TLS yet). Errors are ProtocolError("broker", ...) and show the URL with its
password replaced by *** (`redact`): error messages end up in logs and terminals.

Lives in protocol/ because the technician tools may not import the gateway; written with plain
string operations (no urllib) so it runs on MicroPython like the rest of the package.
"""

from protocol import ProtocolError

SCHEMES = {"mqtt": False, "tcp": False, "mqtts": True, "ssl": True}  # scheme -> TLS
DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883
_EXAMPLE = "mqtt://HOST:PORT (with TLS: mqtts://HOST:PORT), e.g. mqtt://192.168.1.10:1883"


def redact(url):
    """`url` with the password of its user part replaced by ***."""
    if not isinstance(url, str):
        return url
    head, sep, rest = url.partition("://")
    if not sep:
        head, rest = "", url
    userinfo, at, hostpart = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return "%s%s%s:***@%s" % (head, sep, user, hostpart)


def _bad(url, problem):
    return ProtocolError("broker", "%r %s" % (redact(url), problem))


def _host_port(url, hostport, tls):
    if hostport.startswith("["):  # IPv6 literal
        end = hostport.find("]")
        if end < 0:
            raise _bad(url, "has an unclosed '[' in the host")
        host, rest = hostport[1:end], hostport[end + 1 :]
        if rest and not rest.startswith(":"):
            raise _bad(url, "has something after the ']' of the host")
        port_text = rest[1:] if rest else ""
    else:
        host, _, port_text = hostport.partition(":")
        if ":" in port_text:
            raise _bad(url, "has more than one ':' in host:port (write an IPv6 address as [::1])")
    if not host:
        raise _bad(url, "has no host; write " + _EXAMPLE)
    for ch in host:
        if ch in " /?#\\" or ord(ch) < 33:
            raise _bad(url, "has a character %r that is not allowed in a host name" % ch)
    if port_text == "":
        return host, DEFAULT_TLS_PORT if tls else DEFAULT_PORT
    for ch in port_text:
        if ch not in "0123456789":
            raise _bad(url, "has a bad port %r: the port must be a number 1..65535" % port_text)
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise _bad(url, "has a bad port %d: the port must be a number 1..65535" % port)
    return host, port


def parse(url, tls=True):
    """(host, port, user, password, tls) of a broker URL; ProtocolError("broker") if it is not one."""
    if not isinstance(url, str) or not url.strip():
        raise ProtocolError("broker", "must be a URL like " + _EXAMPLE)
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "mqtt", url
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        raise _bad(url, "is not an MQTT URL; write " + _EXAMPLE)
    use_tls = SCHEMES[scheme]
    if use_tls and not tls:
        raise _bad(url, "asks for TLS, which is not supported here yet; write " + _EXAMPLE)
    for stop in "/?#":  # mqtt://host:1883/ is still the broker at host:1883
        cut = rest.find(stop)
        if cut >= 0:
            if rest[cut:] not in ("", "/"):
                raise _bad(url, "has a path or query; write " + _EXAMPLE)
            rest = rest[:cut]
    userinfo, at, hostport = rest.rpartition("@")
    user = password = None
    if at:
        user, colon, pw = userinfo.partition(":")
        password = pw if colon else None
        if not user:
            raise _bad(url, "has an empty user name before '@'")
    host, port = _host_port(url, hostport, use_tls)
    return host, port, user, password, use_tls
