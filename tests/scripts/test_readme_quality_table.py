"""scripts/readme_quality_table.py: the README's quality table comes from a metrics.json."""

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("readme_quality_table", REPO / "scripts" / "readme_quality_table.py")
table_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(table_script)


def metrics() -> dict:
    def block(spearman, within, mae):
        return {"spearman": spearman, "spearman_within_subreddit": within, "mae": mae, "rmse": mae + 0.2}

    return {
        "version": "20261206T000000Z-abcdef",
        "rows": {"train": 100, "val": 20, "test": 30},
        "model": block(0.85, 0.3312, 0.52),
        "baseline_subreddit_mean": block(0.81, 0.0, 0.58),
        "baseline_metadata_gbm": block(0.86, 0.25, 0.51),
        "baseline_text_ridge": {**block(0.82, None, 0.57)},
    }


def test_the_table_rewrites_only_the_marked_block_and_bolds_each_columns_best(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{table_script.START}\nold table\n{table_script.END}\noutro\n")
    source = tmp_path / "metrics.json"
    source.write_text(json.dumps(metrics()))
    assert table_script.main([str(source), "--readme", str(readme), "--check"]) == 1  # differs: nothing written
    assert "old table" in readme.read_text()
    assert table_script.main([str(source), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("\noutro\n") and "old table" not in text
    assert "| model | 0.850 | **0.331** |" in text  # best within: the model
    assert "| metadata LightGBM | **0.860** |" in text and "| text ridge | 0.820 | – |" in text
    assert "**0.510**" in text  # lower MAE is better
    assert "train 100 / val 20 / test 30" in text
    assert table_script.main([str(source), "--readme", str(readme), "--check"]) == 0


def test_the_repos_readme_has_one_table_block():
    text = (REPO / "README.md").read_text()
    assert text.count(table_script.START) == 1 and text.count(table_script.END) == 1


@pytest.mark.parametrize("bad", ["no markers\n", f"{table_script.END}\n{table_script.START}\n"])
def test_a_readme_without_a_well_formed_block_is_a_clear_error(tmp_path, bad, capsys):
    readme, source = tmp_path / "README.md", tmp_path / "metrics.json"
    readme.write_text(bad)
    source.write_text(json.dumps(metrics()))
    assert table_script.main([str(source), "--readme", str(readme)]) == 2
    assert "exactly one" in capsys.readouterr().err and readme.read_text() == bad


def test_an_unfinished_metrics_file_is_refused(tmp_path, capsys):
    readme, source = tmp_path / "README.md", tmp_path / "metrics.json"
    readme.write_text(f"{table_script.START}\n{table_script.END}\n")
    source.write_text(json.dumps({"model": None}))
    assert table_script.main([str(source), "--readme", str(readme)]) == 2
    assert "not a finished" in capsys.readouterr().err


def test_a_metrics_file_that_is_not_json_is_named_in_the_error(tmp_path, capsys):
    readme, source = tmp_path / "README.md", tmp_path / "metrics.json"
    readme.write_text(f"{table_script.START}\n{table_script.END}\n")
    source.write_text("{bad")
    assert table_script.main([str(source), "--readme", str(readme)]) == 2
    assert f"{source}: Expecting property name" in capsys.readouterr().err
