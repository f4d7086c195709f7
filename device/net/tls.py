# TLS contexts that always verify the server (MicroPython defaults to CERT_NONE).
# Certificates and keys are DER: this port's mbedTLS build rejects PEM. The roots
# come from certs.roots, one list per use.
import ssl


def context(ca_ders, cert_der=None, key_der=None):
    if not ca_ders:
        raise ValueError("no CA roots")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    for der in ca_ders:
        ctx.load_verify_locations(cadata=der)
    if cert_der is not None:
        ctx.load_cert_chain(cert_der, key_der)
    return ctx
