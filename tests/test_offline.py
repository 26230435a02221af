""""Nothing leaves your machine": `make demo`'s stages under a guard that refuses the network.

Every child process gets `sitecustomize.py` (below) on its PYTHONPATH, so Python imports it before
anything else, in the CLI and in every worker it starts. It wraps the socket calls that reach
another machine (`socket.socket.connect`/`connect_ex`/`sendto`, `socket.getaddrinfo`,
`gethostbyname`, and so `create_connection` and every HTTP client built on them): a non-loopback
host is refused and written to a log. The hub's offline switches are removed from the children's
environment, so what is proved is that our code makes no attempt, not that a setting stopped it.
Native code that opens its own sockets would not be seen by the guard, so where user namespaces
work (`unshare -rn`) the demo stages also run in a network namespace of their own, which has no
route out at all (not even loopback is up): such an attempt could not leave either.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import TINY_YAML

GUARD = '''\
"""Test network guard (tests/test_offline.py): refuse and record every non-loopback connection."""
import errno, ipaddress, json, os, socket

_LOG, _ARMED = os.environ["NETGUARD_LOG"], os.environ["NETGUARD_ARMED"]


def _local(host):
    if host is None or isinstance(host, int):  # a passive lookup, or an AF_UNIX/socketpair detail
        return True
    host = host.decode() if isinstance(host, bytes) else str(host)
    if host.lower() in ("localhost", "localhost.localdomain", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:  # a name: resolving it would already ask a DNS server
        return False


def _refuse(call, host, port):
    with open(_LOG, "a", encoding="utf-8") as log:
        log.write(json.dumps({"call": call, "host": str(host), "port": str(port), "pid": os.getpid()}) + "\\n")
    raise OSError(errno.ENETUNREACH, f"network guard: {call} to {host}:{port} refused")


def _guard_address(call, sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        if not _local(address[0]):
            _refuse(call, address[0], address[1])


_connect, _connect_ex, _sendto = socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto
_getaddrinfo, _gethostbyname = socket.getaddrinfo, socket.gethostbyname


def connect(self, address):
    _guard_address("connect", self, address)
    return _connect(self, address)


def connect_ex(self, address):
    _guard_address("connect_ex", self, address)
    return _connect_ex(self, address)


def sendto(self, data, *args):
    _guard_address("sendto", self, args[-1])
    return _sendto(self, data, *args)


def getaddrinfo(host, port, *args, **kwargs):
    if not _local(host):
        _refuse("getaddrinfo", host, port)
    return _getaddrinfo(host, port, *args, **kwargs)


def gethostbyname(host):
    if not _local(host):
        _refuse("gethostbyname", host, None)
    return _gethostbyname(host)


socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto = connect, connect_ex, sendto
socket.getaddrinfo, socket.gethostbyname = getaddrinfo, gethostbyname
with open(_ARMED, "a", encoding="utf-8") as armed:
    armed.write(f"{os.getpid()}\\n")
'''


def _unshare_works() -> bool:
    """A new user and network namespace can be made here (not in every container)."""
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0


class Guarded:
    """Runs commands in child processes under the guard; `attempts` is what it refused."""

    def __init__(self, root: Path, netns: bool = False) -> None:
        guard = root / "guard"
        guard.mkdir()
        (guard / "sitecustomize.py").write_text(GUARD, encoding="utf-8")
        self.log, self.armed = root / "attempts.jsonl", root / "armed.txt"
        env = {k: v for k, v in os.environ.items() if "OFFLINE" not in k and not k.endswith("_PROXY")}
        env.pop("WECHAT_AVATAR_DEBUG", None)
        path = os.pathsep.join(p for p in (str(guard), env.get("PYTHONPATH")) if p)
        # an empty hub cache, as on a new user's machine: nothing cached to hide a lookup behind
        self.env = {**env, "PYTHONPATH": path, "NETGUARD_LOG": str(self.log), "NETGUARD_ARMED": str(self.armed),
                    "HF_HOME": str(root / "hf-home"), "WECHAT_AVATAR_CACHE": str(root / "cache"),
                    "COLUMNS": "200", "NO_COLOR": "1"}  # fmt: skip

        self.prefix = ["unshare", "-rn"] if netns and _unshare_works() else []

    def run(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.prefix, sys.executable, *map(str, args)], capture_output=True, text=True,
                              env=self.env, timeout=600)  # fmt: skip

    def cli(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        result = self.run("-m", "wechat_avatar", *args)
        assert result.returncode == 0, result.stderr
        return result

    @property
    def attempts(self) -> list[dict[str, str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text(encoding="utf-8").splitlines()]

    @property
    def armed_pids(self) -> set[str]:
        return set(self.armed.read_text(encoding="utf-8").split()) if self.armed.exists() else set()


def test_the_guard_refuses_and_records_the_network_but_not_loopback(tmp_path: Path) -> None:
    guarded = Guarded(tmp_path)
    probe = textwrap.dedent("""
        import socket, urllib.request

        def refused(call, *args):
            try:
                call(*args)
            except OSError as err:
                assert "network guard" in str(err), err
            else:
                raise SystemExit(f"{call} was let through")

        refused(socket.create_connection, ("93.184.216.34", 80), 2)  # stopped at its address lookup
        refused(socket.socket().connect, ("93.184.216.34", 80))
        refused(socket.socket(socket.AF_INET6).connect_ex, ("2606:4700::1111", 443, 0, 0))
        refused(socket.getaddrinfo, "huggingface.co", 443)
        refused(urllib.request.urlopen, "https://pypi.org/simple/", 2)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        refused(udp.sendto, b"x", ("8.8.8.8", 53))
        # loopback stays open: the guard must not break local servers (serve, the tests' own)
        server = socket.create_server(("127.0.0.1", 0))
        client = socket.create_connection(server.getsockname(), 2)
        server.accept()[0].sendall(b"ok")
        assert client.recv(2) == b"ok"
        print("probed")
    """)
    result = guarded.run("-c", probe)
    assert result.returncode == 0 and "probed" in result.stdout, result.stderr
    seen = [(a["call"], a["host"]) for a in guarded.attempts]
    assert seen == [("getaddrinfo", "93.184.216.34"), ("connect", "93.184.216.34"), ("connect_ex", "2606:4700::1111"),
                    ("getaddrinfo", "huggingface.co"), ("getaddrinfo", "pypi.org"), ("sendto", "8.8.8.8")]  # fmt: skip


def test_a_hub_model_id_is_refused_by_the_guard(tmp_path: Path) -> None:
    """The hub client's own requests go through the guarded calls: the guard sees what a download would do."""
    guarded = Guarded(tmp_path)
    result = guarded.run("-c", "from huggingface_hub import model_info\nmodel_info('Qwen/Qwen2.5-1.5B-Instruct')")
    assert result.returncode != 0
    assert {a["host"] for a in guarded.attempts} == {"huggingface.co"}


@pytest.mark.slow
def test_demo_stages_make_no_network_attempt(tmp_path: Path) -> None:
    """synth -> run (ingest … eval, then the RLHF stages) -> stats -> chat, as `make demo` runs them."""
    guarded = Guarded(tmp_path, netns=True)
    export, workspace = tmp_path / "demo" / "export", tmp_path / "demo" / "workspace"
    config = tmp_path / "demo.yaml"  # configs/demo.yaml's settings, each stage at its smallest (same code paths)
    tiny = TINY_YAML.replace("pretrain_steps: 30", "pretrain_steps: 3").replace("max_steps: 6", "max_steps: 2")
    settings = f"preset: tiny-cpu\ningest_paths: [{export}]\n{tiny}eval: {{samples: 2, max_new_tokens: 4}}\n"
    assert "pretrain_steps: 3," in settings and "save_steps: 3" in settings
    settings += ("rlhf: {k: 2, contexts: 2, max_new_tokens: 4, reward: {max_steps: 1, max_length: 64},\n"
                 "       ppo: {max_steps: 1, batch_size: 2, response_length: 4, max_prompt_length: 48}}\n")  # fmt: skip
    config.write_text(settings.replace("save_steps: 3", "save_steps: 1"), encoding="utf-8")  # a checkpoint too
    guarded.cli("synth", export, "--messages", "1500", "--seed", "7")
    run = guarded.cli("run", "--config", config, "--workspace", workspace)
    assert "report: " in run.stdout and (workspace / "adapters" / "sft" / "adapter_model.safetensors").is_file()
    assert (workspace / "adapters" / "ppo" / "adapter_model.safetensors").is_file()  # RLHF, offline judge
    guarded.cli("stats", "--workspace", workspace)
    chat = guarded.cli("chat", "--workspace", workspace, "--as", "胡三行", "-m", "在吗", "-m", "晚上吃啥",
                       "--max-new-tokens", "4")  # fmt: skip
    assert chat.stdout.strip()
    assert len(guarded.armed_pids) >= 4  # the guard was in every stage's process
    assert guarded.attempts == []
