"""PipelineConfig: the pipeline as data (files, flags, what a worker or a Ray actor is sent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rerank_core import Reranker
from rerank_core.coalescing import Coalescing
from rerank_core.errors import ConfigurationError
from rerank_core.integrations import reranker_config
from rerank_core.pipeline_config import PipelineConfig, read_config_file
from tests.fakes import FakeBackend

REFERENCE = Path(__file__).resolve().parents[2] / "models" / "reference-reranker"


def test_a_toml_file_with_every_table(tmp_path: Path) -> None:
    file = tmp_path / "rerank.toml"
    file.write_text(
        'model = "models/reference-reranker"\n'
        '[backend]\nruntime = "onnx"\nbatch_size = 16\n'
        "[options]\ntop_n = 3\ncoalesce = { max_wait_ms = 1.0, max_pairs = 64 }\n"
        "[serve]\nport = 9000\n"
    )
    data = read_config_file(file)
    config = PipelineConfig.from_mapping(data)
    assert config.model == "models/reference-reranker"
    assert config.backend == {"runtime": "onnx", "batch_size": 16}
    assert config.options["top_n"] == 3 and data["serve"] == {"port": 9000}
    again = PipelineConfig.from_mapping(json.loads(json.dumps(config.to_dict())))
    assert again == config


def test_a_json_file_and_bad_files(tmp_path: Path) -> None:
    good = tmp_path / "c.json"
    good.write_text(json.dumps({"model": "m", "options": {"top_n": 2}}))
    assert PipelineConfig.from_mapping(read_config_file(good)).options == {"top_n": 2}
    for name, text, message in [
        ("c.yaml", "model: m", "expected a .json or .toml"),
        ("d.json", "{", "not valid JSON"),
        ("e.toml", "model = ", "not valid TOML"),
        ("f.json", "[1]", "mapping at the top level"),
    ]:
        (tmp_path / name).write_text(text)
        with pytest.raises(ConfigurationError, match="--config") as info:
            read_config_file(tmp_path / name)
        assert message in str(info.value)
    with pytest.raises(ConfigurationError, match="cannot read"):
        read_config_file(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("data", "name"),
    [
        ({}, "model"),
        ({"model": "m", "reranker": {"version": 1}}, "model"),
        ({"model": ""}, "model"),
        ({"model": "m", "modle": 1}, "config['modle']"),
        ({"model": "m", "options": {"topn": 3}}, "options['topn']"),
        ({"model": "m", "options": {"top_n": 0}}, "top_n"),
        ({"model": "m", "options": {"coalesce": {"max_pairs": 0}}}, "coalesce.max_pairs"),
        ({"model": "m", "options": {"coalesce": {"nope": 1}}}, "options['coalesce']"),
        ({"model": "m", "options": [1]}, "options"),
        ({"model": "m", "backend": [1]}, "backend"),
        ({"reranker": {"version": 1}, "recipe": "qwen3"}, "recipe"),
    ],
)
def test_mistakes_are_refused_by_name_before_any_model_loads(data: dict, name: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        PipelineConfig.from_mapping(data)
    assert name in str(info.value)


def test_replace_merges_options_and_a_model_replaces_a_described_reranker() -> None:
    config = PipelineConfig(model="a", options={"top_n": 3, "fail_open": True})
    changed = config.replace(options={"top_n": 5}, recipe=None, model="b")
    assert changed.options == {"top_n": 5, "fail_open": True} and changed.model == "b"
    assert config.options == {"top_n": 3, "fail_open": True}  # unchanged
    described = PipelineConfig(reranker={"version": 1, "backend": {"class": "x:y"}})
    assert described.replace(model="m").reranker is None


def test_a_described_reranker_builds_with_extra_options() -> None:
    reranker = Reranker(FakeBackend(name="described"), top_n=4)
    described = reranker_config(reranker)
    assert described is not None
    config = PipelineConfig(reranker=described, options={"coalesce": {"max_wait_ms": 0.5}})
    built = config.build()
    assert built.backend.fingerprint == "fake:described"
    assert built.options.top_n == 4 and built.options.coalesce == Coalescing(max_wait_ms=0.5)
    docs = ["a b", "b c", "c d"]
    assert [r.index for r in built.rerank("b", docs)] == [r.index for r in reranker.rerank("b", docs)]


@pytest.mark.slow
def test_a_local_model_builds_as_local_backend_would() -> None:
    config = PipelineConfig(model=str(REFERENCE), backend={"batch_size": 8}, options={"top_n": 2})
    reranker = config.build()
    assert type(reranker.backend).__name__ == "CrossEncoderBackend"
    assert len(reranker.rerank("cats", ["cats eat meat", "stocks fell", "dogs bark"])) == 2
    reranker.backend.close()
