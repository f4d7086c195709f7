import io
import json
import stat

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from fakeboard import FakeBoard
from moto import mock_aws

from host_tools.aws import provision as prov
from host_tools.common import pki
from host_tools.common.errors import RefusedError, SpottyError
from host_tools.sim.runtime import micropython_path, run_micropython

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's
THING = "bathroom-1"
SECRETS = {
    "wifi_password": "correct horse battery",
    "spotify_refresh_token": "AQD-refresh-token-do-not-print",
}
NOW = 1_760_000_000
ARN = "arn:aws:iot:%s:%s:" % (REGION, ACCOUNT)
THING_VAR = "${iot:Connection.Thing.ThingName}"

EXPECTED_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "iot:Connect",
            "Resource": ARN + "client/${iot:Connection.Thing.ThingName}",
        },
        {
            "Effect": "Allow",
            "Action": ["iot:Publish", "iot:Receive"],
            "Resource": [
                ARN + "topic/$aws/things/${iot:Connection.Thing.ThingName}/shadow/*",
                ARN + "topic/spotty/${iot:Connection.Thing.ThingName}/*",
            ],
        },
        {
            "Effect": "Allow",
            "Action": "iot:Subscribe",
            "Resource": [
                ARN + "topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/shadow/*",
                ARN + "topicfilter/spotty/${iot:Connection.Thing.ThingName}/*",
            ],
        },
    ],
}


@pytest.fixture
def iot(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        yield boto3.client("iot", region_name=REGION)


@pytest.fixture
def certs(tmp_path):
    return tmp_path / "certs" / "devices"


def run(iot, board, certs, out=None, **overrides):
    args = dict(
        wifi_ssid="Home",
        wifi_password=SECRETS["wifi_password"],
        spotify_client_id="0123456789abcdef0123456789abcdef",
        spotify_refresh_token=SECRETS["spotify_refresh_token"],
        certs_dir=certs,
        now=lambda: NOW + 0.7,
        out=out,
    )
    args.update(overrides)
    return prov.provision(THING, board, iot, **args)


def test_creates_the_thing_an_active_certificate_and_the_exact_policy(iot, certs):
    summary = run(iot, FakeBoard(), certs)
    assert summary.thing_created and summary.certificate_created
    assert summary.policy_status == "created"
    assert iot.describe_thing(thingName=THING)["thingArn"] == summary.thing_arn

    policy = iot.get_policy(policyName=prov.POLICY_NAME)
    assert json.loads(policy["policyDocument"]) == EXPECTED_POLICY

    cert = iot.describe_certificate(certificateId=summary.certificate_id)
    description = cert["certificateDescription"]
    assert description["status"] == "ACTIVE"
    arn = description["certificateArn"]
    assert iot.list_thing_principals(thingName=THING)["principals"] == [arn]
    attached = iot.list_attached_policies(target=arn)["policies"]
    assert [p["policyName"] for p in attached] == [prov.POLICY_NAME]
    assert summary.endpoint.endswith("-ats.iot.%s.amazonaws.com" % REGION)


@pytest.mark.filterwarnings("ignore:Parsed a serial number")  # Starfield's root has serial 0
def test_writes_what_the_firmware_reads(iot, certs):
    board = FakeBoard()
    summary = run(iot, board, certs, initial_config={"spotify_device": "Bathroom"})
    assert set(board.files) == {
        "ca/iot/amazon-root-ca-1.der", "ca/spotify/digicert-global-root-g2.der",
        "ca/spotify/starfield-root-g2.der", "iot/cert.der", "iot/key.der", "config.json",
        "token.json", "secrets.json",
    }
    assert board.writes[-1] == "secrets.json"  # last: its presence means "provisioned"
    assert json.loads(board.files["secrets.json"]) == {
        "wifi_ssid": "Home",
        "wifi_password": SECRETS["wifi_password"],
        "spotify_client_id": "0123456789abcdef0123456789abcdef",
        "iot_endpoint": summary.endpoint,
        "iot_port": 8883,
        "thing_name": THING,
    }
    assert json.loads(board.files["token.json"]) == {
        "refresh_token": SECRETS["spotify_refresh_token"], "issued_at": NOW,
    }
    assert json.loads(board.files["config.json"]) == {"spotify_device": "Bathroom"}

    cert = x509.load_der_x509_certificate(board.files["iot/cert.der"])
    key = serialization.load_der_private_key(board.files["iot/key.der"], password=None)
    registered = iot.describe_certificate(certificateId=summary.certificate_id)
    pem = registered["certificateDescription"]["certificatePem"].encode()
    assert cert == x509.load_pem_x509_certificate(pem)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()
    for path, name in prov.CA_ROOTS.items():
        root = x509.load_der_x509_certificate(board.files[path])
        assert root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name


def test_keeps_a_private_host_copy(iot, certs):
    summary = run(iot, FakeBoard(), certs)
    directory = certs / THING
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for name in ("key.pem", "key.der", "cert.pem", "cert.der", "certificate.json"):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600, name
    meta = json.loads((directory / "certificate.json").read_text())
    assert meta["certificateId"] == summary.certificate_id
    assert not list(directory.glob("*.tmp"))


def test_nothing_secret_is_printed_or_returned(iot, certs, capsys):
    out = io.StringIO()
    board = FakeBoard()
    summary = run(iot, board, certs, out=out)
    key_pem = (certs / THING / "key.pem").read_text()
    key_body = "".join(key_pem.splitlines()[1:-1])
    captured = capsys.readouterr()
    shown = out.getvalue() + captured.out + captured.err + repr(summary) + str(summary.lines())
    assert "bathroom-1" in out.getvalue() and summary.endpoint in out.getvalue()
    for secret in [*SECRETS.values(), key_body[:40], key_body[-40:]]:
        assert secret not in shown


def test_a_second_run_reuses_everything(iot, certs):
    board = FakeBoard()
    first = run(iot, board, certs, initial_config={"timeout_s": 60})
    board.files["config.json"] = b'{"timeout_s": 90}'  # changed since, through the shadow
    second = run(iot, board, certs, initial_config={"timeout_s": 60})
    assert not second.thing_created and not second.certificate_created
    assert second.policy_status == "unchanged"
    assert second.certificate_id == first.certificate_id
    assert len(iot.list_certificates()["certificates"]) == 1
    assert len(iot.list_thing_principals(thingName=THING)["principals"]) == 1
    assert board.files["config.json"] == b'{"timeout_s": 90}'
    assert any(k.startswith("config.json") for k in second.kept)
    assert board.files["iot/key.der"] == (certs / THING / "key.der").read_bytes()


def test_a_client_secret_from_an_older_provisioning_is_removed_and_said(iot, certs):
    old = {"wifi_ssid": "Home", "wifi_password": "x", "spotify_client_id": "c",
           "spotify_client_secret": "s3cret-of-the-app"}
    board = FakeBoard({"secrets.json": json.dumps(old).encode()})
    out = io.StringIO()
    summary = run(iot, board, certs, out=out)
    assert "spotify_client_secret" not in json.loads(board.files["secrets.json"])
    assert b"s3cret-of-the-app" not in b"".join(board.files.values())
    assert summary.client_secret_removed
    assert "removed      the Spotify client secret from secrets.json" in out.getvalue()
    assert "s3cret-of-the-app" not in out.getvalue()
    again = io.StringIO()
    assert not run(iot, board, certs, out=again).client_secret_removed
    assert "client secret" not in again.getvalue()


def test_a_rerun_without_a_new_login_keeps_the_token(iot, certs):
    board = FakeBoard()
    run(iot, board, certs)
    token = board.files["token.json"]
    summary = run(iot, board, certs, spotify_refresh_token=None, wifi_password="new password 2")
    assert board.files["token.json"] == token
    assert "token.json" in summary.kept
    assert json.loads(board.files["secrets.json"])["wifi_password"] == "new password 2"


def test_a_saved_login_goes_on_the_board_with_its_own_issue_time(iot, certs):
    board = FakeBoard()
    run(iot, board, certs, spotify_token_issued_at=NOW - 3600)
    assert json.loads(board.files["token.json"]) == {
        "refresh_token": SECRETS["spotify_refresh_token"], "issued_at": NOW - 3600,
    }


def test_a_saved_login_never_replaces_a_newer_token_on_the_board(iot, certs):
    # The device rotated its token after the login was saved: Spotify refuses the old one.
    rotated = json.dumps({"refresh_token": "AQD-rotated", "issued_at": NOW - 60}).encode()
    board = FakeBoard({"token.json": rotated})
    summary = run(iot, board, certs, spotify_token_issued_at=NOW - 3600)
    assert board.files["token.json"] == rotated
    assert any(k.startswith("token.json") for k in summary.kept)
    run(iot, board, certs, spotify_token_issued_at=NOW)  # a newer login does replace it
    assert json.loads(board.files["token.json"])["issued_at"] == NOW


def test_without_a_token_anywhere_it_stops_before_touching_aws(iot, certs):
    with pytest.raises(SpottyError, match="log in to Spotify first"):
        run(iot, FakeBoard(), certs, spotify_refresh_token=None)
    assert iot.list_things()["things"] == []


def test_a_certificate_whose_key_was_lost_is_not_silently_duplicated(iot, certs, tmp_path):
    run(iot, FakeBoard(), certs)
    (certs / THING).rename(tmp_path / "lost")
    with pytest.raises(SpottyError, match="already has a certificate"):
        run(iot, FakeBoard(), certs)
    assert len(iot.list_certificates()["certificates"]) == 1
    summary = run(iot, FakeBoard(), certs, new_certificate=True)
    assert summary.certificate_created
    assert len(iot.list_certificates()["certificates"]) == 2


def test_an_inactive_kept_certificate_is_reported(iot, certs):
    summary = run(iot, FakeBoard(), certs)
    iot.update_certificate(certificateId=summary.certificate_id, newStatus="INACTIVE")
    with pytest.raises(SpottyError, match="is INACTIVE"):
        run(iot, FakeBoard(), certs)


def test_an_outdated_policy_gets_a_new_default_version(iot, certs):
    iot.create_policy(
        policyName=prov.POLICY_NAME,
        policyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}
        ),
    )
    summary = run(iot, FakeBoard(), certs)
    assert summary.policy_status == "updated"
    policy = iot.get_policy(policyName=prov.POLICY_NAME)
    assert json.loads(policy["policyDocument"]) == EXPECTED_POLICY


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"wifi_password": "short"}, "Wi-Fi password"),
        ({"wifi_ssid": ""}, "Wi-Fi network name"),
        ({"spotify_client_id": " "}, "Spotify client id"),
        ({"initial_config": {"timeout_s": 0, "colour": "red"}}, "colour: unknown setting"),
        ({"hardware": {"pir_pin": "14"}}, "pir_pin must be a whole number"),
        ({"ota_public_key": b"\x04" * 65}, "64 raw bytes"),
    ],
)
def test_bad_input_is_refused_before_anything_is_created(iot, certs, overrides, message):
    board = FakeBoard()
    with pytest.raises(SpottyError, match=message):
        run(iot, board, certs, **overrides)
    assert iot.list_things()["things"] == [] and board.files == {}


def test_a_bad_thing_name_is_refused(iot, certs):
    with pytest.raises(SpottyError, match="thing name"):
        prov.provision(
            "../etc", FakeBoard(), iot, wifi_ssid="Home", wifi_password="",
            spotify_client_id="id", certs_dir=certs,
        )


def test_optional_hardware_settings_and_ota_key(iot, certs):
    board = FakeBoard()
    run(iot, board, certs, hardware={"pir_pin": 14, "led_pin": 2}, ota_public_key=bytes(range(64)))
    assert json.loads(board.files["device.json"]) == {"pir_pin": 14, "led_pin": 2}
    assert board.files["ota/pub.bin"] == bytes(range(64))


def test_files_that_do_not_arrive_intact_fail_loudly(iot, certs):
    board = FakeBoard()
    board.corrupt.add("iot/key.der")
    with pytest.raises(SpottyError, match="did not arrive intact on the board: iot/key.der"):
        run(iot, board, certs)


def test_a_missing_ca_root_fails_clearly(tmp_path):
    import certifi

    bundle = tmp_path / "bundle.pem"
    text = open(certifi.where()).read()
    start = text.index("# Issuer: CN=Amazon Root CA 1")
    end = text.index("-----END CERTIFICATE-----", start) + len("-----END CERTIFICATE-----")
    bundle.write_text(text[:start] + text[end:])
    with pytest.raises(SpottyError, match="'Amazon Root CA 1' is not in"):
        prov.ca_roots_der(bundle)
    with pytest.raises(SpottyError, match="cannot read the CA bundle"):
        prov.ca_roots_der(tmp_path / "missing.pem")


def test_the_board_files_load_into_micropythons_tls(iot, certs, tmp_path):
    """The DER files are what MicroPython's mbedTLS accepts (it refuses PEM)."""
    try:
        micropython_path()
    except SpottyError:
        pytest.skip("no micropython")
    board = FakeBoard()
    run(iot, board, certs)
    flash = tmp_path / "flash"
    for path, data in board.files.items():
        (flash / path).parent.mkdir(parents=True, exist_ok=True)
        (flash / path).write_bytes(data)
    script = (
        "import certs\n"
        "from net import tls\n"
        "roots = certs.roots('iot')\n"
        "tls.context(roots, open('iot/cert.der', 'rb').read(), open('iot/key.der', 'rb').read())\n"
        "tls.context(certs.roots('spotify'))\n"
        "print('loaded', len(roots), len(certs.roots('spotify')), len(certs.roots('ota')))\n"
    )
    result = run_micropython(
        ["-c", script], cwd=flash, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "loaded 1 2 2", result.stdout + result.stderr


def _ca_pem(name):
    return pki.CertificateAuthority.create(name).cert_pem


def test_each_root_goes_in_its_list_and_the_single_list_of_old_goes(iot, certs):
    # A board provisioned before the lists: every root in ca/, trusted for every use.
    board = FakeBoard({"ca/amazon-root-ca-1.der": b"old", "ca/ota.der": b"serve's CA"})
    summary = run(iot, board, certs, ota_cas={"ota-ca.pem": _ca_pem("My OTA CA")})
    assert sorted(p for p in board.files if p.startswith("ca/")) == [
        "ca/iot/amazon-root-ca-1.der", "ca/ota/ota-ca.der",
        "ca/spotify/digicert-global-root-g2.der", "ca/spotify/starfield-root-g2.der"]
    assert summary.removed == ["ca/amazon-root-ca-1.der", "ca/ota.der"]
    assert "removed      ca/amazon-root-ca-1.der, ca/ota.der" in "\n".join(summary.lines())
    root = x509.load_der_x509_certificate(board.files["ca/ota/ota-ca.der"])
    assert root.subject.rfc4514_string() == "CN=My OTA CA"
    # Again without --ota-ca: the OTA list stays; with another, it replaces the list.
    assert run(iot, board, certs).removed == [] and "ca/ota/ota-ca.der" in board.files
    run(iot, board, certs, ota_cas={"new.der": x509.load_pem_x509_certificate(
        _ca_pem("Next")).public_bytes(serialization.Encoding.DER)})
    assert [p for p in board.files if p.startswith("ca/ota/")] == ["ca/ota/new.der"]


def test_an_ota_ca_that_is_no_ca_is_refused_before_anything(iot, certs, tmp_path):
    board = FakeBoard()
    leaf = pki.CertificateAuthority.create("x").issue_server().cert_pem
    for data in (b"junk", leaf):
        with pytest.raises(RefusedError, match="--ota-ca server.pem: not a CA certificate"):
            run(iot, board, certs, ota_cas={"server.pem": data})
    assert board.files == {}


def test_a_policy_with_five_versions_drops_its_oldest_spare_one(iot, certs):
    def doc(n):
        statement = {"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/%d" % n}
        return json.dumps({"Version": "2012-10-17", "Statement": [statement]})

    iot.create_policy(policyName=prov.POLICY_NAME, policyDocument=doc(1))
    for n in range(2, 6):
        iot.create_policy_version(
            policyName=prov.POLICY_NAME, policyDocument=doc(n), setAsDefault=n == 2
        )
    run(iot, FakeBoard(), certs)
    versions = iot.list_policy_versions(policyName=prov.POLICY_NAME)["policyVersions"]
    assert sorted(int(v["versionId"]) for v in versions) == [2, 3, 4, 5, 6]
    default = [v["versionId"] for v in versions if v["isDefaultVersion"]]
    assert default == ["6"]
