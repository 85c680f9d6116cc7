"""``python -m fairrun.metrics --markdown [docs/metrics.md]``: the metric registry as a Markdown table
(printed, or written between the table markers of the given file)."""
import sys

from fairrun.metrics.registry import main

sys.exit(main(sys.argv[1:]))
