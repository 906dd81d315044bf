"""The C murmur2 partitioner places every key where Kafka's default partitioner does."""

import os
import random

import pytest
from kafka.partitioner.default import DefaultPartitioner, murmur2

from events.partitioner import Murmur2Partitioner, partition_of

pytestmark = pytest.mark.unit


class _Cluster:
    def __init__(self, partitions: set[int]):
        self.partitions = partitions

    def topics(self) -> set[str]:
        return {"t"}

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return self.partitions if topic == "t" else None

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return self.partitions


def _keys() -> list[bytes]:
    rng = random.Random(7)
    keys = [os.urandom(n) for n in range(0, 96) for _ in range(40)]  # every length, so every tail case of the hash
    keys += [f"{rng.random()}:{i}".encode() for i in range(2000)]
    keys += ["org-ü:ß-€".encode(), b"\x00" * 17, b"\xff" * 33]
    return keys


@pytest.mark.parametrize("count", [1, 2, 3, 12, 50])
def test_every_key_lands_where_kafka_s_default_puts_it(count):
    cluster = _Cluster(set(range(count)))
    ours, theirs = Murmur2Partitioner(), DefaultPartitioner()
    for key in _keys():
        expected = theirs.partition("t", key, key, None, None, cluster)
        assert ours.partition("t", key, key, None, None, cluster) == expected, key
        assert partition_of(key, count) == (murmur2(key) & 0x7FFFFFFF) % count


def test_partitions_that_change_are_seen():
    ours = Murmur2Partitioner()
    cluster = _Cluster({0, 1, 2})
    key = b"org:member"
    assert ours.partition("t", key, key, None, None, cluster) == partition_of(key, 3)
    cluster.partitions = set(range(7))
    assert ours.partition("t", key, key, None, None, cluster) == partition_of(key, 7)


def test_an_unknown_topic_and_a_record_without_key():
    ours, cluster = Murmur2Partitioner(), _Cluster({0, 1})
    with pytest.raises(ValueError):
        ours.partition("other", b"k", b"k", None, None, cluster)
    assert ours.partition("t", None, None, None, None, cluster) in {0, 1}
