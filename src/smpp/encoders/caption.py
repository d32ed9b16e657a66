"""Captioner: BLIP conditional generation (Salesforce/blip-image-captioning-large in production)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from smpp.encoders.image import read_rgb
from smpp.encoders.profiles import ModelSpec


@dataclass
class Captioner:
    spec: ModelSpec
    model: Any
    processor: Any
    device: str

    def forward(self, image_paths: list[str], prompt: str, max_new_tokens: int) -> list[str]:
        """One batch of image files -> captions (greedy decoding, so repeatable)."""
        import torch

        images = [read_rgb(path) for path in image_paths]
        if prompt:
            inputs = self.processor(images=images, text=[prompt] * len(images), return_tensors="pt")
        else:
            inputs = self.processor(images=images, return_tensors="pt")
        inputs = inputs.to(self.device)
        with torch.inference_mode():
            tokens = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
        return [caption.strip() for caption in self.processor.batch_decode(tokens, skip_special_tokens=True)]


def load_captioner(spec: ModelSpec, device: str) -> Captioner:
    from transformers import BlipForConditionalGeneration, BlipProcessor

    assert spec.path is not None
    processor = BlipProcessor.from_pretrained(str(spec.path))
    model = BlipForConditionalGeneration.from_pretrained(str(spec.path))
    model.eval().to(device)
    return Captioner(spec=spec, model=model, processor=processor, device=device)
