"""The registry gate on really trained versions: first champion, then a worse challenger."""

import json

from rescoring import held_out_rows, rescore_version
from smpp.lifecycle.registry import champion, decide_and_publish, list_versions, new_version_id, version_dir
from smpp.training import train_and_evaluate


def test_trained_model_becomes_champion_and_a_worse_challenger_does_not(trained, features):
    settings, report = trained
    first = report.version_dir.name

    decision = decide_and_publish(settings, first)
    assert decision.promoted, decision.reason
    assert "no champion yet" in decision.reason and "beats every baseline" in decision.reason
    assert champion(settings) == first
    assert json.loads((report.version_dir / "decision.json").read_text())["promoted"] is True

    # Same posts, but a network that barely trains (one epoch at a vanishing learning rate): it keeps
    # the subreddit offsets and ranks within subreddits by its random initial weights. (Shuffled
    # labels are no good here: on noise, a noise model can "beat" noise baselines by chance.)
    shuffled = features
    quick = settings.model_copy(
        update={"training": settings.training.model_copy(update={"epochs": 1, "learning_rate": 1e-9})}
    )
    challenger = new_version_id()
    challenger_report = train_and_evaluate(
        quick, shuffled, version_dir(settings, challenger), champion=(first, version_dir(settings, first))
    )

    rescored = challenger_report.metrics["champion"]
    assert rescored["version"] == first and rescored["same_test_slice"] is True
    held_out = held_out_rows(settings, shuffled)
    assert len(held_out) == challenger_report.rows["test"]
    on_same_test = rescore_version(settings, first, held_out)
    assert on_same_test["mae"] == rescored["metrics"]["mae"]

    # the gate reads the champion's scores from the challenger's metrics.json, nowhere else
    decision = decide_and_publish(settings, challenger)
    assert decision.champion_metrics["mae"] == rescored["metrics"]["mae"]
    assert not decision.promoted
    assert decision.champion == first and champion(settings) == first
    log_lines = (settings.models_dir / "promotions.jsonl").read_text().splitlines()
    assert [json.loads(line)["challenger"] for line in log_lines] == [first, challenger]
    assert json.loads(log_lines[1])["promoted"] is False

    listed = {v["version"]: v for v in list_versions(settings)}
    assert listed[first]["is_champion"] and listed[first]["promoted"] is True
    assert listed[challenger]["promoted"] is False and not listed[challenger]["is_champion"]
