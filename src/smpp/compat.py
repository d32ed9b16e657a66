"""Import-order workarounds for libraries that share native code."""

from __future__ import annotations

from types import ModuleType


def import_tensorflow() -> ModuleType:
    """Import TensorFlow safely in a process that may also use torch.

    TF 2.21 and torchvision 0.29 both bundle LLVM; importing TF first makes a later
    torchvision import abort the process ("Option ... registered more than once"),
    while the other order works. So torchvision always goes first.
    """
    try:
        import torchvision  # noqa: F401
    except ImportError:  # a TF-only environment is fine
        pass
    import tensorflow as tf

    return tf
