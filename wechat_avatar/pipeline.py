"""`wechat-avatar run`: every stage in order, skipping those whose outputs are fresh.

After eval come the RLHF stages named in `rlhf.stages` (default sample, judge, reward, ppo; `run
--no-rlhf` skips them all), always with the offline judge: `run` never sends chat text anywhere.

A stage is fresh when its output exists, is newer than every input, and was made with the
same settings (a hash of the config sections it reads, kept in WORKSPACE/.stamps/). Like
make, but the config is an input too: changing `sft.learning_rate` re-runs sft and eval,
not ingest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from wechat_avatar.config import AvatarConfig
from wechat_avatar.errors import UsageError
from wechat_avatar.workspace import Workspace

Progress = Callable[[str, int | None], Callable[..., None]]
Log = Callable[[str], None]


class Stage(NamedTuple):
    name: str
    output: Path  # the file whose age says when the stage last ran
    inputs: list[Path]
    settings: Any  # what of the config the stage reads
    run: Callable[[], str]  # does the work; returns a one-line summary


def _newest(paths: list[Path]) -> float:
    """Latest modification time among paths (a folder counts as its newest file)."""
    times = [0.0]
    for path in paths:
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        times += [f.stat().st_mtime for f in files]
    return max(times)


def _digest(settings: Any) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def stages(workspace: Workspace, cfg: AvatarConfig, progress: Progress | None, log: Log) -> list[Stage]:
    from wechat_avatar.eval.run import METRICS_FILE, RUN_NAME
    from wechat_avatar.models.load import RUN_FILE, TINY
    from wechat_avatar.models.tiny import BUILD_FILE

    ws = workspace
    adapter_run = ws.adapter() / RUN_FILE
    tiny_build = ws.tiny_model / BUILD_FILE
    tiny = cfg.model.base == TINY
    paths = [Path(p).expanduser() for p in cfg.ingest_paths]
    out = [
        Stage("ingest", ws.store, paths,
              {"ingest": cfg.ingest.model_dump(), "render": cfg.render.model_dump(), "paths": cfg.ingest_paths},
              lambda: _ingest(ws, cfg, paths, progress)),
        Stage("dataset", ws.manifest, [ws.store], cfg.dataset.model_dump(), lambda: _dataset(ws, cfg, progress)),
    ]  # fmt: skip
    if tiny:
        out.append(Stage("pretrain", tiny_build, [ws.manifest], cfg.model.tiny.model_dump(),
                         lambda: _pretrain(ws, cfg, progress)))  # fmt: skip
    out += [
        Stage("sft", adapter_run, [ws.manifest, *([tiny_build] if tiny else [])],
              {"model": cfg.model.model_dump(), "sft": cfg.sft.model_dump()},
              lambda: _sft(ws, cfg, progress, log)),
        Stage("eval", ws.eval_run(RUN_NAME) / METRICS_FILE, [adapter_run], cfg.eval.model_dump(),
              lambda: _eval(ws, cfg, progress)),
    ]  # fmt: skip
    return out + _rlhf_stages(ws, cfg, progress, log)


def _rlhf_stages(ws: Workspace, cfg: AvatarConfig, progress: Progress | None, log: Log) -> list[Stage]:
    """sample -> judge -> reward -> ppo | dpo | grpo, those of them `rlhf.stages` names, in this order.

    sample and judge both write the ranked file; labeling it by hand makes reward and what follows
    stale (the file is their input), never sample or judge, which merge around what you labeled."""
    from wechat_avatar.models.load import RUN_FILE

    r = cfg.rlhf
    sft_run, reward_run = ws.adapter() / RUN_FILE, ws.adapter("reward") / RUN_FILE
    model = cfg.model.model_dump()
    sampling = r.model_dump(include={"k", "contexts", "temperature", "top_p", "max_new_tokens", "seed", "batch_size"})
    every = {
        "sample": Stage("sample", ws.ranked, [sft_run, ws.manifest], sampling, lambda: _sample(ws, cfg, progress)),
        "judge": Stage("judge", ws.ranked, [ws.ranked], {"judge": "offline"}, lambda: _judge(ws, progress)),
        "reward": Stage("reward", reward_run, [ws.ranked], {"model": model, "reward": r.reward.model_dump()},
                        lambda: _reward(ws, cfg, progress, log)),
    }  # fmt: skip
    for name in ("ppo", "dpo", "grpo"):
        settings = {"model": model, name: getattr(r, name).model_dump(), "max_length": r.reward.max_length}
        inputs = [ws.ranked, sft_run, *([reward_run] if name != "dpo" else [])]
        every[name] = Stage(name, ws.adapter(name) / RUN_FILE, inputs, settings,
                            lambda name=name: _policy(name, ws, cfg, progress, log))  # fmt: skip
    return [stage for name, stage in every.items() if name in r.stages]


class Skipped(Exception):
    """A stage with nothing to work on (say, no held-out split): it and the stages after it are skipped."""


def run_pipeline(workspace: Workspace, cfg: AvatarConfig, *, force: bool = False, progress: Progress | None = None,
                 log: Log = print) -> list[tuple[str, str]]:  # fmt: skip
    """Run what is stale, in order; returns (stage, what happened) for each."""
    done: list[tuple[str, str]] = []
    rerun, skipped = force, None
    for stage in stages(workspace, cfg, progress, log):
        stamp = workspace.stamp(stage.name)
        digest = _digest(stage.settings)
        fresh = (
            stage.output.is_file()
            and stamp.is_file()
            and json.loads(stamp.read_text(encoding="utf-8")).get("settings") == digest
            and stage.output.stat().st_mtime >= _newest(stage.inputs)
        )
        if fresh and not rerun:
            done.append((stage.name, "fresh, skipped"))
            log(f"{stage.name}: fresh, skipped")
            continue
        rerun = True  # everything downstream of a re-run stage runs again
        if skipped is not None:
            done.append((stage.name, f"skipped: {skipped}"))
            log(f"{stage.name}: skipped: {skipped}")
            continue
        log(f"{stage.name}: running")
        try:
            summary = stage.run()
        except Skipped as why:  # nothing to work on: this stage and those after it (they need its output)
            skipped = f"{why} (at {stage.name})"
            done.append((stage.name, f"skipped: {why}"))
            log(f"{stage.name}: skipped: {why}")
            continue
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps({"settings": digest}), encoding="utf-8")
        done.append((stage.name, summary))
        log(f"{stage.name}: {summary}")
    return done


def _ingest(workspace: Workspace, cfg: AvatarConfig, paths: list[Path], progress: Progress | None) -> str:
    from wechat_avatar.ingest import ingest
    from wechat_avatar.store import Store

    if not paths:
        if workspace.store.is_file():
            return "no ingest_paths in the config; using the chat.db already there"
        raise UsageError("nothing to ingest: avatar.yaml has no ingest_paths",
                         hint="add `ingest_paths: [EXPORT]` to avatar.yaml, or run `wechat-avatar ingest`")  # fmt: skip
    with Store.open(workspace) as store:
        reports = ingest(paths, store, cfg, progress)
        total = store.count("messages")
    return f"added {sum(r.added for r in reports)} messages; chat.db holds {total}"


def _dataset(workspace: Workspace, cfg: AvatarConfig, progress: Progress | None) -> str:
    from wechat_avatar.dataset.build import build_dataset
    from wechat_avatar.store import Store

    with Store.open(workspace, create=False) as store:
        advance = progress("dataset", store.count("messages")) if progress else None
        build_dataset(store, workspace, cfg, advance, progress)
    samples = json.loads(workspace.manifest.read_text(encoding="utf-8"))["samples"]
    return f"{samples['train']} train / {samples['test']} test samples; report: {workspace.dataset_report}"


def _pretrain(workspace: Workspace, cfg: AvatarConfig, progress: Progress | None) -> str:
    from wechat_avatar.models.tiny import BUILD_FILE
    from wechat_avatar.train.pretrain import build_tiny

    path = build_tiny(workspace, cfg.model.tiny, progress)
    record = json.loads((path / BUILD_FILE).read_text(encoding="utf-8"))
    return f"{record['parameters']:,} parameters; loss {record['loss'][0]} -> {record['loss'][-1]}"


def _sft(workspace: Workspace, cfg: AvatarConfig, progress: Progress | None, log: Log) -> str:
    from wechat_avatar.train.sft import run_sft

    path, summary = run_sft(workspace, cfg, progress=progress, log=log)
    return (f"{summary['steps']} steps; held-out loss {summary['eval_loss_before']} -> "
            f"{summary['eval_loss_after']}; adapter: {path}")  # fmt: skip


def _eval(workspace: Workspace, cfg: AvatarConfig, progress: Progress | None) -> str:
    from wechat_avatar.eval.run import REPORT_FILE, RUN_NAME, evaluate

    if not json.loads(workspace.manifest.read_text(encoding="utf-8"))["samples"]["test"]:
        from wechat_avatar.dataset.report import NO_TEST_SPLIT

        return f"skipped: {NO_TEST_SPLIT}"
    compare = ["base"] if cfg.eval.compare_base else []
    result = evaluate(workspace, cfg, None, compare, name=RUN_NAME, progress=progress)
    return f"report: {result.path / REPORT_FILE}"


def _sample(workspace: Workspace, cfg: AvatarConfig, progress: Progress | None) -> str:
    from wechat_avatar.rlhf.sample import sample

    if not json.loads(workspace.manifest.read_text(encoding="utf-8"))["samples"]["test"]:
        from wechat_avatar.dataset.report import NO_TEST_SPLIT

        raise Skipped(f"RLHF samples held-out contexts, and the {NO_TEST_SPLIT}")
    done = sample(workspace, cfg, None, progress)
    return (f"{done.candidates} candidates for {done.contexts} contexts ({done.provocations} provocations, "
            f"{done.probes} probes)")  # fmt: skip


def _judge(workspace: Workspace, progress: Progress | None) -> str:
    from wechat_avatar.rlhf.judging import judge_workspace

    done = judge_workspace(workspace, None, progress=progress)
    bad = f"; {len(done.problems)} bad records skipped" if done.problems else ""
    return f"offline judge scored {done.judged} contexts; {done.labeled} you labeled were left as they were{bad}"


def _reward(workspace: Workspace, cfg: AvatarConfig, progress: Progress | None, log: Log) -> str:
    from wechat_avatar.train.reward import run_reward

    path, summary = run_reward(workspace, cfg, progress=progress, log=log)
    return (f"{summary['pairs']['train']} pairs; held-out pair accuracy {summary['accuracy_before']['heldout']} -> "
            f"{summary['accuracy_after']['heldout']}; reward model: {path}")  # fmt: skip


def _policy(name: str, workspace: Workspace, cfg: AvatarConfig, progress: Progress | None, log: Log) -> str:
    """ppo, dpo or grpo: the SFT adapter trained further on the ranked file."""
    if name == "ppo":
        from wechat_avatar.eval.metrics import is_rude
        from wechat_avatar.train.ppo import run_ppo

        path, summary = run_ppo(workspace, cfg, progress=progress, log=log, rude=is_rude)
        first, last = summary["log"][0], summary["log"][-1]
        return (f"{summary['steps']} steps; reward {first['reward']} -> {last['reward']}, rude share of rollouts "
                f"{first['rude_share']:.0%} -> {last['rude_share']:.0%}; adapter: {path}")  # fmt: skip
    from wechat_avatar.train.dpo import run_dpo
    from wechat_avatar.train.grpo import run_grpo

    path, summary = (run_dpo if name == "dpo" else run_grpo)(workspace, cfg, progress=progress, log=log)
    return f"{summary['steps']} steps; adapter: {path}"
