"""The tokenizer of the `tokenize` stage: loading, the end-of-turn token, plain-text encoders.

`load_tokenizer` loads a local fast tokenizer, adds the end-of-turn marker as a special token when
it lacks one, and wraps it in a `ChatTokenizer`: content is encoded as plain text (special-token
strings typed by a user stay ordinary text), template pieces are encoded once per distinct string,
and the manifest's description of the tokenizer (files and their hashes) is made here.

Exact decoding: decoding `input_ids` gives back the rendered text for byte-level BPE tokenizers,
since every piece round-trips on its own. Token boundaries at a template/content join differ from
tokenizing the whole string at once (`:`,` `,`Q` rather than `:`,` Q`); the text is the same, and
an inference prompt ending in the generation prompt `GPT4 Assistant: ` ends with the same lone
space token as training rows. SentencePiece-style tokenizers (Metaspace pre-tokenizer or
a `Prepend("▁")` normaliser) add a dummy-prefix space to every separately tokenized piece; this is
detected by a probe and handled the way the piece is meant to be read: content keeps its dummy
prefix, which stands for the single space that ends every role prefix (`User:` + `▁Q`), and
template pieces are tokenized by a copy of the tokenizer that never prepends. The probe then checks
that a rendered sample decodes exactly, or the stage refuses the tokenizer.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sharegpt_tools import templates
from sharegpt_tools.records import ROLE_GPT, ROLE_HUMAN
from sharegpt_tools.templates import CONTENT_KINDS, Position
from sharegpt_tools.tokenize_options import TokenizeError

TOKENIZER_DIR = "tokenizer"  # where the stage saves the tokenizer, inside tokenized/


@dataclass
class ChatTokenizer:
    """A fast tokenizer with the end-of-turn token, plus the plain-text encoders the stage uses."""

    tok: Any  # transformers TokenizersBackend
    path: Path
    eot: str
    eot_id: int
    bos_id: int | None
    vocab_before: int
    vocab_after: int
    added: list[str]
    dummy_prefix: bool = False
    _content_backend: Any = None  # a private `tokenizers.Tokenizer` that keeps specials plain
    _template_backend: Any = None  # a never-prepending copy, for SentencePiece-style tokenizers
    _cache: dict[str, list[int]] = field(default_factory=dict)

    def encode_plain(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text as plain text: special-token strings are not special here.

        Same ids as `tok(texts, add_special_tokens=False, split_special_tokens=True)` (tested),
        from a private copy of the backend with `encode_special_tokens` on, no truncation or
        padding, and without offsets or the BatchEncoding round trip: the stage's budget is the
        bare `encode_batch` rate. The copy is private so transformers can never reset the flag.
        """
        if not texts:
            return []
        return [
            e.ids for e in self._content_backend.encode_batch_fast(texts, add_special_tokens=False)
        ]

    def template_ids(self, text: str) -> list[int]:
        """Ids of a template piece, cached: there are only a handful of distinct ones."""
        ids = self._cache.get(text)
        if ids is None:
            if text == self.eot:
                ids = [self.eot_id]
            elif self.dummy_prefix:
                # The trailing space of `User: ` is carried by the content's dummy prefix.
                piece = text[:-1] if text.endswith(" ") else text
                ids = self._template_backend.encode(piece, add_special_tokens=False).ids
            else:
                ids = self.encode_plain([text])[0]
            self._cache[text] = ids
        return ids

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def describe(self) -> dict:
        files = tokenizer_files(self.path)
        return {
            "path": str(self.path.resolve()),
            "sha256": combined_sha256(files),
            "files": files,
            "class": type(self.tok).__name__,
            "vocab_size_before": self.vocab_before,
            "vocab_size_after": self.vocab_after,
            "added_special_tokens": self.added,
            "eot": {"token": self.eot, "id": self.eot_id},
            "bos": None
            if self.bos_id is None
            else {"token": self.tok.bos_token, "id": self.bos_id},
            "dummy_prefix": self.dummy_prefix,
            "saved_to": TOKENIZER_DIR,
        }


def load_tokenizer(path: Path, eot: str = templates.DEFAULT_EOT) -> ChatTokenizer:
    """Load a local fast tokenizer and add `eot` as a special token when it lacks one."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")  # encode batches on all cores
    if not path.is_dir():
        raise TokenizeError(f"tokenizer folder {path} does not exist")
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:  # transformers raises many kinds; the user needs the message
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TokenizeError(f"cannot load a tokenizer from {path}: {first_line}") from exc
    if not getattr(tok, "is_fast", False) or not hasattr(tok, "backend_tokenizer"):
        raise TokenizeError(
            f"{path} holds a slow {type(tok).__name__}: a fast tokenizer (tokenizer.json) is "
            "required for batched tokenization"
        )
    vocab_before = len(tok)
    added: list[str] = []
    if eot not in tok.get_vocab():
        # transformers 5: extra special tokens live under `extra_special_tokens`; keep any the
        # model already has rather than replacing the list.
        tok.add_special_tokens({"extra_special_tokens": [eot]}, replace_extra_special_tokens=False)
        added.append(eot)
    eot_id = tok.convert_tokens_to_ids(eot)
    chat = ChatTokenizer(
        tok=tok,
        path=path,
        eot=eot,
        eot_id=eot_id,
        bos_id=tok.bos_token_id,
        vocab_before=vocab_before,
        vocab_after=len(tok),
        added=added,
        _content_backend=plain_copy(tok.backend_tokenizer),
    )
    check_exact_decoding(chat)
    return chat


def plain_copy(backend: Any) -> Any:
    """A copy of the backend that tokenizes special-token text as text, never truncating."""
    from tokenizers import Tokenizer

    copy = Tokenizer.from_str(backend.to_str())
    copy.no_truncation()
    copy.no_padding()
    copy.encode_special_tokens = True
    return copy


def check_exact_decoding(chat: ChatTokenizer) -> None:
    """Probe how separately tokenized pieces decode; handle a SentencePiece dummy prefix."""
    a, b = chat.encode_plain(["ab", "cd"])
    if chat.decode(a + b) != "abcd" and chat.decode(a) == "ab":
        chat._template_backend = never_prepending(chat.tok.backend_tokenizer)
        chat.dummy_prefix = chat._template_backend is not None
    roles = [ROLE_HUMAN, ROLE_GPT, ROLE_HUMAN, ROLE_GPT]
    texts = ["Hi there", "Hello! How can I help?", "x = 1", "Done."]
    rendered = templates.render(roles, texts, "GPT4", Position.BEFORE_SPEAKER, chat.eot)
    ids: list[int] = []
    for segment in rendered.segments():
        if segment.kind in CONTENT_KINDS:
            ids += chat.encode_plain([segment.text])[0]
        else:
            ids += chat.template_ids(segment.text)
    if chat.decode(ids) != rendered.text():
        raise TokenizeError(
            f"tokenizer {chat.path} does not decode separately tokenized pieces back to the "
            f"rendered text ({chat.decode(ids)!r} != {rendered.text()!r}); byte-level BPE or "
            "SentencePiece (Metaspace) tokenizers are supported"
        )


def never_prepending(backend: Any) -> Any:
    """A copy of a SentencePiece-style backend that adds no dummy prefix (None if not one)."""
    from tokenizers import Tokenizer

    spec = json.loads(backend.to_str())
    changed = False

    def strip(node: Any) -> Any:
        nonlocal changed
        if isinstance(node, dict):
            if node.get("type") == "Metaspace" and node.get("prepend_scheme") != "never":
                changed = True
                node = {**node, "prepend_scheme": "never", "add_prefix_space": False}
            if node.get("type") == "Sequence":
                for key in ("normalizers", "pretokenizers"):
                    if key in node:
                        kept = [strip(n) for n in node[key] if not is_prepend(n)]
                        changed |= len(kept) != len(node[key])
                        node = {**node, key: kept}
            return node
        return node

    def is_prepend(node: Any) -> bool:
        return isinstance(node, dict) and node.get("type") == "Prepend"

    normalizer = spec.get("normalizer")
    if is_prepend(normalizer):
        spec["normalizer"], changed = None, True
    else:
        spec["normalizer"] = strip(normalizer)
    spec["pre_tokenizer"] = strip(spec.get("pre_tokenizer"))
    if not changed:
        return None
    return plain_copy(Tokenizer.from_str(json.dumps(spec)))


def tokenizer_files(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def combined_sha256(files: dict[str, str]) -> str:
    return hashlib.sha256("".join(f"{k}\0{v}\n" for k, v in files.items()).encode()).hexdigest()
