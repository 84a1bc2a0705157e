"""Replay adaptive-consistency's stopping rules over stored self-consistency samples (paired comparison).

Usage: python benchmarks/adaptive_replay.py RECORDS.jsonl [MAX_N]
Reads every record with at least MAX_N candidates (in their sampling order), and for each rule reports
the samples and completion tokens read before the rule fired and whether its vote was correct, next to
the majority vote over all MAX_N samples (self-consistency@MAX_N). Sequential replay: it bills the
samples read; a live run with batch b also bills up to b-1 samples that finished unread.
"""

import json
import sys

from ponder.core.types import Candidate
from ponder.scorers import majority_vote
from ponder.strategies.adaptive_consistency import AdaptiveConsistency, AdaptiveConsistencyOptions

path, max_n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 16
with open(path) as lines:
    records = [json.loads(line) for line in lines]
records = [r for r in records if len(r.get("candidates") or []) >= max_n]
rules = {
    "self-consistency": None,
    "beta (0.95)": AdaptiveConsistency(AdaptiveConsistencyOptions(max_n=max_n)),
    "window (w=5)": AdaptiveConsistency(AdaptiveConsistencyOptions(max_n=max_n, rule="window")),
}
for name, strategy in rules.items():
    samples = tokens = correct = 0
    for record in records:
        stored = record["candidates"][:max_n]
        read = []
        for data in stored:
            read.append(Candidate.from_dict(data))
            if strategy is not None and strategy.settled(read)[0]:
                break
        vote = majority_vote(read)
        samples += len(read)
        tokens += sum(c.completion_tokens for c in read)
        correct += vote.winner is not None and stored[vote.winner]["correct"]
    n = len(records)
    print(
        f"{name:18} problems {n}  accuracy {correct / n:.2f}  mean samples {samples / n:.1f}  "
        f"mean completion tokens {tokens / n:.0f}"
    )
