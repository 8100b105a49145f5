"""The HTML timeline of a recorded run: one self-contained file, readable offline.

:func:`build_model` turns a :class:`~interleave.trace.TraceRecorder` (and the run's
failure) into plain data: lanes (one per thread, grouped by node), an ordered list of
items (runs of steps of one thread, markers such as preemptions and clock jumps, the
failure), and edges between lanes (lock hand-offs, wake-ups, thread starts, messages,
the wait-for edges of a deadlock). :func:`render_html` embeds that data in a page whose
inline script lays it out; nothing is fetched from anywhere. docs/timeline.md describes
the page and the annotation API the simulated systems use.
"""

from __future__ import annotations

import html
import json
import os
import re
from typing import Any, Protocol

from .clock import MONOTONIC_START
from .events import (Blocked, ClockAdvanced, Faulted, Noted, Paused, Preempted, ThreadEnded, ThreadsCrashed,
                     ThreadsFrozen, ThreadsThawed, ThreadStarted, Woken)
from .failures import _short, source_line
from .output import write_atomically
from .story import Event, Link, Story, TraceRecorder, starting_thread
from .trace import event_detail, render, wait_text

#: Events that get a row of their own in the timeline.
_MARKERS = {"preempt", "pause", "clock", "fault", "start", "exit", "block", "crash", "freeze", "unfreeze", "note"}
#: Events that are something their thread does (so an edge waiting for its next move ends there).
_ACTS = {"block", "exit", "acquire", "release", "start", "note", "wake", "crash", "freeze", "unfreeze", "fault"}
_NODE_NAME = re.compile(r"([^.\s()]+)\.[^.\s]")


class FailureLike(Protocol):
    """What the timeline needs of a failure (a :class:`~interleave.failures.Failure` or a FailureReport)."""

    kind: str
    message: str
    details: str
    thread: str | None


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


class _Builder:
    def __init__(self, story: Story, failure: FailureLike | None) -> None:
        self.story = story
        self.failure = failure
        self.events = story.events
        self.end = story.end
        self.setup = story.setup
        self.names = dict(story.names)
        self.groups = dict(story.groups)
        self.files: dict[str, int] = {}
        self.sources: dict[str, str] = {}
        self.items: list[dict[str, Any]] = []
        self.edges: list[dict[str, Any]] = []
        self.anchor_ids = 0

    # ------------------------------------------------------------------ lanes

    def lanes(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        if not any(self.groups.values()):
            # No set_group in this run: threads named NODE.ROLE (S0.QuorumPeer) are grouped by NODE.
            for index, name in self.names.items():
                match = _NODE_NAME.match(name)
                self.groups[index] = match.group(1) if match else None
        order: list[str | None] = []
        for index in sorted(self.names):
            group = self.groups.get(index)
            if group not in order:
                order.append(group)
        lanes, groups = [], []
        for group in order:
            members = [i for i in sorted(self.names) if self.groups.get(i) == group]
            groups.append({"name": group, "lanes": members})
            lanes += [{"id": i, "name": self.names[i], "group": group} for i in members]
        return lanes, groups

    # ------------------------------------------------------------------ items

    def where(self, filename: str, lineno: int) -> list[int]:
        index = self.files.setdefault(filename, len(self.files))
        key = f"{index}:{lineno}"
        if key not in self.sources:
            self.sources[key] = source_line(filename, lineno)
        return [index, lineno]

    def hot_steps(self) -> dict[int, str]:
        """Step index -> why it is highlighted: where the failure happened."""
        f = self.failure
        if f is None or self.end == 0:
            return {}
        steps = self.story.steps[: self.end]
        last = self.story.last_steps()
        if f.kind == "race":
            return {i: "races here" for i in self.story.marks if i < self.end}
        if f.kind == "deadlock":
            return {last[w.thread]: "blocked here" for w in self.story.waits if w.thread in last}
        by_name = {s.name: s.thread for s in steps}
        thread = by_name.get(f.thread) if f.thread else None
        index = last.get(thread, len(steps) - 1) if thread is not None else len(steps) - 1
        return {index: "fails here" if f.kind == "exception" else "still running here"}

    def build_items(self) -> None:
        steps = self.story.steps
        hot = self.hot_steps()
        events_at: dict[int, list[tuple[int, Event]]] = {}
        for n, e in enumerate(self.events):
            here = events_at.setdefault(e.at_step, [])
            at = len(here)
            if e.kind == "clock":  # the scheduler records a jump's timeouts before the jump itself
                while at and isinstance(here[at - 1][1].what, Woken) and here[at - 1][1].what.timeout:
                    at -= 1
            here.insert(at, (n, e))
        wanted = self.plan_edges()  # event number -> anchor roles it must provide
        pending_targets: dict[int, list[dict[str, Any]]] = {}  # lane -> edges waiting for its next item
        segment: dict[str, Any] | None = None
        last_step: dict[int, tuple[dict[str, Any], int, int]] = {}  # lane -> (segment, offset, step index)
        paused: dict[int, tuple[int, bool]] = {}  # lane -> (step it was paused at, inside it?) until it runs

        def close() -> None:
            nonlocal segment
            if segment is not None:
                self.items.append(segment)
                segment = None

        def place_anchor(lane: int) -> int:
            # Inside the lane's open run of steps when there is one, so the run stays one box.
            self.anchor_ids += 1
            if segment is not None and segment["lane"] == lane:
                segment["anchors"].append([len(segment["at"]), self.anchor_ids])
            else:
                close()
                self.items.append({"k": "anchor", "lane": lane, "id": self.anchor_ids})
            return self.anchor_ids

        def resume(lane: int, clock: float) -> None:
            if lane in paused:
                close()
                index, inside = paused.pop(lane)
                at = steps[index]
                how = "resumes in" if inside else "resumes: runs"
                self.items.append({"k": "mark", "type": "resume", "lane": lane, "t": clock,
                                   "label": f"{how} {_short(at.filename)}:{at.lineno}  {source_line(at.filename, at.lineno)}"})

        def arrive(lane: int) -> None:
            # Edges that end at "whatever this lane does next" end here.
            waiting = pending_targets.pop(lane, None)
            if waiting:
                anchor = place_anchor(lane)
                for edge in waiting:
                    edge["to"] = anchor

        if self.setup:
            self.items.append({"k": "setup", "n": self.setup, "lane": steps[0].thread})
        for i in range(self.setup, self.end + 1):
            for n, e in events_at.get(i, ()):
                item = self.event_item(e)
                roles = wanted.get(n)
                if item is None and not roles:
                    continue
                if n in self.story.suspensions and e.thread in last_step:
                    # A step is recorded before its line runs: the preempted line runs on resumption.
                    seg, offset, index = last_step[e.thread]
                    inside = self.story.suspensions[n].inside
                    seg["paused"][str(offset)] = "inside" if inside else "before"
                    paused[e.thread] = (index, inside)
                if e.kind in _ACTS:
                    resume(e.thread, e.clock)
                    arrive(e.thread)
                if item is None:
                    anchor = place_anchor(e.thread)
                else:
                    close()
                    self.anchor_ids += 1
                    anchor = item["id"] = self.anchor_ids
                    self.items.append(item)
                for role, edge in roles or ():
                    if role in ("from", "to"):
                        edge[role] = anchor
                    else:  # ends at the next thing the target lane does
                        pending_targets.setdefault(role, []).append(edge)
            if i == self.end:
                break
            s = steps[i]
            if segment is not None and segment["lane"] != s.thread:
                close()
            if segment is None:
                resume(s.thread, s.clock)
                segment = {"k": "steps", "lane": s.thread, "first": i, "t": s.clock, "at": [], "hot": {},
                           "paused": {}, "anchors": [], "acc": {}}
                arrive(s.thread)
            last_step[s.thread] = (segment, len(segment["at"]), i)
            if i in hot:
                segment["hot"][str(len(segment["at"]))] = hot[i]
            if s.accesses:  # what the step read and wrote, in the program's terms
                segment["acc"][str(len(segment["at"]))] = "; ".join(s.accesses)
            segment["at"].append(self.where(s.filename, s.lineno))
        close()
        for lane, waiting in pending_targets.items():
            # The woken thread never ran again: the edge ends at the end of its lane.
            anchor = place_anchor(lane)
            for edge in waiting:
                edge["to"] = anchor
        self.edges = [e for e in self.edges if "from" in e and "to" in e]
        self.items = self.fold_repeats(self.items)
        self.final_items()

    def fold_repeats(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Fold a stretch of rows that repeats (a polling loop, a lock ping-pong) into one row.

        The first period stays; the rest becomes a ``repeat`` item with the count. Its rows
        are kept for the page to unfold when there are at most ``_KEEP_REPEATED`` of them;
        beyond that they (and the edges that touch them) are dropped to keep the page small.
        """
        sig = [_signature(it) for it in items]
        out: list[dict[str, Any]] = []
        i = 0
        while i < len(items):
            best = (1, 1)
            if sig[i] is not None:
                for k in range(1, _MAX_PERIOD + 1):
                    if None in sig[i:i + k]:
                        break
                    n = 1
                    while i + (n + 1) * k <= len(items) and sig[i + n * k:i + (n + 1) * k] == sig[i:i + k]:
                        n += 1
                    if n >= _MIN_REPEATS and n * k > best[0] * best[1]:
                        best = (n, k)
            n, k = best
            if n == 1:
                out.append(items[i])
                i += 1
                continue
            out += items[i:i + k]
            body = items[i + k:i + n * k]
            steps = [it for it in body if it["k"] == "steps"]
            clocks = [it["t"] for it in body if "t" in it]
            kept = len(body) <= _KEEP_REPEATED
            if not kept:
                dropped = {it["id"] for it in body if "id" in it}
                dropped |= {a[1] for it in steps for a in it["anchors"]}
                self.edges = [e for e in self.edges if e["from"] not in dropped and e["to"] not in dropped]
            out.append({"k": "repeat", "n": n - 1, "period": k, "body": body if kept else None,
                        "steps": sum(len(it["at"]) for it in steps),
                        "first": steps[0]["first"] if steps else None,
                        "last": steps[-1]["first"] + len(steps[-1]["at"]) - 1 if steps else None,
                        "t0": min(clocks, default=None), "t1": max(clocks, default=None)})
            i += n * k
        return out

    def event_item(self, e: Event) -> dict[str, Any] | None:
        what = e.what
        if e.kind not in _MARKERS and not (isinstance(what, Woken) and what.timeout):
            return None
        item: dict[str, Any] = {"k": "mark", "type": e.kind, "lane": e.thread, "t": e.clock}
        if isinstance(what, Preempted):
            item.update(lane=None, label=f"preemption: {e.name} is paused, {what.to_name} runs")
        elif isinstance(what, Paused):
            item.update(lane=None, label=f"pause: {event_detail(e)}")
        elif isinstance(what, ClockAdvanced):
            item.update(lane=None, label=f"virtual clock {event_detail(e)}", dt=what.seconds)
        elif isinstance(what, Faulted):
            item.update(lane=None, label=f"fault: {event_detail(e)}")
        elif isinstance(what, ThreadStarted):
            item.update(label=f"starts {what.name}")
        elif isinstance(what, ThreadEnded):
            item.update(label="ends")
        elif isinstance(what, Blocked):
            if starting_thread(e):
                return None  # the start marker just above says it
            item.update(label=f"blocks {wait_text(what)}")
        elif isinstance(what, Woken):
            item.update(type="timeout", lane=what.thread, label="timed out: woken by the clock")
        elif isinstance(what, (ThreadsCrashed, ThreadsFrozen, ThreadsThawed)):
            verb = {"crash": "crashed", "freeze": "paused", "unfreeze": "resumed"}[e.kind]
            item.update(lane=None, lanes=list(what.threads), label=f"{verb}: {event_detail(e)}")
        elif isinstance(what, Noted):  # a note from control.annotate
            fields = {k: _jsonable(v) for k, v in what.fields.items()}
            item.update(type="note", note=what.name, fields=fields, label=self.note_label(what.name, fields))
            node = fields.get("node")
            if what.name in ("crash", "restart", "pause", "resume", "fsync"):
                group = node if node is not None else self.groups.get(e.thread)
                members = [i for i in self.names if self.groups.get(i) == group] if group is not None else []
                item.update(lane=None, lanes=sorted(members) or [e.thread])
        return item

    @staticmethod
    def note_label(kind: str, fields: dict[str, Any]) -> str:
        what = fields.get("what")
        if kind == "send":
            to = fields.get("to")
            return f"send {what if what is not None else fields.get('msg', '')}" + (f" to {to}" if to is not None else "")
        if kind == "recv":
            return f"recv {what if what is not None else fields.get('msg', '')}"
        if kind == "fsync" and "stall" in fields:
            return f"fsync stalls {fields['stall']}s"
        rest = " ".join(f"{k}={v}" for k, v in fields.items() if k != "node")
        node = fields.get("node")
        return f"{kind}{' ' + str(node) if node is not None else ''}{': ' + rest if rest else ''}"

    # ------------------------------------------------------------------ edges

    def plan_edges(self) -> dict[int, list[tuple[Any, dict[str, Any]]]]:
        """The story's links as edges, and for each event the ends of edges it anchors."""
        wanted: dict[int, list[tuple[Any, dict[str, Any]]]] = {}
        for link in self.story.links:
            label, title = self.edge_text(link)
            edge = {"kind": link.kind, "label": label, "title": title}
            self.edges.append(edge)
            wanted.setdefault(link.start, []).append(("from", edge))
            if link.end is not None:
                wanted.setdefault(link.end, []).append(("to", edge))
            else:  # the edge ends at what that lane does next
                wanted.setdefault(link.start, []).append((link.lane, edge))
        return wanted

    def edge_text(self, link: Link) -> tuple[str, str]:
        start = self.events[link.start]
        if link.kind == "handoff":
            assert link.end is not None
            return (link.what.split(" (")[0],
                    f"{start.name} releases {link.what}, {self.events[link.end].name} acquires it")
        if link.kind == "wake":
            block = self.events[link.waited].what if link.waited is not None else None
            waited_in = wait_text(block) if isinstance(block, Blocked) else "waiting"
            to = link.lane
            return link.what, f"{start.name} wakes {self.names.get(to, to)} ({waited_in}) by {start.api or 'ending'}"
        if link.kind == "spawn":
            return "start", f"{start.name} starts {link.what}"
        assert link.end is not None
        recv = self.events[link.end].what
        assert isinstance(recv, Noted)
        return link.what, f"message {recv.fields['msg']}: {link.what}"

    def final_items(self) -> None:
        f = self.failure
        if f is None:
            return
        if f.kind == "deadlock":
            story = self.story
            in_cycle = story.in_cycle
            boxes = []
            for w in story.waits:
                t, h = w.thread, w.holder
                block = self.events[story.last_block[t]] if t in story.last_block else None
                api = "" if block is None else f"in {block.api}" if block.api else self.block_text(block)
                if w.frozen:
                    why = "its process to resume (it is paused)"
                elif h is None or h == t:
                    why = "a wake-up no thread will send"
                elif api.endswith("join"):
                    why = f"{self.names.get(h, h)} to finish"
                else:
                    lock = (w.lock or "a lock").split(" (")[0]
                    why = f"{lock} held by {self.names.get(h, h)}"
                self.anchor_ids += 1
                boxes.append({"lane": t, "id": self.anchor_ids, "label": f"blocked {api}: waits for {why}",
                              "cycle": t in in_cycle})
            ids = {b["lane"]: b["id"] for b in boxes}
            for t, h in story.wait_for.items():
                if h in ids:
                    cyc = t in in_cycle and h in in_cycle
                    self.edges.append({"kind": "waitfor", "label": "waits for", "from": ids[t], "to": ids[h],
                                       "cycle": cyc, "title": f"{self.names.get(t, t)} waits for {self.names.get(h, h)}"})
            self.items.append({"k": "deadlock", "boxes": boxes, "cycle": sorted(in_cycle)})
        self.items.append({"k": "fail", "kind": f.kind, "label": f.message})

    @staticmethod
    def block_text(block: Event) -> str:
        """Where a block happened, without who holds the lock: ``in Lock.acquire: Lock-1``."""
        assert isinstance(block.what, Blocked)
        return wait_text(block.what).split(" (")[0]


#: Folding repeated rows: the longest period looked for, the fewest repeats folded, and
#: how many repeated rows the page keeps so a click can unfold them.
_MAX_PERIOD, _MIN_REPEATS, _KEEP_REPEATED = 8, 3, 3000
#: Lines of the text trace kept at each end of a long one.
_TRACE_LINES = 1000


def _signature(item: dict[str, Any]) -> Any:
    """What makes two rows the same row again; None for rows that never repeat."""
    if item["k"] == "steps":
        if item["hot"] or item["paused"]:
            return None
        return ("steps", item["lane"], tuple(tuple(a) for a in item["at"]), len(item["anchors"]))
    if item["k"] == "mark":
        if item["type"] in ("preempt", "pause", "fault", "crash", "start"):
            return None
        return ("mark", item["type"], item["lane"], item["label"], tuple(item.get("lanes", ())))
    if item["k"] == "anchor":
        return ("anchor", item["lane"])
    return None


def build_model(recorder: TraceRecorder, failure: FailureLike | None = None, *, title: str = "",
                token: str | None = None) -> dict[str, Any]:
    """The timeline as plain data (what the page's script draws); see docs/timeline.md."""
    story = recorder.story()
    b = _Builder(story, failure)
    b.build_items()
    lanes, groups = b.lanes()
    steps = story.steps[: b.end]
    return {
        "title": title,
        "token": token,
        "failure": None if failure is None else {"kind": failure.kind, "message": failure.message,
                                                 "details": failure.details, "thread": failure.thread},
        "lanes": lanes,
        "groups": groups,
        "files": [_short(name) for name in b.files],
        "src": b.sources,
        "items": b.items,
        "edges": b.edges,
        "steps": len(steps),
        "preemptions": story.preemptions(),
        "clock_start": MONOTONIC_START,
        "elapsed": max([s.clock for s in steps[-1:]] + [e.clock for e in b.events[-1:]], default=MONOTONIC_START)
        - MONOTONIC_START,
    }


def render_html(recorder: TraceRecorder, failure: FailureLike | None = None, *, title: str = "",
                token: str | None = None) -> str:
    """One offline HTML page: the timeline, the failure's details and the text trace."""
    model = build_model(recorder, failure, title=title, token=token)
    lines = render(recorder, failure, skip_setup=recorder.story().setup).split("\n")  # type: ignore[arg-type]
    if len(lines) > 2 * _TRACE_LINES:  # a long polling loop: the page keeps the start and the end
        lines[_TRACE_LINES:-_TRACE_LINES] = [f"      ... {len(lines) - 2 * _TRACE_LINES:,} lines left out here "
                                             "(interleave replay prints them all)"]
    text = "\n".join(lines)
    # Nothing in the program's strings may end the script element or open a comment in it.
    data = json.dumps(model, separators=(",", ":")).translate(_SCRIPT_SAFE)
    head = html.escape(title or "interleave timeline")
    if failure is not None:
        summary = f'<p class="failure">{html.escape(failure.kind.upper())}: {html.escape(failure.message)}</p>'
        details = f"<details open><summary>Failure details</summary><pre>{html.escape(failure.details)}</pre></details>"
    else:
        summary = '<p class="ok">The schedule ran without failing.</p>'
        details = ""
    replay = f'<p class="token">replay token: <code>{html.escape(token)}</code></p>' if token else ""
    return (_PAGE.replace("@TITLE@", head).replace("@SUMMARY@", summary + replay).replace("@DETAILS@", details)
            .replace("@TRACE@", html.escape(text)).replace("@CSS@", _CSS).replace("@JS@", _JS)
            .replace("@MODEL@", data))


#: JSON escapes for the characters that could end the model's script element or open a comment in it.
_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def write_html(path: str | os.PathLike[str], recorder: TraceRecorder, failure: FailureLike | None = None, *,
               title: str = "", token: str | None = None) -> None:
    write_atomically(path, render_html(recorder, failure, title=title, token=token))


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>@TITLE@</title><style>@CSS@</style></head>
<body>
<header><h1>@TITLE@</h1>@SUMMARY@<p id="stats"></p>
<div id="controls">
 <label><input type="radio" name="axis" value="step" checked> step axis</label>
 <label><input type="radio" name="axis" value="time"> virtual-time axis</label>
 <button id="zoom-out" title="smaller rows">&minus;</button><button id="zoom-in" title="larger rows">+</button>
 <label title="one box per run of steps of a thread, with its step count"><input type="checkbox" id="runs"> one box per run</label>
 <button id="unfold">unfold all</button><button id="fold">fold all</button>
 <span id="legend"></span>
</div></header>
<div id="lanes-head"></div>
<div id="timeline"><svg id="edges"></svg></div>
<pre id="js-errors" hidden></pre>
<section>@DETAILS@<details><summary>Text trace</summary><pre>@TRACE@</pre></details></section>
<script type="application/json" id="model">@MODEL@</script>
<script>@JS@</script>
</body></html>
"""

_CSS = """
body{margin:0;font:13px/1.35 system-ui,sans-serif;color:#1d2430;background:#fff}
header{padding:8px 14px 6px;border-bottom:1px solid #d8dde6;background:#f6f8fb}
h1{font-size:15px;margin:0 0 3px}
header p{margin:2px 0}
.failure{color:#b3261e;font-weight:600}.ok{color:#1b7f3b;font-weight:600}
.token code{font-size:12px}
#controls{margin-top:4px;display:flex;gap:8px;align-items:center;flex-wrap:wrap}
#controls button{font:inherit;padding:0 7px}
#legend span{margin-right:10px;white-space:nowrap}
#legend i{display:inline-block;width:16px;height:3px;vertical-align:middle;margin-right:3px}
#lanes-head{position:sticky;top:0;z-index:5;background:#fff;border-bottom:1px solid #d8dde6;height:44px}
#lanes-head div{position:absolute;overflow:hidden;white-space:nowrap;text-overflow:ellipsis;padding:0 6px;box-sizing:border-box}
.group-head{top:2px;height:18px;font-weight:600;background:#eef1f6;border-radius:3px;text-align:center}
.lane-head{top:22px;height:20px;font-weight:600;border-bottom:3px solid}
#timeline{position:relative}
#edges{position:absolute;left:0;top:0;pointer-events:none;z-index:3;overflow:visible}
.b{position:absolute;box-sizing:border-box;overflow:hidden;white-space:nowrap;text-overflow:ellipsis;
 font:12px/1.3 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;padding:1px 6px;border-left:4px solid;
 background:#f3f5f9;cursor:default}
.b .loc{color:#5a6475;margin-right:8px}
.b.hot{background:#fde2df;outline:2px solid #b3261e;font-weight:700;z-index:2}
.b.paused{border:1px dashed #d9822b;border-left:4px solid;background:#fff7ec}
.b.fold{background:#fff;color:#5a6475;font-style:italic;cursor:pointer;border-left-style:dashed}
.b.fold:hover{background:#eef1f6}
.g{position:absolute;left:0;width:56px;text-align:right;font:11px ui-monospace,monospace;color:#8a93a3}
.m{position:absolute;box-sizing:border-box;font-size:11.5px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;padding:0 6px}
.m.preempt{border-top:2px dashed #d9822b;color:#a0570f;font-weight:600}
.m.clock,.m.pause{background:#e7eefc;color:#27457a;border-top:1px solid #9db4e0;border-bottom:1px solid #9db4e0}
.m.fault{background:#fff1d6;color:#8a5a00;font-weight:600}
.m.block{color:#6b7280;font-style:italic}
.m.start,.m.exit{color:#6b7280}
.m.timeout{color:#27457a;font-style:italic}
.m.resume{color:#a0570f;font-style:italic}
.m.note{color:#3d4654}
.m.crash,.m.n-crash{background:#fbd5d2;color:#8c1d18;font-weight:700}
.m.freeze,.m.n-pause{background:repeating-linear-gradient(45deg,#eceff4,#eceff4 4px,#dde2ea 4px,#dde2ea 8px);color:#3d4654;font-weight:600}
.m.unfreeze,.m.n-restart,.m.n-resume{background:#dcf3e3;color:#1b6b34;font-weight:600}
.m.n-fsync{background:#fff1d6;color:#8a5a00}
.m.n-send,.m.n-recv{color:#1b6b34}
.m.n-drop{color:#8c1d18;font-weight:600}
.m.repeat{background:#eef1f6;color:#3d4654;font-style:italic;border:1px dashed #9aa3b2;cursor:pointer}
.m.fail{background:#b3261e;color:#fff;font-weight:700;font-size:13px;padding:3px 10px;white-space:normal}
.m.wait{background:#fde2df;color:#8c1d18;border:1px solid #b3261e;border-radius:3px;white-space:normal;font-size:11.5px;line-height:1.25;padding:3px 6px}
.m.wait.cycle{border-width:2px;font-weight:600}
.lane-line{stroke:#e3e7ee;stroke-width:1}
section{padding:8px 14px}
#js-errors{color:#b3261e;padding:8px 14px}
pre{font-size:12px;overflow:auto}
"""

_JS = r"""
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
              spawn: ["#9aa3b2", "thread start"], msg: ["#1f9d55", "message"], waitfor: ["#b3261e", "waits for (deadlock)"]};
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
      const hot = Object.keys(it.hot).concat(Object.keys(it.paused)).map(Number);
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
        const why = it.hot[r], held = it.paused[r], acc = (it.acc || {})[r];
        const loc = w < 320 ? String(at[1]) : file.split("/").pop() + ":" + at[1];  // narrow lanes: the line number only
        box(it.lane, y, H, (why ? "hot" : "") + (held ? " paused" : ""),
            (held ? "\u2016 " : "") + '<span class="loc">' + esc(loc) + "</span>" + esc(acc || src),
            "step " + (it.first + r + 1) + "  " + file + ":" + at[1] + "\n" + src + (acc ? "\n" + acc : "") +
            (why ? "\n\u2190 " + why : "") +
            (held === "before" ? "\npaused before this line runs; it runs when the thread resumes" :
             held ? "\npaused inside this line (its wait was over); the rest runs when the thread resumes" : ""));
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
      if (it.lanes && it.lanes.length) {
        it.lanes.forEach(function (l) { if (laneIndex.has(l)) mark(laneX(l, w) + 3, w - 6, y, h, cls, it.label); });
      } else if (it.lane === null || it.lane === undefined) {
        mark(GUTTER, w * M.lanes.length, y, h, cls, it.label);
      } else {
        mark(laneX(it.lane, w) + 8, w - 12, y, h, cls, it.label);
        extend(it.lane, y, y + h);
      }
      if (it.type === "clock" && axis === "time") gutter(y + h - 12, fmtT(it.t));
      anchors.set(it.id, [it.lane === null || it.lane === undefined ? (it.lanes && it.lanes[0]) : it.lane, y + h / 2]);
      y += h; return;
    }
    if (it.k === "deadlock") {
      const h = Math.round(50 * Math.max(zoom, 0.8));
      y += Math.round(10 * zoom);
      it.boxes.forEach(function (b) {
        mark(laneX(b.lane, w) + 14, w - 28, y, h, "wait" + (b.cycle ? " cycle" : ""), b.label);
        anchors.set(b.id, [b.lane, y + h / 2, true]);
      });
      y += h + Math.round(10 * zoom); return;
    }
    if (it.k === "fail") {
      mark(GUTTER, w * M.lanes.length, y + 4, Math.round(26 * Math.max(zoom, 0.8)), "fail", "\u2716 " + it.label);
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
document.body.setAttribute("data-ready", "1");
})();
"""
