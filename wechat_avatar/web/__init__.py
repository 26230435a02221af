"""`wechat-avatar web`: the chat page friends open in a browser to talk to the served avatar.

Why a small FastAPI app serving one static page, and not Streamlit as the seed had:

- The API key stays on this server. The page calls this server's /api/… same-origin, and this
  server forwards each call to `serve` over HTTP with `Authorization: Bearer KEY`; the browser
  never sees the key, and no CORS is needed. (Streamlit would proxy too, but only from inside its
  rerun loop.)
- Replies stream bubble by bubble: the page reads the serve API's server-sent events with
  fetch + ReadableStream and redraws the reply's bubbles as they grow. Streamlit's model reruns the
  whole script on every input and has no way to push partial replies from an outside stream
  without threads and polling.
- Nothing to build and nothing from a CDN: plain HTML, CSS and JS shipped as package data work on
  a machine with no internet, and FastAPI and uvicorn are already the serve stage's dependencies
  (Streamlit would add its own tornado server, a websocket protocol and a dozen-plus packages).
- The errors are ours to phrase: API down, too slow, a wrong key (401) or too many requests (429,
  with Retry-After) each become one sentence in the page, decided here and tested in a real browser.
- The RLHF label page (a later issue, "same UI stack as the chat page") reuses the app and the
  static files: one more page and a few /api routes.

The page talks to `serve` over HTTP only: nothing here imports the reply engine or the model.
"""
