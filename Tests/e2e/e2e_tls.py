"""Certificates and TLS clients for the security and transport e2e tests.

The everyday certificates come from scripts/dev-certs (the same ones a
developer uses); the ones a test needs beyond those (another identity, an
expired certificate, a replacement server certificate) are signed here with
`cryptography` by the dev CA.
"""
import datetime
import os
import socket
import ssl
import subprocess

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def dev_certs(directory):
    """Run scripts/dev-certs DIR; returns DIR."""
    res = subprocess.run([os.path.join(REPO, "scripts", "dev-certs"), directory],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, "scripts/dev-certs failed:\n%s\n%s" % (res.stdout, res.stderr)
    return directory


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write_atomically(path, data, mode=0o644):
    """Replace a file in one rename, so a server reloading it never reads half of it."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def make_certificate(ca_dir, out_dir, name, uri=None, dns=None, cn=None, server=False,
                     not_before=None, not_after=None):
    """Sign a new key's certificate with the CA in `ca_dir`; writes out_dir/name.pem and name.key.
    Returns (pem path, key path, serial number)."""
    ca_cert = x509.load_pem_x509_certificate(read(os.path.join(ca_dir, "ca.pem")))
    ca_key = serialization.load_pem_private_key(read(os.path.join(ca_dir, "ca.key")), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "casino e2e")]
    if cn:
        subject.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    serial = x509.random_serial_number()
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name(subject))
               .issuer_name(ca_cert.subject)
               .public_key(key.public_key())
               .serial_number(serial)
               .not_valid_before(not_before or now - datetime.timedelta(minutes=5))
               .not_valid_after(not_after or now + datetime.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(
                   [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                   critical=False))
    names = []
    if uri:
        names.append(x509.UniformResourceIdentifier(uri))
    if dns:
        names.append(x509.DNSName(dns))
    if server:
        import ipaddress
        names += [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    pem, key_path = os.path.join(out_dir, name + ".pem"), os.path.join(out_dir, name + ".key")
    write_atomically(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()), mode=0o600)
    write_atomically(pem, cert.public_bytes(serialization.Encoding.PEM))
    return pem, key_path, serial


def serial_of(pem_path):
    return x509.load_pem_x509_certificate(read(pem_path)).serial_number


# --- clients ---------------------------------------------------------------------------------

CHANNEL_OPTIONS = [("grpc.ssl_target_name_override", "localhost"),
                   # one connection per channel object, never shared with another channel
                   ("grpc.use_local_subchannel_pool", 1)]


def channel(address, ca, cert=None, key=None, options=()):
    """A grpcio channel over TLS to `address`, trusting `ca`, presenting cert/key when given."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(ca),
        private_key=read(key) if key else None,
        certificate_chain=read(cert) if cert else None)
    return grpc.secure_channel(address, credentials, options=CHANNEL_OPTIONS + list(options))


def client_channel(address, certs_dir, name, ca_dir=None):
    """A channel presenting certs_dir/name.pem, trusting the CA of `ca_dir` (default certs_dir)."""
    return channel(address, os.path.join(ca_dir or certs_dir, "ca.pem"),
                   os.path.join(certs_dir, name + ".pem"), os.path.join(certs_dir, name + ".key"))


def tls_handshake(address, ca, cert=None, key=None, timeout=5.0):
    """Open a TLS connection (ALPN h2) as a raw socket and return it; the caller closes it."""
    host, port = address.rsplit(":", 1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.check_hostname = False
    ctx.set_alpn_protocols(["h2"])
    if cert:
        ctx.load_cert_chain(cert, key)
    raw = socket.create_connection((host, int(port)), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname="localhost")
    except Exception:
        raw.close()
        raise


def server_serial(address, ca, cert, key):
    """The serial number of the certificate the server presents to a new connection."""
    sock = tls_handshake(address, ca, cert, key)
    try:
        der = sock.getpeercert(binary_form=True)
    finally:
        sock.close()
    return x509.load_der_x509_certificate(der).serial_number
