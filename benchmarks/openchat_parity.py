"""Token parity of `sharegpt-tools tokenize` with the OpenChat authors' reference tokenization.

C-RLFT data is only OpenChat's data if a model trained on it sees the same tokens as one trained
with the authors' code. This compares, conversation by conversation, the rows `sharegpt-tools
tokenize` writes with `ConversationTemplate.tokenize_conversations(..., inference=False)` of PyPI
`ochat==3.6.1` (run by `benchmarks/openchat_reference.py` in its own virtualenv), for the same
conversations, labels and tokenizer (Mistral-7B v0.1's SentencePiece model) and the two TEMPLATES.
Under benchmarks/.work/parity/nN/, re-run every time: `sample --n N --seed 0` plus the system-turn
set (SYSTEM_THEMES), `clean`, then per template `label` and `tokenize --max-length 8192`.

Identical = the same input_ids, and loss_weights equal within 1e-6, for each conversation that
`tokenize` wrote as one row (the others are counted with the reason), also per part of the run
(SUBSETS). Both sides' tokenizers are checked against the SentencePiece library's own `encode`
on every text, so that a tokenizer difference is not taken for a template one; each id mismatch
is put in one of CATEGORIES by where ochat's tokens are at the first differing position (a
difflib alignment counts the later ones). Details and results: benchmarks/README.md.

    .venv/bin/python benchmarks/openchat_parity.py --n 2000 --template both --report

`--report` adds the Markdown tables of benchmarks/README.md; everything measured also goes to
benchmarks/.work/parity/nN/results.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
PARITY = ROOT / "benchmarks" / ".work" / "parity"
SIDE_VENV = ROOT / "benchmarks" / ".work" / "ochat-venv"
SIDE_LOG = SIDE_VENV.with_name("ochat-venv.log")
SIDE_STAMP = SIDE_VENV / "parity-requirements.txt"
REFERENCE_SCRIPT = ROOT / "benchmarks" / "openchat_reference.py"
OCHAT = "ochat==3.6.1"
# What ochat's conversation-template code needs, at the transformers it was made for; torch only
# because ochat/config/__init__.py imports it (the local torch 2.13.0 wheel is a CPU build).
SIDE_PACKAGES = [
    "transformers==4.40.*",
    "tokenizers",
    "sentencepiece",
    "protobuf",
    "pydantic",
    "torch==2.13.0",
]
EOT = "<|end_of_turn|>"
MAX_LENGTH = 8192
WEIGHT_TOLERANCE = 1e-6
EXAMPLES_PER_CATEGORY = 3
LOG_TAIL_LINES = 40


@dataclass(frozen=True)
class Template:
    """One template compared: our rules preset (`label --rules NAME`) and the ochat config it
    should reproduce."""

    name: str
    rules: str
    ochat_config: str


TEMPLATES = {
    "paper": Template("paper", "paper", "openchat_v3.2"),
    "openchat-3.5": Template("openchat-3.5", "openchat-3.5", "openchat_v3.2_mistral"),
}

# Categories of the first differing token, in report order, with what each one means.
CATEGORIES = {
    "text starting with whitespace": (
        "in a text that starts with whitespace: SentencePiece puts its dummy prefix `▁` before the "
        "space, transformers 5's Llama tokenizer does not, so these may legitimately differ "
        "(`clean` strips every turn, so none should reach `tokenize`)."
    ),
    "role prefix after BOS": (
        "the first role prefix, right after `<s>`: ochat tokenizes each role prefix on its own, "
        "so it starts with a word-start `▁` (`▁G PT 4`)."
    ),
    "role prefix after end-of-turn": (
        "a role prefix right after `<|end_of_turn|>`: tokenized on its own there too, so it also "
        "starts with `▁`."
    ),
    "content start": (
        "the first token of a message: ochat tokenizes each message on its own, so its dummy "
        "prefix stands for the space after `User:`."
    ),
    "system turn": "the system prompt: bare text after `<s>`, closed by `<|end_of_turn|>`.",
    "message text our tokenizer encodes unlike SentencePiece": (
        "inside a message whose text our tokenizer folder encodes unlike SentencePiece (see the "
        "check above): a tokenizer.json difference, not a template one."
    ),
    "other": "anywhere else (inside a message, an end-of-turn, one side longer than the other).",
}
CONTENT_ROLES = ("user", "assistant")
PREFIX_KINDS = {f"{role} prefix" for role in CONTENT_ROLES}
SYSTEM_MESSAGE = -1  # the message index of a system prompt in `Pair.disagreeing`


# --- the system-turn set -----------------------------------------------------------------------

# The sample has only a dozen system turns (two prompts), too few to trust the system-prompt path
# (ochat's `Conversation.system`: the bare text closed by `<|end_of_turn|>`, right after `<s>`).
# So a fixed set is added, written next to raw.json as system_turns.json and cleaned with it: per
# theme, 3 system prompts × 12 hand-written exchanges combined into 12 one-exchange, 12
# two-exchange and 12 three-exchange conversations. Any two of them share at most half of their
# exchanges (the pairs are neighbours i, i+1; the triples i, i+3, i+7 mod 12 share at most one),
# so exact and near dedup keep them all; the run checks that they survive `clean`.
# The data: {theme: [[system prompt, ...], [[question, answer], ...]]}.
SYSTEM_THEMES: dict[str, list] = json.loads(
    Path(__file__).with_name("openchat_parity_system_turns.json").read_text(encoding="utf-8")
)
SYSTEM_TURNS_FILE = "system_turns.json"
SYSTEM_TURNS_ID = "system-"  # the ids' prefix: system-THEME-KK
EXCHANGE_GROUPS = (  # each conversation's exchanges, as indices into its theme's 12
    [[i] for i in range(12)]
    + [[i, (i + 1) % 12] for i in range(12)]
    + [[i, (i + 3) % 12, (i + 7) % 12] for i in range(12)]
)


def system_turn_conversations() -> list[dict]:
    """The extra raw ShareGPT rows, each opening with a system turn (deterministic)."""
    rows = []
    for theme, (prompts, exchanges) in SYSTEM_THEMES.items():
        for k, group in enumerate(EXCHANGE_GROUPS):
            turns = [{"from": "system", "value": prompts[k % len(prompts)]}]
            for index in group:
                question, answer = exchanges[index]
                turns += [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
            model = ("gpt-4", "gpt-3.5")[(k // len(prompts)) % 2]
            rows.append(
                {"id": f"{SYSTEM_TURNS_ID}{theme}-{k:02d}", "model": model, "conversations": turns}
            )
    return rows


# --- commands, the side virtualenv, the tokenizer folders ----------------------------------------


def run_logged(command: list[Any], log: Path, append: bool = False) -> None:
    """Run a command with its output in `log`; on failure show the log's tail and stop."""
    command = [str(part) for part in command]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a" if append else "w", encoding="utf-8") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    if code != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-LOG_TAIL_LINES:]
        print(f"--- last lines of {log} ---", *tail, sep="\n", file=sys.stderr)
        sys.exit(f"failed ({code}): {' '.join(command)}")


def run_cli(*args: Any, log: Path) -> None:
    """One `sharegpt-tools` command of the project's virtualenv, logged."""
    run_logged([BIN / "sharegpt-tools", *args], log)


def ensure_side_venv() -> Path:
    """The ochat virtualenv's python, made (pip output in SIDE_LOG) unless SIDE_STAMP says it
    was made with OCHAT and SIDE_PACKAGES."""
    python = SIDE_VENV / "bin" / "python"
    wanted = "\n".join([OCHAT, *SIDE_PACKAGES]) + "\n"
    if python.exists() and SIDE_STAMP.is_file() and SIDE_STAMP.read_text() == wanted:
        return python
    print(f"creating {SIDE_VENV.relative_to(ROOT)} (log: {SIDE_LOG.relative_to(ROOT)})...")
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check"]
    run_logged([sys.executable, "-m", "venv", "--clear", SIDE_VENV], SIDE_LOG)
    run_logged([*pip, "--no-deps", OCHAT], SIDE_LOG, append=True)
    run_logged([*pip, *SIDE_PACKAGES], SIDE_LOG, append=True)
    probe = "import ochat.config, torch; print('cuda build:', torch.version.cuda)"
    run_logged([python, "-c", probe], SIDE_LOG, append=True)
    SIDE_STAMP.write_text(wanted)
    return python


def build_tokenizer(folder: Path) -> Path:
    """Mistral-7B v0.1's tokenizer as the project builds it (rebuilt: the builder may change)."""
    sys.path.append(str(ROOT))  # after PYTHONPATH and the venv: the CLI's package wins
    from sharegpt_tools.tokenize.packaged_tokenizers import build_mistral_tokenizer

    shutil.rmtree(folder, ignore_errors=True)
    return build_mistral_tokenizer("v1", folder)


def reference_tokenizer_folder(ours: Path, folder: Path) -> Path:
    """The same tokenizer for transformers 4.40: no tokenizer.json, no `add_prefix_space: null`.

    tokenizers 0.19 cannot parse the tokenizer.json of tokenizers ≥ 0.20 (so transformers 4.40
    converts the SentencePiece model itself), and transformers 4.40 reads the null transformers 5
    writes as *false*: no dummy prefix, unlike the SentencePiece model and OpenChat's folders.
    """
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for path in ours.iterdir():
        if path.is_file() and path.name != "tokenizer.json":
            shutil.copyfile(path, folder / path.name)
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if "add_prefix_space" in config and config["add_prefix_space"] is None:
        del config["add_prefix_space"]
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")
    return folder


# --- our side: the pipeline and its outputs ------------------------------------------------------


def prepare_clean(n: int, workdir: Path) -> tuple[Path, dict]:
    """sample + the system-turn set + clean, shared by the templates: the clean stage folder,
    and how many rows of the system-turn set `clean` kept and why it rejected the others."""
    import pyarrow.parquet as pq

    raw, extra, ws = workdir / "raw.json", workdir / SYSTEM_TURNS_FILE, workdir / "ws"
    rows = system_turn_conversations()
    extra.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"sample --n {n:,} + {len(rows)} conversations with a system turn + clean...")
    run_cli("sample", "--n", n, "--seed", 0, "-o", raw, log=workdir / "sample.log")
    run_cli("clean", raw, extra, "-w", ws, log=workdir / "clean.log")

    def from_extra(table: str, columns: list[str]) -> list[dict]:
        found = pq.read_table(ws / "clean" / table, columns=["source", *columns]).to_pylist()
        return [r for r in found if (r["source"] or "").startswith(f"{SYSTEM_TURNS_FILE}:")]

    kept = len(from_extra("conversations.parquet", []))
    rejected = dict(Counter(r["reason"] for r in from_extra("rejects.parquet", ["reason"])))
    why = join_counts(rejected)
    print(f"{SYSTEM_TURNS_FILE}: {kept} / {len(rows)} kept by clean (rejected: {why})")
    survival = {"file": SYSTEM_TURNS_FILE, "written": len(rows), "kept": kept, "rejected": rejected}
    return ws / "clean", survival


def label_and_tokenize(template: Template, clean: Path, tokenizer: Path, ws: Path) -> None:
    """The two stages under test, in the template's own workspace."""
    print(f"[{template.name}] label --rules {template.rules} + tokenize...")
    logs = ws.parent
    run_cli("label", "--rules", template.rules, "-w", ws, "-i", clean, log=logs / "label.log")
    options = ["--max-length", MAX_LENGTH, "--val-fraction", 0]
    run_cli("tokenize", "--tokenizer", tokenizer, "-w", ws, *options, log=logs / "tokenize.log")


def read_labeled(ws: Path) -> list[dict]:
    import pyarrow.parquet as pq

    columns = ["id", "conversations", "class", "weight", "condition", "turn_weights"]
    return pq.read_table(ws / "labeled" / "conversations.parquet", columns=columns).to_pylist()


# --- pairing conversations -----------------------------------------------------------------------


@dataclass
class Pair:
    """A conversation that both sides tokenize: its labels, our row, ochat's request."""

    labeled: dict
    ours: dict
    request: dict
    # Messages (Conversation.items indices; SYSTEM_MESSAGE: the system prompt) whose text our
    # tokenizer folder encodes unlike SentencePiece.
    disagreeing: set[int] = field(default_factory=set)

    def texts(self) -> dict[int, str]:
        """Its system prompt (if any) and messages, by message index."""
        system = {SYSTEM_MESSAGE: self.request["system"]} if self.request["system"] else {}
        return system | {i: item["content"] for i, item in enumerate(self.request["items"])}


def ochat_request(conv: dict) -> dict | None:
    """The labeled conversation as ochat's Conversation fields; None if it has no ochat form."""
    turns, turn_weights = conv["conversations"], conv["turn_weights"]
    system, start = "", 0
    if turns and turns[0]["from"] == "system":
        system, start = turns[0]["value"], 1
    items = []
    for turn, turn_weight in zip(turns[start:], turn_weights[start:], strict=True):
        if turn["from"] == "human":
            items.append({"role": "user", "content": turn["value"], "weight": 0.0})
        elif turn["from"] == "gpt":
            weight = float(conv["weight"]) * float(turn_weight)
            items.append({"role": "assistant", "content": turn["value"], "weight": weight})
        else:
            return None
    condition = conv["condition"] or ""
    return {"id": conv["id"], "system": system, "condition": condition, "items": items}


def pair_up(labeled: list[dict], ws: Path) -> tuple[list[Pair], dict]:
    """Conversations to compare, and why each of the others is not compared (by id)."""
    import datasets

    datasets.disable_progress_bars()
    rows: dict[str, list[dict]] = {}  # tokenized rows of every split, by conversation id
    for split in datasets.load_from_disk(str(ws / "tokenized")).values():
        for row in split.select_columns(["id", "piece", "input_ids", "loss_weights"]).to_list():
            rows.setdefault(row["id"], []).append(row)
    pairs: list[Pair] = []
    skipped: dict[str, str] = {}
    for conv in labeled:
        found = rows.get(conv["id"], [])
        request = ochat_request(conv)
        if not found:
            skipped[conv["id"]] = "dropped by tokenize"
        elif len(found) > 1:
            skipped[conv["id"]] = f"split into pieces (longer than --max-length {MAX_LENGTH})"
        elif found[0]["piece"] != 0:
            skipped[conv["id"]] = "one row, but not piece 0"
        elif request is None:
            skipped[conv["id"]] = "system turn after the first turn (no ochat form)"
        else:
            pairs.append(Pair(conv, found[0], request))
    return pairs, skipped


def starts_with_space(text: str) -> bool:
    return text[:1].isspace()


def has_system_turn(conv: dict) -> bool:
    """A leading system turn: ochat's `Conversation.system`."""
    return bool(conv["conversations"]) and conv["conversations"][0]["from"] == "system"


# Parts of the run counted on their own, each a test on a labeled conversation (the sample's ids
# never start with SYSTEM_TURNS_ID).
SUBSETS = {
    "with a system turn": has_system_turn,
    "… of them from system_turns.json": lambda c: c["id"].startswith(SYSTEM_TURNS_ID),
    "… of them from the sample": lambda c: (
        has_system_turn(c) and not c["id"].startswith(SYSTEM_TURNS_ID)
    ),
    "without a system turn": lambda c: not has_system_turn(c),
    "a text starting with whitespace": lambda c: any(
        starts_with_space(turn["value"]) for turn in c["conversations"]
    ),
}


def our_sentencepiece_check(tokenizer: Path, pairs: list[Pair]) -> dict:
    """Does our tokenizer folder encode every message (as plain text) as SentencePiece does?

    Tells a tokenizer.json difference from a template one; marks `Pair.disagreeing`.
    """
    import sentencepiece
    from openchat_reference import compare_with_sentencepiece
    from transformers import AutoTokenizer

    owners = [(pair, message, text) for pair in pairs for message, text in pair.texts().items()]
    texts = [text for _, _, text in owners]
    tok = AutoTokenizer.from_pretrained(str(tokenizer))
    sp = sentencepiece.SentencePieceProcessor(model_file=str(tokenizer / "tokenizer.model"))
    encode = {"add_special_tokens": False, "split_special_tokens": True}
    ids = tok(texts, **encode)["input_ids"] if texts else []
    check = compare_with_sentencepiece(texts, ids, sp)
    for index in check["disagreeing"]:
        pair, message, _ = owners[index]
        pair.disagreeing.add(message)
    return check


def run_reference(
    python: Path, template: Template, tokenizer: Path, pairs: list[Pair], workdir: Path
) -> dict:
    """ochat's tokens and weights for every pair, from the side virtualenv (JSON files)."""
    request, response = workdir / "request.json", workdir / "response.json"
    conversations = [pair.request for pair in pairs]
    payload = {"tokenizer": str(tokenizer), "config": template.ochat_config, "eot": EOT}
    request.write_text(json.dumps({**payload, "conversations": conversations}), encoding="utf-8")
    print(f"[{template.name}] ochat {template.ochat_config}: tokenize_conversations...")
    run_logged([python, REFERENCE_SCRIPT, request, response], workdir / "ochat.log")
    return json.loads(response.read_text(encoding="utf-8"))


# --- comparing -----------------------------------------------------------------------------------


@dataclass
class Location:
    """Where a token position lies among ochat's pieces."""

    kind: str  # "bos", "user prefix", "assistant", "system eot", ... or "end"
    offset: int  # position inside the piece
    previous: str  # kind of the piece before ("" at the start)
    message: int  # index of the message (Conversation.items) the piece belongs to; -1 before


def locate(spans: list[list[Any]] | None, position: int) -> Location | None:
    """The piece of ochat's tokens at `position` (spans may hold empty pieces: empty messages)."""
    if spans is None:
        return None
    start, previous, message = 0, "", -1
    for kind, length in spans:
        message += kind in PREFIX_KINDS
        if position < start + length:
            return Location(kind, position - start, previous, message)
        start, previous = start + length, kind
    return Location("end", position - start, previous, message)


def category(location: Location | None, pair: Pair) -> str:
    """The CATEGORIES entry of a difference that starts at `location` in ochat's tokens."""
    if location is None:
        return "other"
    kind, offset = location.kind, location.offset
    message = SYSTEM_MESSAGE if kind == "system" else location.message
    if kind in {*CONTENT_ROLES, "system"} and starts_with_space(pair.texts()[message]):
        return "text starting with whitespace"
    if kind in {*CONTENT_ROLES, "system"} and offset > 0 and message in pair.disagreeing:
        return "message text our tokenizer encodes unlike SentencePiece"
    if kind.startswith("system"):
        return "system turn"
    if kind in PREFIX_KINDS and location.previous == "bos":
        return "role prefix after BOS"
    if kind in PREFIX_KINDS and location.previous.endswith("eot"):
        return "role prefix after end-of-turn"
    if kind in CONTENT_ROLES and offset == 0:
        return "content start"
    return "other"


def first_difference(ours: list, theirs: list, same: Any) -> int | None:
    """The first position where two sequences differ (a length difference counts), or None."""
    for i, (a, b) in enumerate(zip(ours, theirs, strict=False)):
        if not same(a, b):
            return i
    return None if len(ours) == len(theirs) else min(len(ours), len(theirs))


@dataclass(frozen=True)
class Region:
    """A stretch where the two token sequences differ, and where it starts on each side."""

    category: str
    ours: int
    ochat: int


@dataclass
class Comparison:
    """One conversation's verdict."""

    pair: Pair
    reference: dict  # ochat's tokens, weights and spans
    ids_equal: bool
    weights_equal: bool
    first_weight_diff: int | None
    first: Region | None  # the first differing token (same position on both sides)
    regions: list[Region] = field(default_factory=list)  # every differing stretch (difflib)

    @property
    def equal(self) -> bool:
        return self.ids_equal and self.weights_equal


def compare(pair: Pair, reference: dict) -> Comparison:
    """Exact ids, weights within tolerance; where differences lie, by ochat's pieces."""
    ours_ids, theirs_ids = pair.ours["input_ids"], reference["tokens"]
    id_diff = first_difference(ours_ids, theirs_ids, int.__eq__)
    weight_diff = first_difference(
        pair.ours["loss_weights"], reference["weights"], lambda a, b: abs(a - b) <= WEIGHT_TOLERANCE
    )

    def region(ours: int, ochat: int) -> Region:
        return Region(category(locate(reference["spans"], ochat), pair), ours, ochat)

    result = Comparison(
        pair=pair,
        reference=reference,
        ids_equal=id_diff is None,
        weights_equal=weight_diff is None,
        first_weight_diff=weight_diff,
        first=None if id_diff is None else region(id_diff, id_diff),
    )
    if id_diff is not None:
        # Past the first difference the positions drift apart; an alignment finds the others.
        matcher = difflib.SequenceMatcher(None, ours_ids, theirs_ids, autojunk=False)
        for tag, i1, _, j1, _ in matcher.get_opcodes():
            if tag != "equal":
                result.regions.append(region(i1, j1))
    return result


def tally(convs: list[dict], skipped: dict[str, str], comparisons: list[Comparison]) -> dict:
    """labeled / compared / identical counts of some labeled conversations."""
    ids = {conv["id"] for conv in convs}
    verdicts = [c for c in comparisons if c.pair.labeled["id"] in ids]
    return {
        "labeled": len(convs),
        "compared": len(verdicts),
        "ids_equal": sum(c.ids_equal for c in verdicts),
        "weights_equal": sum(c.weights_equal for c in verdicts),
        "both_equal": sum(c.equal for c in verdicts),
        "skipped": dict(Counter(why for i, why in skipped.items() if i in ids)),
    }


# --- printing ------------------------------------------------------------------------------------


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "n/a"


def join_counts(counts: dict[str, int], sep: str = "; ") -> str:
    return sep.join(f"{key}: {value:,}" for key, value in counts.items()) or "none"


COUNTS_HEADER = (
    "| conversations | labeled | compared | identical input_ids | identical loss_weights | both "
    "| not compared |"
)


def rule(columns: int) -> str:
    return "|" + " --- |" * columns


def counts_row(name: str, counts: dict) -> str:
    """A Markdown row of `tally` counts, under COUNTS_HEADER."""
    m = counts["compared"]
    return (
        f"| {name} | {counts['labeled']:,} | {m:,} "
        f"| {counts['ids_equal']:,} ({percent(counts['ids_equal'], m)}) "
        f"| {counts['weights_equal']:,} ({percent(counts['weights_equal'], m)}) "
        f"| **{counts['both_equal']:,} ({percent(counts['both_equal'], m)})** "
        f"| {counts['labeled'] - m:,} ({join_counts(counts['skipped'])}) |"
    )


def print_summary(r: dict) -> None:
    t = r["template"]
    print(f"\n== {t['name']}: {t['rules']} vs ochat {t['ochat_config']} ==")
    print(COUNTS_HEADER, rule(7), sep="\n")
    for name, counts in {"all": r, **r["subsets"]}.items():
        print(counts_row(name, counts))
    clean, clean_both = r["tokenizer_clean"], r["tokenizer_clean_both"]
    print(
        f"both, among the {clean:,} conversations whose messages our tokenizer encodes as "
        f"SentencePiece does: {clean_both:,} ({percent(clean_both, clean)})"
    )
    side = f"{r['tokenizer_class']}, transformers {r['reference_versions']['transformers']}"
    ours = f"transformers {importlib.metadata.version('transformers')}"
    for name, check in (
        (f"reference tokenizer ({side})", r["sentencepiece_check"]),
        (f"our tokenizer folder ({ours})", r["ours_sentencepiece_check"]),
    ):
        print(f"{name} = SentencePiece encode on {check['agree']:,} / {check['checked']:,} texts")
        for ex in check["examples"]:
            tokens = f"{' '.join(ex['tokenizer'])} vs SentencePiece {' '.join(ex['sentencepiece'])}"
            print(f"  · {ex['text']!r} at token {ex['token']}: {tokens}")


def token_window(tokens: list[str], position: int, before: int = 2, after: int = 4) -> str:
    """A few tokens around `position`, the one at it in brackets."""
    shown = [
        f"[{tokens[i]}]" if i == position else tokens[i]
        for i in range(max(0, position - before), min(len(tokens), position + after))
    ]
    return " ".join(shown + ["[<end>]"] * (position >= len(tokens)))


def describe_region(comp: Comparison, region: Region, tok: Any) -> str:
    """Where a difference is among ochat's pieces, and both sides' tokens around it."""
    pair, reference = comp.pair, comp.reference
    ours = tok.convert_ids_to_tokens(pair.ours["input_ids"])
    theirs = tok.convert_ids_to_tokens(reference["tokens"])
    i, j = region.ours, region.ochat
    where = locate(reference["spans"], j)
    place = "?" if where is None else f"ochat's {where.kind} piece, token {where.offset}"
    at = f"token {i}" if i == j else f"our token {i} / ochat token {j}"
    label = pair.labeled
    return (
        f"id {label['id']} ({label['class']}, {label['condition']!r}), {at} ({place}; "
        f"{len(ours)} vs {len(theirs)} tokens)\n"
        f"        ours : {token_window(ours, i)}\n"
        f"        ochat: {token_window(theirs, j)}"
    )


def describe_weight_difference(comp: Comparison, tok: Any) -> str:
    """The first differing weight of a conversation whose ids are identical."""
    ref, p = comp.reference, comp.first_weight_diff or 0
    where = locate(ref["spans"], p)
    place = "?" if where is None else f"{where.kind} token {where.offset}"
    ours, theirs = comp.pair.ours["loss_weights"], ref["weights"]
    a = f"{ours[p]:.7g}" if p < len(ours) else "<end>"
    b = f"{theirs[p]:.7g}" if p < len(theirs) else "<end>"
    token = tok.convert_ids_to_tokens(ref["tokens"][p]) if p < len(ref["tokens"]) else ""
    return f"id {comp.pair.labeled['id']}, token {p} `{token}` ({place}): ours {a} vs ochat {b}"


def print_mismatches(r: dict, comparisons: list[Comparison], tokenizer: Path) -> None:
    """Per category: what it means, how many, and a few examples with both sides' tokens."""
    if r["both_equal"] == r["compared"]:
        return
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer))
    if r["region_categories"]:
        print("\ninput_ids mismatches, by where they are in ochat's tokens:")
    for name, meaning in CATEGORIES.items():
        first = r["first_categories"].get(name, 0)
        anywhere = r["region_categories"].get(name, 0)
        if not anywhere and not first:
            continue
        print(
            f"\n  {name}: the first difference in {first:,} conversations; "
            f"a difference here in {anywhere:,}\n    {meaning}"
        )
        # Examples: first differences of this category first, then later ones.
        found = [(c, c.first) for c in comparisons if c.first and c.first.category == name]
        for comp in comparisons:
            later = [x for x in comp.regions if x.category == name]
            if comp.first and comp.first.category != name and later:
                found.append((comp, later[0]))
        for comp, region in found[:EXAMPLES_PER_CATEGORY]:
            print("    · " + describe_region(comp, region, tok))
    if r["weight_only"]:
        print(f"\nloss_weights mismatches with identical input_ids: {r['weight_only']:,}")
        shown = [c for c in comparisons if c.ids_equal and not c.weights_equal]
        for comp in shown[:EXAMPLES_PER_CATEGORY]:
            print("    · " + describe_weight_difference(comp, tok))


# --- the Markdown report -------------------------------------------------------------------------


def code_state() -> str:
    """The commit, and whether the code that ran differs from it."""

    def output(*command: str) -> str:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    head = f"`{output('git', 'rev-parse', '--short', 'HEAD')}`"
    # Where the `sharegpt-tools` runs took their package from (PYTHONPATH can move it).
    probe = "import sharegpt_tools; print(sharegpt_tools.__file__)"
    package = Path(output(str(BIN / "python"), "-P", "-c", probe)).resolve().parent
    if package != ROOT / "sharegpt_tools":
        return f"sharegpt_tools from {package} (PYTHONPATH; the work tree is at {head})"
    if output("git", "status", "--porcelain", "--", "sharegpt_tools"):
        return f"{head} + uncommitted changes in sharegpt_tools/"
    return head


def cpu_model() -> str:
    lines = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    models = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return models[0] if models else "unknown CPU"


def markdown_report(results: list[dict], payload: dict) -> str:
    ours = ", ".join(
        f"{n} {importlib.metadata.version(n)}" for n in ("transformers", "tokenizers", "datasets")
    )
    side = ", ".join(f"{k} {v}" for k, v in results[0]["reference_versions"].items())
    survival = payload["system_turns"]
    lines = [
        "| run | |",
        rule(2),
        f"| date | {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC |",
        f"| machine | `nproc` {len(os.sched_getaffinity(0))}, {cpu_model()} |",
        f"| command | `{payload['command']}` |",
        f"| code | {payload['code']} |",
        f"| ours | {ours} |",
        f"| ochat side | {side} |",
        "| tokenizer | Mistral-7B v0.1 SentencePiece (mistral-common `tokenizer.model.v1`) |",
        "",
        "| template | ochat config | raw rows (sample + system-turn set) | labeled | compared "
        "| identical input_ids | identical loss_weights | both "
        "| both, where our tokenizer = SentencePiece | not compared | first id difference |",
        rule(11),
    ]
    for r in results:
        n = r["compared"]
        lines.append(
            f"| {r['template']['name']} | `{r['template']['ochat_config']}` "
            f"| {payload['sample_n']:,} + {survival['written']:,} | {r['labeled']:,} | {n:,} "
            f"| {percent(r['ids_equal'], n)} | {percent(r['weights_equal'], n)} "
            f"| **{percent(r['both_equal'], n)}** "
            f"| {percent(r['tokenizer_clean_both'], r['tokenizer_clean'])} of "
            f"{r['tokenizer_clean']:,} | {r['labeled'] - n:,} ({join_counts(r['skipped'])}) "
            f"| {join_counts(r['first_categories'])} |"
        )
    lines += [
        "",
        f"`{survival['file']}` (conversations with a leading system turn, added to the sample): "
        f"{survival['written']:,} written, {survival['kept']:,} kept by `clean` "
        f"(rejected: {join_counts(survival['rejected'])}).",
        "",
        "| template " + COUNTS_HEADER,
        rule(8),
    ]
    for r in results:
        lines += [f"| {r['template']['name']} " + counts_row(*sub) for sub in r["subsets"].items()]
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------------------------


def measure_template(
    template: Template, n: int, clean: Path, tokenizers: tuple[Path, Path], side_python: Path
) -> dict:
    """Label, tokenize, run ochat on the same conversations, compare, print; what was measured."""
    ours_tok, reference_tok = tokenizers
    ws = PARITY / f"n{n}" / template.name / "ws"
    label_and_tokenize(template, clean, ours_tok, ws)
    labeled = read_labeled(ws)
    pairs, skipped = pair_up(labeled, ws)
    ours_check = our_sentencepiece_check(ours_tok, pairs)
    response = run_reference(side_python, template, reference_tok, pairs, ws.parent)
    comparisons = [compare(p, r) for p, r in zip(pairs, response["results"], strict=True)]
    # Conversations whose every message our tokenizer folder encodes as SentencePiece does: the
    # template's parity with any tokenizer difference aside.
    clean_tok = [c for c in comparisons if not c.pair.disagreeing]
    result = {
        "template": asdict(template),
        **tally(labeled, skipped, comparisons),
        "tokenizer_clean": len(clean_tok),
        "tokenizer_clean_both": sum(c.equal for c in clean_tok),
        "subsets": {
            name: tally([c for c in labeled if test(c)], skipped, comparisons)
            for name, test in SUBSETS.items()
        },
        "first_categories": dict(Counter(c.first.category for c in comparisons if c.first)),
        "region_categories": dict(
            Counter(name for c in comparisons for name in {r.category for r in c.regions})
        ),
        "weight_only": sum(c.ids_equal and not c.weights_equal for c in comparisons),
        "reference_versions": response["versions"],
        "tokenizer_class": response["tokenizer_class"],
        "sentencepiece_check": response["sentencepiece_check"],  # the reference side's tokenizer
        "ours_sentencepiece_check": ours_check,  # our tokenizer folder (tokenizer.json)
    }
    print_summary(result)
    print_mismatches(result, comparisons, ws / "tokenized" / "tokenizer")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="raw rows to sample (default 2000)")
    parser.add_argument("--template", choices=[*TEMPLATES, "both"], default="both")
    parser.add_argument("--report", action="store_true", help="print Markdown tables at the end")
    args = parser.parse_args(argv)
    names = list(TEMPLATES) if args.template == "both" else [args.template]
    command = f"python benchmarks/openchat_parity.py --n {args.n} --template {args.template}"
    command += " --report" if args.report else ""

    side_python = ensure_side_venv()
    workdir = PARITY / f"n{args.n}"
    workdir.mkdir(parents=True, exist_ok=True)
    ours_tok = build_tokenizer(PARITY / "tokenizer" / "mistral-v1")
    reference_tok = reference_tokenizer_folder(ours_tok, PARITY / "tokenizer" / "mistral-v1-tf440")
    clean, survival = prepare_clean(args.n, workdir)
    results = [
        measure_template(TEMPLATES[name], args.n, clean, (ours_tok, reference_tok), side_python)
        for name in names
    ]
    payload = {
        "command": command,
        "code": code_state(),
        "sample_n": args.n,
        "system_turns": survival,
        "results": results,
    }
    out = workdir / "results.json"
    out.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    print(f"\nresults: {out.relative_to(ROOT)}")
    if args.report:
        print("\n" + markdown_report(results, payload))


if __name__ == "__main__":
    main()
