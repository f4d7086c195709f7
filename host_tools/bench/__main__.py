"""`python -m host_tools.bench` (`make bench`): the sessions, the shadow link, then OTA."""

import sys

from . import iot, ota, sessions


def main() -> int:
    sessions.main()
    iot.main()
    print()
    ota.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
