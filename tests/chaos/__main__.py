"""`python -m tests.chaos [--quick] [--scenario NAME] [--report FILE]`: the fault-injection run (`make chaos`).

Prints the report and writes it (default `.local/chaos-report.md`; `make chaos` keeps the
committed `docs/chaos.md` for a run worth publishing). Exit status 1 if an invariant failed.
"""

import argparse
import sys
from pathlib import Path

from core.logs import configure
from core.settings import Settings
from tests.chaos import harness, report
from tests.chaos.scenarios import FULL, QUICK


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos")
    parser.add_argument("--quick", action="store_true", help="the short scenario that make test runs")
    parser.add_argument("--scenario", action="append", help="only these scenarios (by name)")
    parser.add_argument("--report", default=".local/chaos-report.md")
    args = parser.parse_args()
    configure(Settings(log_level="WARNING"))
    scenarios = [QUICK] if args.quick else FULL
    if args.scenario:
        scenarios = [s for s in FULL + [QUICK] if s.name in args.scenario]
    results = []
    for scenario in scenarios:
        print(f"chaos: running scenario {scenario.name} ({len(scenario.faults)} faults)", file=sys.stderr, flush=True)
        result = harness.run(scenario)
        print(report.render(result), flush=True)
        results.append(result)
    command = "make chaos" if not args.quick and not args.scenario else "python -m tests.chaos " + " ".join(sys.argv[1:])
    path = Path(args.report)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.document(results, command))
    print(f"chaos: report written to {path}", file=sys.stderr)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
