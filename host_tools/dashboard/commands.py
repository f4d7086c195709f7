"""`spotty dashboard`: serve the web page until Ctrl-C."""

import sys

from ..common.errors import SpottyError

DEFAULT_PORT = 8000


def cmd_dashboard(args) -> int:
    from ..common.serving import address_here, check_can_listen, is_loopback
    from .source import ShadowSource
    from .web import LOOPBACK_NAMES, create_app

    if args.refresh <= 0:
        raise SpottyError("--refresh must be a positive number of seconds")
    check_can_listen(args.host, args.port, "--port")
    source = ShadowSource(args.endpoint_url, args.region, args.thing)
    things = source.things()  # AWS out of reach or no credentials: said now, not in the page
    local = is_loopback(args.host)
    if not local:
        print("spotty: warning: the dashboard listens on %s: anyone who can reach this "
              "machine there can see the devices and change their settings (it has no "
              "login). Use it on a network you trust." % args.host, file=sys.stderr)
    app = create_app(source, args.refresh, allowed_hosts=LOOPBACK_NAMES if local else None)
    shown = address_here(args.host)
    print("SpottyPottySense dashboard on http://%s:%d/ (%d thing%s; Ctrl-C stops it)" % (
        shown if ":" not in shown else "[%s]" % shown, args.port, len(things),
        "" if len(things) == 1 else "s"), flush=True)
    import uvicorn

    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
