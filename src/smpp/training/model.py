"""The multimodal Keras regressor: feature frame -> named model inputs, build, fit, save, load, predict.

Inputs per embedding column E present in training: `E` (zero-filled vectors) and `E_mask` (0/1);
`tabular` (META + image + history features, NaN -> 0) with a per-feature `tabular_mask`;
`subreddit` and (when the table has it) `domain` as raw strings. Normalisation statistics, the
vocabularies and the train-slice subreddit means are layers inside the model, so a saved `.keras`
file scores raw feature frames through `predict_frame` alone.

The network predicts the residual after the train-slice subreddit mean (a frozen per-subreddit
offset added to its output): subreddit size dominates the raw label, and this leaves the layers
to learn what ranks posts *within* a subreddit.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from smpp.features import schema
from smpp.features.author_history import HISTORY_COLUMNS
from smpp.progress import Progress
from smpp.settings import TrainingSettings

log = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
INPUT_SPEC_FILE = "input_spec.json"
TABULAR_COLUMNS = [*schema.META_COLUMNS, *schema.IMAGE_FEATURE_COLUMNS]
# Used when the feature frame has them (archive evaluation, or tables built with history).
OPTIONAL_TABULAR_COLUMNS = ["selftext_len_log", *HISTORY_COLUMNS, *schema.TITLE_FORM_COLUMNS]
SUBREDDIT_INPUT = "subreddit"
DOMAIN_INPUT = "domain"
TABULAR_INPUT = "tabular"
TOWER_OUTPUT = 64
TABULAR_UNITS = 64
SUBREDDIT_EMBEDDING_DIM = 16
DOMAIN_EMBEDDING_DIM = 8
DOMAIN_MIN_COUNT = 5  # rarer domains share the out-of-vocabulary slot
STRING_INPUTS = (SUBREDDIT_INPUT, DOMAIN_INPUT)
# With level_offset, the offset is the subreddit's recent matured-label mean (a leak-free history
# column) where known, instead of the frozen train-slice mean: it follows a subreddit's drift.
LEVEL_COLUMN = "subreddit_recent_mean_label"
LEVEL_INPUT = "level"
PREDICT_BATCH = 2048


def keras_module() -> ModuleType:
    from smpp.compat import import_tensorflow

    import_tensorflow()
    import keras

    return keras


@dataclass
class InputSpec:
    """What the model reads from a feature frame; saved beside the model as input_spec.json."""

    embedding_dims: dict[str, int]
    tabular_columns: list[str]
    use_domain: bool = False
    level_offset: bool = False

    @classmethod
    def for_frame(cls, train: pd.DataFrame, dims: dict[str, int], level_offset: bool = False) -> InputSpec:
        """Towers for the embedding dims given; optional tabular columns and domain if the train slice has them."""
        optional = [
            c for c in OPTIONAL_TABULAR_COLUMNS if c in train and pd.to_numeric(train[c], errors="coerce").notna().any()
        ]
        use_domain = DOMAIN_INPUT in train and train[DOMAIN_INPUT].fillna("").astype(str).ne("").any()
        level = level_offset and LEVEL_COLUMN in optional
        return cls(
            embedding_dims=dims,
            tabular_columns=[*TABULAR_COLUMNS, *optional],
            use_domain=bool(use_domain),
            level_offset=bool(level),
        )

    def save(self, version_dir: Path) -> None:
        from smpp.storage import atomic_write_json

        atomic_write_json(version_dir / INPUT_SPEC_FILE, asdict(self))

    @classmethod
    def load(cls, version_dir: Path) -> InputSpec:
        data = json.loads((version_dir / INPUT_SPEC_FILE).read_text())
        return cls(
            embedding_dims=dict(data["embedding_dims"]),
            tabular_columns=list(data["tabular_columns"]),
            use_domain=bool(data.get("use_domain", False)),
            level_offset=bool(data.get("level_offset", False)),
        )


def _is_missing(cell: Any) -> bool:
    if cell is None:
        return True
    return isinstance(cell, float) and np.isnan(cell)


def embedding_dims(frame: pd.DataFrame) -> dict[str, int]:
    """Dimension of each embedding column that has at least one vector; mixed dims are an error."""
    dims: dict[str, int] = {}
    for column in schema.EMBEDDING_COLUMNS:
        if column not in frame:
            continue
        sizes = {len(cell) for cell in frame[column] if not _is_missing(cell)}
        if len(sizes) > 1:
            raise ValueError(f"embedding column {column} mixes dimensions {sorted(sizes)}")
        if sizes:
            dims[column] = sizes.pop()
    return dims


def embedding_matrix(cells: pd.Series | None, n_rows: int, dim: int, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Zero-filled (n, dim) float32 matrix and its (n, 1) 0/1 presence mask."""
    values = np.zeros((n_rows, dim), dtype=np.float32)
    mask = np.zeros((n_rows, 1), dtype=np.float32)
    if cells is None:
        return values, mask
    array = cells.to_numpy(dtype=object)
    present = np.fromiter((not _is_missing(cell) for cell in array), dtype=bool, count=len(array))
    if not present.any():
        return values, mask
    try:
        stacked = np.stack([np.asarray(cell, dtype=np.float32) for cell in array[present]])
    except ValueError:
        stacked = None  # ragged: find the offending row below
    if stacked is None or stacked.shape[1:] != (dim,):
        for i, cell in zip(np.flatnonzero(present), array[present]):
            shape = np.shape(cell)
            if shape != (dim,):
                raise ValueError(f"{column} row {i} has shape {shape}; the model expects ({dim},)")
    finite = np.isfinite(stacked).all(axis=1)  # a broken vector counts as a missing modality
    rows = np.flatnonzero(present)[finite]
    values[rows] = stacked[finite]
    mask[rows, 0] = 1.0
    return values, mask


def tabular_matrix(frame: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """META + image features with NaN/inf (and absent columns) -> 0, and the per-feature 0/1 mask."""
    values = np.full((len(frame), len(columns)), np.nan, dtype=np.float32)
    for j, column in enumerate(columns):
        if column in frame:
            values[:, j] = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float32, na_value=np.nan)
    mask = np.isfinite(values).astype(np.float32)
    return np.where(mask > 0, values, 0.0).astype(np.float32), mask


def string_array(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame:
        return np.full((len(frame), 1), "", dtype=object)
    return frame[column].fillna("").astype(str).to_numpy().reshape(-1, 1)


def subreddit_array(frame: pd.DataFrame) -> np.ndarray:
    return string_array(frame, SUBREDDIT_INPUT)


def model_inputs(frame: pd.DataFrame, spec: InputSpec) -> dict[str, np.ndarray]:
    inputs: dict[str, np.ndarray] = {}
    for column, dim in spec.embedding_dims.items():
        cells = frame[column] if column in frame else None
        inputs[column], inputs[f"{column}_mask"] = embedding_matrix(cells, len(frame), dim, column)
    inputs[TABULAR_INPUT], inputs[f"{TABULAR_INPUT}_mask"] = tabular_matrix(frame, spec.tabular_columns)
    inputs[SUBREDDIT_INPUT] = subreddit_array(frame)
    if spec.use_domain:
        inputs[DOMAIN_INPUT] = string_array(frame, DOMAIN_INPUT)
    if spec.level_offset:
        inputs[LEVEL_INPUT], inputs[f"{LEVEL_INPUT}_mask"] = tabular_matrix(frame, [LEVEL_COLUMN])
    return inputs


def subreddit_balance_weights(
    subreddits: np.ndarray, labels: np.ndarray, reference: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    """1 / (train-slice label variance of the post's subreddit), normalised to mean 1 and clipped to [0.2, 5]."""
    ref_subs, ref_labels = reference
    variances = pd.Series(np.asarray(ref_labels, float)).groupby(np.asarray(ref_subs).reshape(-1)).var()
    default = float(np.nanmedian(variances)) if len(variances) else 1.0
    per_post = pd.Series(np.asarray(subreddits).reshape(-1)).map(variances).fillna(default).to_numpy(float)
    weights = 1.0 / np.maximum(per_post, 1e-3)
    weights /= weights.mean() if len(weights) else 1.0
    return np.clip(weights, 0.2, 5.0).astype(np.float32)


def _dataset(
    inputs: dict[str, np.ndarray],
    labels: np.ndarray | None,
    batch_size: int,
    shuffle_seed: int | None = None,
    weights: np.ndarray | None = None,
):
    from smpp.compat import import_tensorflow

    tf = import_tensorflow()
    tensors = {
        name: tf.constant(value.astype(str) if name in STRING_INPUTS else value) for name, value in inputs.items()
    }
    data = tensors if labels is None else (tensors, tf.constant(labels.astype(np.float32)))
    if labels is not None and weights is not None:
        data = (*data, tf.constant(weights.astype(np.float32)))
    dataset = tf.data.Dataset.from_tensor_slices(data)
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(next(iter(inputs.values()))), seed=shuffle_seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _frequent(counts: dict[str, int], min_count: int) -> list[str]:
    return sorted(name for name, count in counts.items() if name and count >= min_count)


@dataclass
class CategoryStats:
    """What the subreddit and domain vocabularies and the subreddit offsets need from the train slice.

    A few numbers per category: the streamed trainer computes them from its categorical index
    instead of handing build_model one string per train row (that set the peak memory past 1M rows).
    """

    subreddit_means: dict[str, float]  # mean train label per subreddit name
    global_mean: float
    domain_counts: dict[str, int]

    @classmethod
    def of(cls, subreddits: Any, labels: Any, domains: Any = None) -> CategoryStats:
        """From per-row subreddits (array or Series, categorical welcome), labels and optional domains."""
        labels = np.asarray(labels, dtype=float)
        frame = pd.DataFrame(
            {
                "subreddit": np.asarray(subreddits)
                if not isinstance(subreddits, pd.Series)
                else subreddits.reset_index(drop=True),
                "label": labels,
            }
        )
        means = frame.groupby("subreddit", observed=True, sort=True)["label"].mean()
        counts = (
            {}
            if domains is None
            else pd.Series(
                np.asarray(domains) if not isinstance(domains, pd.Series) else domains.reset_index(drop=True)
            ).value_counts()
        )
        return cls(
            subreddit_means={str(k): float(v) for k, v in means.items()},
            global_mean=float(labels.mean()) if len(labels) else 0.0,
            domain_counts={str(k): int(v) for k, v in dict(counts).items() if v > 0},
        )


MOMENT_CHUNK_ROWS = 8192  # rows per step of the float64 moments (a 50k x 1024 sample is not copied at once)


def feature_moments(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and (population) variance in float64, two passes over row chunks.

    float64 on purpose: float32 sums leave a constant column a variance of ~1e-12 instead of 0
    (day of week in a one-day slice), and dividing by its square root exploded the next day's inputs.
    """
    values = np.asarray(values)
    n = max(1, len(values))
    total = np.zeros(values.shape[1], dtype=np.float64)
    for start in range(0, len(values), MOMENT_CHUNK_ROWS):
        total += values[start : start + MOMENT_CHUNK_ROWS].sum(axis=0, dtype=np.float64)
    mean = total / n
    squares = np.zeros_like(mean)
    for start in range(0, len(values), MOMENT_CHUNK_ROWS):
        squares += ((values[start : start + MOMENT_CHUNK_ROWS].astype(np.float64) - mean) ** 2).sum(axis=0)
    return mean, squares / n


def guarded_normalised(layers, inputs, sample: np.ndarray, name: str, training: TrainingSettings):
    """`inputs` standardised with `sample`'s moments, the std floored, constant columns zeroed, clipped.

    A column whose train std is below training.normaliser_min_std carries nothing the model could
    learn, so it is fed as 0 whatever its value later; the others are divided by at least that std and
    clipped to +-training.normalised_clip (non-finite -> 0). Keras' own Normalization divides by
    max(std, 1e-7), which let a feature constant in training reach ~1e5 the next day.
    """
    mean, variance = feature_moments(sample)
    floor = float(training.normaliser_min_std)
    keep = (np.sqrt(variance) >= floor).astype(np.float32)
    normaliser = layers.Normalization(
        mean=mean.astype(np.float32), variance=np.maximum(variance, floor**2).astype(np.float32), name=f"{name}_norm"
    )
    guard = feature_guard_class()(clip=float(training.normalised_clip), name=f"{name}_guard")
    guarded = guard(normaliser(inputs))
    guard.set_weights([keep])
    return guarded


@lru_cache(maxsize=1)
def feature_guard_class():
    """FeatureGuard, registered with Keras (load_model calls this first, so saved models find it)."""
    keras = keras_module()
    ops = keras.ops

    @keras.saving.register_keras_serializable(package="smpp")
    class FeatureGuard(keras.layers.Layer):
        """x -> keep * clip(x, -clip, clip), non-finite -> 0; `keep` (0/1 per feature) is a frozen weight."""

        def __init__(self, clip: float = 10.0, **kwargs):
            super().__init__(**kwargs)
            self.clip = float(clip)

        def build(self, input_shape):
            self.keep = self.add_weight(name="keep", shape=(int(input_shape[-1]),), initializer="ones", trainable=False)

        def call(self, inputs):
            finite = ops.where(ops.isfinite(inputs), inputs, ops.zeros_like(inputs))
            return ops.clip(finite, -self.clip, self.clip) * ops.cast(self.keep, inputs.dtype)

        def compute_output_shape(self, input_shape):
            return input_shape

        def get_config(self):
            return {**super().get_config(), "clip": self.clip}

    return FeatureGuard


def build_model(
    train_inputs: dict[str, np.ndarray],
    train_labels: np.ndarray,
    spec: InputSpec,
    training: TrainingSettings | None = None,
    categories: CategoryStats | None = None,
):
    """Functional model whose normalisers, vocabularies and subreddit offsets are fitted on the train slice only.

    With `training.ensemble_size` K > 1 the preprocessing is shared and K sub-networks (towers +
    fusion head, different initialisations) each predict the residual; the returned (served) model
    adds their mean to the offset. `model.smpp_train_model` shares its layers and outputs the K
    members' predictions side by side, so each member is fitted on its own loss (a true ensemble,
    not one wide network), while the saved `.keras` file stays a single model that scores raw features.
    `categories`: the vocabularies' and offsets' statistics when computed elsewhere; by default they
    come from `train_inputs`' subreddit/domain columns and `train_labels`.
    """
    training = training or TrainingSettings()
    keras = keras_module()
    layers = keras.layers
    model_inputs_: dict[str, Any] = {}
    shared: dict[str, Any] = {}  # preprocessed inputs every member reads

    for column, dim in spec.embedding_dims.items():
        vectors = keras.Input(shape=(dim,), name=column)
        mask = keras.Input(shape=(1,), name=f"{column}_mask")
        model_inputs_[column], model_inputs_[f"{column}_mask"] = vectors, mask
        present = train_inputs[f"{column}_mask"][:, 0] > 0
        sample = train_inputs[column][present] if present.any() else np.zeros((1, dim), np.float32)
        shared[column] = (guarded_normalised(layers, vectors, sample, column, training), mask)

    n_tab = len(spec.tabular_columns)
    tab = keras.Input(shape=(n_tab,), name=TABULAR_INPUT)
    tab_mask = keras.Input(shape=(n_tab,), name=f"{TABULAR_INPUT}_mask")
    model_inputs_[TABULAR_INPUT], model_inputs_[f"{TABULAR_INPUT}_mask"] = tab, tab_mask
    # Adapt on present values only: missing cells are replaced by the column mean, so they normalise to 0.
    tab_values, tab_present = train_inputs[TABULAR_INPUT], train_inputs[f"{TABULAR_INPUT}_mask"]
    counts = tab_present.sum(axis=0)
    column_means = np.divide(
        (tab_values * tab_present).sum(axis=0), counts, out=np.zeros(n_tab, dtype=np.float32), where=counts > 0
    )
    filled = np.where(tab_present > 0, tab_values, column_means).astype(np.float32)
    tab_normalised = guarded_normalised(layers, tab, filled, TABULAR_INPUT, training)
    tab_hidden = layers.Multiply(name="tabular_masked")([tab_normalised, tab_mask])
    shared[TABULAR_INPUT] = layers.Concatenate(name="tabular_with_mask")([tab_hidden, tab_mask])

    subreddit = keras.Input(shape=(1,), dtype="string", name=SUBREDDIT_INPUT)
    model_inputs_[SUBREDDIT_INPUT] = subreddit
    if categories is None:
        categories = CategoryStats.of(
            train_inputs[SUBREDDIT_INPUT][:, 0].astype(str),
            train_labels,
            train_inputs[DOMAIN_INPUT][:, 0].astype(str) if spec.use_domain else None,
        )
    vocabulary = sorted(s for s in categories.subreddit_means if s)
    lookup = layers.StringLookup(vocabulary=vocabulary, num_oov_indices=1, name="subreddit_lookup")
    sub_index = lookup(subreddit)
    shared[SUBREDDIT_INPUT] = (sub_index, len(vocabulary) + 1)

    if spec.use_domain:
        domain = keras.Input(shape=(1,), dtype="string", name=DOMAIN_INPUT)
        model_inputs_[DOMAIN_INPUT] = domain
        domains = _frequent(categories.domain_counts, DOMAIN_MIN_COUNT) or _frequent(categories.domain_counts, 1)
        domain_lookup = layers.StringLookup(vocabulary=domains, num_oov_indices=1, name="domain_lookup")
        shared[DOMAIN_INPUT] = (domain_lookup(domain), len(domains) + 1)

    members = max(1, int(training.ensemble_size))
    residuals = [_member_residual(layers, spec, shared, training, f"_m{k}" if k else "") for k in range(members)]

    # Frozen train-slice mean label per subreddit (index 0 = unseen subreddit -> global mean).
    global_mean, means = categories.global_mean, categories.subreddit_means
    offsets = np.array([[global_mean], *([means.get(v, global_mean)] for v in vocabulary)], dtype=np.float32)
    offset_layer = layers.Embedding(len(vocabulary) + 1, 1, trainable=False, name="subreddit_offset")
    offset = layers.Flatten(name="subreddit_offset_flat")(offset_layer(sub_index))
    frozen = []
    if spec.level_offset:
        level = keras.Input(shape=(1,), name=LEVEL_INPUT)
        level_mask = keras.Input(shape=(1,), name=f"{LEVEL_INPUT}_mask")
        model_inputs_[LEVEL_INPUT], model_inputs_[f"{LEVEL_INPUT}_mask"] = level, level_mask
        # offset = mask * recent level + (1 - mask) * train-slice mean; "1 - mask" as a frozen Dense
        not_known = layers.Dense(1, trainable=False, name="level_unknown")
        frozen.append((not_known, [np.array([[-1.0]], np.float32), np.array([1.0], np.float32)]))
        offset = layers.Add(name="level_offset")(
            [
                layers.Multiply(name="level_known")([level, level_mask]),
                layers.Multiply(name="mean_if_unknown")([offset, not_known(level_mask)]),
            ]
        )
    mean_residual = residuals[0] if members == 1 else layers.Average(name="ensemble_mean")(residuals)
    output = layers.Add(name="popularity")([offset, mean_residual])
    model = keras.Model(inputs=model_inputs_, outputs=output, name="smpp_popularity")
    member_outputs = [layers.Add(name=f"member_popularity_{k}")([offset, r]) for k, r in enumerate(residuals)]
    stacked = member_outputs[0] if members == 1 else layers.Concatenate(name="members")(member_outputs)
    # Never saved: it only carries the per-member training loss (the served model is never compiled).
    model.smpp_train_model = keras.Model(inputs=model_inputs_, outputs=stacked, name="smpp_popularity_members")
    offset_layer.set_weights([offsets])  # weights, not an initializer: saved inside the .keras file
    for layer, weights in frozen:
        layer.set_weights(weights)
    model.smpp_input_spec = spec
    return model


def _member_residual(layers, spec: InputSpec, shared: dict[str, Any], training: TrainingSettings, suffix: str):
    """One sub-network: towers, tabular and categorical embeddings, fusion head -> residual (batch, 1).

    Member 0 keeps the historical layer names (suffix ""); the others are suffixed `_m<k>`.
    """
    units, dropout = int(training.tower_units), float(training.dropout)
    regularizer = _l2(training.l2)
    fused = []
    for column in spec.embedding_dims:
        normalised, mask = shared[column]
        hidden = layers.Dropout(dropout / 2, name=f"{column}_input_dropout{suffix}")(normalised)
        hidden = layers.Dense(
            units, activation="relu", kernel_regularizer=regularizer, name=f"{column}_dense1{suffix}"
        )(hidden)
        hidden = layers.Dropout(dropout, name=f"{column}_dropout{suffix}")(hidden)
        hidden = layers.Dense(
            TOWER_OUTPUT, activation="relu", kernel_regularizer=regularizer, name=f"{column}_dense2{suffix}"
        )(hidden)
        # Missing modality: the tower contributes exactly zero; the mask itself is a feature.
        fused += [layers.Multiply(name=f"{column}_masked{suffix}")([hidden, mask]), mask]
    tab = layers.Dense(TABULAR_UNITS, activation="relu", kernel_regularizer=regularizer, name=f"tabular_dense{suffix}")
    fused.append(tab(shared[TABULAR_INPUT]))
    for name, dim in ((SUBREDDIT_INPUT, SUBREDDIT_EMBEDDING_DIM), (DOMAIN_INPUT, DOMAIN_EMBEDDING_DIM)):
        if name not in shared:
            continue
        index, size = shared[name]
        embedding = layers.Embedding(size, dim, name=f"{name}_embedding{suffix}")
        fused.append(layers.Flatten(name=f"{name}_flat{suffix}")(embedding(index)))
    hidden = layers.Concatenate(name=f"fusion{suffix}")(fused)
    hidden = layers.Dense(units, activation="relu", kernel_regularizer=regularizer, name=f"fusion_dense1{suffix}")(
        hidden
    )
    hidden = layers.Dropout(dropout, name=f"fusion_dropout{suffix}")(hidden)
    hidden = layers.Dense(
        TOWER_OUTPUT, activation="relu", kernel_regularizer=regularizer, name=f"fusion_dense2{suffix}"
    )(hidden)
    return layers.Dense(1, name=f"residual{suffix}")(hidden)


def _l2(weight: float):
    if weight <= 0:
        return None
    return keras_module().regularizers.L2(float(weight))


def fit_model(
    model,
    train_inputs: dict[str, np.ndarray],
    train_labels: np.ndarray,
    val_inputs: dict[str, np.ndarray],
    val_labels: np.ndarray,
    training: TrainingSettings,
) -> dict[str, Any]:
    """Fit on in-memory slices (see fit_datasets); optionally subreddit-balanced (settings)."""
    train_weights = val_weights = None
    if training.balance_subreddits:
        reference = (train_inputs[SUBREDDIT_INPUT], train_labels)
        train_weights = subreddit_balance_weights(train_inputs[SUBREDDIT_INPUT], train_labels, reference)
        val_weights = subreddit_balance_weights(val_inputs[SUBREDDIT_INPUT], val_labels, reference)
    return fit_datasets(
        model,
        _dataset(train_inputs, train_labels, training.batch_size, shuffle_seed=training.seed, weights=train_weights),
        _dataset(val_inputs, val_labels, PREDICT_BATCH, weights=val_weights),
        training,
    )


def fit_datasets(model, train_data, val_data, training: TrainingSettings) -> dict[str, Any]:
    """Adam + ReduceLROnPlateau, early stopping on validation loss (best weights restored).

    `train_data` / `val_data`: tf.data datasets of (inputs dict, label[, weight]) batches, in memory
    or streamed from Parquet partitions (smpp.training.stream). The loss is MemberLoss: each
    ensemble member's squared error, plus (training.rank_loss_weight > 0) a pairwise ranking term
    over posts of the same subreddit, for which training batches are regrouped by subreddit.
    """
    keras = keras_module()
    # The served model is never compiled (nothing training-only is saved with it); its members are.
    fitted = getattr(model, "smpp_train_model", model)
    rank = float(training.rank_loss_weight)
    if rank > 0:
        train_data = _grouped_by_subreddit(train_data, training.rank_group_size, training.batch_size)
        val_data = val_data.map(_with_group_id)
    fitted.compile(
        optimizer=keras.optimizers.Adam(learning_rate=training.learning_rate, clipnorm=1.0),
        loss=MemberLoss(rank_weight=rank),
    )
    early_stopping = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=training.patience, restore_best_weights=True
    )
    progress = Progress("training (ETA without early stopping)", training.epochs, "epochs")

    class EpochLines(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            progress.done = epoch + 1
            losses = ", ".join(f"{k} {v:.4f}" for k, v in (logs or {}).items() if k.endswith("loss"))
            progress.logger.info("%s; %s", progress.line(), losses)

    callbacks = [
        EpochLines(),
        early_stopping,
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=max(1, training.patience // 2), min_lr=1e-5
        ),
    ]
    history = fitted.fit(
        train_data,
        validation_data=val_data,
        epochs=training.epochs,
        callbacks=callbacks,
        shuffle=False,  # datasets shuffle themselves (seeded) where wanted
        verbose=0,
    )
    curves = {key: [float(v) for v in values] for key, values in history.history.items()}
    return {
        "history": curves,
        "epochs_run": len(curves.get("loss", [])),
        "best_epoch": int(early_stopping.best_epoch) + 1,
        "best_val_loss": float(early_stopping.best) if np.isfinite(early_stopping.best) else None,
    }


GROUP_BUCKETS = 2**23  # subreddit hash buckets: exact in float32, collisions (pairing two subreddits) rare


def _group_id(subreddit):
    """Float32 id of each row's subreddit (hash bucket of the string), shape (batch,)."""
    from smpp.compat import import_tensorflow

    tf = import_tensorflow()
    return tf.cast(tf.strings.to_hash_bucket_fast(tf.reshape(subreddit, [-1]), GROUP_BUCKETS), tf.float32)


def _with_group_id(inputs, labels, *weights):
    """(inputs, [label, subreddit id], weights...): the ranking loss reads the pairs' subreddit from y_true."""
    from smpp.compat import import_tensorflow

    tf = import_tensorflow()
    target = tf.stack([tf.reshape(tf.cast(labels, tf.float32), [-1]), _group_id(inputs[SUBREDDIT_INPUT])], axis=1)
    return (inputs, target, *weights)


def _grouped_by_subreddit(dataset, group_size: int, batch_size: int):
    """Rebatch so each batch holds runs of up to `group_size` posts of one subreddit (else few pairs share one)."""
    from smpp.compat import import_tensorflow

    tf = import_tensorflow()

    def key(inputs, *_):
        return tf.strings.to_hash_bucket_fast(tf.reshape(inputs[SUBREDDIT_INPUT], [-1])[0], GROUP_BUCKETS)

    grouped = dataset.unbatch().group_by_window(
        key_func=key, reduce_func=lambda _, window: window.batch(group_size), window_size=group_size
    )
    return grouped.unbatch().batch(batch_size).map(_with_group_id).prefetch(tf.data.AUTOTUNE)


@lru_cache(maxsize=1)
def _member_loss_class():
    keras = keras_module()
    ops = keras.ops

    class MemberLoss(keras.losses.Loss):
        """Per post: mean over ensemble members of the squared error, + rank_weight * a RankNet term.

        y_true: (batch,) labels, or (batch, 2) [label, subreddit id] when rank_weight > 0; y_pred:
        (batch, members). The ranking term of post i averages softplus(-sign(y_i - y_j) (p_i - p_j))
        over the posts j of the same subreddit in the batch with a different label: it asks the
        residual to order posts within a subreddit, which is what the within-subreddit Spearman reads.
        """

        def __init__(self, rank_weight: float = 0.0, name: str = "member_loss", **kwargs):
            super().__init__(name=name, **kwargs)
            self.rank_weight = float(rank_weight)

        def call(self, y_true, y_pred):
            y_true = ops.cast(y_true, "float32")
            y_true = ops.reshape(y_true, (ops.shape(y_true)[0], -1))
            y_pred = ops.reshape(ops.cast(y_pred, "float32"), (ops.shape(y_true)[0], -1))
            label = y_true[:, :1]
            loss = ops.mean(ops.square(y_pred - label), axis=1)
            if self.rank_weight <= 0:
                return loss
            group = y_true[:, 1]
            same = ops.cast(ops.equal(group[:, None], group[None, :]), "float32")
            dy = label - ops.transpose(label)  # (batch, batch)
            pairs = same * ops.cast(ops.not_equal(dy, 0.0), "float32")
            dp = y_pred[:, None, :] - y_pred[None, :, :]  # (batch, batch, members)
            wrong = ops.mean(ops.softplus(-ops.sign(dy)[:, :, None] * dp), axis=2)
            rank = ops.sum(pairs * wrong, axis=1) / ops.maximum(ops.sum(pairs, axis=1), 1.0)
            return loss + self.rank_weight * rank

        def get_config(self):
            return {**super().get_config(), "rank_weight": self.rank_weight}

    return MemberLoss


def MemberLoss(rank_weight: float = 0.0):  # reads as the class it builds (keras is imported lazily)
    return _member_loss_class()(rank_weight=rank_weight)


def save_model(model, spec: InputSpec, version_dir: Path) -> Path:
    version_dir.mkdir(parents=True, exist_ok=True)
    spec.save(version_dir)
    path = version_dir / MODEL_FILE
    tmp = version_dir / f".{MODEL_FILE}.tmp.keras"
    model.save(tmp)
    tmp.replace(path)  # a reader never sees a half-written model
    return path


def load_model(version_dir: Path):
    """The saved Keras model of a version, with its input spec attached as `smpp_input_spec`."""
    version_dir = Path(version_dir)
    path = version_dir / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no trained model at {path} (skipped or unfinished version?)")
    keras = keras_module()
    feature_guard_class()  # registers the custom layer before deserialising
    model = keras.saving.load_model(path, compile=False)
    model.smpp_input_spec = InputSpec.load(version_dir) if (version_dir / INPUT_SPEC_FILE).is_file() else None
    return model


def _spec_from_model(model) -> InputSpec:
    spec = getattr(model, "smpp_input_spec", None)
    if spec is not None:
        return spec
    # A model without a sidecar spec: read embedding dims from its inputs, tabular columns from the schema.
    dims = {name: int(t.shape[-1]) for name, t in model.input.items() if name in schema.EMBEDDING_COLUMNS}
    return InputSpec(embedding_dims=dims, tabular_columns=list(TABULAR_COLUMNS))


def predict_frame(model, features: pd.DataFrame) -> np.ndarray:
    """Predicted label (log1p score) per row of a raw feature frame; labels are not needed."""
    if len(features) == 0:
        return np.zeros(0, dtype=np.float32)
    if SUBREDDIT_INPUT not in features:
        raise ValueError("feature frame has no 'subreddit' column")
    spec = _spec_from_model(model)
    expected = int(model.input[TABULAR_INPUT].shape[-1])
    if expected != len(spec.tabular_columns):
        raise ValueError(f"model expects {expected} tabular features, spec lists {len(spec.tabular_columns)}")
    inputs = model_inputs(features.reset_index(drop=True), spec)
    predictions = model.predict(_dataset(inputs, None, PREDICT_BATCH), verbose=0)
    return np.asarray(predictions, dtype=np.float32).reshape(-1)
