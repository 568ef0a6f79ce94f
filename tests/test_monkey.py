"""The monkey test (app.monkey: random clicks, keys, typing, menus, tabs, resizes, strokes and dialogs
answered at random on the real window, with training going on) for one fixed seed. The bugs it found
have tests of their own beside their views' (test_views, test_numeric_fields)."""
import json

from app.monkey import Monkey

SEED = 7
ACTIONS = 150  # 10-15 s here


def test_random_user_actions_break_nothing(make_window, tmp_path):
    """Any exception in a slot, Qt or Python warning, Start / Pause / Stop state that disagrees with the
    run, dialog left open or training thread left running fails it (the failure lists the actions
    before it)."""
    window = make_window(ask_before_discarding=True)  # the unsaved-work question: one more dialog to answer
    window.action_ask_discard.setChecked(True)
    folder = tmp_path / "files"  # where the file dialogs answer (apart from the settings file)
    folder.mkdir()
    monkey = Monkey(window, SEED, str(folder))
    failures = monkey.run(ACTIONS)
    assert not failures, json.dumps(failures, indent=1)
    assert len(monkey.history) == ACTIONS
