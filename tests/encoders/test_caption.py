from __future__ import annotations

from smpp.encoders import caption_images


def test_captions_are_strings_and_cached(tiny_settings, make_images, count_forward):
    paths, keys = make_images(3)
    counter = count_forward(tiny_settings, "caption")

    first = caption_images(tiny_settings, paths, keys)
    assert len(first.captions) == 3 and all(isinstance(c, str) and c for c in first.captions)
    assert first.captions[0].startswith(tiny_settings.encoders.caption_prompt)  # BLIP continues the prompt
    assert (first.cache_hits, first.cache_misses, first.model_id) == (0, 3, "smpp/tiny-blip")
    calls = counter.calls

    second = caption_images(tiny_settings, paths, keys)
    assert counter.calls == calls and (second.cache_hits, second.cache_misses) == (3, 0)
    assert second.captions == first.captions


def test_generation_settings_are_part_of_the_cache_key(tiny_settings, make_images):
    paths, keys = make_images(1)
    caption_images(tiny_settings, paths, keys)
    longer = tiny_settings.with_overrides(encoders={**tiny_settings.encoders.model_dump(), "caption_max_new_tokens": 4})
    result = caption_images(longer, paths, keys)
    assert result.cache_misses == 1
    assert caption_images(tiny_settings, [], []).captions == []
