"""`pc3d.errors`: the one "did you mean" of pc3d's messages."""

from __future__ import annotations

import pytest

from pc3d.errors import did_you_mean, suggest


def test_suggest_is_case_insensitive_and_none_when_nothing_is_close() -> None:
    assert suggest("adamw", ["SGD", "AdamW"]) == "AdamW"
    assert suggest("xyz", ["SGD", "AdamW"]) is None


def test_did_you_mean_reads_as_part_of_a_sentence_with_and_without_a_match() -> None:
    accepts = "; optimizer accepts: lr, momentum"
    assert f"unknown key 'lrr'{did_you_mean('lrr', ['lr', 'momentum'])}{accepts}" == (
        "unknown key 'lrr' (did you mean 'lr'?); optimizer accepts: lr, momentum"
    )
    assert f"unknown key 'zzz'{did_you_mean('zzz', ['lr', 'momentum'])}{accepts}" == (
        "unknown key 'zzz'; optimizer accepts: lr, momentum"
    )


def test_did_you_mean_can_spell_the_match_as_a_full_key() -> None:
    hint = did_you_mean("num_class", ["num_classes", "layers"], lambda close: f"model.head.{close}")
    assert hint == " (did you mean 'model.head.num_classes'?)"


def test_choose_names_the_key_the_closest_and_all_known() -> None:
    from pc3d.errors import FormatError, choose

    table = {"rotated": 1, "nearest": 2}
    assert choose(table, "nearest", "a.b", "overlap") == 2
    with pytest.raises(FormatError) as err:
        choose(table, "nearst", "a.b", "overlap")
    assert (
        str(err.value) == "a.b: unknown overlap 'nearst' (did you mean 'nearest'?); known: rotated, nearest"
    )
