"""`python -m study …`: the `cmi-study` command line, and the entry point of helper workers.

A helper (`python -m study --serve-helper`, started by `study.workers.helper.Helpers`) imports the heavy
modules at once, so that its start-up overlaps the driver's, then serves the driver's command
lines with the CLI's own `main`.
"""

import os
import sys

from study.workers.helper import SERVE, die_with_driver, serve

if sys.argv[1:] == [SERVE]:
    die_with_driver()  # before the slow imports: a driver killed meanwhile takes its helpers along
    import study.confirm  # noqa: F401  the start-up this process exists to get out of the way
    from study.cli import main

    code = serve(main)
    # Out at once, without the interpreter's teardown of torch, Lightning and cvxpy (4-5 s on an
    # idle 2-core machine, 20 s under load): a helper whose driver died must not linger. Its
    # work is in the storage already; only the standard streams need flushing.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

from study.cli import main  # noqa: E402

sys.exit(main())
