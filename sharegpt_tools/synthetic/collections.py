"""Synthetic rows in the layouts of the large public chat collections, WildChat and
LMSYS-Chat-1M: their field names, their model spellings and their moderation fields, with the
phrase banks of the ShareGPT sample (plain Markdown answers, as API logs hold them).

A few rows are broken on purpose (a turn without text, an unknown speaker), so that a test can
see the reject name the layout's own fields. Deterministic for (layout, n, seed).
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator
from pathlib import Path

import orjson

from sharegpt_tools.synthetic.dump import LANG_CUM_WEIGHTS, LANGS, _human_value, _markdown_answer

LAYOUTS = ("wildchat", "lmsys")  # what `sharegpt-tools sample --layout` offers besides sharegpt
# Spellings as the collections write them; WildChat logs OpenAI's dated snapshots.
WILDCHAT_MODELS = (
    "gpt-4-0314", "gpt-4-1106-preview", "gpt-4-0125-preview", "gpt-4o-2024-05-13",
    "gpt-4o-mini-2024-07-18", "gpt-3.5-turbo-0613", "gpt-3.5-turbo-0301", "gpt-3.5-turbo-0125",
)  # fmt: skip
LMSYS_MODELS = (
    "vicuna-13b", "llama-2-13b-chat", "claude-2", "claude-instant-1", "gpt-4", "gpt-3.5-turbo",
    "koala-13b", "palm-2", "wizardlm-13b", "alpaca-13b",
)  # fmt: skip
LANGUAGE_NAMES = {
    "en": "English", "zh": "Chinese", "es": "Spanish", "fr": "French", "de": "German",
    "ja": "Japanese", "ko": "Korean", "ru": "Russian", "pt": "Portuguese", "it": "Italian",
}  # fmt: skip
P_FLAGGED = 0.05
P_BROKEN = 0.02


def collection_rows(layout: str, n: int, seed: int = 0) -> Iterator[dict]:
    """n rows in `layout` ("wildchat" or "lmsys")."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown collection layout {layout!r}: use one of {', '.join(LAYOUTS)}")
    rng = random.Random(f"{layout}:{seed}")
    for index in range(n):
        lang = rng.choices(LANGS, cum_weights=LANG_CUM_WEIGHTS)[0]
        turns = conversation(rng, lang)
        if rng.random() < P_BROKEN:
            broken = turns[rng.randrange(len(turns))]
            if rng.random() < 0.5:
                del broken["content"]
            else:
                broken["role"] = "bot"
        flags = [rng.random() < P_FLAGGED for _ in turns]
        row_id = hashlib.md5(f"{layout}:{seed}:{index}".encode()).hexdigest()
        if layout == "wildchat":
            yield wildchat_row(rng, row_id, turns, flags, lang)
        else:
            yield lmsys_row(rng, row_id, turns, flags, lang)


def conversation(rng: random.Random, lang: str) -> list[dict]:
    turns = []
    for index in range(rng.choice((1, 1, 1, 2, 3))):
        turns.append({"content": _human_value(rng, lang, index == 0), "role": "user"})
        turns.append({"content": _markdown_answer(rng, lang, None), "role": "assistant"})
    return turns


def moderation(flagged: bool, rng: random.Random) -> dict:
    score = rng.uniform(0.5, 0.99) if flagged else rng.uniform(0.0, 0.05)
    return {
        "categories": {"harassment": flagged, "violence": False, "sexual": False},
        "category_scores": {"harassment": score, "violence": score / 10, "sexual": score / 20},
        "flagged": flagged,
    }


def wildchat_row(
    rng: random.Random, row_id: str, turns: list[dict], flags: list[bool], lang: str
) -> dict:
    toxic = any(flags)
    language = LANGUAGE_NAMES[lang]
    stamped = [
        {**turn, "language": language, "redacted": False, "toxic": flag,
         "turn_identifier": rng.randrange(10**8), "timestamp": "2023-11-02T10:15:00Z"}
        for turn, flag in zip(turns, flags, strict=True)
    ]  # fmt: skip
    return {
        "conversation_hash": row_id,
        "model": rng.choice(WILDCHAT_MODELS),
        "timestamp": "2023-11-02T10:15:00Z",
        "conversation": stamped,
        "turn": len(turns) // 2,
        "language": language,
        "openai_moderation": [moderation(flag, rng) for flag in flags],
        "detoxify_moderation": [{"toxicity": 0.9 if f else 0.001} for f in flags],
        "toxic": toxic,
        "redacted": rng.random() < 0.03,
        "state": None,
        "country": rng.choice(("United States", "China", "Russia", "Germany")),
        "hashed_ip": hashlib.sha256(row_id.encode()).hexdigest(),
        "header": {"accept-language": "en-US,en;q=0.9", "user-agent": "Mozilla/5.0"},
    }


def lmsys_row(
    rng: random.Random, row_id: str, turns: list[dict], flags: list[bool], lang: str
) -> dict:
    return {
        "conversation_id": row_id,
        "model": rng.choice(LMSYS_MODELS),
        "conversation": turns,
        "turn": len(turns) // 2,
        "language": LANGUAGE_NAMES[lang],
        "openai_moderation": [moderation(flag, rng) for flag in flags],
        "redacted": rng.random() < 0.03,
    }


def write_collection(path: Path, layout: str, n: int, seed: int = 0) -> int:
    """Write the rows as JSON lines, or Parquet for a .parquet path, atomically; the count."""
    rows = list(collection_rows(layout, n, seed))
    temp = path.with_name(f".{path.name}.tmp")
    try:
        if path.suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(rows), temp)
        else:
            with temp.open("wb") as out:
                out.writelines(orjson.dumps(row) + b"\n" for row in rows)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return len(rows)
