// qa serve's page: plain JavaScript, no build step, nothing from the internet. Every piece
// of text from the index goes in through textContent, never innerHTML.
"use strict";

const $ = (id) => document.getElementById(id);
const NO_ANSWER =
  "No passage in the corpus answers this question; the closest ones, which are weak matches:";
const FILTERS = ["since", "until", "source", "tag"];
const token = new URLSearchParams(location.hash.slice(1)).get("token");

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

async function api(path, params) {
  const url = path + "?" + params.toString();
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const response = await fetch(url, { headers });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
  return body;
}

// The text with [start, end) marked; offsets are JavaScript string indices of code points
// as Python counts them, so split by code point.
function marked(parent, text, offset, start, end) {
  const chars = Array.from(text);
  const a = Math.max(0, start - offset), b = Math.max(a, end - offset);
  parent.append(chars.slice(0, a).join(""));
  parent.append(el("mark", chars.slice(a, b).join("")));
  parent.append(chars.slice(b).join(""));
}

function citation(hit) {
  const part = hit.citation.split("#").pop().split(".")[1];
  let where = hit.source + (hit.doc_id !== null ? " [" + hit.doc_id + "]" : "") + " ¶" + hit.paragraph;
  if (part) where += " part " + part;
  if (hit.line_start !== null) where += ", lines " + hit.line_start + "–" + hit.line_end;
  return where + ", chars " + hit.start + "–" + hit.end;
}

function citeId(hit) {
  return hit.citation;
}

function showResults(answer) {
  const results = $("results");
  results.replaceChildren();
  $("document").hidden = true;
  results.hidden = false;
  if (!answer.answered) results.append(el("p", NO_ANSWER, "notice"));
  if (!answer.results.length) results.append(el("p", "No passages."));
  answer.results.forEach((hit) => {
    const box = el("div", null, "hit");
    const head = el("h3");
    head.append(el("span", hit.score.toFixed(3), "score"), hit.title || hit.source);
    const about = [hit.date, hit.author, hit.url].filter(Boolean).join(" · ");
    const cite = el("button", citation(hit), "citation");
    cite.type = "button";
    cite.addEventListener("click", () => openDocument(hit));
    const passage = el("p", null, "passage");
    marked(passage, hit.text, hit.start, hit.highlight.start, hit.highlight.end);
    box.append(head);
    if (about) box.append(el("p", about, "about"));
    box.append(cite, passage);
    results.append(box);
  });
}

async function openDocument(hit) {
  let shown;
  try {
    shown = await api("/api/show", new URLSearchParams({ source: citeId(hit), context: "0" }));
  } catch (error) {
    $("results").prepend(el("p", error.message, "error"));
    return;
  }
  const text = shown.text || shown.passage.text;
  const offset = shown.text ? 0 : shown.passage.start;
  $("doc-title").textContent = shown.title || shown.source;
  $("doc-about").textContent = [shown.date, shown.author, shown.url, citation(hit)]
    .filter(Boolean).join(" · ");
  const body = $("doc-text");
  body.replaceChildren();
  const chars = Array.from(text);
  const a = shown.passage.start - offset, b = shown.passage.end - offset;
  body.append(el("p", chars.slice(0, a).join("")));
  const cited = el("p", null, "cited");
  cited.id = "cited";
  marked(cited, chars.slice(a, b).join(""), shown.passage.start, hit.highlight.start, hit.highlight.end);
  body.append(cited, el("p", chars.slice(b).join("")));
  $("results").hidden = true;
  $("document").hidden = false;
  cited.scrollIntoView({ block: "center" });
  $("back").focus();
}

function back() {
  $("document").hidden = true;
  $("results").hidden = false;
  const first = document.querySelector(".citation");
  (first || $("q")).focus();
}

function paramsFromForm() {
  const params = new URLSearchParams();
  params.set("q", $("q").value.trim());
  FILTERS.forEach((name) => { if ($(name).value) params.set(name, $(name).value); });
  return params;
}

async function search(push) {
  const params = paramsFromForm();
  if (!params.get("q")) return;
  if (push) history.pushState(null, "", "?" + params.toString() + location.hash);
  $("results").replaceChildren(el("p", "Searching…"));
  try {
    showResults(await api("/api/ask", params));
  } catch (error) {
    $("results").replaceChildren(el("p", error.message, "error"));
  }
}

function fromUrl() {
  const params = new URLSearchParams(location.search);
  $("q").value = params.get("q") || "";
  FILTERS.forEach((name) => {
    const value = params.get(name) || "";
    const field = $(name);
    if (field.tagName === "SELECT" && value && ![...field.options].some((o) => o.value === value)) {
      field.append(new Option(value, value));
    }
    field.value = value;
  });
  if ($("q").value) search(false);
}

function fill(select, values) {
  values.forEach((value) => select.append(new Option(value, value)));
}

async function start() {
  $("search").addEventListener("submit", (event) => { event.preventDefault(); search(true); });
  $("back").addEventListener("click", back);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !$("document").hidden) back();
    if (event.key === "/" && document.activeElement !== $("q")) { event.preventDefault(); $("q").focus(); }
  });
  window.addEventListener("popstate", fromUrl);
  try {
    const status = await api("/api/status", new URLSearchParams());
    const f = status.filters || {};
    $("status").textContent = status.documents + " documents, " + status.chunks +
      " passages · " + status.model;
    if (f.dates) {
      ["since", "until"].forEach((n) => { $(n).min = f.dates[0]; $(n).max = f.dates[1]; });
      $("dates-label").hidden = $("until-label").hidden = false;
    }
    if (f.folders && f.folders.length) { fill($("source"), f.folders); $("source-label").hidden = false; }
    if (f.tags && f.tags.length) { fill($("tag"), f.tags); $("tag-label").hidden = false; }
    $("filters").hidden = !(f.dates || (f.folders || []).length || (f.tags || []).length);
  } catch (error) {
    $("status").textContent = error.message;
  }
  fromUrl();
}

start();
