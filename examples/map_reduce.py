"""Count words in many documents: a map/reduce on the parallel engine.

2,000 made-up documents are split into 40 chunks. The map step is an unordered
flow of 40 ``CountWords`` tasks, one per chunk (each told its chunk through
``inject=``), that the parallel engine runs on a pool of worker threads; the
reduce step is a ``ReduceFunctorTask`` that folds their 40 partial counts into
one, pairwise, in a fixed order, so the result is the same whatever order the
chunks finished in.

Run it with ``python examples/map_reduce.py``, or with the command:
``tideflow run examples/map_reduce.py --engine parallel --workers 8``. The
command finds the flow through this module's ``make_flow()`` function, the
convention every example follows.
"""

from __future__ import annotations

import time
from collections import Counter

import tideflow

DOCUMENTS = 2_000
CHUNKS = 40
#: Seconds each map task pretends to spend reading its chunk (I/O, say).
READ_TIME = 0.05

_WORDS = ["tide", "flow", "task", "atom", "engine", "revert", "retry", "graph", "store", "event"]


def document(number: int) -> str:
    """The text of document ``number``: the same every time, different per document."""
    return " ".join(_WORDS[(number * 7 + i * 3) % len(_WORDS)] for i in range(number % 13 + 1))


def chunk_of(index: int) -> range:
    """The document numbers of chunk ``index``."""
    size = DOCUMENTS // CHUNKS
    return range(index * size, (index + 1) * size)


class CountWords(tideflow.Task):
    """Count the words of one chunk of documents."""

    def execute(self, chunk: int) -> dict[str, int]:
        time.sleep(READ_TIME)
        counts: Counter[str] = Counter()
        for number in chunk_of(chunk):
            counts.update(document(number).split())
        return dict(counts)


def merge(left: dict[str, int], right: dict[str, int]) -> dict[str, int]:
    """Add two partial counts."""
    total = Counter(left)
    total.update(right)
    return dict(total)


def make_flow() -> tideflow.LinearFlow:
    """Map (one task per chunk, unordered) then reduce (one fold over all partial counts)."""
    names = [f"counts-{i}" for i in range(CHUNKS)]
    mappers = tideflow.UnorderedFlow("map").add(
        *(
            CountWords(f"count-{i}", provides=name, inject={"chunk": i})
            for i, name in enumerate(names)
        )
    )
    reducer = tideflow.ReduceFunctorTask(merge, requires=names, name="merge", provides="words")
    return tideflow.LinearFlow("word-count").add(mappers, reducer)


if __name__ == "__main__":
    engine = tideflow.load(make_flow(), engine="parallel", max_workers=8)
    began = time.perf_counter()
    engine.run()
    took = time.perf_counter() - began
    words: dict[str, int] = engine.storage.fetch("words")
    expected = Counter(w for n in range(DOCUMENTS) for w in document(n).split())
    print(f"{DOCUMENTS} documents in {CHUNKS} chunks, {sum(words.values())} words")
    for word, count in sorted(words.items(), key=lambda item: (-item[1], item[0]))[:3]:
        print(f"  {word}: {count}")
    print(f"same as counting in one loop: {words == dict(expected)}")
    # 40 reads of READ_TIME each take 2 s one after another; 8 workers take about 0.25 s
    print(f"faster than one worker would be: {took < CHUNKS * READ_TIME}")
