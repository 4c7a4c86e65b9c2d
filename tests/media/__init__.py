"""Tests of faceanim.media; `broken_inputs` is reused by the CLI tests."""
