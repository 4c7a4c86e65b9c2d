"""The broken-input battery: every reader fails with a one-line InputError naming the file."""
from __future__ import annotations

import pytest

from faceanim.errors import InputError
from faceanim.media import VideoReader, probe, read_audio, read_image

from .broken_inputs import BrokenInput, make_broken_inputs


@pytest.fixture(scope="module")
def broken_inputs(tmp_path_factory) -> list[BrokenInput]:
    return make_broken_inputs(tmp_path_factory.mktemp("broken"))


def read_with_matching_reader(item: BrokenInput) -> None:
    if item.kind == "image":
        read_image(item.path)
    elif item.kind == "audio":
        read_audio(item.path)
    else:
        with VideoReader(item.path) as reader:
            for _ in reader:
                pass


def assert_one_line_input_error(item: BrokenInput, action) -> None:
    try:
        action()
    except InputError as error:
        message = str(error)
        assert "\n" not in message, f"{item.name}: multi-line message {message!r}"
        assert item.path.name in message, f"{item.name}: message does not name the file: {message!r}"
        assert len(message.split(": ", 1)[1]) > 5, f"{item.name}: no problem stated: {message!r}"
    except Exception as error:  # noqa: BLE001 - the point is that nothing else escapes
        pytest.fail(f"{item.name} ({item.kind}): {type(error).__name__} escaped: {error}")
    else:
        pytest.fail(f"{item.name} ({item.kind}): no error raised")


def test_the_battery_is_big_and_varied(broken_inputs):
    assert len(broken_inputs) >= 30
    assert {item.kind for item in broken_inputs} == {"image", "video", "audio"}
    assert len({item.name for item in broken_inputs}) == len(broken_inputs)
    assert all(item.path.stat().st_size < 200_000 for item in broken_inputs if item.path.is_file())


def test_the_battery_is_deterministic(broken_inputs, tmp_path):
    again = make_broken_inputs(tmp_path)
    for first, second in zip(broken_inputs, again, strict=True):
        assert first.name == second.name
        if first.path.is_file():
            assert first.path.read_bytes() == second.path.read_bytes(), first.name


def test_every_broken_input_is_refused_by_its_reader(broken_inputs):
    for item in broken_inputs:
        assert_one_line_input_error(item, lambda: read_with_matching_reader(item))


def test_every_broken_input_is_refused_by_probe(broken_inputs):
    for item in broken_inputs:
        if item.probe_detects:
            assert_one_line_input_error(item, lambda: probe(item.path, expect=item.kind))
