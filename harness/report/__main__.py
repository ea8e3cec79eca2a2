"""`python -m harness.report [key=value ...]`: a thin wrapper around build_report().

Keys (also as flags):  tracking.uri (--tracking-uri)  tracking.experiment (--experiment)
                       sweep (--sweep)                 out (--out)
                       compare (--compare): a second sweep id or parent run id, put side by side
Bad input: one line `error: key=value: what is allowed` on stderr, exit status 2.
"""
from __future__ import annotations

import sys

from harness.errors import ConfigError

KEYS = {"tracking.uri": "uri", "tracking.experiment": "experiment", "sweep": "sweep", "out": "out",
        "compare": "compare"}
FLAGS = {"--tracking-uri": "tracking.uri", "--experiment": "tracking.experiment", "--sweep": "sweep", "--out": "out",
         "--compare": "compare"}
DEFAULTS = {"uri": "sqlite:///mlflow.db", "experiment": "lossbench", "sweep": None, "out": "reports", "compare": None}
USAGE = __doc__


def parse(argv: list[str]) -> dict:
    """Command line -> build_report keyword arguments; raises ConfigError on an unknown key."""
    args, i = dict(DEFAULTS), 0
    allowed = "one of " + ", ".join(KEYS) + " (or " + ", ".join(FLAGS) + ")"
    while i < len(argv):
        a = argv[i]
        if a.startswith("--"):
            flag, eq, value = a.partition("=")
            if flag not in FLAGS:
                raise ConfigError(flag, value or None, allowed)
            if not eq:
                if i + 1 >= len(argv):
                    raise ConfigError(flag, None, "a value after the flag")
                i, value = i + 1, argv[i + 1]
            key = FLAGS[flag]
        else:
            key, eq, value = a.partition("=")
            if not eq or key not in KEYS:
                raise ConfigError(key, value or None, allowed)
        if value == "":
            raise ConfigError(key, value, "a non-empty value")
        args[KEYS[key]] = value
        i += 1
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return 0
    try:
        args = parse(argv)
        from harness.report.build import build_report

        folder = build_report(**args)
    except ConfigError as e:
        print(e.line(), file=sys.stderr)
        return 2
    print(folder / "index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
