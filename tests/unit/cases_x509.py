"""core.x509 on CPython and MicroPython alike, against certificates made with
`cryptography` (tests/device/test_x509.py makes fresh ones on every run as well)."""
from binascii import unhexlify

from core import x509

# (notAfter as Unix seconds, the certificate's DER in hex), made by cryptography
# notAfter 2030-06-30T23:59:58+00:00
EC_UTCTIME = 1909094398, (
    "308201263081cea0030201020214087ac71ffc0aa33202a01ec6f9ffca85344ff114300a06082a8648ce3d04"
    "030230143112301006035504030c09783530392063617365301e170d3235303130313030303030305a170d33"
    "30303633303233353935385a30143112301006035504030c097835303920636173653059301306072a8648ce"
    "3d020106082a8648ce3d03010703420004c278bcd8836451f88b5b94e63cead364eebd6f8b4319013cc14080"
    "cbceb57a57d57c4d845757e283e1b3951e683c8998454f551cb030461683b2047c6c4e1eaf300a06082a8648"
    "ce3d040302034700304402204bc941dc83b9661fc0bad6e4c2f6dd37777a165d76868f72e66476e4ade2f11b"
    "022049958c71fece2c0cafe60440b307e7bf193c0c2e5e35df4193327b6022ebd153"
)
# notAfter 2051-02-28T12:00:01+00:00
RSA_GENERALIZED = 2561198401, (
    "308202b63082019ea003020102021430742aae7062d5e1afd4892cfee8877f35b1ba98300d06092a864886f7"
    "0d01010b050030143112301006035504030c097835303920636173653020170d323530313031303030303030"
    "5a180f32303531303232383132303030315a30143112301006035504030c0978353039206361736530820122"
    "300d06092a864886f70d01010105000382010f003082010a0282010100a58d22fba749a1ee4315e33431c5b5"
    "0482f4c49c6195c6cb3d9e3eab5e1c1772fd845d4f081aeaa9c3ac7ae809e95d401fb16f993739ba0e775461"
    "63fd2d7cf3fa74b045bab54229df7974434514c17e68ddf803f094d940ecbceb5e234da47dc83362ea47f4dd"
    "ea5cd300d8c4dc1e7ae5f4cf627499ea65bc360fca84016460e2482507f5f80cf42fcb0eedf9dfdea82cc78d"
    "1e105799f17f4e871c5854ca29c9968eef2d6f1afd074d30ef4c449124917751c2b26b9dab1a057924944925"
    "15ecd197fe07f7d8f687a2f5fea674a36c3660ac4c18de277f6c9bf4df510f644dacf18d91b7c0a4e55b8bd2"
    "45797eca8aeb6927f311e94e0088f4c5f7771e7f850203010001300d06092a864886f70d01010b0500038201"
    "0100a5536987b6d6af17b191a6f9a6d8ad8185a7ef3fb8a2766259352d6132b13cc533be31c528dab64d170b"
    "2f11effe8d1c9f4bcd0c3a05406cd83fc1fc18a5a8f486cab86df540bfa7a03b51afaadd65426c89b9069c96"
    "1d1c46f3ef646ae070520de2eac2f26662459313f562fe54f468183314183f7e38f5016296ef11c9efe008bb"
    "52d6830a356aa252c3a7f419101bc52943bf611ef8cf0db69a201a790bf59c15358a22e0b3d8f314ace4cb0e"
    "4509cc88edec17d16d5836479caf183899862dc40cfc25f0d9df953b8067f86335bce9570d023dad6a5847e2"
    "3e04d544bd384260281edf40458293802bf770ea61aff433ac30277eea157f64aa67e8232de2"
)
# notAfter 1999-12-31T23:59:59+00:00
EC_LAST_CENTURY = 946684799, (
    "308201263081cea0030201020214785a4bc03953b8d70a87264ef3b0129989fd336f300a06082a8648ce3d04"
    "030230143112301006035504030c09783530392063617365301e170d3930303130313030303030305a170d39"
    "39313233313233353935395a30143112301006035504030c097835303920636173653059301306072a8648ce"
    "3d020106082a8648ce3d03010703420004c278bcd8836451f88b5b94e63cead364eebd6f8b4319013cc14080"
    "cbceb57a57d57c4d845757e283e1b3951e683c8998454f551cb030461683b2047c6c4e1eaf300a06082a8648"
    "ce3d0403020347003044022070e9f4d0880a7ba8a2abb7473e73cf08d7909dd8775ca9559439ba4e780a123a"
    "02202bf53268a3d027fbcaa29615fce1374f12cd564462097ae9554fd4d328c34180"
)


def _der(case):
    return unhexlify(case[1])


def test_not_after_of_an_ec_certificate_in_utctime():
    assert x509.not_after(_der(EC_UTCTIME)) == EC_UTCTIME[0]


def test_not_after_of_an_rsa_certificate_in_generalized_time():
    # From 2050 on RFC 5280 wants GeneralizedTime; a 2048-bit RSA certificate also
    # has two-byte lengths.
    assert x509.not_after(_der(RSA_GENERALIZED)) == RSA_GENERALIZED[0]


def test_utctime_years_from_50_are_last_century():
    assert x509.not_after(_der(EC_LAST_CENTURY)) == EC_LAST_CENTURY[0]
    assert x509.parse_time(0x17, b"500101000000Z") == -631152000
    assert x509.parse_time(0x17, b"491231235959Z") == 2524607999


def test_parse_time_refuses_what_der_does_not_allow():
    bad = [(0x17, b"3001010000Z"), (0x17, b"300101000000+0100"), (0x18, b"20300101000000"),
           (0x17, b"301301000000Z"), (0x17, b"3001010000xxZ"), (0x04, b"300101000000Z"),
           (0x18, b"20300101240000Z")]
    for tag, text in bad:
        try:
            x509.parse_time(tag, text)
        except ValueError:
            continue
        raise AssertionError("accepted %r" % text)


def test_garbage_and_cut_short_certificates_are_refused():
    der = _der(EC_UTCTIME)
    for data in (b"", b"\x30", b"\x04\x03abc", der[:40], der[:-1], b"\x30\x85" + der):
        try:
            x509.not_after(data)
        except ValueError:
            continue
        raise AssertionError("accepted %d bytes" % len(data))


def test_a_certificate_without_the_version_field_is_read():
    # A v1 certificate omits [0] version: cut it out of a v3 one and fix the lengths.
    der = _der(EC_UTCTIME)
    assert der[:2] == b"\x30\x82" and der[4:6] == b"\x30\x81" and der[7:9] == b"\xa0\x03"
    tbs_end = 7 + der[6]
    tbs = b"\x30\x81" + bytes([der[6] - 5]) + der[12:tbs_end]
    body = tbs + der[tbs_end:]
    v1 = b"\x30\x82" + bytes([len(body) >> 8, len(body) & 0xFF]) + body
    assert x509.not_after(v1) == EC_UTCTIME[0]
