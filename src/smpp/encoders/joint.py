"""Joint image+text encoder: Visualized BGE (bge-m3 text tower + EVA02-CLIP vision tower).

The code comes from flagembedding 1.2.11's `visual` subpackage, added to the venv by
scripts/install_visualized_bge.py (1.3+ dropped it; see that script for why).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from smpp.encoders.image import read_rgb
from smpp.encoders.profiles import EVA_CONFIG_FILE, ModelSpec, read_json

# Visualized BGE pairs each text model with one EVA-CLIP tower (by config name).
EVA_MODEL_NAMES = {"bge-m3": "EVA02-CLIP-L-14", "bge-base-en-v1.5": "EVA02-CLIP-B-16"}
INSTALL_HINT = (
    "Visualized BGE is not installed in this venv: run `.venv/bin/python scripts/install_visualized_bge.py` "
    "(`make venv` runs it)"
)

_eva_registry_lock = threading.Lock()


def import_visualized_bge() -> type:
    try:
        from FlagEmbedding.visual.eva_clip.factory import list_models
        from FlagEmbedding.visual.modeling import Visualized_BGE
    except ImportError as err:
        raise RuntimeError(INSTALL_HINT) from err
    missing = set(EVA_MODEL_NAMES.values()) - set(list_models())
    if missing:
        raise RuntimeError(f"{INSTALL_HINT}; EVA-CLIP configs missing: {sorted(missing)}")
    return Visualized_BGE


@contextlib.contextmanager
def eva_config_swapped(name: str, config: dict) -> Iterator[None]:
    """Register `config` under the EVA-CLIP name Visualized BGE asks for, while it is built.

    Visualized BGE hard-codes the tower's config name; a model dir that ships its own tower
    config (the tiny one) is built from that config instead, through the same factory.
    """
    from FlagEmbedding.visual.eva_clip import factory

    with _eva_registry_lock:
        previous = factory._MODEL_CONFIGS.get(name)
        factory._MODEL_CONFIGS[name] = config
        try:
            yield
        finally:
            if previous is None:
                factory._MODEL_CONFIGS.pop(name, None)
            else:
                factory._MODEL_CONFIGS[name] = previous


def fix_attention_mask_dtype(model: Any) -> None:
    """Build the extended attention mask in the model's compute dtype.

    Visualized_BGE.get_extended_attention_mask defaults to float16; under transformers 5 the
    text-only path (encode_text) hands that half mask to SDPA with float32 queries and fails.
    """
    compute_dtype = next(model.parameters()).dtype
    original = model.get_extended_attention_mask

    def get_extended_attention_mask(
        attention_mask: Any, input_shape: Any, device: Any = None, dtype: Any = None
    ) -> Any:
        return original(attention_mask, input_shape, device, dtype or compute_dtype)

    model.get_extended_attention_mask = get_extended_attention_mask


@dataclass
class JointEncoder:
    spec: ModelSpec
    model: Any
    device: str
    max_text_tokens: int

    def forward(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        """One batch of (image file, text) -> (n, hidden) float32, L2-normalised.

        The batched form of Visualized_BGE.encode(image=..., text=...): the same
        preprocess_val + tokenizer + encode_mm, over stacked images and padded texts
        (an empty text gives its image-only embedding, like encode(image=...)).
        """
        import torch

        images = torch.stack([self.model.preprocess_val(read_rgb(path)) for path, _ in pairs]).to(self.device)
        tokens = self.model.tokenizer(
            [text for _, text in pairs],
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.max_text_tokens,
        ).to(self.device)
        with torch.inference_mode():
            reps = self.model.encode_mm(images, tokens)
        return reps.float().cpu().numpy().astype(np.float32, copy=False)


def load_joint_encoder(spec: ModelSpec, device: str) -> JointEncoder:
    import torch

    assert spec.path is not None and spec.text_path is not None
    visualized_bge = import_visualized_bge()
    arch = spec.extra["arch"]
    eva_config_file = spec.path.parent / EVA_CONFIG_FILE
    building = (
        eva_config_swapped(EVA_MODEL_NAMES[arch], read_json(eva_config_file))
        if eva_config_file.is_file()
        else contextlib.nullcontext()
    )
    with building:
        # model_name_bge selects the architecture; from_pretrained gives the local text model dir.
        model = visualized_bge(
            model_name_bge=f"BAAI/{arch}", model_weight=str(spec.path), from_pretrained=str(spec.text_path)
        )
    model.eval().to(device)
    model.device = torch.device(device)  # its constructor picks cuda by itself when present
    fix_attention_mask_dtype(model)
    # Prompt positions follow the image tokens in the text tower's position table.
    num_patches = int(model.model_visual.visual.patch_embed.num_patches)
    positions = int(model.bge_embeddings.position_embeddings.num_embeddings)
    max_text_tokens = max(8, min(512, positions - num_patches - 4))
    return JointEncoder(spec=spec, model=model, device=device, max_text_tokens=max_text_tokens)


def joint_dim(spec: ModelSpec) -> int:
    assert spec.text_path is not None
    return int(read_json(spec.text_path / "config.json")["hidden_size"])
