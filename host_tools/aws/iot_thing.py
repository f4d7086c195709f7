"""The AWS IoT side of provisioning: the thing, its policy and its certificate, with the
host copy of the certificate's key kept in certs/devices/NAME/.

Re-running is safe: the thing, the policy and the kept certificate are reused, never
duplicated.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..common.errors import SpottyError
from ..common.pki import Issued
from ..common.private_files import write_private

POLICY_NAME = "SpottyPottySenseDevice"
THING_VAR = "${iot:Connection.Thing.ThingName}"

_ARN = re.compile(r"^arn:([^:]+):iot:([^:]+):(\d+):")


def policy_document(partition: str, region: str, account: str) -> dict:
    """Least privilege, shared by all things: each may only act as itself.

    The client id must be the thing name, and the certificate must be attached to
    that thing, or ${iot:Connection.Thing.ThingName} does not resolve.
    """
    arn = "arn:%s:iot:%s:%s:" % (partition, region, account)
    shadow = "$aws/things/%s/shadow/*" % THING_VAR
    own = "spotty/%s/*" % THING_VAR
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iot:Connect",
                "Resource": arn + "client/" + THING_VAR,
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Publish", "iot:Receive"],
                "Resource": [arn + "topic/" + shadow, arn + "topic/" + own],
            },
            {
                "Effect": "Allow",
                "Action": "iot:Subscribe",
                "Resource": [arn + "topicfilter/" + shadow, arn + "topicfilter/" + own],
            },
        ],
    }


def arn_parts(arn: str) -> tuple[str, str, str]:
    """(partition, region, account) of an AWS IoT ARN."""
    match = _ARN.match(arn)
    if not match:
        raise SpottyError("unexpected ARN from AWS IoT: %s" % arn)
    return match.group(1), match.group(2), match.group(3)


def _error_code(error: Exception) -> str:
    return getattr(error, "response", {}).get("Error", {}).get("Code", "")


def ensure_thing(iot, thing: str) -> tuple[str, bool]:
    """(thing ARN, created?)"""
    from botocore.exceptions import ClientError

    try:
        return iot.describe_thing(thingName=thing)["thingArn"], False
    except ClientError as e:
        if _error_code(e) != "ResourceNotFoundException":
            raise
    return iot.create_thing(thingName=thing)["thingArn"], True


def ensure_policy(iot, name: str, document: dict) -> str:
    """Create the policy, or make `document` its default version: "created", "updated"
    or "unchanged"."""
    from botocore.exceptions import ClientError

    text = json.dumps(document, indent=2)
    try:
        current = iot.get_policy(policyName=name)
    except ClientError as e:
        if _error_code(e) != "ResourceNotFoundException":
            raise
        iot.create_policy(policyName=name, policyDocument=text)
        return "created"
    if json.loads(current["policyDocument"]) == document:
        return "unchanged"
    versions = iot.list_policy_versions(policyName=name)["policyVersions"]
    if len(versions) >= 5:  # AWS keeps at most five: drop the oldest non-default one
        old = [v for v in versions if not v["isDefaultVersion"]]
        oldest = min(old, key=lambda v: int(v["versionId"]))
        iot.delete_policy_version(policyName=name, policyVersionId=oldest["versionId"])
    iot.create_policy_version(policyName=name, policyDocument=text, setAsDefault=True)
    return "updated"


@dataclass
class DeviceCertificate(Issued):
    """The thing's certificate and key (encodings from pki.Issued) and its AWS identity."""

    certificate_id: str = ""
    certificate_arn: str = ""


def save_host_copy(directory: Path, device: DeviceCertificate) -> None:
    """cert.pem/.der, key.pem/.der (0600) and certificate.json under certs/devices/NAME/."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    # The key first: a certificate without its key would be useless.
    write_private(directory / "key.pem", device.key_pem)
    write_private(directory / "key.der", device.key_der)
    write_private(directory / "cert.pem", device.cert_pem)
    write_private(directory / "cert.der", device.cert_der)
    meta = {"certificateId": device.certificate_id, "certificateArn": device.certificate_arn}
    write_private(directory / "certificate.json", json.dumps(meta, indent=2).encode())


def load_host_copy(directory: Path) -> DeviceCertificate | None:
    paths = [directory / n for n in ("key.pem", "cert.pem", "certificate.json")]
    if not all(p.exists() for p in paths):
        return None
    try:
        key = serialization.load_pem_private_key(paths[0].read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate(paths[1].read_bytes())
        meta = json.loads(paths[2].read_text())
        device = DeviceCertificate(cert, key, meta["certificateId"], meta["certificateArn"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SpottyError("cannot read the certificate kept in %s: %s" % (directory, e)) from e
    if _public_der(key.public_key()) != _public_der(cert.public_key()):
        raise SpottyError("%s: key.pem does not belong to cert.pem" % directory)
    return device


def _public_der(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_registered(iot, device: DeviceCertificate, directory: Path) -> None:
    from botocore.exceptions import ClientError

    try:
        described = iot.describe_certificate(certificateId=device.certificate_id)
    except ClientError as e:
        if _error_code(e) == "ResourceNotFoundException":
            raise SpottyError(
                "the certificate kept in %s (%s) is not in this AWS account/region: "
                "move that directory away to create a new one" % (directory, device.certificate_id)
            ) from e
        raise
    description = described["certificateDescription"]
    if description["status"] != "ACTIVE":
        raise SpottyError(
            "certificate %s is %s in AWS IoT: activate it, or move %s away to create a new one"
            % (device.certificate_id, description["status"], directory)
        )
    registered = x509.load_pem_x509_certificate(description["certificatePem"].encode())
    if registered != device.cert:
        raise SpottyError("%s does not hold the certificate AWS IoT has as %s" % (
            directory, device.certificate_id))


def ensure_certificate(
    iot, thing: str, directory: Path, new_certificate: bool = False
) -> tuple[DeviceCertificate, bool]:
    """(the thing's certificate, created?): the kept one if any, else a new active one."""
    kept = load_host_copy(directory)
    if kept is not None and not new_certificate:
        _check_registered(iot, kept, directory)
        return kept, False
    if not new_certificate:
        principals = iot.list_thing_principals(thingName=thing)["principals"]
        certs = [p for p in principals if ":cert/" in p]
        if certs:
            raise SpottyError(
                "thing %s already has a certificate (%s) but its key is not kept in %s: "
                "ask for a new certificate (and deactivate the old one in AWS IoT)"
                % (thing, certs[0].rsplit("/", 1)[-1], directory)
            )
    created = iot.create_keys_and_certificate(setAsActive=True)
    key = serialization.load_pem_private_key(
        created["keyPair"]["PrivateKey"].encode(), password=None
    )
    cert = x509.load_pem_x509_certificate(created["certificatePem"].encode())
    device = DeviceCertificate(cert, key, created["certificateId"], created["certificateArn"])
    save_host_copy(directory, device)
    return device, True


def attach(iot, thing: str, policy: str, certificate_arn: str) -> None:
    """Both calls are no-ops when already attached."""
    iot.attach_policy(policyName=policy, target=certificate_arn)
    iot.attach_thing_principal(thingName=thing, principal=certificate_arn)


def iot_endpoint(iot) -> str:
    return iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]


def make_iot_client(region: str | None = None):
    import boto3
    from botocore.exceptions import BotoCoreError

    try:
        return boto3.client("iot", region_name=region)
    except BotoCoreError as e:  # e.g. no region anywhere
        raise SpottyError("AWS: %s (pass --region, or run `aws configure`)" % e) from e
