"""Enrichment cost on CPU: captioner, text, image and joint encoders, per profile and batch size.

    .venv/bin/python benchmarks/encoders.py [--stages caption,text,image,joint]
        [--profiles offline,production] [--batch-sizes 1,8] [--items N] [--cprofile]
        [--text-sparse] [--models-dir DIR] [--rebuild] [--build-only] [--json FILE]

Profiles:
  offline     what `make demo` uses: the real all-MiniLM-L6-v2 for text, the tiny random models
              for image, joint and caption (built by smpp.encoders.prepare_models).
  production  the production architectures at full size with RANDOM weights (same compute as the
              real ones): XLM-RoBERTa of bge-m3's size (24 layers, 1024 wide, 250,002 tokens; the
              tiny SentencePiece tokenizer, since only compute matters), timm
              vit_large_patch16_384, Visualized BGE (EVA02-CLIP-L-14 + that XLM-R) and a BLIP
              captioner of blip-image-captioning-large's size. They are built once into a fake
              Hugging Face cache under --models-dir (~9 GB), so the production profile resolves
              and loads them through exactly the code that loads the real ones.

Each (stage, profile) runs in its own process, which loads the model once and then measures
each batch size in turn, resetting the peak-RSS mark (/proc/self/clear_refs) between them:
  import   the loader's libraries (torch, sentence_transformers / FlagEmbedding / timm / ...)
  load     the first get_encoder call: spec resolution, revision, model load (with its peak RSS)
  stage    the public stage function (embed_texts, embed_images, embed_image_text,
           caption_images) on N new items with an empty cache: decoding, preprocessing,
           batching, the model, SQLite cache writes
  forward  the model alone on the same batches, already preprocessed (tensors built beforehand);
           stage/forward is the pipeline overhead (median of back-to-back pairs)
  in-stage the time spent inside the model call during the stage run itself (patched method):
           stage/in-stage model is the same overhead without a second run's noise
  prep     building the preprocessed batches (image decoding + transforms, tokenisation)
  rerun    the stage function again on the same items: wall time and the number of
           torch.nn.Module forward calls (any module, counted by a global pre-hook)
A warm-up on other items runs first (one batch for the small models, one item once per
process for the big ones). Rates use the best of REPEATS runs. The default run takes ~8-10 min
on 2 cores (+ ~3 min to build the big models the first time). Nothing is asserted; the targets
are stage / forward <= 1.5 and, on a re-run, 0 forward calls and < 5 % of the first run's time.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODELS_DIR = Path(tempfile.gettempdir()) / "smpp-encoder-bench-models"
STAGES = ("caption", "text", "image", "joint")
PROFILES = ("offline", "production")
# (items, batch sizes) per profile and stage: production items are capped so a stage stays ~1-2 min.
DEFAULT_PLAN: dict[str, dict[str, tuple[int, tuple[int, ...]]]] = {
    "offline": {
        "caption": (32, (1, 8, 32)),
        "text": (128, (1, 8, 32)),
        "image": (64, (1, 8, 32)),
        "joint": (64, (1, 8, 32)),
    },
    "production": {"caption": (2, (1, 2)), "text": (16, (1, 8)), "image": (4, (1, 4)), "joint": (2, (1, 2))},
}
WARMUP_MAX = {"offline": 32, "production": 1}
REPEATS = {"offline": 3, "production": 1}  # best of N for the cheap models: the CPU is shared

# Production-size configs (published configs of the real models; the weights are random).
XLMR_LARGE = dict(
    vocab_size=250_002,
    hidden_size=1024,
    num_hidden_layers=24,
    num_attention_heads=16,
    intermediate_size=4096,
    max_position_embeddings=8194,
    type_vocab_size=1,
    layer_norm_eps=1e-5,
)
VIT_LARGE = "vit_large_patch16_384"
BLIP_LARGE_TEXT = dict(
    vocab_size=30_524,
    hidden_size=768,
    encoder_hidden_size=1024,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    max_position_embeddings=512,
)
BLIP_LARGE_VISION = dict(
    hidden_size=1024,
    intermediate_size=4096,
    num_hidden_layers=24,
    num_attention_heads=16,
    image_size=384,
    patch_size=16,
    layer_norm_eps=1e-5,
)
BUILD_ORDER = ("text", "image", "joint", "caption")  # joint reuses the text dir
# What each loader imports: timed apart from the model load (a cold start pays both).
LIBRARIES = {
    "text-offline": "sentence_transformers",
    "text-production": "FlagEmbedding",
    "image": "timm",
    "joint": "FlagEmbedding.visual.modeling",
    "caption": "transformers.models.blip",
}


# ---------------------------------------------------------------- production-size models


def hub_cache(models_dir: Path) -> Path:
    return models_dir / "hf" / "hub"


def fake_snapshot(models_dir: Path, repo_id: str) -> Path:
    """A snapshot dir in Hugging Face cache layout, so hub_snapshot/hf_hub_download find it offline."""
    repo_dir = hub_cache(models_dir) / f"models--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(f"smpp-bench-random:{repo_id}".encode()).hexdigest()
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    return repo_dir / "snapshots" / commit


def tiny_dir(models_dir: Path) -> Path:
    return models_dir / "tiny-data" / "encoders"


def ensure_tiny(models_dir: Path) -> Path:
    from smpp.encoders import prepare_models
    from smpp.settings import Settings

    prepare_models(Settings(data_dir=models_dir / "tiny-data", model_profile="tiny"))
    return tiny_dir(models_dir)


def build_text(models_dir: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaModel

    from smpp.encoders.profiles import PRODUCTION_MODELS

    target = fake_snapshot(models_dir, PRODUCTION_MODELS["text"])
    target.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(ensure_tiny(models_dir) / "tiny" / "text"))
    tokenizer.save_pretrained(str(target))
    torch.manual_seed(0)
    config = XLMRobertaConfig(
        **XLMR_LARGE,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    XLMRobertaModel(config).save_pretrained(str(target))
    hidden = XLMR_LARGE["hidden_size"]
    torch.save(torch.nn.Linear(hidden, hidden).state_dict(), target / "colbert_linear.pt")
    torch.save(torch.nn.Linear(hidden, 1).state_dict(), target / "sparse_linear.pt")
    return target


def build_image(models_dir: Path) -> Path:
    import timm
    import torch
    from timm.models import save_for_hf

    from smpp.encoders.profiles import PRODUCTION_MODELS

    target = fake_snapshot(models_dir, PRODUCTION_MODELS["image"])
    torch.manual_seed(0)
    save_for_hf(timm.create_model(VIT_LARGE, pretrained=False), str(target), safe_serialization=True)
    return target


def build_joint(models_dir: Path) -> Path:
    import torch

    from smpp.encoders.joint import import_visualized_bge
    from smpp.encoders.profiles import PRODUCTION_MODELS, VISUALIZED_WEIGHTS

    visualized_bge = import_visualized_bge()

    class UnloadedVisualizedBGE(visualized_bge):  # type: ignore[misc, valid-type]
        # The constructor insists on loading weights; random ones are the point here.
        def load_model(self, model_weight: str) -> None:
            return None

    text_dir = fake_snapshot(models_dir, PRODUCTION_MODELS["joint_text"])
    target = fake_snapshot(models_dir, PRODUCTION_MODELS["joint"])
    target.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = UnloadedVisualizedBGE(model_name_bge="BAAI/bge-m3", model_weight="<random>", from_pretrained=str(text_dir))
    torch.save(model.state_dict(), target / VISUALIZED_WEIGHTS["bge-m3"])
    return target


def build_caption(models_dir: Path) -> Path:
    import torch
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipProcessor

    from smpp.encoders.profiles import PRODUCTION_MODELS

    target = fake_snapshot(models_dir, PRODUCTION_MODELS["caption"])
    processor = BlipProcessor.from_pretrained(str(ensure_tiny(models_dir) / "tiny" / "caption"))
    size = BLIP_LARGE_VISION["image_size"]
    processor.image_processor.size = {"height": size, "width": size}
    tokenizer = processor.tokenizer
    config = BlipConfig(
        text_config=dict(
            **BLIP_LARGE_TEXT,
            bos_token_id=tokenizer.bos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            sep_token_id=tokenizer.sep_token_id,
            eos_token_id=tokenizer.sep_token_id,
        ),
        vision_config=BLIP_LARGE_VISION,
        projection_dim=512,
    )
    torch.manual_seed(0)
    BlipForConditionalGeneration(config).save_pretrained(str(target))
    processor.save_pretrained(str(target))
    return target


BUILDERS: dict[str, Callable[[Path], Path]] = {
    "text": build_text,
    "image": build_image,
    "joint": build_joint,
    "caption": build_caption,
}


def build_stamp(models_dir: Path, role: str) -> Path:
    return models_dir / f".built-{role}"


def ensure_production_models(models_dir: Path, roles: Sequence[str], rebuild: bool) -> None:
    needed = set(roles) | ({"text"} if "joint" in roles else set())
    for role in (r for r in BUILD_ORDER if r in needed):
        stamp = build_stamp(models_dir, role)
        if stamp.is_file() and not rebuild:
            continue
        started = time.perf_counter()
        result = run_child(["--build", role, "--models-dir", str(models_dir)], models_dir)
        stamp.write_text(json.dumps(result))
        print(
            f"built production-size random {role} model in {time.perf_counter() - started:.0f} s "
            f"({result['size_gb']:.2f} GB, peak RSS {result['peak_rss_mb']:.0f} MB)",
            flush=True,
        )


def child_build(role: str, models_dir: Path) -> dict:
    target = ensure_tiny(models_dir) if role == "tiny" else BUILDERS[role](models_dir)
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    return {"path": str(target), "size_gb": size / 1e9}


# ---------------------------------------------------------------- synthetic inputs


def make_titles(count: int, seed: int = 7) -> list[str]:
    import random

    # The tiny tokenizers were trained on these words, so each is about one token, as common
    # words are under bge-m3's real 250k vocabulary: 12-28 words give ~16-32 tokens per title.
    from smpp.encoders.prepare import _WORDS

    rng = random.Random(seed)
    titles: dict[str, None] = {}
    while len(titles) < count:
        words = [rng.choice(_WORDS) for _ in range(rng.randint(12, 28))]
        titles[" ".join(words).capitalize() + rng.choice(["", "", "!", "?", " :)"])] = None
    return list(titles)


IMAGE_SHAPES = [
    (640, 480),
    (1024, 768),
    (768, 1024),
    (1024, 576),
    (800, 800),
    (320, 240),
    (1024, 1024),
    (500, 375),
    (960, 640),
]


def make_images(folder: Path, count: int, seed: int = 7) -> tuple[list[str], list[str]]:
    """Photo-like synthetic images (gradients, shapes, mild noise), mixed sizes and formats."""
    import numpy as np
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths, keys = [], []
    for index in range(count):
        width, height = IMAGE_SHAPES[index % len(IMAGE_SHAPES)]
        y, x = np.mgrid[0:height, 0:width]
        base = rng.uniform(0, 255, 3)
        slope = rng.uniform(-0.3, 0.3, (2, 3))
        pixels = base + x[..., None] * slope[0] + y[..., None] * slope[1] + rng.normal(0, 6, (height, width, 3))
        image = Image.fromarray(np.clip(pixels, 0, 255).astype("uint8"))
        draw = ImageDraw.Draw(image)
        for _ in range(12):
            x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
            box = [x0, y0, x0 + int(rng.integers(10, width // 2)), y0 + int(rng.integers(10, height // 2))]
            fill = tuple(int(v) for v in rng.integers(0, 255, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
        if index % 5 == 4:
            path = folder / f"img{index:04d}.png"
            image.save(path)
        else:
            path = folder / f"img{index:04d}.jpg"
            image.save(path, quality=90)
        paths.append(str(path))
        keys.append(hashlib.sha256(path.read_bytes()).hexdigest())
    return paths, keys


# ---------------------------------------------------------------- one measurement (child process)


def proc_status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so each batch size gets its own peak."""
    Path("/proc/self/clear_refs").write_text("5")


class ModuleForwardCounter:
    """Counts every torch.nn.Module forward call in the process while active."""

    def __init__(self) -> None:
        self.calls = 0
        self._handle: Any = None

    def __enter__(self) -> ModuleForwardCounter:
        from torch.nn.modules.module import register_module_forward_pre_hook

        def count(module: Any, args: Any) -> None:
            self.calls += 1

        self._handle = register_module_forward_pre_hook(count)
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()


def batches(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def stage_call(stage: str, settings: Any, titles: list[str], paths: list[str], keys: list[str]) -> Any:
    from smpp.encoders import caption_images, embed_image_text, embed_images, embed_texts

    if stage == "text":
        return embed_texts(settings, titles)
    if stage == "image":
        return embed_images(settings, paths, keys)
    if stage == "joint":
        return embed_image_text(settings, paths, titles, keys)
    return caption_images(settings, paths, keys)


def prepare_inputs(
    stage: str, encoder: Any, settings: Any, titles: list[str], paths: list[str], batch_size: int
) -> tuple[list[Any], dict]:
    """The stage's batches as ready model inputs (what the encoder builds before its model call)."""
    import torch

    from smpp.encoders.image import read_rgb
    from smpp.encoders.profiles import BGE_M3

    prepared: list[Any] = []
    info: dict = {}
    if stage == "text":
        token_counts = []
        for batch in batches(titles, batch_size):
            if encoder.spec.kind == BGE_M3:
                tokens = encoder.model.tokenizer(
                    list(batch), padding=True, truncation=True, max_length=512, return_tensors="pt"
                )
            else:
                tokens = encoder.model.tokenize(list(batch))
            token_counts.extend(tokens["attention_mask"].sum(dim=1).tolist())
            prepared.append(tokens)
        info["tokens_per_title"] = sum(token_counts) / len(token_counts)
    elif stage == "image":
        for batch in batches(paths, batch_size):
            prepared.append(torch.stack([encoder.transform(read_rgb(path)) for path in batch]))
        info["input_shape"] = list(prepared[0].shape[1:])
    elif stage == "joint":
        for batch in batches(list(zip(paths, titles)), batch_size):
            images = torch.stack([encoder.model.preprocess_val(read_rgb(path)) for path, _ in batch])
            tokens = encoder.model.tokenizer(
                [text for _, text in batch],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=encoder.max_text_tokens,
            )
            prepared.append((images, tokens))
        info["input_shape"] = list(prepared[0][0].shape[1:])
    else:
        prompt = settings.encoders.caption_prompt
        for batch in batches(paths, batch_size):
            images = [read_rgb(path) for path in batch]
            prepared.append(encoder.processor(images=images, text=[prompt] * len(images), return_tensors="pt"))
        info["input_shape"] = list(prepared[0]["pixel_values"].shape[1:])
    return prepared, info


def model_entry(stage: str, encoder: Any) -> tuple[Any, str]:
    """The object and method in which the encoder's forward runs its model."""
    from smpp.encoders.profiles import BGE_M3

    if stage == "text" and encoder.spec.kind == BGE_M3:
        return encoder.model.model, "forward"
    if stage in ("text", "image"):
        return encoder.model, "forward"
    return encoder.model, "encode_mm" if stage == "joint" else "generate"


@contextlib.contextmanager
def timed_method(owner: Any, name: str) -> Iterator[list[float]]:
    """[seconds, calls] spent in owner.name (patched on the instance) while active."""
    spent = [0.0, 0]
    own = name in vars(owner)
    original = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started
            spent[1] += 1

    setattr(owner, name, timed)
    try:
        yield spent
    finally:
        if own:
            setattr(owner, name, original)
        else:
            delattr(owner, name)


def pure_forward(stage: str, encoder: Any, settings: Any, prepared: list[Any]) -> dict:
    import torch

    from smpp.encoders.profiles import BGE_M3

    generated = 0
    with torch.inference_mode():
        for inputs in prepared:
            if stage == "text" and encoder.spec.kind == BGE_M3:
                encoder.model.model(
                    inputs, return_dense=True, return_sparse=settings.encoders.text_sparse, return_colbert_vecs=False
                )
            elif stage == "text":
                encoder.model(inputs)
            elif stage == "image":
                encoder.model(inputs)
            elif stage == "joint":
                encoder.model.encode_mm(*inputs)
            else:
                tokens = encoder.model.generate(
                    **inputs, max_new_tokens=settings.encoders.caption_max_new_tokens, do_sample=False, num_beams=1
                )
                generated += (tokens.shape[1] - inputs["input_ids"].shape[1]) * tokens.shape[0]
    return {"generated_tokens": generated} if stage == "caption" else {}


def child_measure(
    stage: str,
    profile: str,
    batch_sizes: list[int],
    items: int,
    models_dir: Path,
    work: Path,
    use_cprofile: bool,
    text_sparse: bool,
) -> list[dict]:
    """Load the stage's model once, then measure each batch size (its own data dirs and peak RSS)."""
    import importlib

    started = time.perf_counter()
    import torch

    from smpp.encoders.api import get_encoder
    from smpp.encoders.profiles import BGE_M3
    from smpp.settings import EncoderSettings, Settings

    importlib.import_module(LIBRARIES[stage if stage != "text" else f"text-{profile}"])
    import_s = time.perf_counter() - started
    titles = json.loads((work / "titles.json").read_text())
    image_index = json.loads((work / "images.json").read_text())
    paths, keys = image_index["paths"], image_index["keys"]

    def fresh_settings(batch_size: int, name: str) -> Settings:
        data_dir = work / "runs" / f"{stage}-{profile}-b{batch_size}-{name}"
        data_dir.mkdir(parents=True)
        if profile == "offline":  # share the tiny models, as the tests do
            (data_dir / "encoders").symlink_to(tiny_dir(models_dir), target_is_directory=True)
        return Settings(
            data_dir=data_dir,
            model_profile=profile,
            encoders=EncoderSettings(batch_size=batch_size, device="cpu", text_sparse=text_sparse),
        )

    started = time.perf_counter()
    encoder = get_encoder(fresh_settings(batch_sizes[0], "load"), stage)
    load_s = time.perf_counter() - started
    module = encoder.model.model if encoder.spec.kind == BGE_M3 else encoder.model  # BGEM3FlagModel wraps it
    label = f"{stage} +sparse" if stage == "text" and text_sparse else stage
    common = {
        "stage": label,
        "profile": profile,
        "items": items,
        "threads": torch.get_num_threads(),
        "import_s": import_s,
        "load_s": load_s,
        "rss_after_load_mb": proc_status_mb("VmRSS"),
        "peak_load_mb": proc_status_mb("VmHWM"),
        "model_id": encoder.spec.model_id,
        "params_m": sum(p.numel() for p in module.parameters()) / 1e6,
    }
    return [
        measure_batch_size(
            stage,
            profile,
            batch_size,
            items,
            encoder,
            fresh_settings,
            titles,
            paths,
            keys,
            use_cprofile,
            common,
            warm_up=profile == "offline" or index == 0,
        )
        for index, batch_size in enumerate(batch_sizes)
    ]


def measure_batch_size(
    stage: str,
    profile: str,
    batch_size: int,
    items: int,
    encoder: Any,
    fresh_settings: Callable[[int, str], Any],
    titles: list[str],
    paths: list[str],
    keys: list[str],
    use_cprofile: bool,
    common: dict,
    warm_up: bool,
) -> dict:
    reset_peak_rss()
    result = {**common, "batch_size": batch_size, "loadavg_1m": os.getloadavg()[0]}
    # Every run gets a fresh data dir (empty cache); the warm-up uses other items, so first-call
    # costs (weights paged in from the mmapped files, lazy init, oneDNN kernels) stay out of the
    # timed runs. The big models warm up once per process: an item costs them seconds.
    warmup = min(batch_size, WARMUP_MAX[profile]) if warm_up else 0
    measured = (titles[:items], paths[:items], keys[:items])
    warm = (titles[items : items + warmup], paths[items : items + warmup], keys[items : items + warmup])

    started = time.perf_counter()
    if warmup:
        stage_call(stage, fresh_settings(batch_size, "warmup"), *warm)
    result["warmup_s"] = time.perf_counter() - started

    # Stage and bare forward run back to back in each repeat, so a pair shares the CPU's
    # contention; the ratio is the median of the pairs, the rates use the best times.
    stage_times, in_model_times, prep_times, forward_times = [], [], [], []
    for repeat in range(REPEATS[profile]):
        settings = fresh_settings(batch_size, f"r{repeat}")
        profiler = None
        if use_cprofile and repeat == 0:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        with timed_method(*model_entry(stage, encoder)) as in_model:
            started = time.perf_counter()
            first = stage_call(stage, settings, *measured)
            stage_times.append(time.perf_counter() - started)
        in_model_times.append(in_model[0])
        result["model_calls_per_batch"] = in_model[1] / len(batches(measured[0], batch_size))
        if profiler is not None:
            import io
            import pstats

            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(35)
            result["cprofile"] = out.getvalue()
        started = time.perf_counter()
        prepared, info = prepare_inputs(stage, encoder, settings, measured[0], measured[1], batch_size)
        prep_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        info.update(pure_forward(stage, encoder, settings, prepared))
        forward_times.append(time.perf_counter() - started)
    ratios = sorted(st / fw for st, fw in zip(stage_times, forward_times))
    in_model_ratios = sorted(st / inside for st, inside in zip(stage_times, in_model_times))
    result.update(
        info,
        stage_s=min(stage_times),
        prep_s=min(prep_times),
        forward_s=min(forward_times),
        ratio=ratios[len(ratios) // 2],
        in_model_ratio=in_model_ratios[len(in_model_ratios) // 2],
        first_cache_misses=first.cache_misses,
    )

    encoder_calls = 0
    original_forward = encoder.forward

    def counted_forward(*args: Any, **kwargs: Any) -> Any:
        nonlocal encoder_calls
        encoder_calls += 1
        return original_forward(*args, **kwargs)

    encoder.forward = counted_forward
    try:
        with ModuleForwardCounter() as counter:
            started = time.perf_counter()
            again = stage_call(stage, settings, *measured)
            result["rerun_s"] = time.perf_counter() - started
    finally:
        encoder.forward = original_forward
    result.update(
        rerun_module_forwards=counter.calls,
        rerun_encoder_calls=encoder_calls,
        rerun_cache_hits=again.cache_hits,
        peak_rss_mb=proc_status_mb("VmHWM"),
    )
    return result


# ---------------------------------------------------------------- parent


def child_env(models_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(models_dir / "hf"),
        "HF_HUB_CACHE": str(hub_cache(models_dir)),
        "TOKENIZERS_PARALLELISM": "false",
    }


def run_child(args: list[str], models_dir: Path) -> Any:
    done = subprocess.run(
        [sys.executable, __file__, *args], env=child_env(models_dir), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def format_row(r: dict) -> str:
    cells = [
        r["stage"],
        r["profile"],
        r["batch_size"],
        r["items"],
        f"{r['import_s']:.1f} + {r['load_s']:.1f}",
        f"{r['items'] / r['stage_s']:.2f}",
        f"{r['items'] / r['forward_s']:.2f}",
        f"{r['ratio']:.2f}x",
        f"{r['in_model_ratio']:.2f}x",
        r["rerun_module_forwards"],
        f"{r['rerun_s'] * 1000:.0f} ms ({100 * r['rerun_s'] / r['stage_s']:.1f} %)",
        f"{r['peak_load_mb']:.0f} / {r['rss_after_load_mb']:.0f}",
        f"{r['peak_rss_mb']:.0f}",
        f"{r['loadavg_1m']:.1f}",
    ]
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


COLUMNS = [
    "stage",
    "profile",
    "batch",
    "items",
    "import + load s",
    "stage items/s",
    "forward items/s",
    "stage/forward",
    "stage/in-stage model",
    "re-run forwards",
    "re-run time (of 1st)",
    "load: peak / after MB",
    "run peak RSS MB",
    "load avg",
]
HEADER = "| " + " | ".join(COLUMNS) + " |\n" + "|---" * len(COLUMNS) + "|"


def parse_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", default=",".join(STAGES), help="comma list of caption,text,image,joint")
    parser.add_argument("--profiles", default=",".join(PROFILES), help="comma list of offline,production")
    parser.add_argument("--batch-sizes", default=None, help="comma list; default: per profile (see DEFAULT_PLAN)")
    parser.add_argument("--items", type=int, default=None, help="items per measurement; default: per stage")
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=DEFAULT_MODELS_DIR,
        help="tiny models + the fake HF cache of production-size random models (kept)",
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild the production-size random models")
    parser.add_argument("--build-only", action="store_true", help="build the models, measure nothing")
    parser.add_argument(
        "--text-sparse",
        action="store_true",
        help="text stage with settings.encoders.text_sparse (bge-m3 lexical weights too)",
    )
    parser.add_argument("--cprofile", action="store_true", help="print a cProfile of each first stage run")
    parser.add_argument("--json", type=Path, default=None, help="also write every result here")
    parser.add_argument("--build", choices=[*STAGES, "tiny"], help=argparse.SUPPRESS)
    parser.add_argument("--measure", nargs=4, metavar=("STAGE", "PROFILE", "BATCHES", "ITEMS"), help=argparse.SUPPRESS)
    parser.add_argument("--work-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    models_dir = args.models_dir.resolve()

    if args.build:
        print(json.dumps({**child_build(args.build, models_dir), "peak_rss_mb": proc_status_mb("VmHWM")}))
        return
    if args.measure:
        stage, profile, sizes, items = args.measure
        print(
            json.dumps(
                child_measure(
                    stage,
                    profile,
                    [int(b) for b in parse_list(sizes)],
                    int(items),
                    models_dir,
                    args.work_dir,
                    args.cprofile,
                    args.text_sparse,
                )
            )
        )
        return

    stages, profiles = parse_list(args.stages), parse_list(args.profiles)
    unknown = sorted((set(stages) - set(STAGES)) | (set(profiles) - set(PROFILES)))
    if unknown or not stages or not profiles:
        parser.error(f"unknown or missing stages/profiles {unknown}; stages: {STAGES}, profiles: {PROFILES}")
    models_dir.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, models dir {models_dir}", flush=True)
    started = time.perf_counter()
    if not (tiny_dir(models_dir) / "tiny" / ".stamp").is_file():
        run_child(["--build", "tiny", "--models-dir", str(models_dir)], models_dir)
    if "production" in profiles:
        ensure_production_models(models_dir, stages, args.rebuild)
    if args.build_only:
        return

    plan = []
    for profile in profiles:
        for stage in stages:
            items, sizes = DEFAULT_PLAN[profile][stage]
            items = args.items or items
            sizes = tuple(int(b) for b in parse_list(args.batch_sizes)) if args.batch_sizes else sizes
            plan.append((stage, profile, sorted(sizes), items))
    max_items = max(items + min(max(sizes), WARMUP_MAX[profile]) for _, profile, sizes, items in plan)

    work = Path(tempfile.mkdtemp(prefix="smpp-encoder-bench-"))
    results = []
    try:
        (work / "titles.json").write_text(json.dumps(make_titles(max_items)))
        paths, keys = make_images(work / "images", max_items)
        (work / "images.json").write_text(json.dumps({"paths": paths, "keys": keys}))
        print(f"{max_items} synthetic titles and images ready; {len(plan)} model processes", flush=True)
        print(HEADER, flush=True)
        for stage, profile, sizes, items in plan:
            argv = (
                [
                    "--measure",
                    stage,
                    profile,
                    ",".join(map(str, sizes)),
                    str(items),
                    "--models-dir",
                    str(models_dir),
                    "--work-dir",
                    str(work),
                ]
                + (["--cprofile"] if args.cprofile else [])
                + (["--text-sparse"] if args.text_sparse else [])
            )
            for result in run_child(argv, models_dir):
                results.append(result)
                print(format_row(result), flush=True)
                if result.get("cprofile"):
                    print(result["cprofile"], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    for r in results:
        extra = {
            k: round(r[k], 3) if isinstance(r[k], float) else r[k]
            for k in (
                "params_m",
                "tokens_per_title",
                "input_shape",
                "generated_tokens",
                "prep_s",
                "warmup_s",
                "model_calls_per_batch",
            )
            if k in r
        }
        print(
            f"{r['stage']:7s} {r['profile']:10s} b={r['batch_size']:<3d} {r['model_id']}  {extra}  "
            f"re-run encoder calls {r['rerun_encoder_calls']}, "
            f"cache hits {r['rerun_cache_hits']}/{r['items']}"
        )
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    main()
