"""A throwaway PKI for TLS tests: a CA, a server certificate for given names/addresses, a client
certificate and a CA that signed nothing (the 'wrong CA' case), as PEM files Mosquitto can read
(group mosquitto when the tests run as root: Mosquitto drops to that user)."""

import datetime as dt
import ipaddress
import os


def mosquitto_group():
    """Mosquitto started as root reads its files as the user `mosquitto`: give them its group."""
    if os.geteuid() != 0:
        return None
    import grp

    try:
        grp.getgrnam("mosquitto")
    except KeyError:
        return None
    return "mosquitto"


def _pem(path, data, group_readable=False):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640 if group_readable else 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    if group_readable and mosquitto_group():
        import grp

        os.chown(path, -1, grp.getgrnam("mosquitto").gr_gid)
    return path


def make_pki(folder, names=("localhost",), ips=()):
    """A throwaway CA, a server certificate for `names`/`ips`, a client certificate, and a second
    CA that signed nothing here (for the 'wrong CA' case)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def key():
        return ec.generate_private_key(ec.SECP256R1())

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def ca(cn):
        k = key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(name(cn))
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(k, hashes.SHA256())
        )
        return k, cert

    def leaf(cn, ca_key, ca_cert, usage, sans):
        k = key()
        b = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca_cert.subject)
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return k, b.sign(ca_key, hashes.SHA256())

    def pem_key(k):
        return k.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def pem_cert(c):
        return c.public_bytes(serialization.Encoding.PEM)

    ca_key, ca_cert = ca("rating test CA")
    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    srv_key, srv_cert = leaf("broker", ca_key, ca_cert, ExtendedKeyUsageOID.SERVER_AUTH, sans)
    cli_key, cli_cert = leaf("gateway", ca_key, ca_cert, ExtendedKeyUsageOID.CLIENT_AUTH, [])
    _other_key, other_cert = ca("some other CA")
    return {
        "ca": _pem(os.path.join(folder, "ca.crt"), pem_cert(ca_cert), True),
        "cert": _pem(os.path.join(folder, "broker.crt"), pem_cert(srv_cert), True),
        "key": _pem(os.path.join(folder, "broker.key"), pem_key(srv_key), True),
        "client_cert": _pem(os.path.join(folder, "gateway.crt"), pem_cert(cli_cert)),
        "client_key": _pem(os.path.join(folder, "gateway.key"), pem_key(cli_key)),
        "other_ca": _pem(os.path.join(folder, "other-ca.crt"), pem_cert(other_cert)),
    }
