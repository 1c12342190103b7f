"""The README's "Testing your code" example, run as a user runs it: a pytest file of its own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_example() -> str:
    """The first Python block of the README's "Testing your code" section, as written."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Testing your code") :]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found is not None, "no Python example under 'Testing your code'"
    return found.group(1)


def test_the_readmes_testing_example_runs_as_written(tmp_path: Path) -> None:
    example = tmp_path / "test_my_service.py"
    example.write_text(readme_example(), encoding="utf-8")
    # A directory of its own: none of this project's pytest settings or conftest apply,
    # only warnings are made errors, as a careful user's suite would.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OGPU_", "PYTEST_"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", example.name],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b2 passed\b", result.stdout), result.stdout
