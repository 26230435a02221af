// The labeling page: one context at a time, its candidates best first. Reorder (↑↓ give scores by
// position), edit a score, or rewrite one (the rewrite joins as the best); Save posts the whole
// record. Text is always set as textContent, never as HTML: chats are not ours to trust.
"use strict";

const $ = (id) => document.getElementById(id);
let records = [], current = 0, working = [], avatar = "";

function notify(message) {
  $("notice").textContent = message;
  $("notice").hidden = !message;
}

function bubbles(text) {
  return text.split("<s>").map((t) => t.trim()).filter(Boolean).map((t) => {
    const b = document.createElement("span");
    b.className = "bubble";
    b.textContent = t;
    return b;
  });
}

async function load() {
  try {
    const response = await fetch("/api/records");
    const data = await response.json();
    if (!response.ok) throw new Error(data.error.message);
    records = data.records;
    avatar = data.avatar;
    const bad = data.problems.length ? ` · ${data.problems.length} bad records kept as they are` : "";
    $("summary").textContent = `${records.length} contexts in ${data.path}${bad}`;
    drawList();
    if (records.length) show(0);
    else notify("nothing to label: run `wechat-avatar rlhf sample` and `rlhf judge` first");
  } catch (error) {
    notify(`the labeling server is not reachable: ${error.message}`);
  }
}

function drawList() {
  const list = $("records");
  list.replaceChildren();
  records.forEach((r, i) => {
    const button = document.createElement("button");
    button.type = "button";
    const last = r.lines.filter((l) => !l.self).pop();
    button.textContent = last ? last.text : r.source;
    button.title = r.source;
    button.classList.toggle("labeled", r.labeled);
    button.classList.toggle("provocation", r.provocation);
    button.classList.toggle("current", i === current);
    button.addEventListener("click", () => show(i));
    const item = document.createElement("li");
    item.append(button);
    list.append(item);
  });
}

function show(i) {
  current = i;
  const r = records[i];
  working = r.candidates.map((c) => ({ text: c.text, score: c.score }));
  sortWorking();
  const box = $("context");
  box.replaceChildren();
  for (const line of r.lines) {
    const row = document.createElement("div");
    row.className = line.self ? "line self" : "line";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = line.name;
    row.append(name, ...bubbles(line.text));
    box.append(row);
  }
  $("rewrite").value = "";
  $("status").textContent = r.labeled ? "labeled" : r.judge ? `scored by ${r.judge}` : "not scored yet";
  notify("");
  drawList();
  drawCandidates();
}

function sortWorking() {
  // best first; equal scores keep their order
  working = working.map((c, i) => [c, i]).sort((a, b) => b[0].score - a[0].score || a[1] - b[1]).map((p) => p[0]);
}

function byPosition() {
  // after a reorder the scores follow the order: the top one gets k, the last 1
  working.forEach((c, i) => { c.score = working.length - i; });
}

function drawCandidates() {
  const list = $("candidates");
  list.replaceChildren();
  working.forEach((c, i) => {
    const item = document.createElement("li");
    item.className = "candidate";
    const text = document.createElement("div");
    text.className = "text";
    text.append(...bubbles(c.text));
    const score = document.createElement("input");
    score.className = "score";
    score.type = "number";
    score.step = "any";
    score.value = String(c.score);
    score.setAttribute("aria-label", "score");
    score.addEventListener("change", () => {
      const value = Number(score.value);
      if (score.value.trim() === "" || !Number.isFinite(value)) { notify("a score must be a number"); return; }
      c.score = value;
      sortWorking();
      drawCandidates();
    });
    const tools = document.createElement("div");
    tools.className = "tools";
    tools.append("score", score, tool("↑", "up", () => move(i, -1)), tool("↓", "down", () => move(i, 1)),
      tool("改写 rewrite", "rewrite", () => { $("rewrite").value = c.text; $("rewrite").focus(); }));
    item.append(text, tools);
    list.append(item);
  });
}

function tool(label, cls, action) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = cls;
  button.textContent = label;
  button.addEventListener("click", action);
  return button;
}

function move(i, step) {
  const j = i + step;
  if (j < 0 || j >= working.length) return;
  [working[i], working[j]] = [working[j], working[i]];
  byPosition();
  drawCandidates();
}

function addRewrite() {
  const text = $("rewrite").value.trim();
  if (!text) { notify("type the reply you would have sent"); return; }
  const best = Math.max(...working.map((c) => c.score));
  working.unshift({ text, score: best + 1 });
  $("rewrite").value = "";
  notify("");
  drawCandidates();
}

async function save() {
  const r = records[current];
  $("status").textContent = "saving…";
  try {
    const response = await fetch("/api/records", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ source: r.source, responses: working.map((c) => c.text), scores: working.map((c) => c.score) }),
    });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error.message);
    records[current] = data;
    $("status").textContent = "saved";
    drawList();
  } catch (error) {
    $("status").textContent = "";
    notify(`not saved: ${error.message}`);
  }
}

$("add").addEventListener("click", addRewrite);
$("save").addEventListener("click", save);
$("prev").addEventListener("click", () => current > 0 && show(current - 1));
$("next").addEventListener("click", () => current < records.length - 1 && show(current + 1));
load();
