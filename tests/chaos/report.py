"""A fault run's figures as Markdown: faults and recovery, what the IdP saw, the invariants."""

import platform
import statistics
import time
from collections import defaultdict

from tests.chaos.harness import FLOWING, Result

_KIND = {"ingest": "ingest", "relay": "relay", "membership": "membership worker", "billing": "billing worker",
         "conflicts": "conflicts worker", "broker": "Kafka broker", "postgres-restart": "PostgreSQL restart",
         "postgres-crash": "PostgreSQL crash"}


def _s(value: float | None) -> str:
    return "not recovered" if value is None else f"{value:.1f} s"


def _p50_max(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} / {max(values):.1f} s" if values else "-"


def _by_kind(result: Result) -> list[str]:
    """Per kind of fault: count, recovery p50/max, the worst end-to-end delay p50/max."""
    lines = ["| fault | count | fault → ready again, p50 / max | not recovered | end-to-end delay during it, p50 / max |"
             " fault → events flowing again, p50 / max | waited for its turn, max |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    kinds: dict[str, list] = defaultdict(list)
    for f in result.faults:
        kinds[f.what].append(f)
    for what, faults in kinds.items():
        recovered = [f.recovered_in for f in faults if f.recovered_in is not None]
        delays = [f.delay_max for f in faults if f.delay_max is not None]
        flowing = [f.flowing_in for f in faults if f.flowing_in is not None]
        label = _KIND.get(what, what)
        lines.append(f"| {label} | {len(faults)} | {_p50_max(recovered)} | {len(faults) - len(recovered)} | "
                     f"{_p50_max(delays)} | {_p50_max(flowing)} | {max(f.waited for f in faults):.1f} s |")
        started = [f.answered_in for f in faults if f.answered_in is not None]
        if started and what in ("membership", "billing", "conflicts"):  # the rest is joining the consumer group
            joined = [f.recovered_in - f.answered_in for f in faults if f.answered_in is not None and f.recovered_in is not None]
            lines.append(f"| … of which started (its /readyz answers) | {len(started)} | {_p50_max(started)} | | | | |")
            lines.append(f"| … of which then joined its consumer group | {len(joined)} | {_p50_max(joined)} | | | | |")
        backs = [f.back_in for f in faults if f.back_in is not None]
        if backs:  # a cluster broker: how much of it was the broker's own downtime and start
            after = [f.recovered_in - f.back_in for f in faults if f.back_in is not None and f.recovered_in is not None]
            lines.append(f"| … of which broker down + started (stack.sh) | {len(backs)} | {_p50_max(backs)} | | | | |")
            lines.append(f"| … of which ready after the broker answered | {len(after)} | {_p50_max(after)} | | | | |")
    return lines


def _hostile(result: Result) -> list[str]:
    h = result.hostile_answers
    if h is None:
        return []
    classes: dict[str, list[str]] = defaultdict(list)
    for (what, status), n in sorted(h.answers.items()):
        classes[what].append(f"{status} × {n}")
    return [
        f"Hostile org (not in the ledgers; {h.rounds} rounds of {hostile_round()}): answers by status "
        + ", ".join(f"{k} × {v}" for k, v in sorted(h.by_status().items()))
        + f"; expensive requests answered 2xx: {h.expensive_accepted()}; slowest answer {h.longest_s:.1f} s.",
        "",
        *[f"- {what}: {', '.join(v)}" for what, v in classes.items()],
        "",
    ]


def hostile_round() -> str:
    from tests.chaos import hostile

    return (f"at most {hostile.ROUND:.0f} s every {hostile.PERIOD:.0f} s: 2 POST /.search with {hostile.ATTRIBUTES} "
            f"attributes, 2 PATCH with {hostile.OPERATIONS} operations, 2 declared 50 MB bodies never sent, "
            f"6 slow-loris unfinished headers, 6 loops of GET /Users for half the round over the rate limit")


def render(result: Result) -> str:
    sc = result.scenario
    t = result.traffic
    lines = [
        f"### Scenario `{sc.name}`: {'three brokers (RF 3, min ISR 2)' if sc.kafka == 'cluster' else 'one broker'}",
        "",
        f"Load {result.load_seconds:.0f} s ({sc.orgs} orgs, {sc.scim_threads_per_org} SCIM threads each, "
        f"{sc.login_threads} login threads), settle {result.settle_seconds:.0f} s, whole run {result.total_seconds:.0f} s; "
        f"seed {sc.seed}. Result: **{'all invariants hold' if result.ok else 'FAILED'}**.",
        "",
        "| t (s) | fault | detail | injection took | fault → ready again |",
        "| ---: | --- | --- | ---: | ---: |",
    ]
    shown = result.faults
    if len(result.faults) > 40:  # a soak: the slowest ten and the unrecovered, the rest by kind below
        slowest = sorted(result.faults, key=lambda f: -1.0 if f.recovered_in is None else f.recovered_in)
        shown = sorted([f for f in slowest if f.recovered_in is None] + [f for f in slowest if f.recovered_in is not None][-10:],
                       key=lambda f: f.at)
        lines.insert(-2, f"{len(result.faults)} faults; the ten slowest to recover (and any not recovered):\n")
    for f in shown:
        lines.append(f"| {f.at:.1f} | {_KIND.get(f.what, f.what)} | {f.detail} | {f.injected_in:.1f} s | {_s(f.recovered_in)} |")
    by_kind: dict[str, list[float]] = defaultdict(list)
    for f in result.faults:
        if f.recovered_in is not None:
            by_kind[_KIND.get(f.what, f.what)].append(f.recovered_in)
    lines += ["", "Ready again: a killed process's role answers /readyz from a new process; after a broker or "
              "PostgreSQL fault, every process answers /readyz (a worker: database reachable and consumer group joined), "
              "but one that a kill of its own, still in progress, took down. "
              "Faults overlap: each is injected in its own thread at a random moment.",
              "", "Recovery by kind (max over the run): " + ", ".join(
        f"{k} {max(v):.1f} s" for k, v in by_kind.items()) + ".",
        "", *_by_kind(result), "",
        "End-to-end delay: the age of the oldest event staged in the outbox that some worker has not applied yet, "
        f"sampled every second (max over the run {max((d for _, d in result.delays), default=0.0):.1f} s); "
        "per fault, the worst sample from the fault to 5 s after its recovery, and when events flowed again: "
        f"the first sample under {FLOWING:.0f} s once the injection was over (a broker: started again).",
        "",
        "Supervisor restarts logged: "
        + (", ".join(f"{k} {v}" for k, v in sorted(result.restarts_logged.items())) or "none") + ".",
        f"Outbox during the run: at most {result.outbox_max_rows} rows waiting, oldest {result.outbox_max_age:.1f} s.", ""]
    lines += _hostile(result)
    failed = {k: v for k, v in t.answers.items() if not (k.isdigit() and int(k) < 500 and k != "429")}
    lines += [
        "What the IdP saw:",
        "",
        f"- acknowledged writes: {sum(t.acknowledged.values())} ("
        + ", ".join(f"{k} {v}" for k, v in sorted(t.acknowledged.items())) + ")",
        "- answers: " + ", ".join(f"{k} × {v}" for k, v in sorted(t.answers.items())),
        f"- failed attempts (retried): {sum(failed.values())} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(failed.items())) or 'none'}); retries {t.retries}",
        f"- slowest single attempt {t.max_attempt_seconds:.2f} s; slowest operation including retries "
        f"{t.max_operation_seconds:.2f} s ({t.slowest_operation})",
        f"- answers a correct service never gives: {len(t.anomalies)}" + (f" (e.g. {t.anomalies[:3]})" if t.anomalies else ""),
        "",
        "| invariant | holds | figures |",
        "| --- | --- | --- |",
    ]
    for c in result.checks:
        figures = "; ".join(f"{k}: {v}" for k, v in c.figures.items())
        lines.append(f"| {c.name} | {'yes' if c.ok else 'NO'} | {figures} |")
    for c in result.checks:
        for p in c.problems[:10]:
            lines.append(f"- {c.name}: {p}")
    lines.append("")
    return "\n".join(lines)


def _written_by(command: str) -> str:
    return (f"Written by `{command}` on {time.strftime('%Y-%m-%d %H:%M %Z')} ({platform.system()}, "
            f"Python {platform.python_version()})")


def _section(title: str, intro: str, results: list[Result]) -> str:
    return "\n".join([title, "", intro, ""]) + "\n" + "\n".join(render(r) for r in results)


def document(results: list[Result], command: str) -> str:
    return _section("# Fault injection: figures of the last full run",
                    f"{_written_by(command)}. How the run works and what each invariant means: "
                    "`tests/chaos/harness.py` and `tests/chaos/invariants.py`; what an SRE does: `docs/runbook.md`.",
                    results)


def soak_section(results: list[Result], command: str) -> str:
    return _section("## Soak",
                    f"{_written_by(command)}: hundreds of overlapping faults over every process kind, the brokers "
                    "and PostgreSQL, under the IdP's load and a hostile org's expensive requests, with the same "
                    "invariant checker.",
                    results)
