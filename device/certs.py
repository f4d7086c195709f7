# When the device's certificates run out: the CA roots in ca/ and its own AWS IoT
# client certificate. Reported in status so the owner can renew in time (an
# update may bring new roots in ca/).
import os

import log
from core import x509

CLIENT_CERT = "iot/cert.der"


def files(ca_dir="ca"):
    try:
        names = sorted(os.listdir(ca_dir))
    except OSError:
        names = []
    return [ca_dir + "/" + n for n in names if n.endswith(".der")] + [CLIENT_CERT]


def earliest_expiry(paths):
    """(notAfter as Unix seconds, path) of the certificate that expires first, or
    (None, None); a certificate that cannot be read is logged and skipped."""
    earliest, which = None, None
    for path in paths:
        try:
            with open(path, "rb") as f:
                at = x509.not_after(f.read())
        except OSError:
            continue  # no client certificate: a board without AWS IoT
        except ValueError as e:
            log.event("error", error="certificate", file=path, detail=str(e))
            continue
        if earliest is None or at < earliest:
            earliest, which = at, path
    return earliest, which
