"""The mixed-quality arithmetic task: raw ShareGPT data where the expert class is right and rare.

Every conversation asks for the sum of two n-digit numbers. "GPT-4" conversations (the expert
class, `"model": "Model: GPT-4"`) always answer correctly; "GPT-3.5" conversations are plentiful
and, at `mistake_rate`, carry one *systematic* mistake: the last digit of the sum is one too high
(mod 10). So the majority answer for a prompt is wrong, plain SFT learns the mistake, and only a
trainer that tells the sources apart can learn to answer like the expert. Sub-optimal data still
teaches the structure (format, carries, the other digits), which is what C-RLFT exploits.

Held-out evaluation prompts use number pairs that appear in no training conversation.
Assistant turns are ChatGPT-style HTML, so the data goes through `clean`'s real HTML path.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

PHRASINGS = (
    "What is {a} + {b}?",
    "Compute {a} + {b}.",
    "Add {a} and {b}.",
    "{a} + {b} = ?",
)
HTML = '<div class="markdown prose w-full break-words dark:prose-invert light"><p>{}</p></div>'
EXPERT_MODEL = "Model: GPT-4"
SUB_OPTIMAL_MODEL = "Model: GPT-3.5"


@dataclass(frozen=True)
class TaskSpec:
    digits: int = 2
    expert: int = 300  # correct GPT-4 conversations
    sub_optimal: int = 6000  # GPT-3.5 conversations
    mistake_rate: float = 0.7  # share of GPT-3.5 answers with the systematic mistake
    held_out: int = 200  # evaluation prompts, from pairs unseen in training
    seed: int = 0


def mistaken(total: int) -> int:
    """The systematic mistake: the last digit one too high (mod 10); never equal to the sum."""
    return total - total % 10 + (total % 10 + 1) % 10


def answer_text(a: int, b: int, total: int) -> str:
    return f"{a} + {b} = {total}"


def all_pairs(digits: int) -> list[tuple[int, int]]:
    low, high = 10 ** (digits - 1), 10**digits
    return [(a, b) for a in range(low, high) for b in range(low, high)]


def split_pairs(spec: TaskSpec) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(training pairs, held-out pairs): disjoint, drawn deterministically from the seed."""
    rng = random.Random(spec.seed)
    needed = spec.expert + spec.sub_optimal + spec.held_out
    if spec.digits <= 3:
        pairs = all_pairs(spec.digits)
        if needed > len(pairs):
            raise ValueError(f"{needed} conversations need more than the {len(pairs)} pairs")
        chosen = rng.sample(pairs, needed)
    else:
        low, high = 10 ** (spec.digits - 1), 10**spec.digits - 1
        seen: set[tuple[int, int]] = set()
        while len(seen) < needed:
            seen.add((rng.randint(low, high), rng.randint(low, high)))
        chosen = sorted(seen)
        rng.shuffle(chosen)
    return chosen[spec.held_out :], chosen[: spec.held_out]


def conversation(index: int, a: int, b: int, total: int, model: str, rng: random.Random) -> dict:
    prompt = rng.choice(PHRASINGS).format(a=a, b=b)
    return {
        "id": f"mq{index:06d}",
        "conversations": [
            {"from": "human", "value": prompt},
            {"from": "gpt", "value": HTML.format(answer_text(a, b, total))},
        ],
        "model": model,
    }


def generate(spec: TaskSpec) -> tuple[list[dict], list[dict]]:
    """(raw ShareGPT rows, held-out evaluation items {prompt, answer})."""
    rng = random.Random(spec.seed + 1)
    train, held_out = split_pairs(spec)
    rows = []
    for i, (a, b) in enumerate(train):
        expert = i < spec.expert
        wrong = not expert and rng.random() < spec.mistake_rate
        total = mistaken(a + b) if wrong else a + b
        model = EXPERT_MODEL if expert else SUB_OPTIMAL_MODEL
        rows.append(conversation(i, a, b, total, model, rng))
    rng.shuffle(rows)
    items = [
        {"prompt": rng.choice(PHRASINGS).format(a=a, b=b), "answer": a + b, "a": a, "b": b}
        for a, b in held_out
    ]
    return rows, items


def write(spec: TaskSpec, raw_path: Path, eval_path: Path) -> None:
    rows, items = generate(spec)
    raw_path.parent.mkdir(parents=True, exist_ok=True)
    raw_path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    eval_path.write_text(json.dumps(items, indent=1), encoding="utf-8")


def graded(reply: str, item: dict) -> dict:
    """Exact match: the last number of the reply is the sum; a mistake-shaped answer is noted."""
    numbers = re.findall(r"-?\d+", reply)
    said = int(numbers[-1]) if numbers else None
    return {
        "correct": said == item["answer"],
        "systematic_mistake": said == mistaken(item["answer"]),
    }
