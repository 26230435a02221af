"""`make demo`'s serve step (scripts/serve_demo.py): a real `wechat-avatar serve` child process on a
free loopback port, one OpenAI and one native request, then the server is stopped."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from wechat_avatar.workspace import Workspace

SCRIPT = Path(__file__).parent.parent / "scripts" / "serve_demo.py"


def test_the_demo_serves_both_apis_then_stops(tiny_workspace: Path, tiny_config: Path, tmp_path: Path) -> None:
    workspace = shutil.copytree(tiny_workspace, tmp_path / "workspace")
    done = subprocess.run([sys.executable, str(SCRIPT), "--workspace", str(workspace), "--config", str(tiny_config),
                           "--cli", f"{sys.executable} -m wechat_avatar"],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"/v1/chat/completions .*\n  -> (['\"]).+\1  \(usage \{'prompt_tokens': [1-9]", done.stdout)
    assert re.search(r"/v1/avatar/reply .*\n  -> bubbles \[(['\"]).+\1\]  \(usage", done.stdout)
    assert "wechat-avatar web --api http://127.0.0.1:8000" in done.stdout
    port = int(re.search(r"--port (\d+)", done.stdout).group(1))  # the port the server was started on
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the server is still listening"
    # the native request was remembered in the workspace, as serve always does
    assert Workspace(workspace).serve_state.is_file()


def test_a_server_that_cannot_start_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--workspace", str(tmp_path / "none"),
                           "--cli", f"{sys.executable} -m wechat_avatar"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode != 0
    assert "error: wechat-avatar serve exited with code" in done.stderr
    assert "Traceback" not in done.stderr
