"""Airflow Assets produced by smpp_pipeline, shared by the DAGs that produce and consume them.

URIs are logical (`smpp://...`), not file paths: the data root differs between a laptop and
a cluster, and an asset's identity must not change with it.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset, AssetAlias

# one event per built day partition of the merged feature table (extra: day, rows)
FEATURES = Asset(name="smpp_features", uri="smpp://partitions/features", group="smpp")
# one event per trained and evaluated model version, promoted or not (extra: version, promoted)
MODEL_VERSIONS = Asset(name="smpp_model_versions", uri="smpp://models/versions", group="smpp")
# one event per NEW champion only: schedule a scoring DAG on this
CHAMPION = Asset(name="smpp_champion", uri="smpp://models/champion", group="smpp")
# An alias lets the task decide at run time whether CHAMPION gets an event: a task's plain
# outlets always emit on success, which would announce a champion on every rejected model.
CHAMPION_ALIAS = AssetAlias(name="smpp_champion_promotions", group="smpp")


def emit_publish_events(outlet_events: Any, result: dict[str, Any]) -> bool:
    """Record the evaluated version on MODEL_VERSIONS, and on CHAMPION only if it was promoted."""
    extra = {"version": result["version"], "promoted": bool(result["promoted"]), "day": result.get("day")}
    outlet_events[MODEL_VERSIONS].extra = extra
    if result["promoted"]:
        outlet_events[CHAMPION_ALIAS].add(CHAMPION, extra=extra)
    return bool(result["promoted"])
