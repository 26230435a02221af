"""Turn one message's raw content into the text the dataset sees.

One plain table, `TABLE`, maps `(base_type, sub_type)` to a renderer; each entry sits beside
its function. `CATEGORIES` (categories.py) holds the seed's placeholders as defaults; `RenderConfig`
overrides them and names the categories to drop. Nothing here raises on bad content: a
message that cannot be read renders as its placeholder with status "failed" and a note.

    render(49, 57, '<msg><appmsg><title>我没问我爸</title><type>57</type><refermsg>'
                   '<type>1</type><displayname>??</displayname><content>我妈说可以</content>…')
    -> Rendered(text='我没问我爸', category='quote', status='ok', sub_type=57, quote='??: 我妈说可以')
"""

from __future__ import annotations

import functools
import html
import re
import threading
from collections.abc import Callable
from typing import NamedTuple

from lxml import etree

from wechat_avatar.categories import CATEGORIES, UNKNOWN_TEXT
from wechat_avatar.config import RenderConfig


class Rendered(NamedTuple):
    """What a message renders to. A NamedTuple, not a dataclass: ingest builds a million."""

    text: str  # what the dataset sees, never empty
    category: str  # a key of CATEGORIES
    status: str  # "ok" | "dropped" (category in cfg.drop; wins) | "unknown" (type we don't know) | "failed"
    sub_type: int  # for base 49 the appmsg <type> from the XML, else the given sub type
    quote: str = ""  # quote replies: "displayname: quoted text"
    note: str = ""  # why a message is unknown or failed


class Part(NamedTuple):
    """What a renderer found; `render` adds the placeholder, the cut and the status."""

    detail: str = ""  # text after the category's placeholder
    category: str = ""  # set only where the content decides the category (system messages)
    status: str = "ok"
    note: str = ""
    quote: str = ""


_OK = Part()
_EMPTY = Part(status="failed", note="empty content")
# recover=True drops a bare '&' with the text after it, and HTML-only entities (&nbsp;) hide
# the rest of the text from findtext: escape both, `_clean` undoes them after parsing
_BARE_AMP = re.compile(r"&(?!(?:amp|lt|gt|quot|apos|#\d+|#[xX][0-9a-fA-F]+);)")
_TAG = re.compile(r"<!\[CDATA\[|\]\]>|<[^>]*>")
_PAT_VAR = re.compile(r"\$\{([^}]*)\}")  # ${wxid_a}; ${fromusername@textstatusicon} is an icon
_TEMPLATE_VAR = re.compile(r"\$(\w+)\$")  # $username$, $names$ in sysmsgtemplate
_local = threading.local()  # an lxml parser must not be shared between threads


def _parser() -> etree.XMLParser:
    if not hasattr(_local, "parser"):
        _local.parser = etree.XMLParser(recover=True, huge_tree=True, resolve_entities=False, no_network=True)
    return _local.parser


def _parse(content: str) -> etree._Element | None:
    """Parse leniently from the first tag (skips a leftover `wxid:` prefix and `<?xml …?>`)."""
    start = content.find("<")
    if content.startswith("<?xml", start):
        end = content.find("?>", start)
        start = content.find("<", end) if end >= 0 else -1
    if start < 0:
        return None
    xml = content[start:]
    if "&" in xml:
        xml = _BARE_AMP.sub("&amp;", xml)
    try:
        return etree.fromstring(xml.encode("utf-8", "replace"), _parser())
    except etree.XMLSyntaxError:
        return None


class _Msg:
    """One message being rendered: its XML is parsed at most once, on first use."""

    __slots__ = ("_found", "_root", "content", "nested")

    def __init__(self, content: str, nested: bool = False) -> None:
        self.content = content
        self.nested = nested  # rendering the quoted message inside a quote
        self._root: etree._Element | bool | None = False
        self._found: dict[str, etree._Element | None] = {}

    @property
    def root(self) -> etree._Element | None:
        if self._root is False:
            self._root = _parse(self.content)
        return self._root  # type: ignore[return-value]

    def find(self, tag: str) -> etree._Element | None:
        """The root if it is a <tag>, else its first <tag> child (looked up once)."""
        root = self.root
        if root is None or root.tag == tag:
            return root
        if tag not in self._found:
            self._found[tag] = _find(root, tag)
        return self._found[tag]


def _find(el: etree._Element, path: str) -> etree._Element | None:
    """`el.find(path)` for a plain `a/b/c` path: the first match in document order.

    Hand-written because lxml's find and findtext go through ElementPath, in Python: walking
    the children in C is 2-3x faster, and a big ingest renders every link and quote this way.
    """
    first, _, rest = path.partition("/")
    for child in el.iterchildren(first):
        found = _find(child, rest) if rest else child
        if found is not None:
            return found
    return None


def _find_text(el: etree._Element, path: str) -> str | None:
    """`el.findtext(path)`: the first match's text ('' if it has none), None if none matches."""
    found = _find(el, path)
    return None if found is None else (found.text or "")


def _clean(value: str | None) -> str:
    # lxml undoes one level of escaping; exports often hold a second (`&amp;#x0A;`)
    if not value:
        return ""
    return (html.unescape(value) if "&" in value else value).strip()


def _field(el: etree._Element | None, path: str) -> str:
    return _clean(_find_text(el, path)) if el is not None else ""


def _attr(el: etree._Element, name: str) -> str:
    return _clean(el.get(name))


def _int(text: str | None, default: int) -> int:
    try:
        return int(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def _strip_tags(text: str) -> str:
    return " ".join(html.unescape(_TAG.sub("", text)).split())


def _failed(m: _Msg, expected: str) -> Part:
    if not m.content.strip():
        return _EMPTY
    root = m.root
    note = f"unparseable {expected} XML" if root is None else f"expected <{expected}>, got <{root.tag}>"
    return Part(status="failed", note=note)


# The table: (base_type, sub_type) -> (category, renderer). For base 49 the sub type is the
# appmsg <type> from the XML. ANY matches every sub type of a base.

ANY = -1
Renderer = Callable[[_Msg, RenderConfig], Part]
TABLE: dict[tuple[int, int], tuple[str, Renderer]] = {}


def _on(category: str, *keys: tuple[int, int]) -> Callable[[Renderer], Renderer]:
    def add(fn: Renderer) -> Renderer:
        if clash := TABLE.keys() & set(keys):
            raise ValueError(f"{fn.__name__}: {sorted(clash)} already in TABLE")
        TABLE.update(dict.fromkeys(keys, (category, fn)))
        return fn

    return add


@_on("text", (1, ANY))
def _text(m: _Msg, cfg: RenderConfig) -> Part:
    return Part(m.content) if m.content else _EMPTY  # never unescaped: it is what was typed


@_on("image", (3, ANY), (49, 2))
@_on("voice", (34, ANY))
@_on("video", (43, ANY), (62, ANY))
@_on("sticker", (47, ANY), (49, 8))
@_on("status_op", (51, ANY))
@_on("transfer", (49, 2000), (49, 2011))
@_on("announcement", (49, 87))
@_on("favorite", (49, 40))
@_on("channels_live", (49, 63), (49, 88))
@_on("live_location", (49, 17))
@_on("red_packet", (49, 2001))
@_on("red_packet_cover", (49, 2003))
def _placeholder(m: _Msg, cfg: RenderConfig) -> Part:
    return _OK  # the content adds nothing a conversation needs (the seed kept only the placeholder)


@_on("app_text", (49, 1))
@_on("music", (49, 3), (49, 76), (49, 92))
@_on("link", (49, 4), (49, 5))
@_on("file", (49, 6), (49, 74))
@_on("chat_record", (49, 19))
@_on("note", (49, 24))
@_on("solitaire", (49, 53))
def _title(m: _Msg, cfg: RenderConfig) -> Part:
    app = m.find("appmsg")  # an official-account article may title only its mmreader item
    return Part(_field(app, "title") or _field(app, "mmreader/category/item/title"))


@_on("mini_program", (49, 33), (49, 36))
def _mini_program(m: _Msg, cfg: RenderConfig) -> Part:
    app = m.find("appmsg")
    return Part(_field(app, "title") or _field(app, "sourcedisplayname"))


@_on("channels", (49, 50), (49, 51))
def _channels(m: _Msg, cfg: RenderConfig) -> Part:
    app = m.find("appmsg")
    paths = ("finderFeed/desc", "finderFeed/nickname", "findernamecard/nickname", "title")
    return Part(next((text for path in paths if (text := _field(app, path))), ""))


@_on("quote", (49, 57))
def _quote(m: _Msg, cfg: RenderConfig) -> Part:
    app = m.find("appmsg")
    title = _field(app, "title")
    if m.nested:  # a quote inside a quote: its own quoted line is never shown
        return Part(title)
    ref = _find(app, "refermsg") if app is not None else None
    quote = _quoted(ref, cfg) if ref is not None else f": {UNKNOWN_TEXT}"
    return Part(f"{title}「{quote}」" if cfg.quote_context else title, quote=quote)


def _quoted(ref: etree._Element, cfg: RenderConfig) -> str:
    name = _field(ref, "displayname") or _field(ref, "fromusr")
    kind = _int(_find_text(ref, "type"), 1)
    raw = _find_text(ref, "content") or ""
    if kind == 1:
        return f"{name}: {_clean(raw)}"
    # anything else is the quoted message's own (escaped) content: render it like a message
    return f"{name}: {_render(kind, 0, raw, cfg, nested=True).text}"


@_on("pat", (49, 62))
def _pat_appmsg(m: _Msg, cfg: RenderConfig) -> Part:
    app = m.find("appmsg")  # the title is the sentence with names; the template has only wxids
    return Part(_field(app, "title") or _fill_pat(_field(app, "patMsg/records/record/templete")))


def _fill_pat(template: str) -> str:
    # no contact names here: a wxid stands in for its owner, icon slots vanish
    return _PAT_VAR.sub(lambda v: "" if "@" in v[1] else v[1], template)


@_on("card", (42, ANY))
def _card(m: _Msg, cfg: RenderConfig) -> Part:
    root = m.root
    return Part(_attr(root, "nickname")) if root is not None and root.tag == "msg" else _failed(m, "msg")


@_on("friend_request", (37, ANY), (66, ANY))
def _friend_request(m: _Msg, cfg: RenderConfig) -> Part:
    root = m.root
    return Part(_attr(root, "fromnickname")) if root is not None and root.tag == "msg" else _failed(m, "msg")


@_on("location", (48, ANY))
def _location(m: _Msg, cfg: RenderConfig) -> Part:
    loc = m.find("location")
    return Part(_attr(loc, "poiname") or _attr(loc, "label")) if loc is not None else _failed(m, "location")


# PC 3.x stores a call as a status code (WeChatMsg compress_content.call_decompress); "11"
# is a connected call whose duration lives elsewhere.
_PC_VOIP = {"5": "已取消", "8": "已拒绝", "7": "已在其他设备接听", "12": "已在其他设备拒绝"}


@_on("voip", (50, ANY), (64, ANY))
def _voip(m: _Msg, cfg: RenderConfig) -> Part:
    code = m.content.strip()
    if not code.startswith("<"):
        return Part(_PC_VOIP.get(code, "" if code.isdigit() else _strip_tags(code)))
    bubble = m.find("voipmsg")  # <voipinvitemsg> and friends carry no text
    return Part(_field(bubble, "VoIPBubbleMsg/msg")) if m.root is not None else _failed(m, "voipmsg")


@_on("system", (10000, ANY), (65, ANY))
def _system_text(m: _Msg, cfg: RenderConfig) -> Part:
    content = m.content
    if content.lstrip().startswith("<sysmsg"):
        return _sysmsg(m, cfg)
    if "领取了你的" in content and "红包" in content:
        return Part(category="red_packet_taken")
    if "收到红包" in content:
        return Part(category="red_packet")
    text = _strip_tags(content)
    if "撤回了一条消息" in content or "<revokemsg>" in content:
        return Part(text.removesuffix("重新编辑").rstrip(), category="revoke")  # self-revoke's edit link
    if "拍了拍" in content:
        return Part(text, category="pat")
    return Part(text) if text else _EMPTY


@_on("system", (10002, ANY))
def _sysmsg(m: _Msg, cfg: RenderConfig) -> Part:
    root = m.root
    if root is None or root.tag != "sysmsg":
        return _failed(m, "sysmsg")
    kind = root.get("type", "")
    if kind == "pat":
        return Part(_fill_pat(_field(root, "pat/template")), category="pat")
    if kind == "revokemsg":
        return Part(_strip_tags(_field(root, "revokemsg/replacemsg")), category="revoke")
    if kind == "sysmsgtemplate":
        return Part(_fill_template(_find(root, "sysmsgtemplate/content_template")))
    body = _find(root, kind) if kind.isidentifier() else None  # delchatroommember and the like
    text = _field(body, "plain") or _field(body, "text") or _field(body, "content")
    return Part(_strip_tags(text)) if text else Part(status="unknown", note=f"unknown sysmsg type {kind!r}")


def _fill_template(tpl: etree._Element | None) -> str:
    """'"$username$"邀请"$names$"加入了群聊' with each $name$ replaced from <link_list>."""
    if tpl is None:
        return ""
    links = {link.get("name"): _link_text(link) for link in tpl.iterfind("link_list/link")}
    template = _field(tpl, "template") or _field(tpl, "plain")
    return _strip_tags(_TEMPLATE_VAR.sub(lambda v: links.get(v[1], ""), template))


def _link_text(link: etree._Element) -> str:
    names = [_field(p, "nickname") or _field(p, "username") for p in link.iterfind("memberlist/member")]
    if names:
        return (_find_text(link, "separator") or "、").join(names)
    return _field(link, "title") or _field(link, "plain")


@functools.cache
def _default_config() -> RenderConfig:
    return RenderConfig()


def render(base_type: int, sub_type: int, content: str, cfg: RenderConfig | None = None) -> Rendered:
    """Render one message; never raises on bad content (see `Rendered.status` and `note`)."""
    cfg = cfg or _default_config()
    content = content or ""
    if base_type == 1 and content:  # most messages are text: no XML, no table lookup
        status = "dropped" if "text" in cfg.drop else "ok"
        return Rendered(_cut(content, cfg.max_chars), "text", status, sub_type)
    if base_type == 1:
        return _finish(cfg, "text", _EMPTY, sub_type)
    return _render(base_type, sub_type, content, cfg)


def _render(base_type: int, sub_type: int, content: str, cfg: RenderConfig, nested: bool = False) -> Rendered:
    m = _Msg(content, nested)
    if base_type == 49:
        return _render_appmsg(m, sub_type, cfg)
    entry = TABLE.get((base_type, sub_type)) or TABLE.get((base_type, ANY))
    if entry is None:
        return _finish(cfg, "unknown", Part(status="unknown", note=f"unknown type {base_type}"), sub_type)
    return _run(m, entry, sub_type, cfg)


def _render_appmsg(m: _Msg, sub_type: int, cfg: RenderConfig) -> Rendered:
    app = m.find("appmsg")
    if app is None:
        if m.root is not None and m.root.tag == "sysmsg":  # Android files some system XML under 49
            return _run(m, TABLE[(10002, ANY)], sub_type, cfg)
        category = TABLE.get((49, sub_type), ("unknown", None))[0]
        if not CATEGORIES[category].placeholder and _plain(m.content):  # its words are the message (a reply)
            return _finish(cfg, category, Part(m.content.strip()), sub_type)
        return _finish(cfg, category, _failed(m, "appmsg"), sub_type)
    sub_type = _int(_find_text(app, "type"), sub_type)  # trust the XML over the stored sub type
    entry = TABLE.get((49, sub_type))
    if entry is None:
        part = Part(status="unknown", note=f"unknown appmsg type {sub_type}")
        return _finish(cfg, "unknown", part, sub_type)
    return _run(m, entry, sub_type, cfg)


def _plain(content: str) -> bool:
    """Text with no payload XML: what a reader keeps where it could not rebuild the payload."""
    text = content.strip()
    return bool(text) and not text.startswith("<") and "<msg" not in text and "<appmsg" not in text


def _run(m: _Msg, entry: tuple[str, Renderer], sub_type: int, cfg: RenderConfig) -> Rendered:
    category, fn = entry
    try:
        part = fn(m, cfg)
    except Exception as err:  # one odd message must not stop a million-row ingest; the note says why
        part = Part(status="failed", note=f"{fn.__name__}: {type(err).__name__}: {err}"[:200])
    return _finish(cfg, part.category or category, part, sub_type)


def _finish(cfg: RenderConfig, category: str, part: Part, sub_type: int) -> Rendered:
    prefix = cfg.placeholders.get(category, CATEGORIES[category].placeholder)
    text = (prefix + part.detail if part.status == "ok" else prefix) or UNKNOWN_TEXT
    status = "dropped" if category in cfg.drop else part.status
    quote = _cut(part.quote, cfg.max_chars)
    return Rendered(_cut(text, cfg.max_chars), category, status, sub_type, quote, part.note)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
