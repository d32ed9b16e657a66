"""Image encoder: a timm ViT's pooled embedding, with the model's own preprocessing.

Local dirs and hub snapshots share timm's hub format (config.json + model.safetensors), so
tiny and real weights take the same path: create_model(architecture, pretrained=True,
pretrained_cfg_overlay=dict(<saved pretrained_cfg>, file=<weights>)).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from smpp.encoders.profiles import ModelNotAvailableError, ModelSpec, read_json

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


def read_rgb(path: str) -> Any:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from err


@dataclass
class ImageEncoder:
    spec: ModelSpec
    model: Any
    transform: Callable[[Any], Any]
    device: str

    def forward(self, image_paths: list[str]) -> np.ndarray:
        """One batch of image files -> (n, num_features) float32 pooled features (not normalised)."""
        import torch

        pixels = torch.stack([self.transform(read_rgb(path)) for path in image_paths]).to(self.device)
        with torch.inference_mode():
            features = self.model(pixels)
        return features.float().cpu().numpy().astype(np.float32, copy=False)


def _timm_config(directory: Path) -> dict:
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise ModelNotAvailableError(f"{directory} is not a timm model dir (no config.json)")
    return read_json(config_file)


def load_image_encoder(spec: ModelSpec, device: str) -> ImageEncoder:
    import timm
    from timm.data import create_transform, resolve_data_config

    assert spec.path is not None
    directory = Path(spec.path)
    config = _timm_config(directory)
    weights = next((directory / name for name in WEIGHT_FILES if (directory / name).is_file()), None)
    if weights is None:
        raise ModelNotAvailableError(f"no weights ({', '.join(WEIGHT_FILES)}) in {directory}")
    model_args = {**config.get("model_args", {}), "num_classes": 0}  # num_classes=0: pooled features
    model = timm.create_model(
        config["architecture"],
        pretrained=True,
        pretrained_cfg_overlay={**config.get("pretrained_cfg", {}), "file": str(weights)},
        **model_args,
    )
    model.eval().to(device)
    transform = create_transform(**resolve_data_config({}, model=model), is_training=False)
    return ImageEncoder(spec=spec, model=model, transform=transform, device=device)


def image_dim(spec: ModelSpec) -> int:
    assert spec.path is not None
    config = _timm_config(Path(spec.path))
    if "num_features" in config:
        return int(config["num_features"])
    import timm
    import torch

    # Older configs lack num_features: build the bare architecture on the meta device.
    with torch.device("meta"):
        model = timm.create_model(
            config["architecture"],
            pretrained=False,
            num_classes=0,
            **{k: v for k, v in config.get("model_args", {}).items() if k != "num_classes"},
        )
    return int(model.num_features)
