"use strict";
(function () {
const errors = document.getElementById("js-errors");
window.addEventListener("error", function (ev) {
  errors.hidden = false;
  errors.textContent += "JS error: " + ev.message + "\n";
  document.body.setAttribute("data-error", "1");
});
const M = JSON.parse(document.getElementById("model").textContent);
const COLORS = ["#2f6fdb", "#d9482b", "#1f9d55", "#8e44ad", "#c98a00", "#0f8b8d", "#c2185b", "#5d6d7e"];
const EDGE = {handoff: ["#2f6fdb", "lock hand-off"], wake: ["#8e44ad", "wake-up (notify, set, exit...)"],
              spawn: ["#9aa3b2", "thread start"], msg: ["#1f9d55", "message"], waitfor: ["#b3261e", "waits for (deadlock)"],
              conflict: ["#c2185b", "conflicting accesses"]};
// What the jump buttons go to: the failure, then each kind of row, in the order of the page.
const JUMPS = [["fail", "failure"], ["preempt", "preemption"], ["pause", "pause"], ["fault", "fault"],
               ["conflict", "conflicting access"]];
const JUMP_OF = {preempt: "preempt", pause: "pause", freeze: "pause", fault: "fault", crash: "fault"};
let targets = {};  // jump kind -> the rows of the page it goes to, top to bottom
const jumpedTo = {};  // jump kind -> the index of the row it went to last
let current = null;  // the jump kind of the row marked as the one jumped to
const GUTTER = 64, HEAD = 44;
let zoom = 1, axis = "step";
const unfolded = new Set();
// The address can choose the view: page.html#time (virtual-time axis), #runs (one box per run).
let foldAll = true, runs = M.steps > 2000 || /runs/.test(location.hash);
if (/time/.test(location.hash)) axis = "time";
const laneIndex = new Map();
M.lanes.forEach(function (l, i) { laneIndex.set(l.id, i); });
const timeline = document.getElementById("timeline");
const svg = document.getElementById("edges");
const NS = "http://www.w3.org/2000/svg";

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function color(lane) { return COLORS[laneIndex.get(lane) % COLORS.length]; }
function laneWidth() {
  const avail = Math.max(600, document.documentElement.clientWidth - GUTTER - 16);
  return Math.max(170, Math.min(520, Math.floor(avail / Math.max(1, M.lanes.length))));
}
function laneX(lane, w) { return GUTTER + laneIndex.get(lane) * w; }
function fmtT(t) { return "t=" + (+(t - M.clock_start).toFixed(6)) + "s"; }

function header(w) {
  const head = document.getElementById("lanes-head");
  head.textContent = "";
  head.style.width = (GUTTER + w * M.lanes.length) + "px";
  const grouped = M.groups.some(function (g) { return g.name !== null; });
  M.groups.forEach(function (g) {
    if (!grouped || !g.lanes.length) return;
    const d = el("div", "group-head", g.name === null ? "(no node)" : g.name);
    d.style.left = (laneX(g.lanes[0], w) + 2) + "px";
    d.style.width = (w * g.lanes.length - 4) + "px";
    head.appendChild(d);
  });
  M.lanes.forEach(function (l) {
    const d = el("div", "lane-head", l.name);
    d.style.left = laneX(l.id, w) + "px";
    d.style.width = w + "px";
    d.style.borderBottomColor = color(l.id);
    d.title = l.name + (l.group ? " (node " + l.group + ")" : "");
    head.appendChild(d);
  });
}

function layout() {
  const w = laneWidth(), H = Math.round(18 * zoom), MH = Math.round(16 * zoom);
  const fontPx = Math.max(7, Math.round(12 * zoom)) + "px";
  header(w);
  timeline.querySelectorAll(".b,.m,.g").forEach(function (n) { n.remove(); });
  targets = {};
  function target(kind, node) { (targets[kind] = targets[kind] || []).push(node); }
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const frag = document.createDocumentFragment();
  const anchors = new Map(), spans = new Map();
  let y = 6;
  function extend(lane, top, bottom) {
    const s = spans.get(lane);
    if (!s) spans.set(lane, [top, bottom]); else s[1] = Math.max(s[1], bottom);
  }
  function box(lane, top, h, cls, html, title) {
    const b = el("div", "b " + cls);
    b.style.cssText = "left:" + (laneX(lane, w) + 3) + "px;top:" + top + "px;width:" + (w - 6) + "px;height:" + (h - 1) +
      "px;border-left-color:" + color(lane) + ";font-size:" + fontPx + ";line-height:" + (h - 3) + "px";
    if (html) b.innerHTML = html; if (title) b.title = title;
    frag.appendChild(b); extend(lane, top, top + h);
    return b;
  }
  function gutter(top, text) {
    const g = el("div", "g", text); g.style.top = top + "px"; frag.appendChild(g);
  }
  function mark(left, width, top, h, cls, text, title) {
    const m = el("div", "m " + cls, text);
    m.style.cssText = "left:" + left + "px;width:" + width + "px;top:" + top + "px;height:" + h + "px" +
      (cls.startsWith("wait") || cls === "fail" ? "" : ";line-height:" + (h - 2) + "px");
    m.title = title || text; frag.appendChild(m); return m;
  }
  function esc(s) { return s.replace(/[&<>"]/g, function (c) { return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]; }); }
  let lastT = null;
  function place(it, n) {
    if (it.k === "anchor") { anchors.set(it.id, [it.lane, y]); return; }
    if (it.k === "repeat") {
      if (it.body && unfolded.has(n)) { it.body.forEach(function (b, j) { place(b, n + "." + j); }); return; }
      const span = it.first === null ? "" : ": steps " + (it.first + 1) + "\u2013" + (it.last + 1) +
        (it.t1 !== null && it.t1 > it.t0 ? ", " + fmtT(it.t0) + " to " + fmtT(it.t1) : "");
      const r = mark(GUTTER, w * M.lanes.length, y, Math.round(20 * Math.max(zoom, 0.7)), "repeat",
        "\u21bb the " + (it.period === 1 ? "row" : it.period + " rows") + " above repeat " + it.n.toLocaleString() +
        " more time" + (it.n === 1 ? "" : "s") + span + (it.body ? " (click to unfold)" : ""));
      if (it.body) r.addEventListener("click", function () { unfolded.add(n); layout(); });
      y += Math.round(20 * Math.max(zoom, 0.7)); return;
    }
    if (it.k === "setup") {
      box(it.lane, y, H, "fold", "&hellip; " + it.n + " steps loading the program", "module-level code of the target");
      y += H; return;
    }
    if (it.k === "steps") {
      const count = it.at.length;
      const conflict = it.conflict || {};
      const hot = Object.keys(it.hot).concat(Object.keys(it.paused), Object.keys(conflict)).map(Number)
        .filter(function (r, i, all) { return all.indexOf(r) === i; });
      const open = unfolded.has(n) || (!foldAll && !runs) || (count <= 6 && !runs) || count === 1;
      // rows: a visible step offset, or [first, last] offsets hidden in a fold box.
      let rows = [];
      const anchorY = {};
      if (open) { for (let i = 0; i < count; i++) rows.push(i); }
      else if (runs) {
        const lines = it.at.map(function (a) { return a[1]; });
        const file = M.files[it.at[0][0]].split("/").pop();
        const b = box(it.lane, y, H, "fold run", "<b>" + count + " steps</b> " + esc(file) + ":" +
                      Math.min.apply(null, lines) + "\u2013" + Math.max.apply(null, lines),
                      "steps " + (it.first + 1) + "\u2013" + (it.first + count) + " (click to unfold)");
        b.addEventListener("click", function () { unfolded.add(n); layout(); });
        if (axis === "step") gutter(y + 2, "#" + (it.first + 1));
        for (let i = 1; i < count; i++) anchorY[i] = y + H / 2;
        anchorY[0] = y;
        y += H;
        rows = hot.sort(function (a, b) { return a - b; });
      } else {
        const keep = new Set([0, count - 3, count - 2, count - 1].concat(hot));
        let prev = -1;
        Array.from(keep).sort(function (a, b) { return a - b; }).forEach(function (i) {
          if (i - prev > 1) rows.push([prev + 1, i - 1]);
          rows.push(i); prev = i;
        });
      }
      rows.forEach(function (r) {
        if (Array.isArray(r)) {
          const b = box(it.lane, y, H, "fold", "&hellip; " + (r[1] - r[0] + 1) + " more steps of this thread (click to unfold)",
                        "click to unfold");
          b.addEventListener("click", function () { unfolded.add(n); layout(); });
          for (let i = r[0]; i <= r[1]; i++) anchorY[i] = y + H / 2;
          y += H; return;
        }
        anchorY[r] = y;
        const at = it.at[r], file = M.files[at[0]], src = M.src[at[0] + ":" + at[1]] || "";
        const why = it.hot[r], held = it.paused[r], acc = (it.acc || {})[r], clash = conflict[r];
        const loc = w < 320 ? String(at[1]) : file.split("/").pop() + ":" + at[1];  // narrow lanes: the line number only
        const row = box(it.lane, y, H, (why ? "hot" : "") + (held ? " paused" : "") + (clash ? " conflict" : ""),
            (held ? "\u2016 " : "") + (clash ? "\u21c4 " : "") + '<span class="loc">' + esc(loc) + "</span>" + esc(acc || src),
            "step " + (it.first + r + 1) + "  " + file + ":" + at[1] + "\n" + src + (acc ? "\n" + acc : "") +
            (why ? "\n\u2190 " + why : "") + (clash ? "\n\u21c4 " + clash : "") +
            (held === "before" ? "\npaused before this line runs; it runs when the thread resumes" :
             held ? "\npaused inside this line (its wait was over); the rest runs when the thread resumes" : ""));
        row.setAttribute("data-step", it.first + r + 1);
        if (why) target("fail", row);
        if (clash) target("conflict", row);
        if (axis === "step") gutter(y + 2, "#" + (it.first + r + 1));
        else if (lastT !== it.t) { gutter(y + 2, fmtT(it.t)); lastT = it.t; }
        y += H;
      });
      it.anchors.forEach(function (a) { anchors.set(a[1], [it.lane, a[0] in anchorY ? anchorY[a[0]] : y]); });
      return;
    }
    if (it.k === "mark") {
      let h = MH, cls = it.type;
      if (it.type === "clock" && axis === "time") h = Math.round(MH + 28 * zoom * Math.log10(1 + 10 * (it.dt || 0)));
      if (it.type === "note") cls = "note n-" + it.note.replace(/[^\w-]/g, "_");
      let first = null;
      if (it.lanes && it.lanes.length) {
        it.lanes.forEach(function (l) {
          if (laneIndex.has(l)) { const m = mark(laneX(l, w) + 3, w - 6, y, h, cls, it.label); first = first || m; }
        });
      } else if (it.lane === null || it.lane === undefined) {
        first = mark(GUTTER, w * M.lanes.length, y, h, cls, it.label);
      } else {
        first = mark(laneX(it.lane, w) + 8, w - 12, y, h, cls, it.label);
        extend(it.lane, y, y + h);
      }
      if (first && JUMP_OF[it.type]) target(JUMP_OF[it.type], first);
      if (it.type === "clock" && axis === "time") gutter(y + h - 12, fmtT(it.t));
      anchors.set(it.id, [it.lane === null || it.lane === undefined ? (it.lanes && it.lanes[0]) : it.lane, y + h / 2]);
      y += h; return;
    }
    if (it.k === "deadlock") {
      const h = Math.round(50 * Math.max(zoom, 0.8));
      y += Math.round(10 * zoom);
      it.boxes.forEach(function (b) {
        const box = mark(laneX(b.lane, w) + 14, w - 28, y, h, "wait" + (b.cycle ? " cycle" : ""), b.label, b.title);
        if (!(targets.fail || []).length) target("fail", box);
        anchors.set(b.id, [b.lane, y + h / 2, true]);
      });
      y += h + Math.round(10 * zoom); return;
    }
    if (it.k === "fail") {
      target("fail", mark(GUTTER, w * M.lanes.length, y + 4, Math.round(26 * Math.max(zoom, 0.8)), "fail",
                          "\u2716 " + it.label));
      y += Math.round(34 * Math.max(zoom, 0.8));
    }
  }
  M.items.forEach(function (it, n) { place(it, String(n)); });
  const width = GUTTER + w * M.lanes.length;
  timeline.style.width = width + "px";
  timeline.style.height = (y + 20) + "px";
  timeline.appendChild(frag);
  svg.setAttribute("width", width); svg.setAttribute("height", y + 20);
  drawEdges(w, anchors, spans);
  if (current !== null) markCurrent(current);
}

// ------------------------------------------------------------------ jumps

function markCurrent(kind) {
  timeline.querySelectorAll(".current").forEach(function (n) { n.classList.remove("current"); });
  const rows = targets[kind] || [];
  const row = rows[Math.min(jumpedTo[kind] || 0, rows.length - 1)];
  if (row) row.classList.add("current");
  return row;
}
function jump(kind, dir) {
  const rows = targets[kind] || [];
  if (!rows.length) return;
  jumpedTo[kind] = jumpedTo[kind] === undefined ? (dir < 0 ? rows.length - 1 : 0) : (jumpedTo[kind] + dir + rows.length) % rows.length;
  current = kind;
  const row = markCurrent(kind);
  row.scrollIntoView({block: "center", inline: "nearest"});
  const count = document.getElementById("count-" + kind);
  if (count) count.textContent = (jumpedTo[kind] + 1) + "/" + rows.length;
}
function jumpButtons() {
  const bar = document.getElementById("jumps");
  bar.textContent = "";
  JUMPS.forEach(function (j) {
    const kind = j[0], n = (targets[kind] || []).length;
    if (!n) return;
    const span = el("span", "jump");
    if (kind === "fail") {
      const b = el("button", null, "\u2716 failure"); b.id = "goto-fail"; b.title = "go to the failing step (f)";
      b.addEventListener("click", function () { jump("fail", 1); });
      span.appendChild(b);
    } else {
      const prev = el("button", null, "\u25c0"), next = el("button", null, j[1] + (n === 1 ? "" : j[1].endsWith("s") ? "es" : "s") + " \u25b6");
      prev.id = "prev-" + kind; next.id = "next-" + kind;
      prev.title = "previous " + j[1]; next.title = "next " + j[1] + (kind === "preempt" ? " (n; p: previous)" : "");
      prev.addEventListener("click", function () { jump(kind, -1); });
      next.addEventListener("click", function () { jump(kind, 1); });
      span.appendChild(prev); span.appendChild(next);
      const count = el("span", "count", String(n)); count.id = "count-" + kind; span.appendChild(count);
    }
    bar.appendChild(span);
  });
}
document.addEventListener("keydown", function (ev) {
  if (ev.ctrlKey || ev.metaKey || ev.altKey || /INPUT|TEXTAREA/.test(ev.target.tagName)) return;
  if (ev.key === "f") jump("fail", 1);
  else if (ev.key === "n") jump("preempt", 1);
  else if (ev.key === "p") jump("preempt", -1);
});

function conflictNote() {
  if (!M.conflict) return;
  const p = document.getElementById("conflict-note");
  p.hidden = false;
  p.appendChild(document.createTextNode("\u21c4 " + (M.conflict.race ? "data race: " : "lost update: ") +
                                        M.conflict.summary + " "));
  const b = el("button", null, "show"); b.id = "goto-conflict"; b.title = "go to the conflicting accesses";
  b.addEventListener("click", function () { jumpedTo.conflict = undefined; jump("conflict", 1); });
  p.appendChild(b);
}

function copyButton() {
  const button = document.getElementById("copy"), code = document.getElementById("replay");
  if (!button || !code) return;
  button.addEventListener("click", function () {
    // Selected first, so that Ctrl+C copies it where the clipboard is not given to the page (file://).
    const range = document.createRange(); range.selectNodeContents(code);
    const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
    let copied = false;
    try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
    function said(ok) {
      button.textContent = ok ? "copied" : "selected: press Ctrl+C";
      document.body.setAttribute("data-copied", ok ? "clipboard" : "selected");
    }
    said(copied);
    if (!copied && navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(code.textContent).then(function () { said(true); }, function () { said(false); });
    }
  });
}

function svgEl(tag, attrs) {
  const e = document.createElementNS(NS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  return e;
}
function drawEdges(w, anchors, spans) {
  const defs = svgEl("defs", {});
  Object.keys(EDGE).forEach(function (k) {
    const m = svgEl("marker", {id: "arrow-" + k, viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7",
                               markerHeight: "7", orient: "auto-start-reverse"});
    m.appendChild(svgEl("path", {d: "M0,0 L10,5 L0,10 z", fill: EDGE[k][0]}));
    defs.appendChild(m);
  });
  svg.appendChild(defs);
  spans.forEach(function (s, lane) {
    const x = laneX(lane, w) + 1;
    svg.appendChild(svgEl("line", {x1: x, x2: x, y1: s[0], y2: s[1], class: "lane-line"}));
  });
  M.edges.forEach(function (e) {
    const a = anchors.get(e.from), b = anchors.get(e.to);
    if (!a || !b || a[0] === undefined || b[0] === undefined) return;
    const la = laneIndex.get(a[0]), lb = laneIndex.get(b[0]);
    if (la === undefined || lb === undefined) return;
    const col = EDGE[e.kind][0];
    let x1, x2, d;
    if (a[2] && b[2]) {  // deadlock boxes on one row: arcs above (rightwards) and below (leftwards)
      const dir = lb > la ? 1 : -1;
      x1 = laneX(a[0], w) + w / 2 + dir * w / 5; x2 = laneX(b[0], w) + w / 2 - dir * w / 5;
      const bend = (x2 > x1 ? -1 : 1) * (40 + 8 * Math.abs(lb - la));
      const y0 = a[1] + (x2 > x1 ? -14 : 14);
      d = "M" + x1 + "," + y0 + " Q" + (x1 + x2) / 2 + "," + (y0 + bend) + " " + x2 + "," + y0;
    } else if (la === lb) {
      x1 = laneX(a[0], w) + w - 6; x2 = x1;
      d = "M" + x1 + "," + a[1] + " C" + (x1 + 30) + "," + a[1] + " " + (x2 + 30) + "," + b[1] + " " + x2 + "," + b[1];
    } else {
      const dir = lb > la ? 1 : -1;
      x1 = laneX(a[0], w) + (dir > 0 ? w - 4 : 4); x2 = laneX(b[0], w) + (dir > 0 ? 4 : w - 4);
      const k = Math.max(50, Math.abs(x2 - x1) / 2);  // adjacent lanes: an S-curve, not a vertical line
      d = "M" + x1 + "," + a[1] + " C" + (x1 + dir * k) + "," + a[1] + " " + (x2 - dir * k) + "," + b[1] + " " + x2 + "," + b[1];
    }
    const p = svgEl("path", {d: d, fill: "none", stroke: col, "stroke-width": e.cycle ? 3 : (e.kind === "spawn" ? 1 : 1.6),
                             "stroke-dasharray": e.kind === "wake" ? "5 3" : (e.kind === "spawn" ? "2 3" : ""),
                             "marker-end": "url(#arrow-" + e.kind + ")", class: "edge edge-" + e.kind + (e.cycle ? " cycle" : "")});
    const t = svgEl("title", {}); t.textContent = e.title || e.label; p.appendChild(t);
    svg.appendChild(p);
    if (e.kind !== "spawn" && !(runs && e.kind === "handoff")) {  // one box per run: too dense for labels
      // Deadlock arcs: label at the top of the arc; other edges: next to where they start.
      const away = x2 >= x1 ? 1 : -1;
      const lx = a[2] ? (x1 + x2) / 2 : x1 + away * 8, ly = a[2] ? a[1] + (x2 > x1 ? -32 : 36) : a[1] - 3;
      const txt = svgEl("text", {x: lx, y: ly, "text-anchor": a[2] ? "middle" : (away > 0 ? "start" : "end"),
                                 "font-size": 10.5, fill: col,
                                 stroke: "#fff", "stroke-width": 3, "paint-order": "stroke"});
      txt.textContent = e.label; svg.appendChild(txt);
    }
  });
}

function legend() {
  const l = document.getElementById("legend");
  Object.keys(EDGE).forEach(function (k) {
    if (!M.edges.some(function (e) { return e.kind === k; })) return;
    const s = el("span"); const i = el("i"); i.style.background = EDGE[k][0];
    s.appendChild(i); s.appendChild(document.createTextNode(EDGE[k][1])); l.appendChild(s);
  });
}

document.getElementById("stats").textContent = M.steps.toLocaleString() + " steps, " + M.lanes.length + " threads, " +
  M.preemptions + " preemption" + (M.preemptions === 1 ? "" : "s") + ", " + (+M.elapsed.toFixed(6)) + "s of virtual time";
document.querySelectorAll("input[name=axis]").forEach(function (r) {
  r.checked = r.value === axis;
  r.addEventListener("change", function () { axis = r.value; layout(); });
});
document.getElementById("zoom-in").addEventListener("click", function () { zoom = Math.min(2, zoom * 1.25); layout(); });
document.getElementById("zoom-out").addEventListener("click", function () { zoom = Math.max(0.4, zoom / 1.25); layout(); });
const runsBox = document.getElementById("runs");
runsBox.checked = runs;
runsBox.addEventListener("change", function () { runs = runsBox.checked; unfolded.clear(); layout(); });
document.getElementById("unfold").addEventListener("click", function () {
  foldAll = false; runs = runsBox.checked = false; layout();
});
document.getElementById("fold").addEventListener("click", function () { foldAll = true; unfolded.clear(); layout(); });
window.addEventListener("resize", layout);
legend();
layout();
jumpButtons();
conflictNote();
copyButton();
document.body.setAttribute("data-ready", "1");
})();
