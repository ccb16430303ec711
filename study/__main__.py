"""`python -m study …`: the `cmi-study` command line, and the entry point of helper workers.

A helper (`python -m study --serve-helper`, started by `study.helper.Helpers`) imports the heavy
modules at once, so that its start-up overlaps the driver's, then serves the driver's command
lines with the CLI's own `main`.
"""

import sys

from study.helper import SERVE, die_with_driver, serve

if sys.argv[1:] == [SERVE]:
    die_with_driver()  # before the slow imports: a driver killed meanwhile takes its helpers along
    import study.confirm  # noqa: F401  the start-up this process exists to get out of the way
    from study.cli import main

    sys.exit(serve(main))

from study.cli import main  # noqa: E402

sys.exit(main())
