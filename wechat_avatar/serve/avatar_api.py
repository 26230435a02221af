"""Our native API: the server keeps each friend's conversation, so a client sends only what was said.

    POST   /v1/avatar/reply                    {"friend", "message" | "messages"} -> {"bubbles", …}
                                               (with "stream": true, SSE: the bubbles so far, then the reply)
    GET    /v1/avatar/friends                  who the page offers: the busiest contacts, friends with history
    GET    /v1/avatar/friends/{friend}/history what the server remembers of that friend
    DELETE /v1/avatar/friends/{friend}/history forget it
    POST   /v1/avatar/corrections              {"friend", "better"}: the last reply was bad, `better` is what it
                                               should have said -> WORKSPACE/rlhf/ranked.jsonl (for RLHF)

One friend's turns run one after another; different friends' are batched together.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from wechat_avatar.errors import UsageError
from wechat_avatar.generate import BUBBLE, bubbles
from wechat_avatar.rlhf.corrections import last_reply
from wechat_avatar.rlhf.corrections import record as record_correction
from wechat_avatar.serve import protocol as p
from wechat_avatar.serve.engine import Reply, Sampling
from wechat_avatar.serve.gate import APIError
from wechat_avatar.serve.replies import SSE_HEADERS, Replies, failed, listener, newest, shown, usage_of


def avatar_router(replies: Replies) -> APIRouter:
    router, history = APIRouter(), replies.history
    turns: set[asyncio.Future[Reply]] = set()  # streamed turns still generating (held so none is collected)

    @router.post("/v1/avatar/reply", response_model=None)
    async def avatar_reply(body: p.ReplyRequest) -> p.ReplyResponse | StreamingResponse:
        replies.check_texts(body.said, "messages" if body.messages is not None else "message")
        how = replies.sampling(body.max_tokens, body.temperature, body.top_p, body.seed)
        key, name = replies.friends.resolve(body.friend)
        if body.stream:
            return StreamingResponse(reply_events(key, name, body.said, how), media_type="text/event-stream",
                                     headers=SSE_HEADERS)  # fmt: skip
        reply = await replies.converse(key, name, body.said, how)
        return p.ReplyResponse(friend=key, name=name, bubbles=reply.bubbles, usage=usage_of(reply),
                               finish_reason=reply.finish_reason)  # fmt: skip

    async def reply_events(key: str, name: str, texts: list[str], how: Sampling) -> AsyncIterator[str]:
        """The bubbles so far as the batch decodes, the whole reply with usage, [DONE]; an error as an error
        event then [DONE]. The turn runs as a task of its own: a friend who leaves mid-reply (a reload)
        still finds it in the history, saved as a plain request saves it."""
        heard = asyncio.Queue[str]()

        def finished(t: asyncio.Future[Reply]) -> None:
            turns.discard(t)
            if not t.cancelled():
                t.exception()  # retrieved: a failure after the client left is no "never retrieved" warning

        turn = asyncio.ensure_future(replies.converse(key, name, texts, how, listener(heard)))
        turns.add(turn)
        turn.add_done_callback(finished)
        sent: list[str] = []
        async for raw in newest(heard, turn):
            if (now := bubbles(shown(raw, BUBBLE))) and now != sent:
                sent = now
                yield f"data: {p.ReplySoFar(bubbles=now).model_dump_json()}\n\n"
        try:
            reply = turn.result()
        except Exception as error:  # headers are sent: the error travels as an event
            yield failed(error)
            return
        done = p.ReplyResponse(friend=key, name=name, bubbles=reply.bubbles, usage=usage_of(reply),
                               finish_reason=reply.finish_reason)  # fmt: skip
        yield f"data: {done.model_dump_json()}\n\n"
        yield "data: [DONE]\n\n"

    @router.get("/v1/avatar/friends")
    async def list_friends() -> p.FriendList:
        listed = replies.friends.listed(history.friends())
        return p.FriendList(avatar=replies.engine.persona.name, friends=[p.Friend(**f._asdict()) for f in listed])

    @router.get("/v1/avatar/friends/{friend}/history")
    async def read_history(friend: str) -> p.HistoryResponse:
        key, name = replies.friends.resolve(friend)
        kept = [p.HistoryMessage(role="avatar" if line.is_self else "friend", name=line.name, text=line.text,
                                 ts_ms=line.ts_ms) for line in history.lines(key)]  # fmt: skip
        return p.HistoryResponse(friend=key, name=name, messages=kept)

    @router.delete("/v1/avatar/friends/{friend}/history")
    async def clear_history(friend: str) -> p.Cleared:
        key, _ = replies.friends.resolve(friend)
        async with replies.locks[key]:
            return p.Cleared(friend=key, deleted=history.clear(key))

    @router.post("/v1/avatar/corrections")
    async def correct(body: p.CorrectionRequest) -> p.CorrectionResponse:
        """Serve holds each friend's history, so it knows the context the reply answered; web only forwards."""
        if replies.ranked is None:
            raise APIError(404, "this server takes no corrections", code="corrections_off")
        key, _ = replies.friends.resolve(body.friend)
        async with replies.locks[key]:
            before, said = last_reply(history.lines(key))
        if not said:
            raise APIError(409, "there is no reply to correct yet: say something first", code="nothing_to_correct")
        reply, persona = BUBBLE.join(line.text for line in said), replies.engine.persona
        try:
            made = await asyncio.to_thread(record_correction, replies.ranked, persona.prompt(before), reply,
                                           body.better, persona.name, "web")  # fmt: skip
        except UsageError as error:
            raise APIError(422, str(error), param="better", code="bad_correction") from None
        return p.CorrectionResponse(friend=key, context=made.source, said=reply, better=made.responses[0])

    return router
