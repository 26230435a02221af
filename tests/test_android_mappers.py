"""The pure Android mappers: one table row in, canonical records out."""

from __future__ import annotations

import blackboxprotobuf
import pytest

from wechat_avatar.android_crypto import android_key
from wechat_avatar.canonical import Contact, ContactKind, Member, Message
from wechat_avatar.config import IngestConfig
from wechat_avatar.sources.android import (
    android_type,
    contact_from_rcontact,
    members_from_chatroom,
    message_from_row,
    split_group_prefix,
    strangers_from_chatroom,
)
from wechat_avatar.sources.base import BadRecord
from wechat_avatar.sources.detect import candidate_keys, uin_from_prefs


def row(**kw: object) -> list[object]:
    base = {"msgId": 7, "msgSvrId": 9001, "type": 1, "isSend": 0, "createTime": 1687360045123,
            "talker": "wxid_hu", "content": "对"}  # fmt: skip
    return list({**base, **kw}.values())  # MESSAGE_COLUMNS order


def test_key_is_first_seven_hex_of_md5_imei_uin() -> None:
    # md5("1234567890ABCDEF" + "1727374951")
    import hashlib

    assert android_key("1234567890ABCDEF", "1727374951") == hashlib.md5(b"1234567890ABCDEF1727374951").hexdigest()[:7]
    assert len(android_key("x", -5)) == 7


@pytest.mark.parametrize(
    ("code", "expected"),
    [(1, (1, 0)), (3, (3, 0)), (47, (47, 0)), (49, (49, 0)), (822083633, (49, 57)), (419430449, (49, 2000)),
     (1107296305, (49, 87)), (436207665, (49, 2001)), (1090519089, (49, 6)), (922746929, (49, 62)),
     (268445456, (10000, 0)), (570425393, (10002, 0)), (-1879048186, (49, 17)), (10000, (10000, 0))],
)  # fmt: skip
def test_android_packed_type_codes(code: int, expected: tuple[int, int]) -> None:
    assert android_type(code) == expected


def test_private_message_from_friend() -> None:
    msg = message_from_row(row(), "android:wxid_me", "wxid_me")
    assert msg == Message(source="android:wxid_me", source_id="7", chat_id="wxid_hu", sender="wxid_hu",
                          is_self=False, timestamp_ms=1687360045123, base_type=1, sub_type=0, content="对",
                          source_type=1, server_id=9001)  # fmt: skip


def test_own_message_and_group_prefix() -> None:
    own = message_from_row(row(isSend=1, talker="1@chatroom", content="好"), "s", "wxid_me")
    assert (own.sender, own.is_self, own.content) == ("wxid_me", True, "好")
    theirs = message_from_row(row(talker="1@chatroom", content="wxid_a-b:\n开冲"), "s", "wxid_me")
    assert (theirs.sender, theirs.is_self, theirs.content) == ("wxid_a-b", False, "开冲")


def test_group_system_message_has_no_sender() -> None:
    msg = message_from_row(row(type=10000, talker="1@chatroom", content='"A"邀请"B"加入了群聊'), "s", "me")
    assert (msg.sender, msg.base_type, msg.content) == ("", 10000, '"A"邀请"B"加入了群聊')


def test_quote_keeps_packed_code_and_bytes_content_decoded() -> None:
    msg = message_from_row(row(type=822083633, content=b"<msg/>", talker=b"wxid_hu"), "s", "me")
    assert (msg.base_type, msg.sub_type, msg.source_type, msg.chat_id) == (49, 57, 822083633, "wxid_hu")


def test_invalid_utf8_is_kept_with_replacement() -> None:
    msg = message_from_row(row(content=b"ok \xe4\xbd"), "s", "me")
    assert msg.content == "ok \ufffd"


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [("talker", "", "no talker"), ("type", "x", "non-numeric type"), ("createTime", None, "non-numeric createTime")],
)
def test_bad_rows_raise_named_reasons(field: str, value: object, reason: str) -> None:
    with pytest.raises(BadRecord) as info:
        message_from_row(row(**{field: value}), "s", "me")
    assert info.value.reason == reason


def test_zero_server_id_means_none() -> None:
    assert message_from_row(row(msgSvrId=0), "s", "me").server_id is None
    assert message_from_row(row(msgSvrId=""), "s", "me").server_id is None


def test_group_prefix_only_strips_real_prefixes() -> None:
    assert split_group_prefix("wxid_x:\nhi") == ("wxid_x", "hi")
    assert split_group_prefix("说: 你好\n第二行") == ("", "说: 你好\n第二行")
    assert split_group_prefix("<msg>a:\n</msg>") == ("", "<msg>a:\n</msg>")


def test_contacts_are_classified() -> None:
    def c(username: str, type_: int = 3, verify: int = 0) -> Contact:
        return contact_from_rcontact({"username": username, "alias": "", "conRemark": "R", "nickname": "N",
                                      "type": type_, "verifyFlag": verify}, "wxid_me")  # fmt: skip

    assert c("wxid_me").kind is ContactKind.SELF
    assert c("wxid_f").kind is ContactKind.FRIEND and c("wxid_f").display_name == "R"
    assert c("wxid_s", type_=0).kind is ContactKind.STRANGER
    assert c("gh_x").kind is ContactKind.OFFICIAL and c("wxid_brand", verify=8).kind is ContactKind.OFFICIAL
    assert c("1@chatroom").kind is ContactKind.GROUP
    assert c("filehelper").kind is ContactKind.SYSTEM
    assert c("a@openim").kind is ContactKind.OPENIM


def test_chatroom_members_with_group_nicknames() -> None:
    typedef = {"1": {"type": "message", "message_typedef": {"1": {"type": "string"}, "2": {"type": "string"}}}}
    blob = blackboxprotobuf.encode_message({"1": [{"1": "wxid_a", "2": "群里的阿A"}, {"1": "wxid_b"}]}, typedef)
    room = {"chatroomname": "1@chatroom", "memberlist": "wxid_a;wxid_b;wxid_c", "displayname": "A、B、C",
            "roomdata": blob}  # fmt: skip
    assert members_from_chatroom(room) == [
        Member("1@chatroom", "wxid_a", "群里的阿A"),
        Member("1@chatroom", "wxid_b", ""),
        Member("1@chatroom", "wxid_c", ""),
    ]
    assert members_from_chatroom({**room, "roomdata": blob.hex()})[0].display_name == "群里的阿A"
    assert members_from_chatroom({**room, "roomdata": b"\xff\xff\x01"})[0].display_name == ""
    assert [s.nickname for s in strangers_from_chatroom(room)] == ["A", "B", "C"]
    assert strangers_from_chatroom({**room, "displayname": "A、B"}) == []


def test_uin_from_shared_prefs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    system = tmp_path / "system_config_prefs.xml"
    system.write_text("<?xml version='1.0' encoding='utf-8' standalone='yes' ?>\n"
                      '<map>\n    <int name="default_uin" value="-12345" />\n</map>\n')  # fmt: skip
    auth = tmp_path / "auth_info_key_prefs.xml"
    auth.write_text('<map><boolean name="key_auth_update_version" value="true" />'
                    '<int name="_auth_uin" value="777" /></map>')  # fmt: skip
    empty = tmp_path / "other.xml"
    empty.write_text('<map><int name="default_uin" value="0" /></map>')
    assert uin_from_prefs(system) == "-12345"
    assert uin_from_prefs(auth) == "777"
    assert uin_from_prefs(empty) is None
    (tmp_path / "broken.xml").write_bytes(b"\x00\x01garbage")
    assert uin_from_prefs(tmp_path / "broken.xml") is None


def test_candidate_keys_try_every_imei_uin_pair() -> None:
    cfg = IngestConfig(imei="860000000000001", uin="5")
    keys = candidate_keys(cfg, ["5", "6"])
    assert keys == [android_key("860000000000001", "5"), android_key("1234567890ABCDEF", "5"),
                    android_key("860000000000001", "6"), android_key("1234567890ABCDEF", "6")]  # fmt: skip
    assert candidate_keys(IngestConfig(key="ABCDEF0"), ["5"]) == ["abcdef0"]
