// The chat page: pick who you are, load what the server remembers, send, and draw the reply's
// bubbles as its events arrive. Everything goes to this page's own server (/api/...); text is
// always set as textContent, never as HTML, since names and replies are not ours to trust.
"use strict";

const FRIEND_KEY = "wechat-avatar.friend"; // who you said you are, kept across reloads
const $ = (id) => document.getElementById(id);
let avatarName = "TA";

// --- small helpers ---------------------------------------------------------------------------

function colour(name) {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.codePointAt(0)) % 360;
  return `hsl(${h}, 55%, 48%)`;
}

function avatarOf(name, el = document.createElement("span")) {
  el.className = "face";
  el.textContent = Array.from(name.trim())[0] || "?";
  el.style.background = colour(name);
  el.title = name;
  return el;
}

function clock(ms) {
  const t = new Date(ms), now = new Date();
  const hm = t.toLocaleTimeString("zh-CN", { hour: "2-digit", minute: "2-digit" });
  return t.toDateString() === now.toDateString() ? hm : `${t.toLocaleDateString("zh-CN")} ${hm}`;
}

function notify(message, ok = false) {
  const box = $("notice");
  box.textContent = message;
  box.hidden = !message;
  box.classList.toggle("ok", ok);
}

async function errorOf(response) {
  // our server always answers {"error": {"message"}}; anything else is its own failure
  try {
    return (await response.json()).error.message;
  } catch {
    return `the chat page's server answered ${response.status}`;
  }
}

async function getJSON(path) {
  let response;
  try {
    response = await fetch(path, { headers: { Accept: "application/json" } });
  } catch {
    throw new Error("the chat page's server is not reachable: check your connection and reload");
  }
  if (!response.ok) throw new Error(await errorOf(response));
  return response.json();
}

// --- who are you -----------------------------------------------------------------------------

async function showPicker() {
  $("chat").hidden = true;
  $("pick").hidden = false;
  const list = $("friends");
  list.replaceChildren();
  try {
    const known = await getJSON("/api/friends");
    avatarName = known.avatar || avatarName;
    $("avatar-name").textContent = avatarName;
    for (const friend of known.friends) {
      const button = document.createElement("button");
      button.type = "button";
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = friend.name;
      button.append(avatarOf(friend.name), name);
      button.addEventListener("click", () => choose(friend.name));
      const item = document.createElement("li");
      item.append(button);
      list.append(item);
    }
    notify("");
  } catch (error) {
    notify(error.message);
  }
  $("name-input").focus();
}

function choose(name) {
  localStorage.setItem(FRIEND_KEY, name);
  openChat(name);
}

// --- the chat --------------------------------------------------------------------------------

function turn(role, name, ms) {
  // one turn: an avatar, a column of bubbles, and the time under them
  const row = document.createElement("div");
  row.className = `turn ${role}`;
  const column = document.createElement("div");
  column.className = "bubbles";
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = clock(ms);
  column.append(time);
  row.append(avatarOf(name), column);
  $("messages").append(row);
  return row;
}

function setBubbles(row, texts) {
  const column = row.querySelector(".bubbles"), time = column.querySelector(".time");
  column.querySelectorAll(".bubble").forEach((b) => b.remove());
  for (const text of texts) {
    const bubble = document.createElement("div");
    bubble.className = "bubble";
    bubble.textContent = text;
    column.insertBefore(bubble, time);
  }
  scrollDown();
}

function scrollDown() {
  const box = $("messages");
  box.scrollTop = box.scrollHeight;
}

async function openChat(name) {
  $("pick").hidden = true;
  $("chat").hidden = false;
  $("me").textContent = name;
  $("messages").replaceChildren();
  $("correct-form").hidden = true;
  notify("");
  try {
    const [known, kept] = await Promise.all([getJSON("/api/friends"), getJSON(`/api/friends/${encodeURIComponent(name)}/history`)]);
    avatarName = known.avatar || avatarName;
    drawHistory(kept.messages);
  } catch (error) {
    notify(error.message);
  }
  $("peer-name").textContent = avatarName;
  avatarOf(avatarName, $("peer-avatar"));
  $("message").focus();
}

function drawHistory(messages) {
  // consecutive messages of one side form one turn, as they were sent: bubble after bubble
  let row = null, side = null, texts = [];
  for (const m of messages) {
    if (m.role !== side) {
      row = turn(m.role, m.role === "avatar" ? avatarName : m.name, m.ts_ms);
      side = m.role;
      texts = [];
    }
    texts.push(m.text);
    setBubbles(row, texts);
  }
  markLast();
}

// --- corrections: a thumbs-down on the last reply and what it should have said (for RLHF) -----

function markLast() {
  document.querySelectorAll(".thumb").forEach((b) => b.remove());
  const rows = document.querySelectorAll(".turn.avatar");
  const last = rows[rows.length - 1];
  if (!last) return;
  const thumb = document.createElement("button");
  thumb.type = "button";
  thumb.className = "thumb";
  thumb.textContent = "👎";
  thumb.title = "不好 · a bad reply: say what it should have been";
  thumb.addEventListener("click", () => {
    $("correct-form").hidden = false;
    $("better").value = Array.from(last.querySelectorAll(".bubble"), (b) => b.textContent).join("<s>");
    $("better").focus();
  });
  last.querySelector(".bubbles").append(thumb);
}

async function correct(better) {
  let response;
  try {
    response = await fetch("/api/correction", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ friend: localStorage.getItem(FRIEND_KEY), better }),
    });
  } catch {
    throw new Error("the chat page's server is not reachable: check your connection and reload");
  }
  if (!response.ok) throw new Error(await errorOf(response));
}

async function send(text) {
  const me = localStorage.getItem(FRIEND_KEY);
  setBubbles(turn("friend", me, Date.now()), [text]);
  const row = turn("avatar typing", avatarName, Date.now());
  row.querySelector(".bubbles").insertAdjacentHTML("afterbegin", '<div class="bubble pending">…</div>');
  scrollDown();
  $("send").disabled = true;
  notify("");
  try {
    await stream(row, me, text);
  } catch (error) {
    notify(error.message);
  } finally {
    row.classList.remove("typing");
    if (!row.querySelector(".bubble:not(.pending)")) row.remove(); // nothing came: no empty turn left behind
    row.querySelector(".pending")?.remove();
    markLast();
    $("send").disabled = false;
    $("message").focus();
  }
}

async function stream(row, friend, message) {
  let response;
  try {
    response = await fetch("/api/reply", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ friend, message }),
    });
  } catch {
    throw new Error("the chat page's server is not reachable: check your connection and reload");
  }
  if (!response.ok) throw new Error(await errorOf(response));
  // server-sent events: "data: {...}\n\n", the bubbles so far, then the whole reply, then [DONE]
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the reply was cut off: the avatar's server stopped answering");
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const data = buffer.slice(0, end).replace(/^data: /, "");
      buffer = buffer.slice(end + 2);
      if (data === "[DONE]") return;
      const event = JSON.parse(data);
      if (event.error) throw new Error(event.error.message);
      row.querySelector(".pending")?.remove();
      setBubbles(row, event.bubbles);
    }
  }
}

// --- wiring ----------------------------------------------------------------------------------

$("pick-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const name = $("name-input").value.trim();
  if (name) choose(name);
});

$("switch").addEventListener("click", (e) => {
  e.preventDefault();
  localStorage.removeItem(FRIEND_KEY);
  showPicker();
});

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("message").value.trim();
  if (!text || $("send").disabled) return;
  $("message").value = "";
  send(text);
});

$("correct-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const better = $("better").value.trim();
  if (!better) return;
  try {
    await correct(better);
    $("correct-form").hidden = true;
    $("better").value = "";
    notify("记下了 · kept as a correction for training", true);
  } catch (error) {
    notify(error.message);
  }
});

$("message").addEventListener("keydown", (e) => {
  // Enter sends, Shift+Enter starts a new line (as WeChat on a computer)
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    $("composer").requestSubmit();
  }
});

const remembered = localStorage.getItem(FRIEND_KEY);
if (remembered) openChat(remembered);
else showPicker();
