"""Image room: which URL to fetch, safe fetching into content-addressed storage, pixel features."""

from smpp.images.features import image_features, image_features_frame
from smpp.images.fetch import FAILURE_REASONS, FetchedImage, count_reasons, fetch_images
from smpp.images.gallery import add_image_urls, expand_gallery_requests, primary_images
from smpp.images.urls import post_image_urls, resolve_image_url

__all__ = [
    "FAILURE_REASONS",
    "FetchedImage",
    "add_image_urls",
    "count_reasons",
    "expand_gallery_requests",
    "fetch_images",
    "image_features",
    "image_features_frame",
    "post_image_urls",
    "primary_images",
    "resolve_image_url",
]
