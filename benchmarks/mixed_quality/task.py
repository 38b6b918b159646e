"""The mixed-quality tasks: raw ShareGPT data where the expert class is right and rare.

"GPT-4" conversations (the expert class, `"model": "Model: GPT-4"`) always answer correctly;
"GPT-3.5" conversations are plentiful and, at `mistake_rate`, carry one *systematic* mistake. So the
majority answer for a prompt is wrong, plain SFT learns the mistake, and only a trainer that tells
the sources apart can learn to answer like the expert. Sub-optimal data still teaches the task's
structure, which is what C-RLFT exploits. Two tasks:

- `add`: the sum of two n-digit numbers; the mistake makes the last digit one too high (mod 10).
- `reverse`: a random lowercase word written backwards; the mistake doubles the answer's last
  letter ("olleh" → "ollehh").

Held-out evaluation prompts use problems that appear in no training conversation. Assistant turns
are ChatGPT-style HTML, so the data goes through `clean`'s real HTML path.
"""

from __future__ import annotations

import json
import random
import re
import string
from dataclasses import dataclass
from pathlib import Path

HTML = '<div class="markdown prose w-full break-words dark:prose-invert light"><p>{}</p></div>'
EXPERT_MODEL = "Model: GPT-4"
SUB_OPTIMAL_MODEL = "Model: GPT-3.5"
ADD_PHRASINGS = ("What is {a} + {b}?", "Compute {a} + {b}.", "Add {a} and {b}.", "{a} + {b} = ?")
REVERSE_PHRASINGS = ("Reverse {w}.", "Write {w} backwards.", "Spell {w} in reverse.", "{w}?")
ANSWER = re.compile(r"[0-9a-z]+")


@dataclass(frozen=True)
class TaskSpec:
    kind: str = "reverse"  # reverse | add (see run.py's docstring for why reverse is the default)
    digits: int = 2  # add: digits per operand
    letters: tuple[int, int] = (4, 7)  # reverse: word length range
    expert: int = 300  # correct GPT-4 conversations
    sub_optimal: int = 6000  # GPT-3.5 conversations
    mistake_rate: float = 0.7  # share of GPT-3.5 answers with the systematic mistake
    held_out: int = 200  # evaluation prompts, from problems unseen in training
    seed: int = 0


@dataclass(frozen=True)
class Problem:
    prompt_fields: dict
    correct: str
    wrong: str  # the systematic mistake, never equal to `correct`
    shown: str  # how the reply states the answer, with {answer} for it


def mistaken(total: int) -> int:
    """`add`'s mistake: the last digit one too high (mod 10)."""
    return total - total % 10 + (total % 10 + 1) % 10


def add_problem(a: int, b: int) -> Problem:
    return Problem({"a": a, "b": b}, str(a + b), str(mistaken(a + b)), f"{a} + {b} = {{answer}}")


def reverse_problem(word: str) -> Problem:
    backwards = word[::-1]
    return Problem({"w": word}, backwards, backwards + backwards[-1], "{answer}")


def distinct_problems(spec: TaskSpec, rng: random.Random) -> list[Problem]:
    """expert + sub_optimal + held_out distinct problems."""
    needed = spec.expert + spec.sub_optimal + spec.held_out
    seen: set = set()
    problems = []
    while len(problems) < needed:
        if spec.kind == "add":
            low, high = 10 ** (spec.digits - 1), 10**spec.digits - 1
            key = (rng.randint(low, high), rng.randint(low, high))
            problem = add_problem(*key)
        elif spec.kind == "reverse":
            length = rng.randint(*spec.letters)
            key = "".join(rng.choice(string.ascii_lowercase) for _ in range(length))
            problem = reverse_problem(key)
        else:
            raise ValueError(f"unknown task kind {spec.kind!r} (add, reverse)")
        if key not in seen:
            seen.add(key)
            problems.append(problem)
        if len(seen) > 50 * needed:
            raise ValueError(f"{needed} distinct {spec.kind} problems do not exist for {spec}")
    return problems


def phrasings(spec: TaskSpec) -> tuple[str, ...]:
    return ADD_PHRASINGS if spec.kind == "add" else REVERSE_PHRASINGS


def conversation(index: int, prompt: str, reply: str, model: str) -> dict:
    return {
        "id": f"mq{index:06d}",
        "conversations": [
            {"from": "human", "value": prompt},
            {"from": "gpt", "value": HTML.format(reply)},
        ],
        "model": model,
    }


def generate(spec: TaskSpec) -> tuple[list[dict], list[dict]]:
    """(raw ShareGPT rows, held-out evaluation items {prompt, answer, mistake})."""
    rng = random.Random(spec.seed)
    problems = distinct_problems(spec, rng)
    held_out, train = problems[: spec.held_out], problems[spec.held_out :]
    rows = []
    for i, problem in enumerate(train):
        expert = i < spec.expert
        wrong = not expert and rng.random() < spec.mistake_rate
        answer = problem.wrong if wrong else problem.correct
        prompt = rng.choice(phrasings(spec)).format(**problem.prompt_fields)
        model = EXPERT_MODEL if expert else SUB_OPTIMAL_MODEL
        rows.append(conversation(i, prompt, problem.shown.format(answer=answer), model))
    rng.shuffle(rows)
    items = [
        {"prompt": rng.choice(phrasings(spec)).format(**p.prompt_fields), "answer": p.correct,
         "mistake": p.wrong, **p.prompt_fields}
        for p in held_out
    ]  # fmt: skip
    return rows, items


def write(spec: TaskSpec, raw_path: Path, eval_path: Path) -> None:
    rows, items = generate(spec)
    raw_path.parent.mkdir(parents=True, exist_ok=True)
    raw_path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    eval_path.write_text(json.dumps(items, indent=1), encoding="utf-8")


def graded(reply: str, item: dict) -> dict:
    """Exact match of the reply's last word or number; a mistake-shaped answer is noted."""
    found = ANSWER.findall(reply.lower())
    said = found[-1] if found else None
    return {"correct": said == item["answer"], "systematic_mistake": said == item["mistake"]}
