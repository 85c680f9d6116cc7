"""``python -m fairrun.rundir trust RUN_DIR ...``: vouch for old runs' results.pkl."""
from fairrun.rundir import _main

raise SystemExit(_main())
