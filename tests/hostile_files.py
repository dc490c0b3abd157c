"""Files an attacker would drop or plant: pickles that run a shell command, modules whose import is visible."""

import os
import pickle
import sys
from contextlib import contextmanager
from pathlib import Path


class ShellPayload:
    """Unpickling this calls os.system(command) (pickled as posix.system on Linux)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def shell_pickle(marker: Path) -> bytes:
    """The issue's file: a pickle whose __reduce__ calls os.system to create `marker`."""
    return pickle.dumps(ShellPayload(f"touch {marker}"), protocol=2)


@contextmanager
def importable_probe(folder: Path, name: str, body: str = ""):
    """Module `name` importable from `folder` whose import creates the yielded marker file; forgotten on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f"{name}.imported"
    (folder / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').close()\n{body}")
    sys.path.insert(0, str(folder))
    sys.modules.pop(name, None)
    try:
        yield marker
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop(name, None)  # a test that imported it on purpose leaves no trace for the next
