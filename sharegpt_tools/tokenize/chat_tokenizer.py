"""The tokenizer of the `tokenize` stage: loading, the end-of-turn token, section encoders.

`load_tokenizer` loads a local fast tokenizer, adds the end-of-turn marker as a special token when
it lacks one, and wraps it in a `ChatTokenizer`: content is encoded as plain text (special-token
strings typed by a user stay ordinary text), template pieces are encoded once per distinct string,
and the manifest's description of the tokenizer (files and their hashes) is made here.

The rule the ids follow (DESIGN.md, "Token invariants"): a training row is what the tokenizer
itself gives for the rendered conversation, `bos_token + text`, as `apply_chat_template` renders
and tokenizes it; user and system text are the only thing encoded differently (always as plain
text). A tokenizer splits its input at special tokens and encodes each *section* between them on
its own, so a row is built section by section, and within a section piece by piece:

* the piece that opens a section (a role prefix, bare system text) is encoded the way this
  tokenizer encodes text that follows a special token. SentencePiece tokenizers differ here:
  Llama/Mistral with `legacy: true` (OpenChat's) add the word-start `▁` to every section
  (`<|end_of_turn|>▁GPT4`), `legacy: false` only at the very start of a text. Which one this
  tokenizer does is probed, not assumed.
* later pieces of the section (` Q` after `GPT4 User:`) continue it: a SentencePiece tokenizer's
  dummy-prefix `▁` is switched off for them (the separating space is in the text already).

`check_invariants` then renders probe conversations (code, leading spaces, several scripts) and
refuses, with one line, a tokenizer for which the piecewise ids differ from the tokenizer's own
encoding of the rendered text, or for which a generation prompt is not a token prefix of the row.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crlft_contract import TOKENIZER_DIR as CONTRACT_TOKENIZER_DIR
from sharegpt_tools.records import ROLE_GPT, ROLE_HUMAN, ROLE_SYSTEM
from sharegpt_tools.tokenize import templates
from sharegpt_tools.tokenize.options import TokenizeError
from sharegpt_tools.tokenize.templates import CONTENT_KINDS, Kind, Segment, SystemFormat

TOKENIZER_DIR = CONTRACT_TOKENIZER_DIR  # where the stage saves the tokenizer, inside tokenized/


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
    dummy_prefix: bool = False  # SentencePiece-style: every encode call starts with a `▁`
    # The backends (private `tokenizers.Tokenizer` copies that keep special-token text plain):
    _plain: Any = None  # the tokenizer as it is: `tok(text, split_special_tokens=True)`
    _opening: Any = None  # text right after BOS / end-of-turn, as the tokenizer encodes it there
    _continuation: Any = None  # text inside a section (no dummy prefix)
    _cache: dict[tuple[str, bool], list[int]] = field(default_factory=dict)

    def encode_plain(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text as plain text: special-token strings are not special here.

        Same ids as `tok(texts, add_special_tokens=False, split_special_tokens=True)` (tested).
        """
        return encode_batch(self._plain, texts)

    def encode_content(self, texts: list[str], opens: list[bool]) -> list[list[int]]:
        """Ids of content pieces as plain text; `opens[i]`: text i opens a section."""
        if not any(opens):
            return encode_batch(self._continuation, texts)
        out: list[list[int]] = [[] for _ in texts]
        for flag, backend in ((True, self._opening), (False, self._continuation)):
            picked = [i for i, o in enumerate(opens) if o is flag]
            for i, ids in zip(
                picked, encode_batch(backend, [texts[i] for i in picked]), strict=True
            ):
                out[i] = ids
        return out

    def template_ids(self, text: str, opens: bool = True) -> list[int]:
        """Ids of a template piece, cached: there are only a handful of distinct ones."""
        ids = self._cache.get((text, opens))
        if ids is None:
            if text == self.eot:
                ids = [self.eot_id]
            else:
                ids = encode_batch(self._opening if opens else self._continuation, [text])[0]
            self._cache[(text, opens)] = ids
        return ids

    def segment_ids(self, segment: Segment) -> list[int]:
        """One segment's ids, one at a time (probes, inference); the stage batches content."""
        if segment.kind in CONTENT_KINDS:
            return self.encode_content([segment.text], [segment.opens_section])[0]
        return self.template_ids(segment.text, segment.opens_section)

    def row_ids(self, segments: list[Segment]) -> list[int]:
        """BOS and the segments' ids: a training row before truncation."""
        ids = [] if self.bos_id is None else [self.bos_id]
        for segment in segments:
            ids += self.segment_ids(segment)
        return ids

    def whole_text_ids(self, text: str) -> list[int]:
        """What the tokenizer gives for a rendered text as `apply_chat_template` tokenizes it:
        the BOS token's text first, special tokens parsed as special."""
        bos = self.tok.bos_token if self.bos_id is not None else ""
        return self.tok(bos + text, add_special_tokens=False)["input_ids"]

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
            "word_start_after_special_tokens": self.dummy_prefix
            and self._opening is not self._continuation,
            # How sections are encoded: the normaliser and pre-tokenizer of each encoder, so that
            # the trainer's inference side encodes prompts segment by segment exactly like this.
            "section_encoders": {
                "opening": encoder_nodes(self._opening),
                "continuation": encoder_nodes(self._continuation),
            },
            "saved_to": TOKENIZER_DIR,
        }


# The files of which a loadable tokenizer folder has at least one.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "tekken.json")
MESSAGE_CHARS = 400


def one_line(exc: Exception) -> str:
    """A library's (often multi-line) message as one line, shortened only if very long."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def load_tokenizer(path: Path, eot: str = templates.DEFAULT_EOT) -> ChatTokenizer:
    """Load a local fast tokenizer and add `eot` as a special token when it lacks one."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")  # encode batches on all cores
    if not path.is_dir():
        raise TokenizeError(f"tokenizer folder {path} does not exist")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise TokenizeError(
            f"{path} holds no tokenizer file (none of {', '.join(TOKENIZER_FILES)}): point "
            "--tokenizer at a Hugging Face model or tokenizer folder, the one you would give to "
            "AutoTokenizer.from_pretrained"
        )
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:  # transformers raises many kinds; the user needs the message
        raise TokenizeError(f"cannot load a tokenizer from {path}: {one_line(exc)}") from exc
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
    )
    choose_section_encoders(chat)
    check_invariants(chat)
    return chat


def encode_batch(backend: Any, texts: list[str]) -> list[list[int]]:
    """Ids of each text, without offsets or the BatchEncoding round trip: the stage's budget is
    the bare `encode_batch` rate."""
    if not texts:
        return []
    return [e.ids for e in backend.encode_batch_fast(texts, add_special_tokens=False)]


def plain_copy(backend: Any) -> Any:
    """A copy of the backend that tokenizes special-token text as text, never truncating.

    The copy is private so transformers can never reset `encode_special_tokens`."""
    from tokenizers import Tokenizer

    copy = Tokenizer.from_str(backend.to_str())
    copy.no_truncation()
    copy.no_padding()
    copy.encode_special_tokens = True
    return copy


def choose_section_encoders(chat: ChatTokenizer) -> None:
    """Probe how the tokenizer encodes the text after a special token; pick the encoders."""
    backend = chat.tok.backend_tokenizer
    chat._plain = plain_copy(backend)
    never = never_prepending(backend)
    chat.dummy_prefix = never is not None
    chat._continuation = never or chat._plain
    probe = "GPT4 User: hi"
    controls = [chat.eot] + ([chat.tok.bos_token] if chat.bos_id is not None else [])
    seen = {tuple(chat.tok(c + probe, add_special_tokens=False)["input_ids"][1:]) for c in controls}
    for candidate in (chat._plain, chat._continuation):
        if seen == {tuple(encode_batch(candidate, [probe])[0])}:
            chat._opening = candidate
            break
    else:
        raise TokenizeError(
            f"tokenizer {chat.path}: the text after a special token is encoded neither as a new "
            "text nor as a continuation; byte-level BPE, tiktoken-style BPE and SentencePiece "
            "(Llama/Mistral) tokenizers are supported"
        )
    if chat.bos_id is None and encode_batch(chat._plain, [probe]) != [list(seen.pop())]:
        raise TokenizeError(
            f"tokenizer {chat.path} has no BOS token and encodes the start of a text unlike the "
            "text after a special token: the first turn could not be tokenized as inference "
            "sees it; give it a bos_token"
        )


PROBE_CONVERSATIONS = [
    [(ROLE_SYSTEM, "You are a helpful assistant."), (ROLE_HUMAN, "Hi there"),
     (ROLE_GPT, "Hello! How can I help?"), (ROLE_HUMAN, "x = 1"), (ROLE_GPT, "Done.")],
    [(ROLE_HUMAN, "  indented question\nwith two lines"),
     (ROLE_GPT, "```python\ndef f(a, b):\n    return a + b\n```\n\nThat's it. ")],
    [(ROLE_HUMAN, "Bonjour, ça va ? 你好，世界。こんにちは"), (ROLE_GPT, "42 — très bien ; 😀")],
    [(ROLE_HUMAN, ":) -- a list:\n- one\n- two"), (ROLE_GPT, "\n\nSure: 1. 2. 3.")],
]  # fmt: skip


def check_invariants(chat: ChatTokenizer) -> None:
    """Refuse a tokenizer for which the rows would not be what inference sees (one line).

    (a) the piecewise ids of each probe conversation = the tokenizer's ids of the rendered text;
    (b) each generation prompt is a token prefix of the row. (c), content never becoming a control
    token, holds by construction: content is only ever encoded by the plain encoders.
    """
    for turns in PROBE_CONVERSATIONS:
        roles, texts = zip(*turns, strict=True)
        for system_format in SystemFormat:
            rendered = templates.render(
                roles, texts, "GPT4", eot=chat.eot, system_format=system_format
            )
            segments = rendered.segments()
            ids = chat.row_ids(segments)
            check_same(chat, ids, chat.whole_text_ids(rendered.text()), "the rendered conversation")
            for k, segment in enumerate(segments):
                if segment.kind is Kind.TEMPLATE and segment.text.endswith("Assistant:"):
                    prompt = chat.row_ids(segments[: k + 1])
                    text = "".join(s.text for s in segments[: k + 1])
                    check_same(chat, prompt, chat.whole_text_ids(text), "a generation prompt")


def check_same(chat: ChatTokenizer, ours: list[int], theirs: list[int], what: str) -> None:
    if ours == theirs:
        return
    at = next(
        (i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b),
        min(len(ours), len(theirs)),
    )
    show = chat.tok.convert_ids_to_tokens
    raise TokenizeError(
        f"tokenizer {chat.path} encodes {what} differently when it is tokenized as a whole than "
        f"piece by piece (token {at}: {show(theirs[at : at + 3])} vs {show(ours[at : at + 3])}), "
        "so training rows would not match inference prompts; byte-level BPE, tiktoken-style BPE "
        "and SentencePiece (Llama/Mistral) tokenizers are supported"
    )


def encoder_nodes(backend: Any) -> dict:
    """The parts of an encoder that differ between section encoders (normaliser, pre-tokenizer)."""
    spec = json.loads(backend.to_str())
    return {"normalizer": spec.get("normalizer"), "pre_tokenizer": spec.get("pre_tokenizer")}


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
