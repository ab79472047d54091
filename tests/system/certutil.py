"""Helpers for the certificate and bootstrap tests: key + CSR making with
openssl, certificate inspection with python3-cryptography, CSR objects."""
import base64
import datetime
import os
import subprocess

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CSR_PATH = "/apis/certificates.k8s.io/v1/certificatesigningrequests"


def make_csr(d, cn, orgs=(), sans=()):
    """(key path, CSR PEM text) for subject CN/O... with DNS/IP SANs."""
    os.makedirs(d, exist_ok=True)
    key = os.path.join(d, "k.pem")
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey",
                    "-noout", "-out", key], check=True, capture_output=True)
    subj = "".join(f"/O={o}" for o in orgs) + f"/CN={cn}"
    args = ["openssl", "req", "-new", "-key", key, "-subj", subj]
    if sans:
        args += ["-addext", "subjectAltName=" + ",".join(sans)]
    out = subprocess.run(args, check=True, capture_output=True, text=True)
    return key, out.stdout


def csr_object(name, pem, signer, usages=("client auth",), expiration=None,
               extra_spec=None):
    spec = {"request": base64.b64encode(pem.encode()).decode(),
            "signerName": signer, "usages": list(usages)}
    if expiration is not None:
        spec["expirationSeconds"] = expiration
    spec.update(extra_spec or {})
    return {"apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {"name": name}, "spec": spec}


def load_cert(pem):
    if isinstance(pem, str):
        pem = pem.encode()
    return x509.load_pem_x509_certificate(pem)


def subject_parts(cert):
    cn = [a.value for a in cert.subject.get_attributes_for_oid(
        NameOID.COMMON_NAME)]
    orgs = [a.value for a in cert.subject.get_attributes_for_oid(
        NameOID.ORGANIZATION_NAME)]
    return cn, orgs


def ekus(cert):
    try:
        ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return set()
    names = {ExtendedKeyUsageOID.CLIENT_AUTH: "client auth",
             ExtendedKeyUsageOID.SERVER_AUTH: "server auth"}
    return {names.get(o, o.dotted_string) for o in ext.value}


def lifetime_s(cert):
    return (cert.not_valid_after - cert.not_valid_before).total_seconds()


def verify_with_ca(cert_pem, ca_path, tmp):
    """openssl verify of the certificate against the CA file."""
    p = os.path.join(tmp, "verify.crt")
    with open(p, "w") as f:
        f.write(cert_pem if isinstance(cert_pem, str) else cert_pem.decode())
    r = subprocess.run(["openssl", "verify", "-CAfile", ca_path, p],
                       capture_output=True, text=True)
    return r.returncode == 0, r.stdout + r.stderr


def now():
    return datetime.datetime.utcnow()
