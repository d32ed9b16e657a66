"""Install the Visualized BGE code (FlagEmbedding.visual) into this venv.

Why this packaging exists:
- Visualized BGE (`FlagEmbedding.visual.modeling.Visualized_BGE`) ships only in flagembedding
  1.2.8-1.2.11. flagembedding 1.3+/1.4 dropped it, and 1.2.11 as a whole cannot import
  `BGEM3FlagModel` under transformers 5 (its BGE_M3 trainer relied on
  `from transformers.trainer import *`). So the venv keeps flagembedding 1.4.2 (pinned in
  requirements.lock, for bge-m3) and this script adds only the `visual` subpackage of the
  pinned 1.2.11 sdist (sha256 checked) into the installed `FlagEmbedding/visual/`.
- The 1.2.11 sdist lacks two data pieces that the code loads at run time:
  `eva_clip/bpe_simple_vocab_16e6.txt.gz` (byte-identical copy ships in open_clip_torch) and
  the EVA-CLIP model config JSONs (EVA02-CLIP-L-14 pairs with bge-m3, EVA02-CLIP-B-16 with
  bge-base-en-v1.5); those are kept in the repo under src/smpp/encoders/eva_clip_configs/ and
  copied to `eva_clip/model_configs/`, where the eva_clip factory scans.
- No source file is patched: the transformers-5 attention-mask dtype problem is fixed at run
  time in smpp.encoders.joint.

Idempotent: a marker in the installed folder records the hash of everything installed; a
second run with the same inputs does nothing. `make venv` runs it once per venv/script hash.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

SDIST_VERSION = "1.2.11"
SDIST_NAME = f"FlagEmbedding-{SDIST_VERSION}.tar.gz"
SDIST_SHA256 = "12c55eb535e9325c3efa539af4aa39c6f4e4e1b6441db7778d42ad0612906501"
SUBPACKAGE_PREFIX = f"FlagEmbedding-{SDIST_VERSION}/FlagEmbedding/visual/"
BPE_VOCAB = "bpe_simple_vocab_16e6.txt.gz"
MARKER = ".smpp_visual_install"
REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIGS_DIR = REPO_ROOT / "src" / "smpp" / "encoders" / "eva_clip_configs"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise SystemExit(f"package {name!r} is not installed in {sys.executable}; run `make venv`")
    return Path(spec.origin).parent


def fetch_sdist(cache_dir: Path) -> Path:
    sdist = cache_dir / SDIST_NAME
    if sdist.is_file() and sha256_file(sdist) == SDIST_SHA256:
        return sdist
    cache_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--disable-pip-version-check",
            "-q",
            f"flagembedding=={SDIST_VERSION}",
            "-d",
            str(cache_dir),
        ],
        check=True,
    )
    if not sdist.is_file():
        raise SystemExit(f"pip download did not produce {sdist}")
    actual = sha256_file(sdist)
    if actual != SDIST_SHA256:
        sdist.unlink()
        raise SystemExit(f"{SDIST_NAME}: sha256 {actual} != pinned {SDIST_SHA256}")
    return sdist


def extract_visual(sdist: Path, dest: Path) -> None:
    with tarfile.open(sdist, "r:gz") as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(SUBPACKAGE_PREFIX) and m.isfile()]
        if not members:
            raise SystemExit(f"{SDIST_NAME} has no {SUBPACKAGE_PREFIX}")
        for member in members:
            target = dest / member.name[len(SUBPACKAGE_PREFIX) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None
            target.write_bytes(source.read())


def install_fingerprint(bpe_vocab: Path, configs: list[Path]) -> str:
    digest = hashlib.sha256(SDIST_SHA256.encode())
    digest.update(sha256_file(Path(__file__)).encode())
    digest.update(sha256_file(bpe_vocab).encode())
    for config in configs:
        digest.update(config.name.encode())
        digest.update(sha256_file(config).encode())
    return digest.hexdigest()


def verify_import() -> None:
    # A fresh interpreter, so a half-installed tree cannot hide behind cached modules.
    code = (
        "from FlagEmbedding.visual.modeling import Visualized_BGE\n"
        "from FlagEmbedding.visual.eva_clip.factory import list_models\n"
        "missing = {'EVA02-CLIP-L-14', 'EVA02-CLIP-B-16'} - set(list_models())\n"
        "assert not missing, f'EVA-CLIP configs not registered: {missing}'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def main() -> int:
    flag_dir = package_dir("FlagEmbedding")
    bpe_vocab = package_dir("open_clip") / BPE_VOCAB
    configs = sorted(CONFIGS_DIR.glob("*.json"))
    if not bpe_vocab.is_file():
        raise SystemExit(f"open_clip does not ship {BPE_VOCAB} at {bpe_vocab}")
    if not configs:
        raise SystemExit(f"no EVA-CLIP configs in {CONFIGS_DIR}")

    visual_dir = flag_dir / "visual"
    fingerprint = install_fingerprint(bpe_vocab, configs)
    marker = visual_dir / MARKER
    if marker.is_file() and marker.read_text().strip() == fingerprint:
        print(f"Visualized BGE already installed in {visual_dir}")
        return 0

    cache_root = Path(os.environ.get("SMPP_CACHE_DIR", Path.home() / ".cache" / "smpp"))
    sdist = fetch_sdist(cache_root / "sdists")
    # Build the whole tree beside the target, then swap it in, so a failure leaves no half tree.
    with tempfile.TemporaryDirectory(prefix=".visual-", dir=flag_dir) as tmp:
        staged = Path(tmp) / "visual"
        extract_visual(sdist, staged)
        shutil.copyfile(bpe_vocab, staged / "eva_clip" / BPE_VOCAB)
        model_configs = staged / "eva_clip" / "model_configs"
        model_configs.mkdir(parents=True, exist_ok=True)
        for config in configs:
            shutil.copyfile(config, model_configs / config.name)
        if visual_dir.exists():
            shutil.rmtree(visual_dir)
        staged.rename(visual_dir)
    verify_import()
    marker.write_text(fingerprint + "\n")  # only after the import check passed
    print(f"Installed Visualized BGE (flagembedding {SDIST_VERSION} visual/) into {visual_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
