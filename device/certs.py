# The device's CA roots, one trust list per use, and when its certificates run out.
#
#   ca/spotify/*.der  api.spotify.com and accounts.spotify.com
#   ca/iot/*.der      the AWS IoT endpoint
#   ca/ota/*.der      update downloads; empty or absent: Spotify's roots
#
# So a CA trusted for one use (say the test server of `spotty ota serve`) vouches for
# nothing else, and the Spotify token never goes to a server only it vouches for. A
# board provisioned before the lists has its roots in ca/*.der: they serve a use
# whose list is empty, until provisioning or an update brings the lists. Expiry is
# reported in status so the owner can renew in time (an update may bring new roots).
import os

import log

CLIENT_CERT = "iot/cert.der"
USES = ("spotify", "iot", "ota")


def roots(use):
    """The DER roots trusted for use ("spotify", "iot" or "ota")."""
    paths = _ders("ca/" + use)
    if not paths and use == "ota":
        paths = _ders("ca/spotify")
    out = []
    for path in paths or _ders("ca"):
        with open(path, "rb") as f:
            out.append(f.read())
    return out


def files():
    found = _ders("ca")
    for use in USES:
        found += _ders("ca/" + use)
    return found + [CLIENT_CERT]


def _ders(folder):
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    return [folder + "/" + n for n in names if n.endswith(".der")]


def earliest_expiry(paths):
    """(notAfter as Unix seconds, path) of the certificate that expires first, or
    (None, None); a certificate that cannot be read is logged and skipped."""
    from core import x509  # not for the download's boot, which wants roots only

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
