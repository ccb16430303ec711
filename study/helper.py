"""A helper worker of `run`/`confirm`/`demo --workers W`: a process started before it has work.

It imports the heavy modules at once (torch, Lightning, scikit-learn, SQLAlchemy: ~6 s on a
2-core machine), so that this start-up overlaps the driver's own, then runs the `cmi-study`
command lines the driver sends on stdin (one JSON list per line), one after another, and answers
each with its exit code on the pipe that was its stdout. The demo sends one helper `run`, then
`confirm`: it starts once. Closing stdin ends it.
"""

import json
import os
import sys


def serve() -> int:
    # Replies go on the original stdout; anything a command prints goes nowhere (the driver
    # prints for every worker). Error lines still reach stderr, which is the driver's.
    reply = os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    try:
        import study.confirm  # noqa: F401  the start-up this process exists to get out of the way
        from study.cli import main

        for line in sys.stdin:
            print(main(json.loads(line), helper=True), file=reply, flush=True)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group, idle helpers included
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(serve())
