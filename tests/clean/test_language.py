"""Language ID with the real bundled fastText model and the langdetect backend."""

from __future__ import annotations

import pytest

from sharegpt_tools.clean.language import (
    FastTextIdentifier,
    LangdetectIdentifier,
    identify,
    text_for_language_id,
)

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
