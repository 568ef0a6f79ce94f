"""engine.text: the wording the CLI's and the app's messages share."""
from engine.text import plural


def test_plural_is_singular_for_exactly_one():
    assert [plural(n, "step") for n in (0, 1, 2, 1000)] == ["0 steps", "1 step", "2 steps", "1000 steps"]
