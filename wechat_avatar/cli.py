"""The `wechat-avatar` command: thin verbs that validate, call the library, and print.

Library code raises named `AvatarError`s; `main()` is the one place that turns them into
a one-line message and an exit code. Nothing here holds pipeline logic.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from wechat_avatar import __version__
from wechat_avatar.config import API_KEY_ENV, AvatarConfig, commented_yaml, load_config
from wechat_avatar.errors import AvatarError, UsageError
from wechat_avatar.workspace import Workspace

app = typer.Typer(
    name="wechat-avatar",
    help="Clone yourself from your own WeChat history: ingest -> dataset -> train -> serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

WorkspaceOpt = Annotated[
    Path, typer.Option("--workspace", "-w", help="Workspace folder: chat.db and every stage's outputs.")
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="avatar.yaml to read (default: ./avatar.yaml if it exists)."),
]
DEFAULT_WORKSPACE = Path("workspace")
S = TypeVar("S", bound=BaseModel)


def _config(path: Path | None, preset: str | None = None) -> AvatarConfig:
    if path is None and Path("avatar.yaml").is_file():
        path = Path("avatar.yaml")
    if path is not None and not path.is_file():
        raise UsageError(f"config file not found: {path}", hint="`wechat-avatar init` writes one")
    return load_config(path, preset)


def _overlay(section: S, flags: dict[str, Any], names: dict[str, str] | None = None) -> S:
    """The config section with the flags that were given (not None) over it, validated by the section.

    `names` maps a field to its flag where they differ (session_gap_hours: --session-gap)."""
    given = {field: value for field, value in flags.items() if value is not None}
    try:
        return type(section).model_validate({**section.model_dump(), **given})
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0])
        flag = (names or {}).get(field) or "--" + field.replace("_", "-")
        raise UsageError(f"{flag}: {first['msg'].removeprefix('Value error, ')}") from None


@contextmanager
def _progress() -> Iterator[Callable[[str, int | None], Callable[..., None]]]:
    """A rich progress bar; yields the hook the library calls once per long task."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=err, transient=False, disable=not err.is_terminal) as bar:

        def start(description: str, total: int | None) -> Callable[..., None]:
            task = bar.add_task(description, total=total)
            # fields such as description= let a long task show its state (sft: the loss) in the bar
            return lambda n, **fields: bar.update(task, advance=n, **fields)

        yield start


def _show_version(value: bool) -> None:
    if value:
        out.print(f"wechat-avatar {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Clone yourself from your own WeChat history: ingest -> dataset -> train -> serve."""


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path("avatar.yaml"),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented avatar.yaml with every setting at its default."""
    if path.exists() and not force:
        raise UsageError(f"{path} already exists", hint="pass --force to overwrite it")
    header = "# wechat-avatar config. Every command reads ./avatar.yaml or --config; flags override it.\n\n"
    text = commented_yaml(load_config(None), off=frozenset({"model", "sft"}))
    path.write_text(header + text, encoding="utf-8")
    out.print(f"wrote {path}. Next: [bold]wechat-avatar ingest EXPORT --workspace workspace[/]")


@app.command()
def synth(
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="Folder to write the export into.")],
    messages: Annotated[int, typer.Option(min=1, max=50_000_000, help="Number of messages.")] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same export.")] = 0,
    imei: Annotated[str, typer.Option(help="IMEI the key is derived from.")] = "1234567890ABCDEF",
    uin: Annotated[str, typer.Option(help="uin the key is derived from.")] = "1727374951",
    fmt: Annotated[
        str,
        typer.Option("--format", help="android, pc3, pc4, pywxdump, memotrace or chatlog: the same history in each."),
    ] = "android",
) -> None:
    """Write a deterministic synthetic WeChat export (encrypted EnMicroMsg.db + the seed's CSVs).

    The persona has learnable habits, a few rude replies, and planted PII: the fixture for
    tests, benchmarks and the demo. No real person's data is involved. --format writes the
    same persona and messages as a PC 3.x or 4.x database or an export tool's files instead.
    """
    from wechat_avatar.synth import synth_android
    from wechat_avatar.synth.formats import synth_export

    with _progress() as progress:
        if fmt != "android":
            made = synth_export(out_dir, fmt, messages=messages, seed=seed, progress=progress("synth", messages))
            out.print(f"wrote {made.messages} messages of {made.self_wxid} as {fmt} to {made.path}\n"
                      f"Next: [bold]wechat-avatar ingest {made.path} --workspace workspace[/]")  # fmt: skip
            return
        result = synth_android(out_dir, messages=messages, seed=seed, imei=imei, uin=uin,
                               progress=progress("synth", messages))  # fmt: skip
    out.print(
        f"wrote {result.messages} messages of {result.self_wxid} to {result.db_path} (key {result.key}) "
        f"and CSVs to {result.csv_dir}\nNext: [bold]wechat-avatar ingest {out_dir} --workspace workspace[/]"
    )


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(metavar="PATH...", help="Exports, folders, shared_prefs.")],
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    config: ConfigOpt = None,
    imei: Annotated[str | None, typer.Option(help="Phone IMEI for the key (default 1234567890ABCDEF).")] = None,
    uin: Annotated[str | None, typer.Option(help="Your WeChat uin (shared_prefs default_uin).")] = None,
    key: Annotated[str | None, typer.Option(help="The 7-hex-char EnMicroMsg.db key, if known.")] = None,
    timezone: Annotated[
        str | None, typer.Option(help="Zone of exports' local-time strings (default Asia/Shanghai).")
    ] = None,
    self_wxid: Annotated[
        str | None,
        typer.Option("--self", help="Your wxid, where an input does not say whose history it is (ingest.self_wxid)."),
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="Re-read every row of a source chat.db already holds (ingest.incremental).")
    ] = False,
) -> None:
    """Read WeChat exports into WORKSPACE/chat.db (re-ingesting adds nothing twice).

    Accepts an Android EnMicroMsg.db (encrypted: key from --imei/--uin, a shared_prefs
    folder, or --key; or already decrypted), or a folder of the seed's CSV exports of its
    message/rcontact/userinfo/chatroom tables; a decrypted PC WeChat 3.x Msg folder or 4.x
    db_storage; PyWxDump, MemoTrace or chatlog exports. Detected by content. Several at
    once are merged: a message two sources hold is stored once. A later export of a source
    already ingested is read incrementally: only what is newer than chat.db holds.
    """
    from wechat_avatar.ingest import ingest as run_ingest
    from wechat_avatar.store import Store

    cfg = _config(config)
    flags = {"imei": imei, "uin": uin, "key": key, "timezone": timezone, "self_wxid": self_wxid}
    flags["incremental"] = False if full else None
    cfg.ingest = _overlay(cfg.ingest, flags, {"self_wxid": "--self"})
    if key:
        from wechat_avatar.android_crypto import check_key

        check_key(key)
    with Store.open(Workspace(workspace)) as store, _progress() as progress:
        reports = run_ingest(paths, store, cfg, progress)
        totals = {t: store.count(t) for t in ("messages", "chats", "contacts")}
    for r in reports:
        skipped = ", ".join(f"{n} {why}" for why, n in r.skipped.most_common()) or "none"
        repaired = ", ".join(f"{n} {what}" for what, n in r.repaired.most_common())
        out.print(
            f"[bold]{r.kind}[/] {r.path}: read {r.read}, added {r.added}, already stored {r.already_stored}, "
            f"merged {r.merged}, skipped {skipped}" + (f", repaired {repaired}" if repaired else "")
        )
        for note in r.notes:
            out.print(Text(f"  note: {note}"))
        problems = {s: n for s, n in r.statuses.items() if s in {"unknown", "failed"}}
        if problems:
            out.print(f"  kept raw with an unknown placeholder: {problems}")
    table = Table("category", "messages", title="rendered (this run)")
    for name, n in sum((r.categories for r in reports), Counter()).most_common():
        table.add_row(name, str(n))
    out.print(table)
    out.print(
        f"{store.path} now holds {totals['messages']} messages in {totals['chats']} chats, "
        f"{totals['contacts']} contacts.\nNext: [bold]wechat-avatar stats --workspace {workspace}[/]"
    )


@app.command()
def messages(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    config: ConfigOpt = None,
    chat: Annotated[str | None, typer.Option(help="Only this chat (wxid, room id, remark or nickname).")] = None,
    limit: Annotated[int | None, typer.Option(min=0, help="At most N messages.")] = None,
) -> None:
    """Print rendered messages as JSON lines, oldest first."""
    from wechat_avatar.inspect import message_json
    from wechat_avatar.store import Store

    tz = ZoneInfo(_config(config).ingest.timezone)
    with Store.open(Workspace(workspace), create=False) as store:
        for row in store.iter_view(chat=chat, limit=limit):
            sys.stdout.write(json.dumps(message_json(row, tz), ensure_ascii=False) + "\n")


@app.command()
def stats(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Summarise the chat store: account, chats, contacts, messages per category and type."""
    from wechat_avatar.inspect import store_stats
    from wechat_avatar.store import Store

    tz = ZoneInfo(_config(config).ingest.timezone)
    with Store.open(Workspace(workspace), create=False) as store:
        summary = store_stats(store, tz)
    if as_json:
        out.print_json(data=summary)
        return
    acct = summary["account"] or {}
    out.print(
        f"[bold]{acct.get('nickname')}[/] ({acct.get('wxid')}): {summary['messages']} messages, "
        f"{summary['own_messages']} yours, {summary['first']} → {summary['last']}"
    )
    out.print(f"chats: {summary['chats']}   contacts: {summary['contacts']}")
    out.print(f"render status: {summary['by_status']}")
    for title, rows in (
        ("messages per category", summary["by_category"].items()),
        ("busiest chats", [(c["chat"], c["messages"]) for c in summary["top_chats"]]),
    ):
        table = Table(title, "messages")
        for name, n in rows:
            table.add_row(str(name), str(n))
        out.print(table)


@app.command()
def dataset(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    config: ConfigOpt = None,
    fmt: Annotated[
        list[str] | None,
        typer.Option("--format", "-f", help="firefly, messages or sharegpt; repeat for several (default: all)."),
    ] = None,
    test_ratio: Annotated[float | None, typer.Option(help="Share of sessions held out for evaluation.")] = None,
    context_window: Annotated[int | None, typer.Option(help="Previous messages a reply sees (default 10).")] = None,
    session_gap: Annotated[
        float | None, typer.Option(help="Hours of silence that start a new session (0 = never).")
    ] = None,
    as_contact: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="Another person's dataset instead (a friend's wxid, remark or nickname: their replies are "
            "the target) into WORKSPACE/as/CONTACT/, for eval's who-said-it control.",
        ),
    ] = None,
) -> None:
    """Turn chat.db into training samples: WORKSPACE/dataset/<format>/{train,test}.jsonl + report.html.

    One sample per reply of yours, with the previous messages of the same session as
    context; your consecutive messages join with <s>. Personal data (phones, ID and card
    numbers, e-mails, wxids, addresses, URLs with tokens) is replaced by consistent
    placeholders; the map back stays in WORKSPACE/private/. Always rebuilt whole, in
    time linear in the messages: conversation ids, the filler de-duplication and the
    per-chat caps run in order over the whole history, so new messages move samples
    everywhere after them.
    """
    from wechat_avatar.dataset.build import build_dataset
    from wechat_avatar.dataset.report import summary_lines
    from wechat_avatar.store import Store

    cfg = _config(config)
    flags = {"formats": fmt, "test_ratio": test_ratio, "context_window": context_window,
             "session_gap_hours": session_gap}  # fmt: skip
    cfg.dataset = _overlay(cfg.dataset, flags, {"formats": "--format", "session_gap_hours": "--session-gap"})
    ws = Workspace(workspace)
    with Store.open(ws, create=False) as store, _progress() as progress:
        if as_contact is not None:
            from wechat_avatar.dataset.as_contact import AsContact, contact_workspace

            source: Any = AsContact(store, as_contact)
            ws = contact_workspace(ws, as_contact)
        else:
            source = store
        result = build_dataset(source, ws, cfg, progress("dataset", store.count("messages")), progress)
        remembered = _remember_train(store, ws, cfg, progress) if as_contact is None else None
    for line in summary_lines(result.stats):
        out.print(Text(line))
    if remembered:
        out.print(f"memory in training: {remembered['remembered']} of {remembered['samples']} training samples "
                  "carry memories from before their session")  # fmt: skip
    out.print(f"wrote {len(result.files)} files to {result.path}; report: {ws.dataset_report}")


def _remember_train(store: Any, ws: Workspace, cfg: AvatarConfig, progress: Any) -> dict[str, int] | None:
    """memory.enabled and memory.in_training: the index brought up to date, then the train split rewritten."""
    from wechat_avatar.memory.build import build_memory
    from wechat_avatar.memory.training import remember_train, wanted

    if not wanted(cfg):
        return None
    build_memory(store, ws, cfg, progress("memory", store.count("messages")))
    return remember_train(ws, cfg, progress("memory in training", None))


train_app = typer.Typer(
    help="Fine-tune the model: pretrain (the tiny preset's own base), sft (LoRA on your replies); reward, ppo, "
    "dpo, grpo (on ranked candidates).",
    no_args_is_help=True,
)
app.add_typer(train_app, name="train")
PresetOpt = Annotated[
    str | None,
    typer.Option("--preset", "-p", help="Hardware preset: tiny-cpu, smollm2-cpu, qwen2.5-1.5b-gpu16, "
                 "qwen2.5-7b-qlora-gpu24, qwen2.5-7b-gpu80 (overrides avatar.yaml's preset:)."),
]  # fmt: skip
AdapterOpt = Annotated[
    Path | None, typer.Option(help="LoRA adapter folder (default: WORKSPACE/adapters/sft if it exists).")
]


def _quiet_ml() -> None:
    """Library chatter (loading bars, deprecation notices) is noise at a terminal; debug shows it."""
    if not os.environ.get("WECHAT_AVATAR_DEBUG"):
        warnings.filterwarnings("ignore", category=FutureWarning)  # deprecations inside transformers itself
        from transformers.utils import logging

        logging.set_verbosity_error()
        logging.disable_progress_bar()


@app.command("eval")
def eval_(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    adapter: Annotated[
        str | None, typer.Option(help="Adapter folder, or `base` (default: WORKSPACE/adapters/sft, else base).")
    ] = None,
    compare: Annotated[
        list[str] | None,
        typer.Option(help="Also score: an adapter folder, `base`, or an earlier eval folder (read, not rerun)."),
    ] = None,
    samples: Annotated[
        int | None, typer.Option(help="Held-out samples scored, the same seeded subset (default: eval.samples).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Output folder WORKSPACE/eval/NAME (default: the runs).")] = None,
    max_new_tokens: Annotated[
        int | None, typer.Option(help="Longest generated reply (default: eval.max_new_tokens).")
    ] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature (default: eval.temperature).")] = None,
    top_p: Annotated[float | None, typer.Option(help="Nucleus sampling mass (default: eval.top_p).")] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed (default: eval.seed).")] = None,
    probes: Annotated[
        Path | None,
        typer.Option(help="Knowledge probes: a synth.json; each is asked without memory and with it (if built)."),
    ] = None,
) -> None:
    """Score replies on the held-out split: perplexity, BLEU/ROUGE, distinct, style, civility, privacy.

    Writes WORKSPACE/eval/NAME/metrics.json and a report.html that compares every run side by side.
    """
    from wechat_avatar.eval.report import summary_by_metric
    from wechat_avatar.eval.run import REPORT_FILE, evaluate

    cfg = _config(config, preset)
    flags = {"samples": samples, "max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p,
             "seed": seed}  # fmt: skip
    cfg.eval = _overlay(cfg.eval, flags)
    _quiet_ml()
    with _progress() as progress:
        result = evaluate(Workspace(workspace), cfg, adapter, compare or [], name=name, progress=progress,
                          probes=probes)  # fmt: skip
    headers, rows = summary_by_metric(result.metrics)
    table = Table(*headers, title=f"{result.metrics['dataset']['samples']} held-out samples")
    for row in rows:
        table.add_row(*map(escape, row))
    out.print(table)
    if memory := result.metrics.get("memory"):
        out.print(f"memory: {memory['remembered']} of {memory['samples']} samples recalled something from before "
                  f"their session ({memory['unknown_sessions']} sessions unknown to the index)")  # fmt: skip
    if (judge := result.metrics.get("whosaid") or {}).get("real") is not None:
        shares = [(r["label"], r["whosaid"]) for r in result.metrics["runs"] if r.get("whosaid") is not None]
        runs = ", ".join(f"{label} {share:.0f} %" for label, share in shares)
        out.print(f"who said it (read as yours): your held-out replies {judge['real']:.0f} %, friends' lines "
                  f"{judge['friends'] or 0:.0f} %; {runs}")  # fmt: skip
    for run in result.metrics["runs"]:
        for how, k in (run.get("knowledge") or {}).items():
            if k:
                out.print(f"{run['label']} knowledge {how.replace('_', ' ')}: recall {k['recall']:.0f} %, "
                          f"generic {k['generic']:.0f} % of {k['probes']} probes")  # fmt: skip
    out.print(f"report: {result.path / REPORT_FILE}")


@train_app.command("pretrain")
def train_pretrain(workspace: WorkspaceOpt = DEFAULT_WORKSPACE, config: ConfigOpt = None,
                   preset: PresetOpt = None) -> None:  # fmt: skip
    """Build builtin:tiny-qwen2 (the tiny-cpu preset's base): Qwen2's vocabulary trimmed to your
    messages, a small random-init Qwen2, pre-trained on the training split so it can speak.
    Writes WORKSPACE/models/tiny-qwen2/. `train sft` runs this itself when the model is missing or stale.
    """
    from wechat_avatar.models.load import TINY
    from wechat_avatar.models.tiny import BUILD_FILE
    from wechat_avatar.train.pretrain import build_tiny

    cfg = _config(config, preset)
    if cfg.model.base != TINY:
        raise UsageError(f"train pretrain builds {TINY} only; model.base is {cfg.model.base}",
                         hint="other models come pretrained: run `wechat-avatar train sft`")  # fmt: skip
    _quiet_ml()
    with _progress() as progress:
        path = build_tiny(Workspace(workspace), cfg.model.tiny, progress)
    record = json.loads((path / BUILD_FILE).read_text(encoding="utf-8"))
    out.print(f"built {path}: {record['parameters']:,} parameters, vocabulary {record['vocab_size']:,}, "
              f"{record['pretrain_tokens']:,} tokens; loss {record['loss'][0]} -> {record['loss'][-1]} "
              f"in {record['seconds']} s\nNext: [bold]wechat-avatar train sft --workspace {workspace}[/]")  # fmt: skip


@train_app.command("sft")
def train_sft(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    resume: Annotated[bool, typer.Option(help="Continue from the last complete checkpoint.")] = False,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many optimizer steps.")] = None,
    epochs: Annotated[float | None, typer.Option(help="Passes over the training split.")] = None,
) -> None:
    """LoRA fine-tuning on your replies: WORKSPACE/adapters/sft/ (adapter, run.json, loss.svg).

    Loss falls only on your turns; samples are batched by length, or packed (sft.packing); a
    checkpoint is written every sft.save_steps, and --resume continues after a crash. Runs unchanged under
    `accelerate launch` (configs/accelerate/) for several GPUs.
    """
    from wechat_avatar.train.sft import run_sft

    cfg = _config(config, preset)
    cfg.sft = _overlay(cfg.sft, {"max_steps": max_steps, "epochs": epochs})
    _quiet_ml()
    with _progress() as progress:
        path, summary = run_sft(Workspace(workspace), cfg, resume=resume, progress=progress,
                                log=lambda s: err.print(Text(s)))  # fmt: skip
    out.print(f"{summary['steps']} steps in {summary['seconds']} s; held-out loss {summary['eval_loss_before']} "
              f"-> {summary['eval_loss_after']}\nadapter: {path} (loss curve: {path / 'loss.svg'})\n"
              f"Next: [bold]wechat-avatar eval --workspace {workspace}[/] or [bold]wechat-avatar chat[/]")  # fmt: skip


@app.command()
def run(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    force: Annotated[bool, typer.Option(help="Run every stage, fresh or not.")] = False,
    ingest_paths: Annotated[
        list[str] | None,
        typer.Option("--ingest", help="An export to ingest, instead of avatar.yaml's ingest_paths (repeatable)."),
    ] = None,
    rlhf: Annotated[bool, typer.Option(help="Run the RLHF stages of rlhf.stages after eval.")] = True,
) -> None:
    """Every stage in order — ingest, dataset, pretrain (tiny preset), sft, eval, then RLHF: rlhf sample,
    rlhf judge (offline), train reward, train ppo (rlhf.stages) — skipping stages whose outputs are newer
    than their inputs and were made with the same settings.

    Ingest reads avatar.yaml's ingest_paths (or --ingest). Change a setting and only the stages that read
    it (and those after them) run again. --no-rlhf stops after eval.
    """
    from wechat_avatar.pipeline import run_pipeline

    cfg = _config(config, preset)
    if ingest_paths:
        cfg.ingest_paths = ingest_paths
    if not rlhf:
        cfg.rlhf.stages = []
    _quiet_ml()
    with _progress() as progress:
        done = run_pipeline(Workspace(workspace), cfg, force=force, progress=progress, log=lambda s: err.print(Text(s)))
    table = Table("stage", "result", title=f"wechat-avatar run ({cfg.preset})")
    for name, summary in done:
        table.add_row(name, escape(summary))
    out.print(table)
    out.print(f"Next: [bold]wechat-avatar chat --workspace {workspace} --as 朋友[/]")


@app.command()
def chat(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    config: ConfigOpt = None,
    adapter: AdapterOpt = None,
    friend: Annotated[str, typer.Option("--as", help="The friend you speak as (the avatar sees this name).")] = "朋友",
    message: Annotated[
        list[str] | None, typer.Option("--message", "-m", help="Say this and exit (repeatable); default: interactive.")
    ] = None,
    temperature: Annotated[
        float | None, typer.Option(help="Sampling temperature, 0 = greedy (default: chat.temperature).")
    ] = None,
    max_new_tokens: Annotated[
        int | None, typer.Option(help="Longest reply in tokens (default: chat.max_new_tokens).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed (default: chat.seed).")] = None,
) -> None:
    """Talk to your avatar in the terminal as one of your friends; replies show as separate bubbles.

    Keeps the last dataset.context_window messages as context, like training did. Ctrl-D or /quit ends.
    `/bad BETTER` marks the last reply bad and BETTER (bubbles split by <s>) as what it should have said:
    a correction in WORKSPACE/rlhf/ranked.jsonl, for `train reward`/`ppo`/`dpo`.
    """
    from wechat_avatar.chat import ChatSession

    cfg = _config(config)
    cfg.chat = _overlay(cfg.chat, {"temperature": temperature, "max_new_tokens": max_new_tokens, "seed": seed})
    _quiet_ml()
    session = ChatSession.open(Workspace(workspace), cfg, adapter, friend)
    err.print(Text(f"talking to {session.name} ({session.describe()}) as {friend}"))
    lines = iter(message) if message else _prompt_lines(friend)
    try:
        for line in lines:
            if line.split(maxsplit=1)[0] == CORRECT:  # a thumbs-down and the reply you would have sent
                try:
                    session.correct(line.removeprefix(CORRECT))
                except UsageError as error:  # the conversation goes on
                    err.print(Text(f"{error}; {error.hint}"))
                    continue
                err.print(Text(f"noted: kept as a correction in {session.ranked} (rlhf label shows it)"))
                continue
            for n, bubble in enumerate(session.say(line)):
                out.print(Text.assemble((f"{session.name}: " if n == 0 else " " * (len(session.name) + 2),
                                         "bold green"), bubble))  # fmt: skip
    finally:
        session.engine.close()  # the continuous engine's loop is not a daemon thread: the process waits for it


@app.command()
def export(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write (must be new or empty; see --force).")],
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    config: ConfigOpt = None,
    adapter: AdapterOpt = None,
    quantize: Annotated[
        str | None, typer.Option(help="int8: weights in int8 (optimum-quanto), for `serve --model` on a CPU.")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace a non-empty --out folder.")] = False,
) -> None:
    """Merge the LoRA adapter into its base and save a standard Hugging Face folder: weights, config,
    tokenizer and chat template, export.json (what made it).

    The full-precision folder loads with plain transformers and vLLM, converts to GGUF for llama.cpp and
    Ollama, and `serve --model DIR` serves it; --quantize int8 is smaller, for `serve --model DIR` only.
    """
    from wechat_avatar.models.export import check_request
    from wechat_avatar.models.export import export as run_export

    check_request(out_dir, quantize, force)  # before the config and the model load
    cfg = _config(config)
    _quiet_ml()
    done = run_export(Workspace(workspace), cfg, adapter, out_dir, quantize=quantize, force=force)
    r = done.record
    out.print(f"exported {r['base']} + {r['adapter']} ({r['quantize'] or r['dtype']}) to {done.path}: "
              f"{r['bytes']:,} bytes\nNext: [bold]wechat-avatar serve --workspace {workspace} "
              f"--model {done.path}[/]")  # fmt: skip


@app.command()
def serve(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    config: ConfigOpt = None,
    adapter: AdapterOpt = None,
    model: Annotated[
        Path | None, typer.Option(help="Serve an export folder (`wechat-avatar export`) instead of an adapter.")
    ] = None,
    load_in_4bit: Annotated[
        bool, typer.Option("--load-in-4bit", help="Hold the weights in 4-bit NF4 (bitsandbytes; meant for a GPU).")
    ] = False,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: serve.host, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default: serve.port, 8000).")] = None,
    api_key: Annotated[
        str | None,
        typer.Option(envvar=API_KEY_ENV, help="Clients must send `Authorization: Bearer KEY`; required off loopback."),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            help="transformers (the model in this process) or vllm (replies from a vLLM server at "
            "--vllm-url; default: serve.backend)."
        ),
    ] = None,
    vllm_url: Annotated[
        str | None, typer.Option(help="The vLLM OpenAI server's base URL, e.g. http://127.0.0.1:8001 (--backend vllm).")
    ] = None,
    vllm_model: Annotated[
        str | None,
        typer.Option(help="The name vLLM serves the adapter under: its --lora-modules NAME=DIR (default: sft)."),
    ] = None,
) -> None:
    """Serve the avatar over HTTP: OpenAI-compatible /v1/chat/completions and /v1/models, and the
    native /v1/avatar/reply, which keeps each friend's conversation in WORKSPACE/serve/.

    Point chatgpt-on-wechat, AstrBot, LangBot, Open WebUI or the openai client at http://HOST:PORT/v1.
    Listening beyond loopback needs an API key. Limits and <s> handling: the serve: section of avatar.yaml.
    Answers with base + adapter, or with an export folder (--model DIR, from `wechat-avatar export`).
    With --backend vllm a vLLM server generates the replies (base + the adapter as a LoRA module; set
    VLLM_API_KEY if it was started with --api-key); this API, history and limits stay in front of it.
    """
    import uvicorn

    from wechat_avatar.serve.app import Settings, build_app, check_settings
    from wechat_avatar.serve.engines import open_engine

    cfg = _config(config)
    cfg.serve = _overlay(cfg.serve, {"host": host, "port": port, "api_key": api_key or None, "backend": backend,
                                     "vllm_url": vllm_url, "vllm_model": vllm_model})  # fmt: skip
    check_settings(cfg.serve)
    _quiet_ml()
    ws = Workspace(workspace)
    engine = open_engine(ws, cfg, adapter, model, load_in_4bit=load_in_4bit)
    try:
        app_ = build_app(Settings.of(ws, cfg), engine)
        err.print(Text(f"serving {engine.persona.name} ({engine.describe()}); OpenAI base URL: "
                       f"http://{cfg.serve.host}:{cfg.serve.port}/v1"))  # fmt: skip
        uvicorn.run(app_, host=cfg.serve.host, port=cfg.serve.port, log_level="info", access_log=False)
    finally:
        engine.close()


@app.command()
def web(
    api: Annotated[str, typer.Option(help="The serve API's base URL (what `wechat-avatar serve` printed, without /v1).")
                   ] = "http://127.0.0.1:8000",
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback needs --password.")
                    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8501,
    api_key: Annotated[
        str | None,
        typer.Option(envvar=API_KEY_ENV, help="The serve API's key; kept on this server, never sent to the browser."),
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(envvar="WECHAT_AVATAR_WEB_PASSWORD",
                     help="The page's password (the browser asks for it; any user name); required off loopback."),
    ] = None,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait for the API before the page says it is "
                                           "slow.")] = 60.0,
) -> None:  # fmt: skip
    """The chat page for friends: open http://HOST:PORT, pick who you are, and chat with the avatar.

    Replies stream in bubble by bubble; each friend's history is kept by `serve` (reload the page and
    it is still there). The page calls this server only, which forwards to --api with the API key.
    """
    import uvicorn

    from wechat_avatar.web.app import WebSettings, build_app, check_settings

    settings = WebSettings(api=api, api_key=api_key or None, host=host, port=port, password=password or None,
                           timeout_s=timeout)  # fmt: skip
    check_settings(settings)
    err.print(Text(f"chat page for friends: http://{host}:{port}  (API: {api})"))
    uvicorn.run(build_app(settings), host=host, port=port, log_level="info", access_log=False)


CORRECT = "/bad"  # chat: a correction of the last reply


def _prompt_lines(friend: str) -> Iterator[str]:
    while True:
        try:
            line = input(f"{friend}> ").strip()
        except EOFError:
            return
        if line in {"/quit", "/exit"}:
            return
        if line:
            yield line


# --- training on ranked candidates: train reward | ppo | dpo | grpo (wechat_avatar/train/) ------------------------


@train_app.command("reward")
def train_reward(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many optimizer steps.")] = None,
) -> None:
    """The reward model: WORKSPACE/adapters/reward/ (LoRA adapter + score head, run.json, loss.svg).

    Reads WORKSPACE/rlhf/ranked.jsonl; every ordered pair of differently scored candidates is one
    Bradley-Terry example (the higher-scored reply must get the higher reward). A long context loses
    its start, never the pair; held-out pair accuracy is printed and kept in run.json.
    """
    from wechat_avatar.train.reward import run_reward

    cfg = _config(config, preset)
    cfg.rlhf.reward = _overlay(cfg.rlhf.reward, {"max_steps": max_steps})
    _quiet_ml()
    with _progress() as progress:
        path, summary = run_reward(Workspace(workspace), cfg, progress=progress, log=lambda s: err.print(Text(s)))
    skipped = sum(summary["skipped_records"].values())
    out.print(f"{summary['pairs']['train']} training pairs, {summary['pairs']['heldout']} held out "
              f"({skipped} bad records skipped; {summary['pairs_truncated']} pairs lost "
              f"{summary['tokens_cut']} context tokens to max_length)\n"
              f"held-out pair accuracy {summary['accuracy_before']['heldout']} -> "
              f"{summary['accuracy_after']['heldout']}\nreward model: {path}\n"
              f"Next: [bold]wechat-avatar train ppo --workspace {workspace}[/]")  # fmt: skip


@train_app.command("ppo")
def train_ppo(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    resume: Annotated[bool, typer.Option(help="Continue from the last complete checkpoint.")] = False,
    max_steps: Annotated[int | None, typer.Option(help="PPO steps (rollouts + updates).")] = None,
) -> None:
    """PPO on the ranked contexts: WORKSPACE/adapters/ppo/ (policy adapter, critic/, run.json).

    Policy from the SFT adapter, critic from the reward model, reference (SFT) and reward frozen —
    four LoRA adapters on ONE base in memory. Logs reward, KL, entropy, value loss and the rude share
    of each step's rollouts; a checkpoint every rlhf.ppo.save_steps, --resume after a crash.
    """
    from wechat_avatar.eval.metrics import is_rude
    from wechat_avatar.train.ppo import run_ppo

    cfg = _config(config, preset)
    cfg.rlhf.ppo = _overlay(cfg.rlhf.ppo, {"max_steps": max_steps})
    _quiet_ml()
    with _progress() as progress:
        path, summary = run_ppo(Workspace(workspace), cfg, resume=resume, progress=progress,
                                log=lambda s: err.print(Text(s)), rude=is_rude)  # fmt: skip
    first, last = summary["log"][0], summary["log"][-1]
    out.print(f"{summary['steps']} steps in {summary['seconds']} s on {summary['prompts']} contexts; reward "
              f"{first['reward']} -> {last['reward']}, KL {last['kl']}, rude share of rollouts "
              f"{first['rude_share']:.0%} -> {last['rude_share']:.0%}\npolicy adapter: {path}\n"
              f"Next: [bold]wechat-avatar eval --workspace {workspace} --adapter {path} --compare "
              f"{Workspace(workspace).adapter('sft')}[/]")  # fmt: skip


@train_app.command("dpo")
def train_dpo(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many optimizer steps.")] = None,
) -> None:
    """DPO on the ranked pairs (TRL's DPOTrainer): WORKSPACE/adapters/dpo/ (adapter, run.json, loss.svg).

    The SFT adapter learns every ordered pair of WORKSPACE/rlhf/ranked.jsonl directly, with the SFT
    adapter itself as the reference: no reward model, no sampling. An alternative to `train ppo`.
    """
    from wechat_avatar.train.dpo import run_dpo

    cfg = _config(config, preset)
    cfg.rlhf.dpo = _overlay(cfg.rlhf.dpo, {"max_steps": max_steps})
    _quiet_ml()
    with _progress() as progress:
        path, summary = run_dpo(Workspace(workspace), cfg, progress=progress, log=lambda s: err.print(Text(s)))
    out.print(f"{summary['steps']} steps on {summary['pairs']} pairs in {summary['seconds']} s "
              f"({summary['pairs_truncated']} prompts lost their oldest turns to max_length); loss "
              f"{summary['train_loss']}\nadapter: {path}")  # fmt: skip


@train_app.command("grpo")
def train_grpo(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many optimizer steps.")] = None,
) -> None:
    """GRPO with the reward model as reward (TRL's GRPOTrainer): WORKSPACE/adapters/grpo/.

    Samples rlhf.grpo.num_generations replies per ranked context from the SFT adapter, scores
    them with `train reward`'s model and trains on each reply's score against its group's. An
    alternative to `train ppo` without a critic.
    """
    from wechat_avatar.train.grpo import run_grpo

    cfg = _config(config, preset)
    cfg.rlhf.grpo = _overlay(cfg.rlhf.grpo, {"max_steps": max_steps})
    _quiet_ml()
    with _progress() as progress:
        path, summary = run_grpo(Workspace(workspace), cfg, progress=progress, log=lambda s: err.print(Text(s)))
    rewards = [row["reward"] for row in summary["log"]]
    out.print(f"{summary['steps']} steps on {summary['prompts']} contexts in {summary['seconds']} s; reward "
              f"{rewards[0]:.3f} -> {rewards[-1]:.3f}\nadapter: {path}")  # fmt: skip


rlhf_app = typer.Typer(
    help="Candidates for RLHF: sample them from the SFT model, judge, label by hand; "
    "WORKSPACE/rlhf/ranked.jsonl in the seed's format.",
    no_args_is_help=True,
)
app.add_typer(rlhf_app, name="rlhf")


def _problems(lines: list[str], what: str) -> None:
    """Bad records are counted and shown, never fatal: the good ones were used, the bad ones kept."""
    if lines:
        err.print(Text(f"{len(lines)} bad {what} skipped (kept in the file as they were):"))
        for line in lines[:20]:
            err.print(Text(f"  {line}"))


@rlhf_app.command("sample")
def rlhf_sample(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    config: ConfigOpt = None,
    adapter: AdapterOpt = None,
    k: Annotated[int | None, typer.Option("--k", help="Candidates per context (default: rlhf.k, 3).")] = None,
    contexts: Annotated[
        int | None, typer.Option(help="Held-out contexts at most, 0 = all (default: rlhf.contexts).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed (default: rlhf.seed).")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Longest candidate in tokens.")] = None,
) -> None:
    """K candidate replies per held-out context from the SFT model, into WORKSPACE/rlhf/ranked.jsonl.

    Held-out sessions that open with a provocation, and every context of WORKSPACE/rlhf/probes.txt
    (written with defaults on first use; add your own), are always included. Seeded temperature
    sampling (rlhf.temperature). Contexts you already labeled are left alone. Next: `rlhf judge`.
    """
    from wechat_avatar.rlhf.sample import sample

    cfg = _config(config)
    cfg.rlhf = _overlay(cfg.rlhf, {"k": k, "contexts": contexts, "seed": seed, "max_new_tokens": max_new_tokens},
                        {"k": "--k"})  # fmt: skip
    _quiet_ml()
    ws = Workspace(workspace)
    with _progress() as progress:
        done = sample(ws, cfg, adapter, progress)
    _problems(done.skipped, "held-out samples")
    out.print(f"{done.candidates} candidates for {done.contexts} contexts ({done.provocations} held-out "
              f"provocations, {done.probes} probes from {ws.probes}) -> {done.path}"
              + (f"; {done.kept_labeled} contexts you labeled were kept" if done.kept_labeled else "")
              + f"\nNext: [bold]wechat-avatar rlhf judge --workspace {workspace}[/]")  # fmt: skip


@rlhf_app.command("judge")
def rlhf_judge(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    config: ConfigOpt = None,
    judge_url: Annotated[
        str | None, typer.Option(help="An OpenAI-compatible base URL (…/v1) to judge with an LLM; default offline.")
    ] = None,
    judge_model: Annotated[str | None, typer.Option(help="The LLM judge's model (default: rlhf.judge_model).")] = None,
    allow_remote: Annotated[
        bool, typer.Option(help="Allow --judge-url off this machine: your chat text is sent there.")
    ] = False,
    again: Annotated[bool, typer.Option("--again", help="Judge again records a judge already scored.")] = False,
) -> None:
    """Score every candidate 1..k (k = best), records a person labeled aside.

    Offline by default (rlhf/judge.py: civility, in-character style, relevance to the last message).
    With --judge-url an LLM scores by a written rubric (civil and gentle, sounds like you, answers what
    was said); its key comes from $WECHAT_AVATAR_JUDGE_KEY. A URL beyond loopback needs --allow-remote.
    """
    from wechat_avatar.config import JUDGE_KEY_ENV
    from wechat_avatar.rlhf.judging import judge_workspace, to_judge
    from wechat_avatar.rlhf.llm_judge import LLMJudge, check_url
    from wechat_avatar.rlhf.ranked import RankedFile

    cfg = _config(config)
    cfg.rlhf = _overlay(cfg.rlhf, {"judge_url": judge_url, "judge_model": judge_model})
    ws = Workspace(workspace)
    if not ws.ranked.is_file():
        raise UsageError(f"no candidates in {ws.ranked}", hint=f"run `wechat-avatar rlhf sample -w {workspace}` first")
    llm = None
    if url := cfg.rlhf.judge_url:
        host = check_url(url, allow_remote)
        todo = len(to_judge(RankedFile.read(ws.ranked), again))
        err.print(Text(f"sending {todo} contexts (chat text and candidates) to {host} ({url}) to be judged by "
                       f"{cfg.rlhf.judge_model}"))  # fmt: skip
        llm = LLMJudge(url, cfg.rlhf.judge_model, os.environ.get(JUDGE_KEY_ENV), cfg.rlhf.judge_timeout_s)
    try:
        with _progress() as progress:
            done = judge_workspace(ws, llm, again=again, progress=progress)
    finally:
        if llm is not None:
            llm.close()
    _problems(done.problems, "records")
    for line in done.fell_back:
        err.print(Text(f"  {line}"))
    out.print(f"judged {done.judged} contexts ({len(done.fell_back)} fell back to the offline judge); "
              f"{done.labeled} labeled by you and {done.unchanged} judged before were left as they were "
              f"-> {done.path}\nNext: [bold]wechat-avatar rlhf label -w {workspace}[/] to check them")  # fmt: skip


@rlhf_app.command("import")
def rlhf_import(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="JSON lines or a JSON array of the seed's records.")],
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    labeled: Annotated[
        bool, typer.Option(help="Take the file's records as checked by a person (the seed's were).")
    ] = True,
) -> None:
    """Add a ranked file in the seed's format {"source","resp1".."respK","scores"} to WORKSPACE/rlhf/ranked.jsonl.

    Contexts you already labeled in the workspace are never replaced; bad records are listed and skipped.
    """
    from wechat_avatar.rlhf.seedfile import import_file

    done = import_file(Workspace(workspace), file, labeled=labeled)
    _problems(done.problems, f"records of {file}")
    out.print(f"imported {done.records} records into {done.path}"
              + (f"; {done.kept_labeled} contexts you had labeled were kept as they were" if done.kept_labeled
                 else ""))  # fmt: skip


@rlhf_app.command("export")
def rlhf_export(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Where to write: .json = a JSON array, else lines.")],
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Write WORKSPACE/rlhf/ranked.jsonl in the seed's format (its fields only, scores as strings)."""
    from wechat_avatar.rlhf.seedfile import export_file

    done = export_file(Workspace(workspace), file)
    _problems(done.problems, "records")
    out.print(f"exported {done.records} records to {done.path}")


@rlhf_app.command("label")
def rlhf_label(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    config: ConfigOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on: loopback only (the page shows your chats).")
                    ] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="Port (default: rlhf.label_port, 8502).")] = None,
) -> None:  # fmt: skip
    """The labeling page: open http://HOST:PORT to check the judge's scores by hand.

    Each context shows with its candidates best first: reorder them, edit a score, or rewrite one (the
    rewrite becomes the best candidate). Save writes WORKSPACE/rlhf/ranked.jsonl at once (atomically);
    what you saved is marked labeled, and no later sample, judge or import replaces it.
    """
    import uvicorn

    from wechat_avatar.dataset.splits import self_name
    from wechat_avatar.rlhf.label import LabelSettings, build_app, check_settings

    cfg = _config(config)
    ws = Workspace(workspace)
    settings = LabelSettings(ws.ranked, self_name(ws), host, cfg.rlhf.label_port if port is None else port)
    check_settings(settings)
    if not ws.ranked.is_file():
        raise UsageError(f"nothing to label: no {ws.ranked}", hint=f"run `wechat-avatar rlhf sample -w {workspace}` "
                         "and `rlhf judge` first, or `rlhf import FILE`")  # fmt: skip
    err.print(Text(f"labeling page: http://{settings.host}:{settings.port}  ({ws.ranked})"))
    uvicorn.run(build_app(settings), host=settings.host, port=settings.port, log_level="warning", access_log=False)


@app.command()
def connect(
    channel: Annotated[
        str | None, typer.Argument(help="official-account, wecom, kf or clawbot (none with --stop / --resume).")
    ] = None,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    config: ConfigOpt = None,
    stop: Annotated[bool, typer.Option("--stop", help="Kill switch: every running channel stops answering.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Turn the kill switch off again.")] = False,
    draft: Annotated[bool, typer.Option("--draft", help="Draft-only: log the replies, send nothing.")] = False,
    serve_url: Annotated[str | None, typer.Option(help="serve's base URL (default: channels.serve_url).")] = None,
    host: Annotated[str | None, typer.Option(help="Callback address (default: channels.host, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Callback port (default: channels.port, 8080).")] = None,
) -> None:
    """Connect the avatar to WeChat through an official channel; it answers through `serve`.

    official-account: 公众号 followers (server callback); wecom: a WeCom app's members; kf: anyone
    through 微信客服 (WeChat Customer Service); clawbot: you, from your phone (chat with your avatar, or
    draft replies: `@name: their message`). Nobody is answered until listed in channels.allow (ClawBot:
    its owner). Every message is logged to WORKSPACE/channels/log.jsonl. Settings: channels: in
    avatar.yaml; how-to: docs/channels.md.
    """
    from wechat_avatar.channels import connect as channels

    ws = Workspace(workspace)
    if stop or resume:
        if stop:
            channels.stop(ws)
            out.print(f"kill switch on ({ws.channel_stop}): channels stop answering; undo with --resume")
        elif channels.resume(ws):
            out.print("kill switch off: channels answer again")
        else:
            out.print("the kill switch was not on")
        return
    if channel is None:
        raise UsageError("name a channel", hint="wechat-avatar connect official-account|wecom|kf|clawbot")
    cfg = _config(config)
    cfg.channels = _overlay(cfg.channels, {"serve_url": serve_url, "host": host, "port": port,
                                           "draft_only": draft or None,
                                           "api_key": cfg.channels.api_key or os.environ.get(API_KEY_ENV)})  # fmt: skip
    channels.connect(channel, ws, cfg.channels, lambda line: err.print(Text(line)))
memory_app = typer.Typer(
    help="Memory of your own history: your past replies, recalled into the prompt (memory.enabled).",
    no_args_is_help=True,
)
app.add_typer(memory_app, name="memory")


@memory_app.command("build")
def memory_build(workspace: WorkspaceOpt = DEFAULT_WORKSPACE, config: ConfigOpt = None) -> None:
    """Index your past exchanges (each reply of yours with the message it answered) into WORKSPACE/memory/.

    Full-text search over jieba words (SQLite FTS5); PII gets the dataset's pseudonyms. Run it
    again after a new ingest: only the chats that changed are indexed again. Then set
    `memory: {enabled: true}` in avatar.yaml for chat, serve and eval to use it.
    """
    from wechat_avatar.memory.build import build_memory
    from wechat_avatar.store import Store

    cfg, ws = _config(config), Workspace(workspace)
    with Store.open(ws, create=False) as store, _progress() as progress:
        report = build_memory(store, ws, cfg, progress("memory", store.count("messages")))
    how = "built" if report.rebuilt else f"updated ({report.chats_unchanged} chats unchanged)"
    out.print(f"memory {how}: {report.chats_cut} chats indexed, {report.chats_left_out} left out as in the dataset, "
              f"{report.messages_skipped} unreadable or empty messages skipped")  # fmt: skip
    out.print(f"{report.exchanges} exchanges in {report.path}")
    if report.exchanges == 0:
        err.print("warning: no replies of yours to index yet; memory stays empty until you ingest more history")


@memory_app.command("profile")
def memory_profile(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    config: ConfigOpt = None,
    refresh: Annotated[bool, typer.Option(help="Mine it anew over an existing profile (your edits are lost).")] = False,
) -> None:
    """Your persona facts, mined from your replies with plain rules, into WORKSPACE/memory/profile.yaml.

    How you address each friend, your catchphrases and stickers, your active hours, the places
    and names you mention most. Edit the file as you like: with memory on it becomes the system
    prompt's persona block (chat, serve, eval and training). Needs `memory build` first; an
    existing profile is shown, not overwritten, unless --refresh.
    """
    from wechat_avatar.memory.profile import block, profile, read

    cfg, ws = _config(config), Workspace(workspace)
    path, mined = profile(ws, cfg, refresh)
    out.print(Text(path.read_text(encoding="utf-8")))
    out.print(Text(f"persona block:\n{block(read(path)) or '(empty: nothing goes into the prompt)'}"))
    how = "mined" if mined else "kept (yours; --refresh mines it anew)"
    out.print(f"profile {how}: {path}; edit it, and set memory.enabled: true to use it")


@app.command()
def types() -> None:
    """List message categories, their default placeholders, and which are dropped from training."""
    from wechat_avatar.categories import CATEGORIES
    from wechat_avatar.config import DEFAULT_DROP

    table = Table("category", "placeholder", "dropped", "what it is")
    for c in CATEGORIES.values():
        table.add_row(c.name, escape(c.placeholder), "yes" if c.name in DEFAULT_DROP else "", escape(c.doc))
    out.print(table)


def main() -> None:
    """Entry point: library errors become one line and an exit code, never a traceback."""
    try:
        app()
    except AvatarError as error:
        err.print(Text.assemble(("error: ", "red"), str(error)))
        if error.hint:
            err.print(Text(f"hint: {error.hint}"))
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted; what was already committed to chat.db is kept")
        sys.exit(130)
    except OSError as error:
        err.print(Text.assemble(("error: ", "red"), f"{error.strerror or error}: {error.filename or ''}"))
        sys.exit(1)
    except Exception as error:
        if os.environ.get("WECHAT_AVATAR_DEBUG"):
            raise
        err.print(Text.assemble(("internal error: ", "red"), f"{type(error).__name__}: {error}"))
        err.print("hint: this is a bug; rerun with WECHAT_AVATAR_DEBUG=1 for the traceback and report it")
        sys.exit(70)
