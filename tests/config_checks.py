"""The shared check of every method's training-config loader: a bad config names the file and the problem."""
from __future__ import annotations

import pytest

from faceanim.errors import InputError


def assert_bad_config_refused(load_train_config, tmp_path, text: str, problem: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=problem) as caught:
        load_train_config(path)
    assert str(path) in str(caught.value)
    with pytest.raises(InputError, match="config not found"):
        load_train_config("no-such-config")
