"""Language ID with the real bundled fastText model and the langdetect backend."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from sharegpt_tools.clean.fasttext_lid import FastTextModel
from sharegpt_tools.clean.language import (
    FastTextIdentifier,
    LangdetectIdentifier,
    bundled_fasttext_model,
    text_for_language_id,
)
from sharegpt_tools.clean.language import identify as identify_many
from sharegpt_tools.synthetic import phrases

TEXTS = {
    "en": "Could you explain how photosynthesis works in green plants and why it matters?",
    "fr": "Pouvez-vous m'expliquer comment fonctionne la photosynthèse chez les plantes vertes ?",
    "de": "Kannst du mir erklären, wie die Photosynthese bei grünen Pflanzen funktioniert?",
    "es": "¿Puedes explicarme cómo funciona la fotosíntesis en las plantas verdes y por qué?",
    "zh": "你能解释一下绿色植物的光合作用是如何进行的吗？为什么它很重要？",
    "ja": "緑色植物の光合成がどのように機能するのか説明していただけますか？",
}


@pytest.fixture(scope="module")
def fasttext_id() -> FastTextIdentifier:
    return FastTextIdentifier()


def identify(identifier: object, values: list[str], threshold: float) -> tuple[str, float]:
    return identify_many(identifier, [values], threshold)[0]  # type: ignore[arg-type]


# Code point ranges of many scripts, for random words fastText's vocabulary mostly lacks.
SCRIPTS = [
    (0x61, 0x7A),  # Latin
    (0xC0, 0x17F),  # Latin-1 and Extended-A: accents
    (0x391, 0x3C9),  # Greek
    (0x410, 0x44F),  # Cyrillic
    (0x5D0, 0x5EA),  # Hebrew
    (0x621, 0x64A),  # Arabic
    (0x905, 0x939),  # Devanagari
    (0xE01, 0xE2E),  # Thai
    (0x4E00, 0x9FFF),  # CJK
    (0xAC00, 0xD7A3),  # Hangul
    (0x1F600, 0x1F64F),  # emoji: 4-byte UTF-8
]


def random_texts(count: int, seed: int) -> list[str]:
    """Texts of real phrases in ten languages and random words in many scripts, mixed, with the
    bytes fastText treats specially (tabs, NUL, label-like and </s> tokens) now and then."""
    rng = random.Random(seed)
    sentences = [s for bank in phrases.SENTENCES.values() for s in bank]
    texts = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 12)):
            if rng.random() < 0.5:
                parts.append(rng.choice(sentences))
            else:
                low, high = rng.choice(SCRIPTS)
                word = "".join(chr(rng.randint(low, high)) for _ in range(rng.randint(1, 12)))
                parts.append(word)
        if rng.random() < 0.1:
            parts.insert(rng.randrange(len(parts) + 1), rng.choice(["\t", "\0", "__label__en"]))
        if rng.random() < 0.03:
            parts.insert(rng.randrange(len(parts) + 1), "</s>")
        texts.append(" ".join(parts)[: rng.choice([20, 200, 400, 1000])])
    return texts


def test_our_prediction_is_fasttexts(fasttext_id: FastTextIdentifier) -> None:
    """The numpy prediction gives fastText's own label for every text and its probability to
    float rounding, in chunks as the workers run it."""
    import fasttext  # fasttext-predict: the reference implementation

    reference = fasttext.load_model(str(bundled_fasttext_model()))
    edge_cases = [
        "hello __label__en there world",  # a label token is never input
        "hello there </s> world",  # fastText's line ends at </s>
        "hello\tthere\0world \x0b\x0cend",  # fastText's whitespace bytes
        "x",
        "🙂🙂🙂 a 🙂",
        "__label__en",  # no input but </s>
        "</s> hi",
        "\0",
    ]
    texts = [t for t in random_texts(1500, seed=5) if t.strip()] + list(TEXTS.values())
    texts += edge_cases
    model = FastTextModel(bundled_fasttext_model())
    ours = [v for i in range(0, len(texts), 256) for v in model.predict(texts[i : i + 256])]
    for text, (label, score) in zip(texts, ours, strict=True):
        labels, scores = reference.predict(text, k=1)
        assert (label, pytest.approx(float(scores[0]), abs=1e-5)) == (labels[0], score), text
    assert len({label for label, _ in ours}) > 20  # many languages, not one


def test_other_model_files_are_refused_clearly(tmp_path: Path) -> None:
    from sharegpt_tools.clean.fasttext_lid import ModelFormatError

    data = bundled_fasttext_model().read_bytes()
    not_a_model = tmp_path / "x.ftz"
    not_a_model.write_bytes(b"\0" * 64)
    with pytest.raises(ModelFormatError, match="not a fastText model"):
        FastTextModel(not_a_model)
    softmax = tmp_path / "softmax.ftz"  # the same file with -loss softmax in its header
    loss_at = 8 + 6 * 4  # magic, version, then dim ws epoch minCount neg wordNgrams
    softmax.write_bytes(data[:loss_at] + (3).to_bytes(4, "little") + data[loss_at + 4 :])
    with pytest.raises(ModelFormatError, match="hierarchical softmax"):
        FastTextModel(softmax)


def test_prediction_does_not_depend_on_the_chunk(fasttext_id: FastTextIdentifier) -> None:
    texts = [t for t in random_texts(60, seed=9) if t.strip()]
    together = fasttext_id.detect_many(texts)
    assert [fasttext_id.detect_many([t])[0] for t in texts] == together


@pytest.mark.parametrize("code", sorted(TEXTS))
def test_fasttext_identifies_languages(fasttext_id: FastTextIdentifier, code: str) -> None:
    language, score = identify(fasttext_id, [TEXTS[code]], threshold=0.3)
    assert language == code and 0.3 <= score <= 1.0


def test_code_is_removed_before_detection(fasttext_id: FastTextIdentifier) -> None:
    code = "```python\n" + "def fetch_all(items):\n    return [item.value for item in items]\n" * 20
    values = [TEXTS["de"], code + "```"]
    assert "def fetch_all" not in text_for_language_id(values)
    assert identify(fasttext_id, values, threshold=0.3)[0] == "de"


def test_low_score_is_undetermined(fasttext_id: FastTextIdentifier) -> None:
    assert identify(fasttext_id, ["ok"], threshold=0.99)[0] == "und"
    assert identify(fasttext_id, ["```\ncode only\n```"], threshold=0.5) == ("und", 0.0)


def test_langdetect_backend_is_deterministic() -> None:
    detector = LangdetectIdentifier()
    results = {identify(detector, [TEXTS["fr"]], threshold=0.3) for _ in range(3)}
    assert len(results) == 1 and next(iter(results))[0] == "fr"
    assert identify(detector, [TEXTS["zh"]], threshold=0.3)[0] == "zh"
