"""StageCounts: the in = kept + rejected accounting clean, label and tokenize share."""

from __future__ import annotations

from collections import Counter

import pytest

from sharegpt_tools.records import Reason, StageCounts


def test_counts_of_batches_add_up_and_serialise_as_the_manifest_schema_says() -> None:
    first = StageCounts(5, 3, Counter({Reason.TOO_SHORT: 2}))
    second = StageCounts(4, 2)
    second.reject(Reason.EXACT_DUPLICATE)
    second.reject(Reason.TOO_SHORT)
    second.reject(Reason.REFUSAL, rows=0)  # a reason with no row is not listed
    total = first + second
    assert total.to_json() == {
        "in": 9,
        "kept": 5,
        "rejected": 4,
        "rejected_by_reason": {"too_short": 3, "exact_duplicate": 1},
    }
    assert first.to_json()["in"] == 5, "adding does not change the operands"


def test_counts_that_lose_a_row_refuse_to_serialise() -> None:
    with pytest.raises(AssertionError, match="9 rows in, 5 kept, 3 rejected"):
        StageCounts(9, 5, Counter({Reason.UNMATCHED: 3})).to_json()
