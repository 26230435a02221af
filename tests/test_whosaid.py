"""Who said it: the discriminator tells a person from others, and `dataset --as` builds the other side."""

from __future__ import annotations

import hashlib
import random
import shutil
import sqlite3
from pathlib import Path

from conftest import run_cli

from wechat_avatar.eval import whosaid
from wechat_avatar.workspace import Workspace


def _person(rng: random.Random, starts: list[str], ends: list[str], n: int) -> list[str]:
    return [f"{rng.choice(starts)}<s>{rng.choice(ends)}" for _ in range(n)]


def test_the_discriminator_separates_two_synthetic_people() -> None:
    rng = random.Random(7)
    a = _person(rng, ["哈哈哈笑死", "冲冲冲", "离谱", "绝了家人们"], ["[旺柴]", "开黑吗", "我直接好家伙"], 80)
    b = _person(rng, ["好的呢", "嗯嗯收到", "谢谢您", "辛苦啦"], ["😊", "明天再说哦", "早点休息呀"], 80)
    judge = whosaid.Discriminator.of(whosaid.Texts(a[:50], b[:50]))
    assert judge is not None and judge.trained_on == {"person": 50, "friends": 50}
    assert judge.share(a[50:]) == 100.0 and judge.share(b[50:]) == 0.0
    swapped = whosaid.Discriminator.of(whosaid.Texts(b[:50], a[:50]))  # the same measure for the other person
    assert swapped is not None and swapped.share(b[50:]) == 100.0 and swapped.share(a[50:]) == 0.0
    assert whosaid.Discriminator.of(whosaid.Texts(a[:3], b)) is None  # too little to learn from


def test_dataset_as_contact_builds_their_dataset_and_the_control_separates(
    dataset_workspace: Path, tmp_path: Path
) -> None:
    ws = Path(shutil.copytree(dataset_workspace, tmp_path / "ws"))
    mine = hashlib.sha256((ws / "dataset" / "manifest.json").read_bytes()).hexdigest()
    db = sqlite3.connect(ws / "chat.db")
    (contact,) = db.execute("SELECT sender FROM messages m JOIN chats c ON c.id = m.chat_id WHERE c.kind = 'private' "
                            "AND m.is_self = 0 GROUP BY sender ORDER BY COUNT(*) DESC LIMIT 1").fetchone()  # fmt: skip
    theirs_in_db = {t for (t,) in db.execute("SELECT text FROM messages WHERE sender = ? AND chat_id = ?",
                                             (contact, contact))}  # fmt: skip
    built = run_cli("dataset", "--workspace", ws, "--as", contact)
    assert built.returncode == 0, built.stderr
    other = Workspace(ws / "as" / contact)
    texts = whosaid.split_texts(other.split("train"))
    replies = {bubble for reply in texts.person for bubble in reply.split("<s>")}
    assert len(replies & theirs_in_db) > len(replies) // 2  # their own words are the targets now
    assert hashlib.sha256((ws / "dataset" / "manifest.json").read_bytes()).hexdigest() == mine  # yours untouched
    judge = whosaid.Discriminator.of(whosaid.split_texts(Workspace(ws).split("train")))
    real = whosaid.split_texts(Workspace(ws).split("test")).person
    got = whosaid.summary(Workspace(ws), judge, real)
    assert got["real"] > 60 and got["real"] - got["friends"] > 30
    assert got["others"][contact]["replies"] > 0 and got["others"][contact]["share"] < got["real"]
    nobody = run_cli("dataset", "--workspace", ws, "--as", "nobody-at-all")
    assert nobody.returncode != 0 and "no contact" in nobody.stderr and "Traceback" not in nobody.stderr
