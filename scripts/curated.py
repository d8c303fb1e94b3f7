"""The curated Delta table by hand: its history, and the undo of a window.

    python scripts/curated.py history [--config FILE] [--limit 20]
    python scripts/curated.py restore --start ISO --end ISO --version N --reason TEXT [--config FILE] [--user NAME]

``restore`` puts back the rows the window had at table version ``N`` (see ``history``) in one new
commit, leaving every other window as it is now; it can itself be undone the same way. The config
defaults to ``$DRIFTLOOP_CONFIG`` (else the demo's).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    from include.config import ConfigError, load_settings
    from include.curated import Commit, CuratedError, restore_window
    from include.storage import Storage, Window

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    history = sub.add_parser("history", help="the table's commits, newest first")
    history.add_argument("--limit", type=int, default=20)
    restore = sub.add_parser("restore", help="put back a window's rows as of an earlier version")
    restore.add_argument("--start", required=True)
    restore.add_argument("--end", required=True)
    restore.add_argument("--version", type=int, required=True)
    restore.add_argument("--reason", required=True)
    restore.add_argument("--user", default=getpass.getuser())
    for p in (history, restore):
        p.add_argument("--config", default=None)
    args = parser.parse_args(argv)
    try:
        table = Storage.from_settings(load_settings(args.config)).curated()
        if args.action == "history":
            for entry in table.history(args.limit):
                print(json.dumps(entry, sort_keys=True))
            return 0
        commit = Commit("restore", user=args.user, reason=args.reason)
        result = restore_window(table, Window.parse(args.start, args.end), args.version, commit)
    except (ConfigError, CuratedError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
