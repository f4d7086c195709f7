"""What the `spotty` command table is built with: help that shows defaults and an example,
options the environment may fill in, and the version line."""

import argparse
import os
import re
from importlib import metadata

from .devicepath import DEVICE_DIR

THING_ENV = "SPOTTY_THING"
PORT_ENV = "SPOTTY_PORT"
ENDPOINT_ENV = "SPOTTY_ENDPOINT_URL"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples as written; each option's default after its help."""

    def _get_help_string(self, action) -> str:
        text = action.help or ""
        default = action.default
        shown = action.option_strings or action.nargs in ("?", "*")
        if "%(default)" in text or default is None or default is False or not shown \
                or default is argparse.SUPPRESS:
            return text
        return text + " (default: %(default)s)"


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError("%r is not a whole number of 0 or more" % text)
    return value


def command(sub, name: str, text: str, *examples: str, description: str | None = None):
    """A subcommand with its one-line help, a description and its examples."""
    return sub.add_parser(
        name, help=text, description=description or text[0].upper() + text[1:] + ".",
        epilog=examples_text(examples), formatter_class=HelpFormatter)


def examples_text(examples) -> str:
    return "example%s:\n%s" % ("s" if len(examples) > 1 else "",
                               "\n".join("  " + e for e in examples))


def from_environment(parser, required: tuple[str, ...] = (), **variables: str) -> None:
    """Options the environment fills in when they are not given (dest -> variable); a
    `required` one given neither way is a usage error naming both (see `apply_environment`)."""
    parser.set_defaults(_environment=variables, _required=required, _parser=parser)


def apply_environment(args) -> None:
    variables = getattr(args, "_environment", {})
    for dest, variable in variables.items():
        if getattr(args, dest, None) is None and os.environ.get(variable):
            setattr(args, dest, os.environ[variable])
    for dest in getattr(args, "_required", ()):
        if getattr(args, dest, None) is None:
            option = dest if dest == "thing" and args.command == "provision" else \
                "--" + dest.replace("_", "-")
            args._parser.error("%s is needed (or set %s)" % (option, variables[dest]))


def version_text() -> str:
    """spotty 0.1.0, firmware 0.1.0."""
    try:
        tools = metadata.version("spottypottysense")
    except metadata.PackageNotFoundError:
        tools = "(not installed)"
    try:
        match = re.search(r'^VERSION = "([^"]+)"', (DEVICE_DIR / "app.py").read_text(), re.M)
        firmware = match.group(1) if match else "?"
    except OSError:
        firmware = "?"
    return "spotty %s, firmware %s" % (tools, firmware)
