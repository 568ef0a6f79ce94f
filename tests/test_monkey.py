"""The monkey test (app.monkey: random clicks, keys, typing, menus, tabs, resizes, strokes and dialogs
answered at random on the real window, with training going on) for one fixed seed. The bugs it found
have tests of their own beside their views' (test_views, test_numeric_fields)."""
import json

from app.monkey import Monkey

SEED = 7
ACTIONS = 150  # 10-15 s here; it starts a run about action 22 and plots some of its steps


def test_random_user_actions_break_nothing(make_window, tmp_path):
    """Any exception in a slot, Qt or Python warning, Start / Pause / Stop state that disagrees with the
    run, dialog left open, training thread left running, or training steps that stop reaching the window
    fails it (the failure lists the actions before it)."""
    window = make_window(ask_before_discarding=True)  # the unsaved-work question: one more dialog to answer
    window.action_ask_discard.setChecked(True)
    folder = tmp_path / "files"  # where the file dialogs answer (apart from the settings file)
    folder.mkdir()
    monkey = Monkey(window, SEED, str(folder))
    failures = monkey.run(ACTIONS)
    assert not failures, json.dumps(failures, indent=1)
    assert len(monkey.history) == ACTIONS
    # what the liveness check had to check: a run, and steps of it plotted
    assert monkey.runs_seen >= 1 and monkey.steps_plotted >= 1, (monkey.runs_seen, monkey.steps_plotted)
