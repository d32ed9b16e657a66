"""Column contract of the merged feature table (partitions/features/ds=.../).

One row per filtered post of the day. Embedding columns are fixed-size float32 lists, null
where the modality is missing (no image, fetch failed); the model masks them.
"""

from __future__ import annotations

KEY_COLUMNS = ["post_id", "subreddit", "author", "created_utc"]
# Label columns: `label` = log1p(max(score, 0)) at the fixed age; null while immature.
LABEL_COLUMNS = ["label", "label_score", "label_age_hours", "label_status", "label_matured_utc"]

# Known at posting time only (no later karma, no outcomes such as score or comments).
META_COLUMNS = [
    "title_chars",
    "title_words",
    "is_self",
    "over_18",
    "has_image",
    "hour_sin",
    "hour_cos",
    "dow_sin",
    "dow_cos",
    "author_known",
    "author_link_karma_log",
    "author_comment_karma_log",
    "author_account_age_days_log",
]

# The title's form (issue 17): cheap posting-time signals of how a title is written. Optional in
# training (partitions written before them read as missing); computed by features.table.title_form_features.
TITLE_FORM_COLUMNS = [
    "title_caps_ratio",
    "title_all_caps_words",
    "title_exclamations",
    "title_question",
    "title_digits_log",
    "title_bracket_tag",
    "title_oc_tag",
    "title_first_person",
    "title_emoji",
    "title_quote",
]

IMAGE_FEATURE_COLUMNS = [
    "img_brightness",
    "img_contrast",
    "img_colourfulness",
    "img_hue_count",
    "img_colour_entropy",
    "img_sharpness",
    "img_edge_offset",
    "img_width",
    "img_height",
    "img_aspect_ratio",
    "img_file_kb",
]

# name -> which encoder produced it
EMBEDDING_COLUMNS = {
    "title_emb": "text",
    "caption_emb": "text",
    "image_emb": "image",
    "joint_emb": "joint",
}
