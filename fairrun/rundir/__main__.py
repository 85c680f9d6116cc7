"""``python -m fairrun.rundir trust RUN_DIR ...``: vouch for old runs' results.pkl."""
from fairrun.rundir.trust import main

raise SystemExit(main())
