"""The partition of a keyed record, as every Kafka client computes it, with the hash in C.

Kafka's default (the Java client's, and kafka-python's `DefaultPartitioner`) is the murmur2 hash
of the key bytes with the seed 0x9747b28c, made positive, modulo the topic's partition count:
records of one key land on one partition, so they keep their order. kafka-python hashes in pure
Python (about a fifth of the relay's interpreter time under a drain); `murmurhash2` is the same
function in C (tests/unit/test_partitioner.py checks them equal). A record without a key is left
to kafka-python's own rule.
"""

from typing import Any

from kafka.partitioner.default import DefaultPartitioner
from murmurhash2 import murmurhash2

_SEED = 0x9747B28C


class Murmur2Partitioner(DefaultPartitioner):  # type: ignore[misc]
    def __init__(self) -> None:
        self._sorted: dict[str, tuple[frozenset[int], list[int]]] = {}  # per topic: its partitions, in order

    def partition(
        self, topic: str, key: Any, serialized_key: bytes | None, value: Any, serialized_value: bytes | None, cluster: Any
    ) -> int:
        if serialized_key is None:
            return int(super().partition(topic, key, serialized_key, value, serialized_value, cluster))
        partitions = cluster.partitions_for_topic(topic)
        if partitions is None:
            raise ValueError(f"Topic {topic} not found in ClusterMetadata")
        known = self._sorted.get(topic)
        if known is None or known[0] != partitions:
            known = self._sorted[topic] = (frozenset(partitions), sorted(partitions))
        ordered = known[1]
        return ordered[(murmurhash2(serialized_key, _SEED) & 0x7FFFFFFF) % len(ordered)]


def partition_of(key: bytes, partitions: int) -> int:
    """The partition of a key in a topic of partitions 0..n-1 (for tests and tools)."""
    return (murmurhash2(key, _SEED) & 0x7FFFFFFF) % partitions
