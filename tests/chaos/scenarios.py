"""The fault runs: a short one inside `make test`, two longer ones for `make chaos`, a soak."""

import random

from tests.chaos.harness import Scenario

_EVERY_PROCESS = ["ingest", "relay", "membership", "billing", "conflicts"]

# make test: every kind of fault once, on three brokers (one is lost and comes back mid-load)
QUICK = Scenario(
    name="quick-cluster",
    kafka="cluster",
    faults=["relay", "ingest", "broker", "membership", "billing", "postgres-restart", "conflicts"],
    gap=(1.5, 3.0),
    broker_down=(5.0, 7.0),
)

# make chaos: each process killed twice at random moments, broker faults, a PostgreSQL restart and crash
FULL = [
    Scenario(
        name="single-broker",
        kafka="single",
        faults=[*_EVERY_PROCESS, "broker", "postgres-restart", *reversed(_EVERY_PROCESS), "broker", "postgres-crash"],
        gap=(3.0, 8.0),
        seed=11,
    ),
    Scenario(
        name="three-brokers",
        kafka="cluster",
        faults=[
            *_EVERY_PROCESS, "broker", "postgres-crash", *_EVERY_PROCESS[::2], "broker", *_EVERY_PROCESS[1::2],
            "postgres-restart", "broker",
        ],
        gap=(3.0, 8.0),
        broker_down=(8.0, 20.0),
        seed=12,
    ),
]


def soak_faults(count: int = 200, seed: int = 13) -> list[str]:
    """A soak's faults: every twelfth a broker loss, every twelfth (offset) a PostgreSQL restart or
    crash in turn, the rest the five roles in shuffled rounds (so each is killed as often)."""
    rng = random.Random(seed)
    faults: list[str] = []
    roles: list[str] = []
    postgres = 0
    for i in range(count):
        if i % 12 == 6:
            faults.append("broker")
        elif i % 12 == 0 and i:
            faults.append("postgres-crash" if postgres % 2 else "postgres-restart")
            postgres += 1
        else:
            if not roles:
                roles = rng.sample(_EVERY_PROCESS, len(_EVERY_PROCESS))
            faults.append(roles.pop())
    return faults


# make chaos CHAOS_ARGS=--soak: 200 faults over every process, the brokers and PostgreSQL, a fault
# every 1.5-3.5 s and at most 4 in progress at once (one per target), under the IdP's load and a
# hostile org's expensive requests; ~15-20 min on a 2-core box.
SOAK = Scenario(
    name="soak",
    kafka="cluster",
    faults=soak_faults(),
    gap=(1.5, 3.5),
    broker_down=(4.0, 8.0),
    max_in_flight=4,
    hostile=True,
    warmup=6.0,
    tail=10.0,
    seed=13,
)

# The single broker restarted three times (SIGTERM, start) under load, one after the other, nothing
# else: how long after it is back the clients reconnect and events flow again (reconnect back-off).
BROKER_RESTARTS = Scenario(
    name="broker-restarts",
    kafka="single",
    faults=["broker"] * 3,
    gap=(25.0, 30.0),
    max_in_flight=1,
    seed=14,
)
