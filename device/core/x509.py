# Just enough DER to read when an X.509 certificate expires (its validity's
# notAfter), for the status report. Nothing here trusts or checks a
# certificate: mbedTLS does that when it is used.
from micropython import const

from core.tz import days_from_civil

_SEQUENCE = const(0x30)
_INTEGER = const(0x02)
_VERSION = const(0xA0)  # [0] EXPLICIT, before the serial number
_UTC_TIME = const(0x17)
_GENERALIZED_TIME = const(0x18)


def not_after(der):
    """The certificate's notAfter as Unix seconds (UTC); ValueError if der is not one."""
    tag, pos, end = _element(der, 0, len(der))
    _expect(tag, _SEQUENCE, "certificate")
    tag, pos, end = _element(der, pos, end)
    _expect(tag, _SEQUENCE, "tbsCertificate")
    tag, start, after = _element(der, pos, end)
    if tag == _VERSION:
        tag, start, after = _element(der, after, end)
    _expect(tag, _INTEGER, "serial number")
    tag, start, after = _element(der, after, end)
    _expect(tag, _SEQUENCE, "signature algorithm")
    tag, start, after = _element(der, after, end)
    _expect(tag, _SEQUENCE, "issuer")
    tag, pos, end = _element(der, after, end)
    _expect(tag, _SEQUENCE, "validity")
    tag, start, after = _element(der, pos, end)  # notBefore
    tag, start, after = _element(der, after, end)
    return parse_time(tag, bytes(der[start:after]))


def parse_time(tag, text):
    """UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ) as Unix seconds."""
    if tag == _UTC_TIME and len(text) == 13:
        year = _digits(text, 0, 2)
        year += 1900 if year >= 50 else 2000  # RFC 5280 4.1.2.5.1
        rest = 2
    elif tag == _GENERALIZED_TIME and len(text) == 15:
        year = _digits(text, 0, 4)
        rest = 4
    else:
        raise ValueError("validity time: not a DER UTCTime or GeneralizedTime")
    if text[-1:] != b"Z":
        raise ValueError("validity time: not in UTC")
    month = _digits(text, rest, 2)
    day = _digits(text, rest + 2, 2)
    hour = _digits(text, rest + 4, 2)
    minute = _digits(text, rest + 6, 2)
    second = _digits(text, rest + 8, 2)
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 60):
        raise ValueError("validity time: out of range")
    days = days_from_civil(year, month, day)
    return ((days * 24 + hour) * 60 + minute) * 60 + second


def _element(der, pos, limit):
    """(tag, start, end) of the DER element at pos, which must end by limit."""
    if pos + 2 > limit:
        raise ValueError("DER: cut short")
    tag = der[pos]
    length = der[pos + 1]
    pos += 2
    if tag & 0x1F == 0x1F:
        raise ValueError("DER: multi-byte tag")
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4 or pos + count > limit:
            raise ValueError("DER: bad length")
        length = 0
        for i in range(count):
            length = (length << 8) | der[pos + i]
        pos += count
    if pos + length > limit:
        raise ValueError("DER: cut short")
    return tag, pos, pos + length


def _expect(tag, wanted, what):
    if tag != wanted:
        raise ValueError("DER: no " + what)


def _digits(text, start, count):
    value = 0
    for i in range(start, start + count):
        digit = text[i] - 48
        if not 0 <= digit <= 9:
            raise ValueError("validity time: not digits")
        value = value * 10 + digit
    return value
