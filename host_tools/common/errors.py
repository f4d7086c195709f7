"""User-facing failures: the CLI prints `spotty: <message>` and exits with `exit_code`.

The exit codes scripts can rely on (listed in the README):
0 done, 1 failed, 2 usage (argparse), 3 a value refused, 4 the device did not answer in
time, 130 Ctrl-C, 141 the reader of stdout went away (as SIGPIPE gives git and cat).
"""

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_OFFLINE = 4
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


class SpottyError(Exception):
    """A failure the user can act on: a missing file, a busy port, AWS out of reach."""

    exit_code = EXIT_FAILED


class UsageError(SpottyError):
    """Options that do not go together: what argparse's own usage errors are."""

    exit_code = EXIT_USAGE


class RefusedError(SpottyError):
    """A value the checks refuse (a setting, a thing name, a key file): nothing was done."""

    exit_code = EXIT_REFUSED


class DeviceOffline(SpottyError):
    """The device did not confirm within the wait: the request stays, the device may be off."""

    exit_code = EXIT_OFFLINE
