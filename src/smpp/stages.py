"""The pipeline's stages in DAG order: the one list the DAG test, the UI and the README are checked against."""

from __future__ import annotations

# (task_id, what it writes): the task ids of dags/smpp_pipeline.py, upstream first.
STAGES: tuple[tuple[str, str], ...] = (
    ("plan_archive_files", "the dump files the day needs scanned"),
    ("index_archive_file", "archive_index/ (one mapped scan per dump file)"),
    ("scrape_posts", "warehouse rows and partitions/posts/ds="),
    ("refresh_scores", "fixed-age labels and tombstones"),
    ("filter_posts", "filtered/ds="),
    ("fetch_images", "images/<sha256> and images/ds="),
    ("caption_images", "captions/ds="),
    ("plan_embed_text", "the row chunks of embed_text"),
    ("embed_text", "text_embeddings/ds= (mapped over chunks)"),
    ("plan_embed_images", "the row chunks of embed_images"),
    ("embed_images", "image_embeddings/ds= (mapped over chunks)"),
    ("plan_embed_image_text", "the row chunks of embed_image_text"),
    ("embed_image_text", "joint_embeddings/ds= (mapped over chunks)"),
    ("build_features", "features/ds="),
    ("train_model", "models/<version>/"),
    ("evaluate_and_publish", "the promotion decision and champion pointer"),
)
STAGE_NAMES: tuple[str, ...] = tuple(name for name, _ in STAGES)
# the day partitions (partitions/<stage>/ds=) that hold one row per post, upstream first
POST_PARTITIONS: tuple[str, ...] = (
    "posts",
    "filtered",
    "images",
    "captions",
    "text_embeddings",
    "image_embeddings",
    "joint_embeddings",
    "features",
)
