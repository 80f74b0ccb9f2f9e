"""The `ftstudio` command as installed: every command of studio.cli, plus `gui`, which opens the window (also
what `ftstudio` with no command does). It lives here, not in studio/, because the core never imports the
window; Qt is imported only when the window opens, so `ftstudio --help` and the stage commands stay quick."""
from __future__ import annotations

import sys

from studio import cli


def gui_command(args) -> int:
    from ui.app import main as gui_main

    return gui_main(args.project, smoke=args.smoke)


def register(subparsers) -> None:
    p = subparsers.add_parser("gui", help="open the desktop app (the default)")
    p.add_argument("project", nargs="?", help="a *.ftproj.toml to open")
    p.add_argument("--smoke", action="store_true", help="print when the window is shown, then quit (install checks)")
    p.set_defaults(func=gui_command)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = cli.build_parser(register)
    parser.description += " With no command, opens the app."
    return cli.main(argv or ["gui"], parser)


if __name__ == "__main__":
    sys.exit(main())
