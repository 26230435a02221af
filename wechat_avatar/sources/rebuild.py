"""Raw content rebuilt from what an export tool left of it, so the one renderer can read it.

PyWxDump, chatlog and MemoTrace keep a rendering or a few fields instead of the payload;
each reader turns what survived into the smallest XML the renderer reads the same way as
the original (title, type, the quoted line …). What an export dropped stays dropped:

    appmsg(5, "打工人的周一能有多离谱", url="https://…")
    -> '<msg><appmsg><title>打工人的周一能有多离谱</title><type>5</type><url>https://…</url></appmsg></msg>'
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from wechat_avatar.render import CATEGORIES, TABLE


def appmsg(sub_type: int, title: str = "", **children: str) -> str:
    """A type-49 payload: its type, title and any plain child elements that are not empty."""
    body = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in children.items() if value)
    return f"<msg><appmsg><title>{escape(title)}</title><type>{sub_type}</type>{body}</appmsg></msg>"


def bare_appmsg(sub_type: int) -> str:
    """A type-49 payload known only by its type: enough for a placeholder category ("[文件]");
    "" where the text would be the lost title itself (quote, pasted text, 接龙), so it renders
    as failed with "empty content" rather than as an empty message."""
    category = TABLE.get((49, sub_type), ("unknown", None))[0]
    return appmsg(sub_type) if CATEGORIES[category].placeholder else ""


def words(sub_type: int, text: str) -> str:
    """A type-49 payload of which a tool kept only some text, in no shape we can rebuild: the
    text kept whole as its title, so no words are lost and a quote renders as its reply
    (`bare_appmsg` where there is no text)."""
    return appmsg(sub_type, text) if text else bare_appmsg(sub_type)


def quote(title: str, name: str, quoted: str, quoted_type: int = 1) -> str:
    """A quote reply (49/57): the new text, and who said the quoted line."""
    refer = (
        f"<refermsg><type>{quoted_type}</type><displayname>{escape(name)}</displayname>"
        f"<content>{escape(quoted)}</content></refermsg>"
    )
    return f"<msg><appmsg><title>{escape(title)}</title><type>57</type>{refer}</appmsg></msg>"


def transfer(amount: str, memo: str, pay_subtype: int) -> str:
    """A transfer (49/2000); paysubtype 1 sent, 3 received."""
    pay = f"<wcpayinfo><paysubtype>{pay_subtype}</paysubtype><feedesc>{escape(amount)}</feedesc>"
    pay += f"<pay_memo>{escape(memo)}</pay_memo></wcpayinfo>"
    return f"<msg><appmsg><title>微信转账</title><type>2000</type>{pay}</appmsg></msg>"


def pat(template: str) -> str:
    """A pat (49/62) known only by its template ('"${wxid_a}" 拍了拍 "${wxid_b}"')."""
    record = f"<patMsg><records><record><templete>{escape(template)}</templete></record></records></patMsg>"
    return f"<msg><appmsg><title></title><type>62</type>{record}</appmsg></msg>"


def location(label: str, poiname: str, x: str = "", y: str = "") -> str:
    attrs = f"x={quoteattr(x)} y={quoteattr(y)} label={quoteattr(label)} poiname={quoteattr(poiname)}"
    return f"<msg><location {attrs} /></msg>"
