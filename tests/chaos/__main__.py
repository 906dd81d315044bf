"""`python -m tests.chaos [--quick | --soak] [--scenario NAME] [--report FILE]`: the fault-injection run (`make chaos`).

Prints the report and writes it (default `.local/chaos-report.md`; `make chaos` keeps the
committed `docs/chaos.md` for a run worth publishing). Exit status 1 if an invariant failed.

`--soak` (`make chaos CHAOS_ARGS=--soak`) runs the 200-fault SOAK scenario; written into an
existing report it replaces only the soak section (between SOAK_BEGIN and SOAK_END), and a full
run keeps that section and everything after it. `--faults N` runs the first N faults of the
chosen scenario, and `--set NAME=VALUE` overrides a setting of the pipeline: the same seed with
and without a change, e.g. `--soak --faults 40 --set consumer_static_membership=false`.
"""

import argparse
import dataclasses
import signal
import sys
from pathlib import Path

from core.logs import configure
from core.settings import Settings
from tests.chaos import harness, report
from tests.chaos.scenarios import BROKER_RESTARTS, FULL, QUICK, SOAK

SOAK_BEGIN = "<!-- soak: written by `make chaos CHAOS_ARGS=--soak`; a full `make chaos` keeps this section and what follows -->"
SOAK_END = "<!-- /soak -->"


def _setting(item: str) -> tuple[str, object]:
    name, _, value = item.partition("=")
    if name not in Settings.model_fields:
        raise argparse.ArgumentTypeError(f"no setting {name!r}")
    return name, Settings.model_validate({name: value}).model_dump()[name] if value else value


def _write(path: Path, document: str, soak: bool) -> None:
    """A soak replaces its own section; a full run keeps the soak section and what follows it."""
    old = path.read_text() if path.exists() else ""
    if soak:
        section = f"{SOAK_BEGIN}\n\n{document}\n{SOAK_END}\n"
        if SOAK_BEGIN in old and SOAK_END in old:
            head, rest = old.split(SOAK_BEGIN, 1)
            document = head + section + rest.split(SOAK_END, 1)[1].lstrip("\n")
        else:
            document = (old.rstrip("\n") + "\n\n" if old else "") + section
    elif SOAK_BEGIN in old:
        document = document.rstrip("\n") + "\n\n" + SOAK_BEGIN + old.split(SOAK_BEGIN, 1)[1]
    path.write_text(document)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos")
    parser.add_argument("--quick", action="store_true", help="the short scenario that make test runs")
    parser.add_argument("--soak", action="store_true", help="the 200-fault soak (~20 min)")
    parser.add_argument("--scenario", action="append", help="only these scenarios (by name)")
    parser.add_argument("--faults", type=int, help="only the first N faults of each scenario")
    parser.add_argument("--set", type=_setting, action="append", default=[], metavar="NAME=VALUE",
                        help="a pipeline setting for this run")
    parser.add_argument("--report", default=".local/chaos-report.md")
    args = parser.parse_args()
    # SIGINT or SIGTERM (a run started in the background ignores SIGINT) stops the run cleanly: the
    # pipeline is stopped and the stack removed
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    configure(Settings(log_level="WARNING"))
    scenarios = [SOAK] if args.soak else [QUICK] if args.quick else FULL
    if args.scenario:
        scenarios = [s for s in [*FULL, QUICK, SOAK, BROKER_RESTARTS] if s.name in args.scenario]
    if args.faults or args.set:
        scenarios = [dataclasses.replace(s, faults=s.faults[:args.faults] if args.faults else s.faults,
                                         settings={**s.settings, **dict(args.set)}) for s in scenarios]
    results = []
    for scenario in scenarios:
        print(f"chaos: running scenario {scenario.name} ({len(scenario.faults)} faults)", file=sys.stderr, flush=True)
        result = harness.run(scenario)
        print(report.render(result), flush=True)
        results.append(result)
    plain = not args.quick and not args.scenario and not args.faults and not args.set
    command = ("make chaos CHAOS_ARGS=--soak" if args.soak else "make chaos") if plain \
        else "python -m tests.chaos " + " ".join(sys.argv[1:])
    path = Path(args.report)
    path.parent.mkdir(parents=True, exist_ok=True)
    soak = args.soak and path.exists() and path.resolve() == Path("docs/chaos.md").resolve()
    _write(path, report.soak_section(results, command) if soak else report.document(results, command), soak)
    print(f"chaos: report written to {path}", file=sys.stderr)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
