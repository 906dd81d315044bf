"""The fault runs: a short one inside `make test`, two longer ones for `make chaos`."""

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
