"""The HTML timeline of a recorded run: one self-contained file, readable offline.

:func:`build_model` turns the run's :class:`~interleave.story.Story` (its failure too)
into plain data: lanes (one per thread, grouped by node), an ordered list of items (runs
of steps of one thread, markers such as preemptions and clock jumps, the failure), and
edges between lanes (lock hand-offs, wake-ups, thread starts, messages, the wait-for
edges of a deadlock). :func:`render_html` embeds that data in a page whose inline script
lays it out; nothing is fetched from anywhere. The script and the style sheet are package
data (``interleave/timeline/timeline.js`` and ``timeline.css``), copied into each page.
docs/timeline.md describes the page and the annotation API the simulated systems use.
"""
from __future__ import annotations

import functools
import html
import json
import os
import re
from dataclasses import replace
from importlib import resources
from typing import Any

from .clock import MONOTONIC_START
from .events import (
    Blocked,
    ClockAdvanced,
    Faulted,
    Noted,
    Paused,
    Preempted,
    ThreadEnded,
    ThreadsCrashed,
    ThreadsFrozen,
    ThreadStarted,
    ThreadsThawed,
    Woken,
)
from .failures import _short, source_line
from .output import write_atomically
from .story import Event, Link, Story, TraceRecorder, repeats, starting_thread
from .trace import event_detail, render, wait_text

#: Events that get a row of their own in the timeline.
_MARKERS = {"preempt", "pause", "clock", "fault", "start", "exit", "block", "crash", "freeze", "unfreeze", "note"}
#: Events that are something their thread does (so an edge waiting for its next move ends there).
_ACTS = {"block", "exit", "acquire", "release", "start", "note", "wake", "crash", "freeze", "unfreeze", "fault"}
_NODE_NAME = re.compile(r"([^.\s()]+)\.[^.\s]")


def _timeout(e: Event) -> bool:
    """A wake-up by the clock (a timed wait's deadline passed)."""
    return isinstance(e.what, Woken) and e.what.timeout


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


class _Builder:
    def __init__(self, story: Story) -> None:
        self.story = story
        self.failure = story.failure
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
        conflict = self.story.conflict()
        noted = conflict.notes if conflict is not None else {}
        events_at: dict[int, list[tuple[int, Event]]] = {}
        for n, e in enumerate(self.events):
            here = events_at.setdefault(e.at_step, [])
            at = len(here)
            if e.kind == "clock":  # the scheduler records a jump's timeouts before the jump itself
                while at and _timeout(here[at - 1][1]):
                    at -= 1
            here.insert(at, (n, e))
        wanted = self.plan_edges()  # event number -> anchor roles it must provide
        pending_targets: dict[int, list[dict[str, Any]]] = {}  # lane -> edges waiting for its next item
        segment: dict[str, Any] | None = None
        last_step: dict[int, tuple[dict[str, Any], int, int]] = {}  # lane -> (segment, offset, step index)
        paused: dict[int, tuple[int, bool]] = {}  # lane -> (step it was paused at, inside it?) until it runs
        conflict_anchors: list[int] = []

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
                                   "label": f"{how} {_short(at.filename)}:{at.lineno}  "
                                            f"{source_line(at.filename, at.lineno)}"})

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
                held = self.story.suspensions.get(n)
                if held is not None and held.thread in last_step:
                    # A step is recorded before its line runs: the preempted line runs on resumption.
                    seg, offset, index = last_step[held.thread]
                    seg["paused"][str(offset)] = "inside" if held.inside else "before"
                    paused[held.thread] = (index, held.inside)
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
                           "paused": {}, "anchors": [], "acc": {}, "conflict": {}}
                arrive(s.thread)
            last_step[s.thread] = (segment, len(segment["at"]), i)
            if i in hot:
                segment["hot"][str(len(segment["at"]))] = hot[i]
            if s.accesses:  # what the step read and wrote, in the program's terms
                segment["acc"][str(len(segment["at"]))] = "; ".join(s.accesses)
            if i in noted:  # one of the conflicting accesses: an anchor for the arrows between them
                self.anchor_ids += 1
                segment["conflict"][str(len(segment["at"]))] = noted[i]
                segment["anchors"].append([len(segment["at"]), self.anchor_ids])
                conflict_anchors.append(self.anchor_ids)
            segment["at"].append(self.where(s.filename, s.lineno))
        close()
        for lane, waiting in pending_targets.items():
            # The woken thread never ran again: the edge ends at the end of its lane.
            anchor = place_anchor(lane)
            for edge in waiting:
                edge["to"] = anchor
        for a, b in zip(conflict_anchors, conflict_anchors[1:]):
            self.edges.append({"kind": "conflict", "label": "", "from": a, "to": b,
                               "title": conflict.summary if conflict is not None else ""})
        self.edges = [e for e in self.edges if "from" in e and "to" in e]
        self.items = self.fold_repeats(self.items)
        self.final_items()

    def fold_repeats(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Fold a stretch of rows that repeats (a polling loop, a lock ping-pong) into one row.

        The first period stays; the rest becomes a ``repeat`` item with the count. Its rows
        are kept for the page to unfold when there are at most ``_KEEP_REPEATED`` of them;
        beyond that they (and the edges that touch them) are dropped to keep the page small.
        """
        out: list[dict[str, Any]] = []
        i = 0
        for rep in repeats([_signature(it) for it in items]):
            n, k = rep.times, rep.period
            out += items[i:rep.start + k]
            body = items[rep.start + k:rep.end]
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
            i = rep.end
        out += items[i:]
        return out

    def event_item(self, e: Event) -> dict[str, Any] | None:
        what = e.what
        if e.kind not in _MARKERS and not _timeout(e):
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
            named = replace(what, lock=self.story.lock_name(what.lock)) if what.lock else what
            item.update(label=f"blocks {wait_text(named)}")
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
            sent = what if what is not None else fields.get("msg", "")
            return f"send {sent}" + (f" to {to}" if to is not None else "")
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
            return (self.story.lock_name(link.what),
                    f"{start.name} releases {self.lock_title(link.what)}, {self.events[link.end].name} acquires it")
        if link.kind == "wake":
            block = self.events[link.waited].what if link.waited is not None else None
            waited_in = wait_text(block) if isinstance(block, Blocked) else "waiting"
            to = link.lane
            assert to is not None
            return link.what, f"{start.name} wakes {self.names.get(to, to)} ({waited_in}) by {start.api or 'ending'}"
        if link.kind == "spawn":
            return "start", f"{start.name} starts {link.what}"
        assert link.end is not None
        recv = self.events[link.end].what
        assert isinstance(recv, Noted)
        return link.what, f"message {recv.fields['msg']}: {link.what}"

    def lock_title(self, label: str) -> str:
        """A lock by its variable and its label: ``lock (Lock-1, made at handoff.py:4)``."""
        name = self.story.lock_name(label)
        short, _, made = label.partition(" (")
        if name == short:
            return label
        return f"{name} ({short}, {made[:-1]})" if made else f"{name} ({short})"

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
                    lock = self.story.lock_name(w.lock) if w.lock else "a lock"
                    why = f"{lock} held by {self.names.get(h, h)}"
                label = f"blocked {api}: waits for {why}"
                self.anchor_ids += 1
                boxes.append({"lane": t, "id": self.anchor_ids, "label": label, "cycle": t in in_cycle,
                              "title": label + (f"\nthe lock: {self.lock_title(w.lock)}" if w.lock else "")})
            ids = {b["lane"]: b["id"] for b in boxes}
            for t, h in story.wait_for.items():
                if h in ids:
                    cyc = t in in_cycle and h in in_cycle
                    self.edges.append({"kind": "waitfor", "label": "waits for", "from": ids[t], "to": ids[h],
                                       "cycle": cyc,
                                       "title": f"{self.names.get(t, t)} waits for {self.names.get(h, h)}"})
            self.items.append({"k": "deadlock", "boxes": boxes, "cycle": sorted(in_cycle)})
        self.items.append({"k": "fail", "kind": f.kind, "label": f.message})

    @staticmethod
    def block_text(block: Event) -> str:
        """Where a block happened, without who holds the lock: ``in Lock.acquire: Lock-1``."""
        assert isinstance(block.what, Blocked)
        return wait_text(block.what).split(" (")[0]


#: How many repeated rows the page keeps so a click can unfold them (the folding itself:
#: :func:`interleave.story.repeats`).
_KEEP_REPEATED = 3000
#: Lines of the page's text trace (repeats folded) past which its middle is left out.
_TRACE_LINES = 2000


def _signature(item: dict[str, Any]) -> Any:
    """What makes two rows the same row again; None for rows that never repeat."""
    if item["k"] == "steps":
        if item["hot"] or item["paused"] or item["conflict"]:
            return None
        return ("steps", item["lane"], tuple(tuple(a) for a in item["at"]), len(item["anchors"]))
    if item["k"] == "mark":
        if item["type"] in ("preempt", "pause", "fault", "crash", "start"):
            return None
        return ("mark", item["type"], item["lane"], item["label"], tuple(item.get("lanes", ())))
    if item["k"] == "anchor":
        return ("anchor", item["lane"])
    return None


def build_model(recorder: TraceRecorder, *, title: str = "", token: str | None = None,
                command: str | None = None) -> dict[str, Any]:
    """The timeline as plain data (what the page's script draws); see docs/timeline.md.
    ``command`` is the shell command that replays the run (shown ready to copy)."""
    story = recorder.story()
    failure = story.failure
    b = _Builder(story)
    b.build_items()
    lanes, groups = b.lanes()
    steps = story.steps[: b.end]
    conflict = story.conflict()
    return {
        "title": title,
        "token": token,
        "command": command,
        "conflict": None if conflict is None else {"summary": conflict.summary, "race": bool(story.marks)},
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


def render_html(recorder: TraceRecorder, *, title: str = "", token: str | None = None,
                command: str | None = None) -> str:
    """One offline HTML page: the timeline, the run's failure with its details and the text trace."""
    model = build_model(recorder, title=title, token=token, command=command)
    story = recorder.story()
    text = render(recorder, skip_setup=story.setup, limit=_TRACE_LINES,
                  more="interleave replay --full prints the whole trace")
    failure = story.failure
    # Nothing in the program's strings may end the script element or open a comment in it.
    data = json.dumps(model, separators=(",", ":")).translate(_SCRIPT_SAFE)
    head = html.escape(title or "interleave timeline")
    if failure is not None:
        summary = f'<p class="failure">{html.escape(failure.kind.upper())}: {html.escape(failure.message)}</p>'
        details = f"<details open><summary>Failure details</summary><pre>{html.escape(failure.details)}</pre></details>"
    else:
        summary = '<p class="ok">The schedule ran without failing.</p>'
        details = ""
    if command or token:
        what, shown = ("replay it", command) if command else ("replay token", token)
        replay = (f'<p class="token">{what}: <code id="replay">{html.escape(shown or "")}</code> '
                  '<button id="copy" title="copy to the clipboard">copy</button></p>')
    else:
        replay = ""
    return (_asset("page.html").replace("@TITLE@", head).replace("@SUMMARY@", summary + replay)
            .replace("@DETAILS@", details).replace("@TRACE@", html.escape(text))
            .replace("@CSS@", _asset("timeline.css")).replace("@JS@", _asset("timeline.js")).replace("@MODEL@", data))


@functools.cache
def _asset(name: str) -> str:
    """The page's skeleton, script or style sheet: package data (``interleave/timeline/``); the
    script and style are inlined so that the page works offline."""
    return resources.files("interleave").joinpath("timeline", name).read_text(encoding="utf-8")


#: JSON escapes for the characters that could end the model's script element or open a comment in it.
_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def write_html(path: str | os.PathLike[str], recorder: TraceRecorder, *, title: str = "", token: str | None = None,
               command: str | None = None) -> None:
    write_atomically(path, render_html(recorder, title=title, token=token, command=command))

