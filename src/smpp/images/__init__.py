"""Image room: which URL to fetch, safe fetching into content-addressed storage, pixel features."""

from smpp.images.features import image_features, image_features_frame
from smpp.images.fetch import FAILURE_REASONS, FetchedImage, count_reasons, fetch_images
from smpp.images.urls import resolve_image_url

__all__ = [
    "FAILURE_REASONS",
    "FetchedImage",
    "count_reasons",
    "fetch_images",
    "image_features",
    "image_features_frame",
    "resolve_image_url",
]
