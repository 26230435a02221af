"""The shape of the code: imports run one way, the Workspace names every artifact, rows map by name.

Data flows sources -> store -> dataset -> train -> eval -> serve; a module may import from the
layers before its own, never from its own layer's other units or from later ones.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from wechat_avatar.canonical import Message
from wechat_avatar.render import Rendered
from wechat_avatar.staging import KEY, MESSAGE_COLUMNS, SOURCE_ID, message_row

PACKAGE = Path(__file__).resolve().parent.parent / "wechat_avatar"

# The allowed directions, written down once: each unit (a top-level module or package of
# wechat_avatar) may import only units of earlier layers. Units of one layer are independent.
LAYERS: list[set[str]] = [
    {"__init__", "errors", "canonical", "categories", "processes", "plots", "workspace"},
    {"config"},
    {"android_crypto", "render"},
    {"staging"},
    {"sources", "store"},
    {"ingest", "inspect", "synth"},
    {"dataset"},
    {"memory"},  # your own past exchanges, pseudonymised as the dataset is; eval, chat and serve read it
    {"generate", "models"},
    {"rlhf"},  # samples through generate + models; train reads its ranked file; eval, serve, chat and web use it
    {"train"},
    {"eval"},
    {"serve"},  # the reply engine: terminal chat goes through it too
    {"chat", "web"},
    {"channels"},
    {"pipeline"},
    {"cli"},
    {"__main__"},
]
LAYER = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The wechat_avatar modules the file imports, at the top, in a function or under TYPE_CHECKING.

    `from package import submodule` depends on the submodule, not on the package's __init__."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return {name for name in found if name in modules}


def _graph() -> dict[str, set[str]]:
    """module -> the wechat_avatar modules it imports."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {module: _imports(path, set(files)) - {module} for module, path in files.items()}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_unit_has_a_layer() -> None:
    units = {_unit(m) for m in _graph()}
    assert units - set(LAYER) == set(), "add the new module or package to LAYERS"


def _backwards(graph: dict[str, set[str]]) -> list[str]:
    """Imports of a unit of the same or a later layer."""
    return sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        if _unit(target) != _unit(module) and LAYER[_unit(target)] >= LAYER[_unit(module)]
    )


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of two or more modules (Tarjan): each is an import cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, set()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return cycles


def test_imports_run_one_way() -> None:
    assert _backwards(_graph()) == []


def test_no_import_cycles_between_modules() -> None:
    assert _cycles(_graph()) == []


def test_the_checks_catch_a_forbidden_arrow_and_a_cycle() -> None:
    """The graph sees imports inside functions too; a planted wrong arrow and a planted cycle are found."""
    graph = _graph()
    assert "wechat_avatar.train.pretrain" in graph["wechat_avatar.train.sft"]  # imported inside a method
    planted = {**graph, "wechat_avatar.models.tiny": graph["wechat_avatar.models.tiny"] | {"wechat_avatar.train.sft"}}
    assert _backwards(planted) == ["wechat_avatar.models.tiny imports wechat_avatar.train.sft"]
    same_layer = {"wechat_avatar.store": {"wechat_avatar.sources.base"}}
    assert _backwards(same_layer) == ["wechat_avatar.store imports wechat_avatar.sources.base"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# --- the Workspace names every artifact -------------------------------------------------------------------------

ARTIFACTS = {"chat.db", "dataset", "private", "models", "adapters", "eval", "rlhf", "memory", "serve", ".stamps",
             "manifest.json", "pii_map.json", "messages", "sft", "tiny-qwen2", "train.jsonl", "test.jsonl"}  # fmt: skip
OWN_FOLDERS = ("dataset/", "adapters/", "private/", "models/", "eval/", "rlhf/", "memory/", "serve/")


def _literal_paths(path: Path) -> list[str]:
    """`x / "dataset"`-style joins and "dataset/…"-style strings in code (docstrings and messages aside)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            for side in (node.left, node.right):
                if isinstance(side, ast.Constant) and side.value in ARTIFACTS:
                    found.append(f"{path.name}:{node.lineno}: / {side.value!r}")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(OWN_FOLDERS):
            found.append(f"{path.name}:{node.lineno}: {node.value!r}")
    return found


def test_no_literal_artifact_path_outside_the_workspace() -> None:
    skip = {PACKAGE / "workspace.py", *PACKAGE.glob("synth/*.py")}  # synth writes exports, not workspaces
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) if path not in skip for hit in _literal_paths(path)]
    assert found == []


def test_the_literal_path_check_finds_one(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text('from pathlib import Path\np = Path("w") / "adapters" / "sft"\nq = "dataset/messages"\n')
    assert len(_literal_paths(bad)) == 3


# --- staged rows map Message and Rendered fields by name --------------------------------------------------------


def test_message_row_puts_every_field_in_its_named_column() -> None:
    msg = Message("android:me", "42", "wxid_a", "wxid_a", False, 1_700_000_000_000, 49, 57,
                  "<msg>…</msg>", 822083633, 9_000_000_001)  # fmt: skip
    rendered = Rendered("我没问我爸", "quote", "ok", 57, "妈: 可以", "")
    columns = [c.strip() for c in MESSAGE_COLUMNS.split(",")]
    row = dict(zip(columns, message_row(msg, rendered), strict=True))
    expected = {("ts_ms" if f == "timestamp_ms" else f): v for f, v in msg._asdict().items() if f != "sub_type"}
    expected |= {("render_status" if f == "status" else "render_note" if f == "note" else f): v
                 for f, v in rendered._asdict().items()}  # fmt: skip
    assert {k: row[k] for k in expected} == expected
    assert set(row) == set(expected) | {"merge_key"}
    assert columns[SOURCE_ID] == "source_id" and columns[KEY] == "merge_key"


def test_store_reads_are_named_methods() -> None:
    """SQL runs in store.py only: no other module touches the store's connection."""
    users = defaultdict(list)
    for path in PACKAGE.rglob("*.py"):
        if path.name != "store.py" and "store.conn" in path.read_text(encoding="utf-8"):
            users[path.name].append("store.conn")
    assert dict(users) == {}
