"""Text encoder: bge-m3 dense vectors (BGEM3FlagModel), or a SentenceTransformer offline."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from smpp.encoders.profiles import BGE_M3, SENTENCE_TRANSFORMERS, ModelSpec, read_json


@dataclass
class TextEncoder:
    spec: ModelSpec
    model: Any
    device: str
    _special_ids: set[int] | None = field(default=None, init=False, repr=False)

    def forward(self, texts: list[str]) -> np.ndarray:
        """One batch of texts -> (n, dim) float32, L2-normalised (both models normalise)."""
        import torch

        with torch.inference_mode():
            if self.spec.kind == BGE_M3:
                # Not BGEM3FlagModel.encode: it runs each call's first batch twice (a batch-size
                # probe), so tokenise as encode does and call its inference model once.
                output = self._bge_m3_outputs(texts, sparse=False)["dense_vecs"].float().cpu()
            else:
                output = self.model.encode(texts, batch_size=len(texts), convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(output, dtype=np.float32).reshape(len(texts), -1)

    @property
    def has_sparse(self) -> bool:
        return self.spec.kind == BGE_M3

    def forward_with_sparse(self, texts: list[str]) -> tuple[np.ndarray, list[dict[str, float]]]:
        """One batch -> dense (n, dim) float32 and lexical weights (token id -> weight > 0), one pass."""
        if not self.has_sparse:
            raise ValueError(f"{self.spec.model_id} ({self.spec.kind}) has no sparse lexical head")
        import torch

        with torch.inference_mode():
            # one direct forward, as in forward(); encode() would probe the batch size first
            inputs, output = self._bge_m3_outputs(texts, sparse=True, with_inputs=True)
            dense = output["dense_vecs"].float().cpu().numpy().astype(np.float32).reshape(len(texts), -1)
            token_weights = output["sparse_vecs"].squeeze(-1).float().cpu().numpy()
        input_ids = inputs["input_ids"].cpu().tolist()
        weights = [self._lexical_weights(w, ids) for w, ids in zip(token_weights, input_ids)]
        return dense, weights

    def _bge_m3_outputs(self, texts: list[str], sparse: bool, with_inputs: bool = False):
        inputs = self.model.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.model.passage_max_length,
            return_tensors="pt",
        ).to(self.device)
        output = self.model.model(inputs, return_dense=True, return_sparse=sparse, return_colbert_vecs=False)
        return (inputs, output) if with_inputs else output

    def _lexical_weights(self, token_weights: np.ndarray, input_ids: list[int]) -> dict[str, float]:
        """BGEM3FlagModel's token-weight step: the max positive weight per token id, specials dropped."""
        if self._special_ids is None:
            tokenizer = self.model.tokenizer
            names = ("cls_token", "eos_token", "pad_token", "unk_token")
            self._special_ids = {
                tokenizer.convert_tokens_to_ids(tokenizer.special_tokens_map[n])
                for n in names
                if n in tokenizer.special_tokens_map
            }
        result: dict[str, float] = {}
        for weight, token in zip(token_weights.tolist(), input_ids):
            if token not in self._special_ids and weight > 0:
                key = str(token)
                if weight > result.get(key, 0.0):
                    result[key] = float(weight)
        return result


def load_text_encoder(spec: ModelSpec, device: str) -> TextEncoder:
    assert spec.path is not None
    if spec.kind == BGE_M3:
        from FlagEmbedding import BGEM3FlagModel

        # fp16 only where it is fast and supported; on CPU it is slow or fails.
        model = BGEM3FlagModel(str(spec.path), use_fp16=device.startswith("cuda"), devices=device)
        model.model.to(device).eval()  # encode() did this per call; forward calls the model directly
    elif spec.kind == SENTENCE_TRANSFORMERS:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(spec.path), device=device)
        model.eval()
    else:
        raise ValueError(f"not a text encoder kind: {spec.kind}")
    return TextEncoder(spec=spec, model=model, device=device)


def text_dim(spec: ModelSpec) -> int:
    """Output size from the model's configs, without loading weights."""
    assert spec.path is not None
    path = Path(spec.path)
    dim = int(read_json(path / "config.json")["hidden_size"])
    if spec.kind == SENTENCE_TRANSFORMERS and (path / "modules.json").is_file():
        # A Dense module after pooling changes the output size.
        for module in read_json(path / "modules.json"):
            if "Dense" in module.get("type", ""):
                dim = int(read_json(path / module["path"] / "config.json")["out_features"])
    return dim
