"""`spotty ota keygen|build|show|push|status|serve`."""

import sys
from pathlib import Path

from ..common.cmdline import announce
from ..common.devicepath import DEVICE_DIR
from ..common.errors import RefusedError, SpottyError


def cmd_ota_keygen(args) -> int:
    from . import bundles as ota
    from .keyplace import default_key_dir

    private_path, public_path = ota.keygen(Path(args.dir) if args.dir else default_key_dir())
    print("private key %s (0600): keep it safe and offline; it signs every update" %
          private_path)
    print("public key  %s: give it to `spotty provision --ota-pubkey`" % public_path)
    return 0


def cmd_ota_build(args) -> int:
    from . import bundles as ota

    source = Path(args.source) if args.source else DEVICE_DIR
    info = ota.build(source, args.version, Path(args.key), Path(args.out),
                     Path(args.ca) if args.ca else None, args.counter)
    print("%s: version %s, counter %d, %d files, %d bytes, sha256 %s" % (
        args.out, info["version"], info["counter"], len(info["files"]), info["size"],
        info["sha256"]))
    return 0


def cmd_ota_push(args) -> int:
    from . import push as ota_push

    request = ota_push.push(args.thing, args.url, Path(args.bundle), args.endpoint_url,
                            Path(args.pub) if args.pub else None, args.region)
    print("desired.ota of %s set: version %s, %d bytes, sha256 %s" % (
        args.thing, request["version"], request["size"], request["sha256"]))
    print("the device downloads it when idle; follow with `spotty ota status --thing %s`"
          % args.thing)
    return 0


def cmd_ota_status(args) -> int:
    from . import push as ota_push

    state = ota_push.status(args.thing, args.endpoint_url, args.region)
    reported = state["reported"] or {}
    print("running firmware: %s" % (state["firmware"] or "unknown"))
    print("requested:        %s" % (state["desired"] or {}).get("version", "nothing pending"))
    print("last update:      %s %s%s" % (
        reported.get("version", "-"), reported.get("status", ""),
        " (%s)" % reported["reason"] if reported.get("reason") else ""))
    hint = _HINTS.get(reported.get("reason"))
    if hint:
        print(hint)
    return 0


_HINTS = {
    "downgrade": "the device has applied a bundle with a higher counter: to go back on purpose, "
                 "build this version again (`spotty ota build` gives it a new, higher counter)",
    "no_counter": "the bundle was built before bundles had a counter: build it again",
}


def cmd_ota_serve(args) -> int:
    from ..common.serving import check_can_listen, is_loopback
    from .keyplace import check_servable
    from .server import serve

    if not Path(args.dir).is_dir():
        raise SpottyError("no folder %s to serve" % args.dir)
    check_servable(Path(args.dir))  # before the port check and before a CA is written
    if Path(args.ca_dir).resolve() == Path(args.dir).resolve():
        raise RefusedError("--ca-dir %s is the served folder: its CA key would sit among the "
                           "bundles; keep the CA elsewhere" % args.ca_dir)
    check_can_listen(args.host, args.port, "--port")
    if not is_loopback(args.host):
        print("spotty: warning: listening on %s: every machine that reaches this one can "
              "download the bundles (bundles only: they are signed, not secret)" % args.host,
              file=sys.stderr)
    serve(Path(args.dir), args.host, args.port, Path(args.ca_dir), announce)
    return 0


def cmd_ota_show(args) -> int:
    from . import bundles as ota

    manifest = ota.read_manifest(Path(args.bundle), Path(args.pub) if args.pub else None)
    counter = manifest.get("counter")
    print("version %s (format %d), counter %s, %d files:" % (
        manifest["version"], manifest["format"],
        counter if counter is not None else "none (devices refuse it: no_counter)",
        len(manifest["files"])))
    for entry in manifest["files"]:
        print("  %8d  %s  %s" % (entry["size"], entry["sha256"][:16], entry["path"]))
    if args.pub:
        print("signature and contents: valid for %s" % args.pub)
    else:
        print("signature: not checked (pass --pub ota_pub.bin)")
    return 0
