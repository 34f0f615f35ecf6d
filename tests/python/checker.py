"""A Jepsen-style checker of what a log holds against what producers were told.

`check(acked, read)` compares every acknowledged record (its value and the partition and offset
the broker answered with) with every record read back from the partitions, and counts:

* lost: acknowledged, but not at its offset (or not at all);
* diverging: the offset holds another value than the one acknowledged there;
* duplicated: a value read more than once (an idempotent producer must never cause that);
* reordered: one producer's records in a partition read in another order than it sent them;
* unexpected: a value no producer sent.

Values are `<producer>-<sequence>` strings, so order can be checked per producer. Records that
failed or were never answered may or may not be there; they are only checked for duplicates and
order. The cluster work reuses this with replicated partitions and leader changes.
"""

from collections import Counter, defaultdict


def value(producer, sequence):
    return f"{producer}-{sequence:09d}".encode()


def parse(v):
    producer, _, sequence = v.decode().rpartition("-")
    return producer, int(sequence)


def check(acked, read, sent=None):
    """acked: {value: (partition, offset)}; read: [(partition, offset, value)];
    sent: all values any producer sent (default: the acked ones)."""
    sent = set(acked) if sent is None else set(sent)
    at = {(p, o): v for p, o, v in read}
    counts = Counter(v for _, _, v in read)
    report = {
        "lost": sorted(v for v, (p, o) in acked.items() if (p, o) not in at),
        "diverging": sorted(v for v, (p, o) in acked.items() if (p, o) in at and at[(p, o)] != v),
        "duplicated": sorted(v for v, n in counts.items() if n > 1),
        "unexpected": sorted(v for v in counts if v not in sent),
        "reordered": [],
    }
    by_producer = defaultdict(list)
    for p, o, v in sorted(read):
        producer, sequence = parse(v)
        by_producer[(producer, p)].append(sequence)
    for (producer, partition), sequences in by_producer.items():
        if sequences != sorted(sequences):
            report["reordered"].append((producer, partition))
    return report


def problems(report):
    """The non-empty categories of a report, with a few examples each."""
    return {k: (len(v), v[:5]) for k, v in report.items() if v}
