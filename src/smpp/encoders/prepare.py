"""Build the tiny models locally and resolve every role's model for a profile.

No model hub is reachable, so the tiny profile (tests) and the offline profile (demo) use small
random-initialised models of the production architectures, built from configs with fixed seeds
and saved in the normal on-disk formats, so they load through the same code as real weights:
- text: XLM-RoBERTa dir (bge-m3 layout) with a locally trained SentencePiece tokenizer;
  hidden size stays 1024 because Visualized BGE hard-codes bge-m3's width.
- image: timm ViT saved in timm's hub format (config.json + model.safetensors).
- joint: Visualized BGE state dict (torch.save) over the tiny text dir and a 1-layer EVA02-CLIP
  tower whose config is saved beside the weights.
- caption: BLIP conditional-generation model + BlipProcessor with a tiny WordPiece vocab.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import random
import shutil
import string
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from smpp.encoders import profiles
from smpp.settings import Settings

log = logging.getLogger(__name__)

EVA_CONFIGS_DIR = Path(__file__).resolve().parent / "eva_clip_configs"
STAMP = ".stamp"

TINY_RECIPE: dict[str, object] = {
    "version": 1,
    "seed": 1234,
    "text": {
        "vocab_size": 1000,
        "hidden_size": 1024,
        "layers": 2,
        "heads": 16,
        "intermediate": 256,
        "max_positions": 514,
    },
    "image": {"architecture": "vit_tiny_patch16_224", "img_size": 64, "depth": 2},
    # Width and head width stay EVA02-CLIP-L-14's: Visualized BGE projects 1024 -> 1024.
    "joint": {"eva_base": "EVA02-CLIP-L-14", "layers": 1, "image_size": 56, "mlp_ratio": 0.5, "pt_hw_seq_len": 4},
    "caption": {
        "hidden_size": 32,
        "intermediate": 64,
        "layers": 2,
        "heads": 2,
        "image_size": 64,
        "patch_size": 16,
        "max_positions": 64,
    },
}

# Corpus words for the tiny tokenizers: common English plus words typical of image posts.
_WORDS = (
    "the a an of and to in is it you that he she was for on are with as his her they be at one have "
    "this from or had by hot word but what some we can out other were all there when up use your how "
    "said each which do their time if will way about many then them would like so these long make "
    "thing see him two has look more day could go come did number no most people my over know water "
    "than call first who may down side been now find any new work part take get place made live where "
    "after back little only round man woman year came show every good me give our under name very "
    "through just great think say help low line turn much before move right boy girl old too same tell "
    "does set three want air well also play small end put home read hand large even land here must big "
    "high such follow why ask men change went light kind off need house picture try again animal point "
    "mother world near build earth father cat dog photo photograph sunset mountain river city snow "
    "beach forest sky tree car red blue green sitting standing night lake bridge street food baby"
).split()


def _recipe_hash() -> str:
    return hashlib.sha256(json.dumps(TINY_RECIPE, sort_keys=True).encode()).hexdigest()[:16]


def _corpus(seed: int, count: int = 2000) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 14))) for _ in range(count)]


def _build_tiny_text(target: Path, seed: int) -> None:
    import sentencepiece as spm
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizer

    recipe = TINY_RECIPE["text"]
    target.mkdir(parents=True)
    buffer = io.BytesIO()
    # XLM-R's SentencePiece ids: <unk>=0, <s>=1, </s>=2; single thread keeps training deterministic.
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_corpus(seed)),
        model_writer=buffer,
        vocab_size=recipe["vocab_size"],
        hard_vocab_limit=False,
        model_type="unigram",
        character_coverage=1.0,
        num_threads=1,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
    )
    # transformers 5 ignores XLMRobertaTokenizer(vocab_file=...); from_pretrained(dir) reads it.
    (target / "sentencepiece.bpe.model").write_bytes(buffer.getvalue())
    tokenizer = XLMRobertaTokenizer.from_pretrained(str(target))
    tokenizer.save_pretrained(str(target))

    torch.manual_seed(seed)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=recipe["hidden_size"],
        num_hidden_layers=recipe["layers"],
        num_attention_heads=recipe["heads"],
        intermediate_size=recipe["intermediate"],
        max_position_embeddings=recipe["max_positions"],
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    XLMRobertaModel(config).save_pretrained(str(target))
    # bge-m3 ships its sparse/ColBERT heads beside the encoder; BGEM3FlagModel loads them.
    hidden = recipe["hidden_size"]
    torch.save(torch.nn.Linear(hidden, hidden).state_dict(), target / "colbert_linear.pt")
    torch.save(torch.nn.Linear(hidden, 1).state_dict(), target / "sparse_linear.pt")


def _build_tiny_image(target: Path, seed: int) -> None:
    import timm
    import torch
    from timm.models import save_for_hf

    recipe = TINY_RECIPE["image"]
    torch.manual_seed(seed)
    model = timm.create_model(
        recipe["architecture"],
        pretrained=False,
        num_classes=0,
        img_size=recipe["img_size"],
        depth=recipe["depth"],
    )
    save_for_hf(model, str(target), safe_serialization=True)


def tiny_eva_config() -> dict:
    recipe = TINY_RECIPE["joint"]
    config = json.loads((EVA_CONFIGS_DIR / f"{recipe['eva_base']}.json").read_text())
    config["vision_cfg"].update(
        layers=recipe["layers"],
        image_size=recipe["image_size"],
        mlp_ratio=recipe["mlp_ratio"],
        pt_hw_seq_len=recipe["pt_hw_seq_len"],
    )
    return config


def _build_tiny_joint(target: Path, text_dir: Path, seed: int) -> None:
    import torch

    from smpp.encoders.joint import eva_config_swapped, import_visualized_bge

    visualized_bge = import_visualized_bge()

    class UnloadedVisualizedBGE(visualized_bge):  # type: ignore[misc, valid-type]
        # The constructor insists on loading weights; building fresh ones is the point here.
        def load_model(self, model_weight: str) -> None:
            return None

    target.mkdir(parents=True)
    config = tiny_eva_config()
    (target / profiles.EVA_CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
    torch.manual_seed(seed)
    with eva_config_swapped(TINY_RECIPE["joint"]["eva_base"], config):
        model = UnloadedVisualizedBGE(
            model_name_bge="BAAI/bge-m3", model_weight="<built>", from_pretrained=str(text_dir)
        )
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    torch.save(state, target / profiles.TINY_JOINT_WEIGHTS)


def _build_tiny_caption(target: Path, seed: int) -> None:
    import torch
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    recipe = TINY_RECIPE["caption"]
    target.mkdir(parents=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pieces = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = list(dict.fromkeys(specials + _WORDS + pieces + [f"##{c}" for c in string.ascii_lowercase + string.digits]))
    (target / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # BLIP's captioner decodes from a [DEC] bos token added on top of the BERT vocab.
    tokenizer = BertTokenizer.from_pretrained(str(target), do_lower_case=True, model_max_length=recipe["max_positions"])
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    size = recipe["image_size"]
    processor = BlipProcessor(
        image_processor=BlipImageProcessor(size={"height": size, "width": size}), tokenizer=tokenizer
    )
    config = BlipConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=recipe["hidden_size"],
            intermediate_size=recipe["intermediate"],
            num_hidden_layers=recipe["layers"],
            num_attention_heads=recipe["heads"],
            max_position_embeddings=recipe["max_positions"],
            bos_token_id=tokenizer.bos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            sep_token_id=tokenizer.sep_token_id,
            eos_token_id=tokenizer.sep_token_id,
        ),
        vision_config=dict(
            hidden_size=recipe["hidden_size"],
            intermediate_size=recipe["intermediate"],
            num_hidden_layers=recipe["layers"],
            num_attention_heads=recipe["heads"],
            image_size=size,
            patch_size=recipe["patch_size"],
        ),
        projection_dim=recipe["hidden_size"],
    )
    torch.manual_seed(seed)
    BlipForConditionalGeneration(config).save_pretrained(str(target))
    processor.save_pretrained(str(target))


def build_tiny_models(root: Path) -> None:
    """Build all tiny models into root (replacing what is there)."""
    seed = int(TINY_RECIPE["seed"])
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{root.name}-", dir=root.parent) as tmp:
        staged = Path(tmp) / root.name
        staged.mkdir()
        _build_tiny_text(staged / profiles.TINY_DIRS["text"], seed)
        _build_tiny_image(staged / profiles.TINY_DIRS["image"], seed)
        _build_tiny_joint(staged / profiles.TINY_DIRS["joint"], staged / profiles.TINY_DIRS["text"], seed)
        _build_tiny_caption(staged / profiles.TINY_DIRS["caption"], seed)
        (staged / STAMP).write_text(_recipe_hash() + "\n")
        if root.exists():
            shutil.rmtree(root)
        staged.rename(root)


def tiny_models_ready(root: Path) -> bool:
    stamp = root / STAMP
    return stamp.is_file() and stamp.read_text().strip() == _recipe_hash()


@contextlib.contextmanager
def _build_lock(root: Path) -> Iterator[None]:
    # Embedding tasks run in parallel processes; only one of them builds.
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def ensure_tiny_models(settings: Settings) -> Path:
    root = profiles.tiny_root(settings)
    if tiny_models_ready(root):
        return root
    with _build_lock(root):
        if not tiny_models_ready(root):
            log.info("building tiny encoder models in %s", root)
            build_tiny_models(root)
    return root


def needs_tiny_models(settings: Settings, roles: Sequence[str] = profiles.ROLES) -> bool:
    """Whether any of these roles resolves to a tiny model (profile default, no override)."""
    enc = settings.encoders
    for role in roles:
        if not profiles.uses_tiny(settings, role):
            continue
        overrides = [enc.joint_model, enc.joint_text_model] if role == "joint" else [getattr(enc, f"{role}_model")]
        if not all(overrides):
            return True
    return False


def prepare_models(settings: Settings) -> dict[str, str]:
    """Build what the profile needs locally; return role -> resolved model path (or id)."""
    if needs_tiny_models(settings):
        ensure_tiny_models(settings)
    resolved: dict[str, str] = {}
    missing: list[str] = []
    for role in profiles.ROLES:
        try:
            spec = profiles.resolve_spec(settings, role)
        except profiles.ModelNotAvailableError as err:
            missing.append(str(err))
            continue
        resolved[role] = str(spec.path) if spec.path is not None else spec.model_id
        if spec.text_path is not None:
            resolved[f"{role}_text"] = str(spec.text_path)
    if missing:
        raise profiles.ModelNotAvailableError(
            f"profile '{settings.model_profile}' is missing {len(missing)} model(s):\n" + "\n".join(missing)
        )
    return resolved
