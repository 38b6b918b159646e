"""The phrase banks of `synthetic.dump` (the synthetic ShareGPT dump), read from `phrases.json`.

The banks are plain data, kept in a resource file beside this module so that the generator reads
as code:

* `LANGUAGE_WEIGHTS` — share of conversations per language (English dominates real 2023 dumps);
* `PROMPTS` / `FOLLOWUPS` — first and later human turns, per language;
* `SENTENCES` — what assistant turns are assembled from (paragraphs, list items, quotes), long
  enough for fastText language ID to classify a conversation correctly;
* `TERMS` — short noun phrases for headings, bold list leads and table headers;
* `REFUSALS` — refusal / AI boilerplate, the kind the cleaner's refusal filter is meant to catch;
* `CODE_SNIPPETS` — code blocks by hljs language name, each ending with a newline as ChatGPT's did;
* `PLAIN_CODE_BLOCKS` — [language, text] pairs ChatGPT put in mislabelled code blocks ("vbnet"
  for e-mails);
* `HUMAN_PASTES` — raw snippets users pasted into prompts (never HTML-escaped in human turns);
* `INLINE_CODE` — identifiers for inline `<code>` in assistant prose (escaped when rendered);
* `LINKS` — [text, url] pairs; `SYSTEM_PROMPTS`; `NEAR_DUPLICATE_TAILS` — what a near-duplicate
  appends to an earlier prompt; `TABLE_CELLS` — cells that read the same in every language;
* `MATH_EXPRESSIONS` — [LaTeX, tree] pairs: KaTeX expressions as small trees of nodes
  ["mi"|"mn"|"mo", text], ["sup"|"sub", base, [nodes]], ["frac", [numerator], [denominator]],
  ["sqrt", [nodes]]; the generator renders the MathML and the katex-html halves from one tree, as
  KaTeX did.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

PHRASES_FILE = "phrases.json"


def load_banks() -> dict[str, Any]:
    text = (resources.files(__package__) / PHRASES_FILE).read_text(encoding="utf-8")
    return json.loads(text)


_BANKS = load_banks()

LANGUAGE_WEIGHTS: dict[str, float] = _BANKS["LANGUAGE_WEIGHTS"]
PROMPTS: dict[str, list[str]] = _BANKS["PROMPTS"]
FOLLOWUPS: dict[str, list[str]] = _BANKS["FOLLOWUPS"]
SENTENCES: dict[str, list[str]] = _BANKS["SENTENCES"]
TERMS: dict[str, list[str]] = _BANKS["TERMS"]
REFUSALS: dict[str, list[str]] = _BANKS["REFUSALS"]
CODE_SNIPPETS: dict[str, list[str]] = _BANKS["CODE_SNIPPETS"]
PLAIN_CODE_BLOCKS: list[list[str]] = _BANKS["PLAIN_CODE_BLOCKS"]
HUMAN_PASTES: list[str] = _BANKS["HUMAN_PASTES"]
INLINE_CODE: list[str] = _BANKS["INLINE_CODE"]
LINKS: list[list[str]] = _BANKS["LINKS"]
SYSTEM_PROMPTS: list[str] = _BANKS["SYSTEM_PROMPTS"]
NEAR_DUPLICATE_TAILS: list[str] = _BANKS["NEAR_DUPLICATE_TAILS"]
TABLE_CELLS: list[str] = _BANKS["TABLE_CELLS"]
MATH_EXPRESSIONS: list[list[Any]] = _BANKS["MATH_EXPRESSIONS"]
