"""Near-duplicate quality of `sharegpt-tools clean` against datasketch's MinHashLSH.

The input: BASES unrelated conversations (answers of 150–400 words drawn from a Zipf vocabulary
of 20,000 words, so that unrelated answers share almost no 5-gram), and, for each edit rate of
EDIT_RATES, PLANTED of them copied with that share of the answer's words replaced by other words:
planted near duplicates whose true similarity falls as the edits grow. A copy keeps its original's
question.

* **ours**: the real `clean` stage (`run_clean`, default near-dup settings: threshold 0.8,
  128 permutations, word 5-grams), HTML and language ID off (they do not change the shingles);
  a planted copy is *found* when it is rejected as `near_duplicate`.
* **datasketch**: `MinHashLSH(threshold=0.8, num_perm=128)` (its default weights) over
  `MinHash(num_perm=128)` of the same shingles (the word 5-grams of the same lower-cased words,
  as bytes), streamed the way users dedup with it: query each conversation against those kept
  so far, drop it when the query returns anything, else insert it.

For every planted pair the exact Jaccard similarity of the two shingle sets is computed too.
Reported per edit rate: the mean true Jaccard and the share found by each tool; overall: recall
on the pairs whose true Jaccard is ≥ the threshold, and precision (a conversation dropped as the
duplicate of one it was not copied from is a false positive), and how many of the planted pairs
reported are under the threshold in truth.

    .venv/bin/python benchmarks/near_dup_quality.py [--bases 5000] [--planted 200]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sharegpt_tools.clean.dedup import ngram_hashes, turn_word_hashes
from sharegpt_tools.clean.options import CleanOptions
from sharegpt_tools.clean.pipeline import run_clean
from sharegpt_tools.workspace import Workspace

EDIT_RATES = (0.01, 0.02, 0.05, 0.10, 0.20)
THRESHOLD = 0.8
NUM_PERM = 128
NGRAM = 5
VOCABULARY = 20_000


@dataclass
class Row:
    id: str
    question: str
    answer: str
    original: str | None = None  # the id it was copied from (a planted duplicate)
    edit_rate: float = 0.0


def vocabulary(rng: random.Random) -> tuple[list[str], list[float]]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = sorted({"".join(rng.choices(letters, k=rng.randint(3, 9))) for _ in range(VOCABULARY)})
    weights = [1 / (rank + 1) for rank in range(len(words))]  # Zipf, as words are
    return words, weights


def make_rows(bases: int, planted: int, seed: int) -> list[Row]:
    rng = random.Random(seed)
    words, weights = vocabulary(rng)
    rows = [
        Row(f"base-{i}", f"Question {i}: tell me about item {i}.",
            " ".join(rng.choices(words, weights, k=rng.randint(150, 400))))
        for i in range(bases)
    ]  # fmt: skip
    originals = rng.sample(range(bases), planted * len(EDIT_RATES))
    for slot, index in enumerate(originals):
        rate = EDIT_RATES[slot // planted]
        answer = rows[index].answer.split()
        for position in rng.sample(range(len(answer)), max(1, round(rate * len(answer)))):
            answer[position] = rng.choice(words)
        rows.append(
            Row(f"copy-{slot}", rows[index].question, " ".join(answer), rows[index].id, rate)
        )
    rng.shuffle(rows)
    return rows


def shingles(row: Row) -> set[int]:
    """The word 5-grams `clean` hashes (its word hashes, n-grams across the two turns)."""
    hashes = ngram_hashes(np.concatenate(turn_word_hashes([row.question, row.answer])), NGRAM)
    return set(hashes.tolist())


def jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def ours(rows: list[Row], work: Path) -> tuple[dict[str, str], float]:
    """{dropped id: kept id} from the clean stage's near_duplicate rejects; seconds."""
    raw = work / "raw.json"
    turns = [
        {"id": r.id, "conversations": [{"from": "human", "value": r.question},
                                       {"from": "gpt", "value": r.answer}]}
        for r in rows
    ]  # fmt: skip
    raw.write_text(json.dumps(turns), encoding="utf-8")
    options = CleanOptions(html=False, lang_backend="none", refusals="keep")
    started = time.perf_counter()
    result = run_clean([raw], Workspace(work / "ws"), options)
    elapsed = time.perf_counter() - started
    import pyarrow.parquet as pq

    rejects = pq.read_table(result.stage / "rejects.parquet").to_pylist()
    dropped = {}
    for reject in rejects:
        if reject["reason"] == "near_duplicate":
            dropped[reject["id"]] = kept_id(reject["detail"])
    return dropped, elapsed


def kept_id(detail: str) -> str:
    """The id a near_duplicate reject names as kept ("... of base-17 (...)")."""
    for token in detail.replace("(", " ").replace(")", " ").replace(",", " ").split():
        if token.startswith(("base-", "copy-")):
            return token.strip("'\"")
    return ""


def datasketch_dedup(rows: list[Row], sets: dict[str, set[int]]) -> tuple[dict[str, str], float]:
    from datasketch import MinHash, MinHashLSH

    started = time.perf_counter()
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    dropped = {}
    for row in rows:
        signature = MinHash(num_perm=NUM_PERM)
        signature.update_batch([value.to_bytes(8, "little") for value in sets[row.id]])
        found = lsh.query(signature)
        if found:
            dropped[row.id] = found[0]
        else:
            lsh.insert(row.id, signature)
    return dropped, time.perf_counter() - started


def scores(rows: list[Row], dropped: dict[str, str], similar: dict[str, float]) -> dict:
    """A planted pair is found when either of its two conversations is dropped as the duplicate
    of the other (which one comes first is the shuffle's doing); a drop for any other
    conversation is a false positive."""
    copy_of = {r.original: r.id for r in rows if r.original}  # original id -> its copy's id
    pair = {**{r.id: r.id for r in rows if r.original}, **copy_of}  # either member -> copy id
    found: set[str] = set()
    false_positives = 0
    for row_id, kept in dropped.items():
        if row_id in pair and pair.get(kept) == pair[row_id]:
            found.add(pair[row_id])
        else:
            false_positives += 1
    planted = [r for r in rows if r.original]
    at_threshold = [r for r in planted if similar[r.id] >= THRESHOLD]
    by_rate = {
        f"{rate:.0%}": sum(r.id in found for r in planted if r.edit_rate == rate)
        / sum(r.edit_rate == rate for r in planted)
        for rate in EDIT_RATES
    }
    reported = len(found) + false_positives
    return {
        "found_by_edit_rate": by_rate,
        "recall_at_threshold": sum(r.id in found for r in at_threshold) / max(1, len(at_threshold)),
        "pairs_at_threshold": len(at_threshold),
        "precision": len(found) / reported if reported else 1.0,
        "false_positives": false_positives,
        # planted pairs reported although their true similarity is under the threshold
        "below_threshold": sum(similar[copy] < THRESHOLD for copy in found),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bases", type=int, default=5000)
    parser.add_argument("--planted", type=int, default=200, help="copies per edit rate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = make_rows(args.bases, args.planted, args.seed)
    by_id = {r.id: r for r in rows}
    sets = {r.id: shingles(r) for r in rows}
    similar = {r.id: jaccard(sets[r.id], sets[r.original]) for r in rows if r.original}
    with tempfile.TemporaryDirectory() as work:
        mine, mine_s = ours(rows, Path(work))
    theirs, theirs_s = datasketch_dedup(rows, sets)
    results = {"ours": scores(rows, mine, similar), "datasketch": scores(rows, theirs, similar)}
    print(f"{len(rows):,} conversations ({args.bases:,} originals, {args.planted} copies per rate)")
    print("| edit rate | mean true Jaccard | found: ours | found: datasketch |")
    print("| --- | --- | --- | --- |")
    for rate in EDIT_RATES:
        jaccards = [similar[r.id] for r in by_id.values() if r.original and r.edit_rate == rate]
        key = f"{rate:.0%}"
        found = [results[name]["found_by_edit_rate"][key] for name in ("ours", "datasketch")]
        print(f"| {key} | {np.mean(jaccards):.3f} | {found[0]:.1%} | {found[1]:.1%} |")
    for name, result in results.items():
        print(f"{name}: recall at Jaccard ≥ {THRESHOLD} {result['recall_at_threshold']:.1%} "
              f"({result['pairs_at_threshold']} pairs), precision {result['precision']:.1%} "
              f"({result['false_positives']} false positives; {result['below_threshold']} "
              f"planted pairs under Jaccard {THRESHOLD} reported)")  # fmt: skip
    print(f"seconds: ours (whole clean stage) {mine_s:.1f}, datasketch (signatures + LSH) "
          f"{theirs_s:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
