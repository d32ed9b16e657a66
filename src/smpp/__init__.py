"""smpp: social media popularity prediction pipeline."""

__version__ = "0.1.0"
