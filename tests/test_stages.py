"""The one stage list: the DAG's tasks, the UI's order and the README's task table all follow it."""

import re
from pathlib import Path

from smpp.stages import STAGE_NAMES

README = Path(__file__).resolve().parents[1] / "README.md"


def test_stage_names_are_unique_and_in_dag_order():
    assert len(set(STAGE_NAMES)) == len(STAGE_NAMES)
    assert STAGE_NAMES.index("scrape_posts") < STAGE_NAMES.index("build_features") < STAGE_NAMES.index("train_model")


def test_readme_task_table_lists_every_stage():
    text = README.read_text()
    table = text[text.index("| task | reads | writes |") :]
    table = table[: table.index("\n\n")]
    named = set(re.findall(r"`([a-z_]+)`", "\n".join(line.split("|")[1] for line in table.splitlines()[2:])))
    assert named == set(STAGE_NAMES)


def test_ui_orders_stage_files_by_the_stage_list():
    from smpp.ui import artifacts

    names = ["train_model", "scrape_posts", "something_else", "filter_posts"]
    assert sorted(names, key=artifacts._stage_sort_key) == [
        "scrape_posts",
        "filter_posts",
        "train_model",
        "something_else",
    ]
