"""The one-pipeline runner stores, for one pair per task, exactly the rows the pre-refactor pipeline stored
(tests/fixtures/pipeline_rows.json, written at commit 3e8ea9a by ``python -m tests.pipeline_snapshot``),
modulo run ids, timings, paths and library versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.pipeline_snapshot import PAIRS, run_pairs

FIXTURE = Path(__file__).parent / "fixtures" / "pipeline_rows.json"


@pytest.fixture(scope="module")
def current(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return json.loads(json.dumps(run_pairs(tmp_path_factory.mktemp("pipeline_rows"))))


@pytest.mark.parametrize("pair", [f"{task}/{method}" for task, method in PAIRS])
def test_stored_rows_match_the_pre_refactor_pipeline(current: dict, pair: str) -> None:
    expected = json.loads(FIXTURE.read_text())[pair]
    for table in ("run", "samples", "sample_scores", "metrics"):
        assert current[pair][table] == expected[table], f"{pair}: table {table} differs"
