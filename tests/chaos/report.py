"""A fault run's figures as Markdown: faults and recovery, what the IdP saw, the invariants."""

import platform
import time
from collections import defaultdict

from tests.chaos.harness import Result

_KIND = {"ingest": "ingest", "relay": "relay", "membership": "membership worker", "billing": "billing worker",
         "conflicts": "conflicts worker", "broker": "Kafka broker", "postgres-restart": "PostgreSQL restart",
         "postgres-crash": "PostgreSQL crash"}


def _s(value: float | None) -> str:
    return "not recovered" if value is None else f"{value:.1f} s"


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
    for f in result.faults:
        lines.append(f"| {f.at:.1f} | {_KIND.get(f.what, f.what)} | {f.detail} | {f.injected_in:.1f} s | {_s(f.recovered_in)} |")
    by_kind: dict[str, list[float]] = defaultdict(list)
    for f in result.faults:
        if f.recovered_in is not None:
            by_kind[_KIND.get(f.what, f.what)].append(f.recovered_in)
    lines += ["", "Ready again: a killed process's role answers /readyz from a new process; after a broker or "
              "PostgreSQL fault, every process answers /readyz (a worker: database reachable and consumer group joined). "
              "Faults overlap: each is injected in its own thread at a random moment.",
              "", "Recovery by kind (max over the run): " + ", ".join(
        f"{k} {max(v):.1f} s" for k, v in by_kind.items()) + ".",
        "Supervisor restarts logged: "
        + (", ".join(f"{k} {v}" for k, v in sorted(result.restarts_logged.items())) or "none") + ".",
        f"Outbox during the run: at most {result.outbox_max_rows} rows waiting, oldest {result.outbox_max_age:.1f} s.", ""]
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


def document(results: list[Result], command: str) -> str:
    head = [
        "# Fault injection: figures of the last full run",
        "",
        f"Written by `{command}` on {time.strftime('%Y-%m-%d %H:%M %Z')} ({platform.system()}, "
        f"Python {platform.python_version()}). How the run works and what each invariant means: "
        "`tests/chaos/harness.py` and `tests/chaos/invariants.py`; what an SRE does: `docs/runbook.md`.",
        "",
    ]
    return "\n".join(head) + "\n" + "\n".join(render(r) for r in results)
