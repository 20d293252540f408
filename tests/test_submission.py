"""submission.json normalization over the variants the official records use."""

from __future__ import annotations

import json

import pytest

from pgolf.compliance.errors import InputError
from pgolf.compliance.submission import load_submission, normalize

from .conftest import shared_record_dirs


def test_seed_results_dict_and_tracks():
    sub = normalize(
        {
            "track": "non-record-16mb",
            "val_bpb": 1.2,
            "seeds": [1, 2],
            "seed_results": {"1": {"val_bpb": 1.1, "artifact_bytes": 10, "train_time_s": 1.5}, "2": {"val_bpb": 1.3}},
        }
    )
    assert sub.track == "track_non_record_16mb"
    assert sub.seeds == [1, 2]
    assert sub.seed_claims[1].bytes_total == 10
    assert sub.seed_claims[1].train_time_ms == 1500
    assert sub.seed_claims[2].val_bpb == 1.3


def test_results_under_seeds_key_and_seed_scores():
    sub = normalize({"seeds": {"0": {"val_bpb": 1.08, "bytes_total": 5}, "42": {"val_bpb": 1.09}}})
    assert sorted(sub.seeds) == [0, 42] and sub.seed_claims[0].bytes_total == 5
    sub = normalize({"seeds": [42, 0], "seed_scores": [1.09, 1.08]})
    assert sub.seed_claims[0].val_bpb == 1.08


def test_single_seed_and_alternative_size_key():
    sub = normalize({"seed": 1337, "artifact_size_bytes": 15878809, "bytes_model_int6_zstd": 15000000})
    assert sub.seeds == [1337] and sub.bytes_total == 15878809 and sub.bytes_model == 15000000


def test_strings_and_garbage_are_noted_not_fatal():
    sub = normalize({"val_bpb": "1.25", "val_loss": "n/a", "seeds": [1, "x"], "track": "mystery"})
    assert sub.val_bpb == 1.25 and sub.val_loss is None and sub.seeds == [1]
    assert any("val_loss" in n for n in sub.notes) and any("track" in n for n in sub.notes)


@pytest.mark.parametrize(
    "payload, fragment",
    [
        (b'{"val_bpb": 1.1,', "invalid JSON at line 1"),
        (b"[1, 2]", "top level is a JSON list"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
    ],
)
def test_broken_json_is_one_line_input_error(payload, fragment):
    with pytest.raises(InputError) as err:
        load_submission(payload, "submission.json")
    assert fragment in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith("submission.json: ")


@pytest.mark.shared
def test_every_shared_submission_normalizes(records_root):
    for folder in shared_record_dirs():
        for path in folder.glob("submission*.json"):
            sub = load_submission(path.read_bytes(), path.name)
            assert sub.val_bpb is not None, path
            raw = json.loads(path.read_text())
            if "seed_results" in raw:
                assert sub.seed_claims, path
