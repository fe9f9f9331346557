"""The gateway's login and TLS towards its broker (docs/security.md, docs/install.md).

`rating gateway run` with `broker = "mqtts://gateway@broker.example.com:8883"` in its settings
file: the password comes from `broker_password_file` (read at start, never on a command line,
never logged), the broker's certificate is checked against `broker_cafile` (else the system's
CAs) and the URL's host name, TLS 1.2 or newer; `broker_certfile`/`broker_keyfile` add a client
certificate. A certificate the CA does not vouch for, or a host name it does not name, stops the
gateway at start with one line (`check_tls`) instead of endless silent reconnects.

Functions take the gateway's settings (gateway.service.GatewaySettings) and raise ValueError
for settings that cannot work (the service turns it into its SettingsError), OSError for what
is found at start (a file gone, a certificate refused): `rating gateway run` prints either as
one `error:` line.
"""

import os
import socket
import ssl

from gateway.db import _redact
from protocol import ProtocolError, mqtturl

TLS_SCHEMES = ("mqtts", "ssl")
TLS_PORT = 8883
FILES = ("broker_password_file", "broker_cafile", "broker_certfile", "broker_keyfile")


def _userinfo(url):
    """(user, password) of a broker URL (protocol.mqtturl, the one parser); (None, None) when
    the URL is not one (its own check reports that)."""
    try:
        return mqtturl.parse(url)[2:4]
    except ProtocolError:
        return None, None


def uses_tls(url):
    """Does this broker URL ask for TLS (mqtts://)?"""
    try:
        return mqtturl.parse(url)[4]
    except ProtocolError:
        return False


def check_command_line_url(url):
    """A broker URL given on the command line must not carry a password (ps shows it)."""
    if url and _userinfo(url)[1] is not None:
        raise ValueError(
            "--broker: a password in the URL is visible to every user of this machine (ps); put it in a "
            "file readable only by the gateway and name it as broker_password_file in --config"
        )


def check_settings(s):
    """The login and TLS settings agree with the broker URL, and their files can be read."""
    url = s.broker
    given = [name for name in FILES if getattr(s, name)]
    if not url:
        if given:
            raise ValueError("%s: only for a broker given as `broker` (mqtt[s]://...)" % given[0])
        return
    username, password = _userinfo(url)
    if s.broker_password_file and not username:
        raise ValueError("broker_password_file: the broker URL names no user; write mqtt[s]://USER@HOST:PORT")
    if s.broker_password_file and password is not None:
        raise ValueError("broker: the URL has a password and broker_password_file is set; keep only the file")
    if (s.broker_cafile or s.broker_certfile or s.broker_keyfile) and not uses_tls(url):
        raise ValueError("broker_cafile/broker_certfile/broker_keyfile need a TLS broker URL: write mqtts://")
    if s.broker_keyfile and not s.broker_certfile:
        raise ValueError("broker_keyfile: give broker_certfile (the client certificate) as well")
    for name in given:
        if not os.access(getattr(s, name), os.R_OK):
            raise ValueError("%s: cannot read %s" % (name, getattr(s, name)))


def login(s):
    """(user, password) for the broker: the URL's user; the first line of broker_password_file,
    else the URL's password (a settings file may hold one), else None."""
    username, password = _userinfo(s.broker)
    if not s.broker_password_file:
        return username, password
    try:
        with open(s.broker_password_file, encoding="utf-8") as f:
            secret = f.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise OSError("broker_password_file: cannot read %s: %s" % (s.broker_password_file, exc)) from None
    if not secret:
        raise OSError("broker_password_file: %s is empty" % s.broker_password_file)
    return username, secret


def tls_context(s):
    """TLS 1.2 or newer; the broker's certificate checked against broker_cafile (else the
    system's CAs) and its host name against the URL's; the client certificate when given."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=s.broker_cafile or None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if s.broker_certfile:
            context.load_cert_chain(s.broker_certfile, s.broker_keyfile or None)
    except (OSError, ValueError) as exc:
        raise OSError(
            "broker TLS files (broker_cafile %s, broker_certfile %s): %s; are they PEM files, and does the "
            "key match the certificate?" % (s.broker_cafile or "-", s.broker_certfile or "-", exc)
        ) from None
    return context


def check_tls(url, host, port, context, timeout=5.0):
    """One TLS handshake with the broker before the MQTT client starts: a certificate error is a
    setting to fix, not a network hiccup to retry. An unreachable broker is not an error here
    (the client keeps retrying: the broker may come later)."""
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return
    try:
        with context.wrap_socket(raw, server_hostname=host):
            pass
    except ssl.SSLCertVerificationError as exc:
        if exc.verify_code in (62, 64):  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
            raise OSError(
                "broker %s: its TLS certificate is not valid for the host name %r; connect with a name "
                "the certificate lists, or have it issued for this one" % (_redact(url), host)
            ) from None
        raise OSError(
            "broker %s: its TLS certificate is not trusted (%s); broker_cafile must hold the CA that "
            "signed the broker's certificate" % (_redact(url), exc.verify_message or exc.reason)
        ) from None
    except ssl.SSLError as exc:
        raise OSError(
            "broker %s: TLS handshake failed (%s); is port %d a TLS listener?" % (_redact(url), exc.reason or exc, port)
        ) from None
    except OSError:
        return
    finally:
        raw.close()
