"""`provisioner topics create` on the real Kafka: the topics it creates, and the configuration it
gives them and restores on topics that exist, read back with the admin client."""

import json
import uuid
from collections.abc import Iterator

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType
from pydantic import ValidationError
from typer.testing import CliRunner

from cli.main import app
from core.settings import Settings
from events.kafka import ensure_topics

pytestmark = pytest.mark.integration

DAY_MS = 24 * 3600 * 1000
KEYS = ["retention.ms", "min.insync.replicas", "max.message.bytes"]


@pytest.fixture
def own(settings: Settings) -> Iterator[Settings]:
    """Settings naming topics no other test uses; the topics are deleted afterwards."""
    prefix = f"topics-{uuid.uuid4().hex[:10]}"
    names = {f"topic_{role}": f"{prefix}.{role.replace('_', '-')}" for role in ("lifecycle", "members", "billing", "dead_letter")}
    mine = settings.model_copy(update=names)
    yield mine
    admin = _admin(mine)
    try:
        present = set(admin.list_topics()) & set(names.values())
        if present:
            admin.delete_topics(sorted(present))
    finally:
        admin.close()


def _admin(settings: Settings) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers.split(","), client_id="topics-test")


def _described(settings: Settings) -> dict[str, dict[str, str]]:
    """The effective value of KEYS on each of the settings' topics, as the broker reports it."""
    admin = _admin(settings)
    try:
        resources = [ConfigResource(ConfigResourceType.TOPIC, name, KEYS) for name in settings.topics().values()]
        found = admin.describe_configs(resources, config_filter="all")["topic"]
    finally:
        admin.close()
    return {name: {key: entry["value"] for key, entry in configs.items()} for name, configs in found.items()}


def _admin_retention(settings: Settings, name: str) -> str:
    admin = _admin(settings)
    try:
        found = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name, ["retention.ms"])], config_filter="all")
    finally:
        admin.close()
    return str(found["topic"][name]["retention.ms"]["value"])


def _partitions(settings: Settings, name: str) -> int:
    admin = _admin(settings)
    try:
        (topic,) = admin.describe_topics([name])
    finally:
        admin.close()
    return len(topic["partitions"])


def test_created_topics_get_the_retention_of_their_role(own: Settings):
    report = ensure_topics(own)
    topics = own.topics()
    assert sorted(report.created) == sorted(topics.values()) and report.altered == {} and report.unchanged == []
    described = _described(own)
    assert {role: described[name]["retention.ms"] for role, name in topics.items()} == {
        "lifecycle": str(14 * DAY_MS), "members": str(14 * DAY_MS), "billing": "-1", "dead_letter": str(30 * DAY_MS),
    }  # fmt: skip
    assert {described[name]["min.insync.replicas"] for name in topics.values()} == {str(own.min_insync_replicas())}
    assert _partitions(own, topics["billing"]) == own.topic_partitions


def test_existing_topics_are_aligned_once_and_keep_their_other_settings(own: Settings):
    lifecycle, billing = own.topic_lifecycle, own.topic_billing
    admin = _admin(own)
    try:  # made by hand before: the broker's default retention on lifecycle, a month on billing, and a custom setting
        admin.create_topics({
            lifecycle: {"num_partitions": 2, "replication_factor": 1, "configs": {"max.message.bytes": "2000000"}},
            billing: {"num_partitions": 2, "replication_factor": 1, "configs": {"retention.ms": str(30 * DAY_MS)}},
        }, wait_for_metadata=True)  # fmt: skip
    finally:
        admin.close()
    broker_default = _admin_retention(own, lifecycle)
    custom = own.model_copy(update={"topic_retention_ms_lifecycle": 3 * DAY_MS})

    report = ensure_topics(custom)
    assert sorted(report.created) == sorted([own.topic_members, own.topic_dead_letter])
    assert report.altered[billing] == {"retention.ms": (str(30 * DAY_MS), "-1")}
    assert report.altered[lifecycle]["retention.ms"] == (broker_default, str(3 * DAY_MS))
    described = _described(custom)
    assert described[lifecycle]["retention.ms"] == str(3 * DAY_MS) and described[billing]["retention.ms"] == "-1"
    assert described[lifecycle]["max.message.bytes"] == "2000000"  # only the provisioner's keys are set
    assert _partitions(own, lifecycle) == 2  # partitions are an operator's decision: left alone

    again = ensure_topics(custom)
    assert again.created == [] and again.altered == {} and sorted(again.unchanged) == sorted(own.topics().values())
    assert _described(custom) == described


def test_the_command_says_what_it_did(own: Settings):
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": own.kafka_bootstrap_servers,
        **{f"PROVISIONER_TOPIC_{role.upper()}": name for role, name in own.topics().items()},
        "PROVISIONER_TOPIC_RETENTION_MS_MEMBERS": str(DAY_MS),
    }
    runner = CliRunner()
    first = runner.invoke(app, ["topics", "create"], env=env)
    assert first.exit_code == 0, first.output
    assert sorted(first.output.splitlines()) == sorted(f"created {name}" for name in own.topics().values())
    env["PROVISIONER_TOPIC_RETENTION_MS_MEMBERS"] = str(2 * DAY_MS)
    second = runner.invoke(app, ["topics", "create", "--json"], env=env)
    assert second.exit_code == 0, second.output
    assert json.loads(second.output) == {
        "created": [],
        "altered": {own.topic_members: {"retention.ms": [str(DAY_MS), str(2 * DAY_MS)]}},
        "unchanged": [name for name in own.topics().values() if name != own.topic_members],
    }


@pytest.mark.parametrize("value", [0, -2])
def test_a_retention_that_would_empty_a_topic_is_refused(value: int):
    with pytest.raises(ValidationError, match="positive number of milliseconds, or -1"):
        Settings(topic_retention_ms_billing=value)
