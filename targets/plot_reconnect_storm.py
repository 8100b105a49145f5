"""Draw docs/reconnect_storm_sessions.svg: sessions held over virtual time, both variants.

Runs reconnect_storm.simulate under interleave (one run each, default schedule, the pause
forced at PAUSE_AT) and plots the samples the model recorded. No plotting library: the
SVG is written by hand. Usage: ``python targets/plot_reconnect_storm.py [OUT.svg]``.
"""

from __future__ import annotations

import functools
import os
import sys

import interleave

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reconnect_storm as model  # noqa: E402  (found through the path set just above)

PAUSE_AT = 50
UNTIL = 110
WIDTH, HEIGHT = 760, 400
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 50, 75
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "reconnect_storm_sessions.svg")


def record(backoff: bool) -> list[tuple[float, int]]:
    """One controlled run of the model; its (seconds, sessions held) samples."""
    samples: list[tuple[float, int]] = []

    def run(backoff: bool) -> None:
        samples.extend(model.simulate(backoff=backoff, pause_at=PAUSE_AT, until=UNTIL).samples)

    report = interleave.explore(functools.partial(run, backoff), runs=1, strategy="dfs",
                                max_steps=model.__interleave__["max_steps"])
    if report.failure is not None:
        raise RuntimeError(f"the recording run failed: {report.failure.message}")
    return samples


def _x(seconds: float) -> float:
    return LEFT + seconds / UNTIL * (WIDTH - LEFT - RIGHT)


def _y(sessions: float) -> float:
    return HEIGHT - BOTTOM - sessions / model.CLIENTS * (HEIGHT - TOP - BOTTOM)


def _polyline(samples: list[tuple[float, int]], color: str) -> str:
    points = " ".join(f"{_x(t):.1f},{_y(n):.1f}" for t, n in [(0.0, 0), *samples])
    return f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>'


def svg(no_backoff: list[tuple[float, int]], backoff: list[tuple[float, int]]) -> str:
    resume = PAUSE_AT + model.PAUSE
    deadline = resume + model.RECOVERY_BOUND
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="15">ZOOKEEPER-801 model: '
        f'{model.CLIENTS} clients, sessions held after a {model.PAUSE:g}s server pause</text>',
        f'<rect x="{_x(PAUSE_AT):.1f}" y="{TOP}" width="{_x(resume) - _x(PAUSE_AT):.1f}" '
        f'height="{HEIGHT - TOP - BOTTOM}" fill="#ddd"/>',
        f'<text x="{(_x(PAUSE_AT) + _x(resume)) / 2:.1f}" y="{TOP - 5}" text-anchor="middle">server paused</text>',
        f'<line x1="{_x(deadline):.1f}" y1="{TOP}" x2="{_x(deadline):.1f}" y2="{HEIGHT - BOTTOM}" '
        f'stroke="black" stroke-dasharray="5,4"/>',
        f'<text x="{_x(deadline):.1f}" y="{TOP - 5}" text-anchor="middle">E1 deadline: pause end + 3 session timeouts</text>',
        f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" y2="{HEIGHT - BOTTOM}" stroke="black"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" stroke="black"/>',
    ]
    for seconds in range(0, UNTIL + 1, 10):
        parts.append(f'<text x="{_x(seconds):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{seconds}</text>')
    for sessions in range(0, model.CLIENTS + 1, model.CLIENTS // 4):
        parts.append(f'<text x="{LEFT - 6}" y="{_y(sessions) + 4:.1f}" text-anchor="end">{sessions}</text>')
    parts += [
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - BOTTOM + 34}" text-anchor="middle">virtual seconds</text>',
        f'<text x="16" y="{(TOP + HEIGHT - BOTTOM) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 16 {(TOP + HEIGHT - BOTTOM) / 2})">sessions held</text>',
        _polyline(no_backoff, "#c0392b"),
        _polyline(backoff, "#2471a3"),
        f'<line x1="{LEFT + 20}" y1="{HEIGHT - 16}" x2="{LEFT + 50}" y2="{HEIGHT - 16}" stroke="#c0392b" stroke-width="2"/>',
        f'<text x="{LEFT + 56}" y="{HEIGHT - 12}">main: retry after {model.RETRY_DELAY:g}s</text>',
        f'<line x1="{LEFT + 300}" y1="{HEIGHT - 16}" x2="{LEFT + 330}" y2="{HEIGHT - 16}" stroke="#2471a3" stroke-width="2"/>',
        f'<text x="{LEFT + 336}" y="{HEIGHT - 12}">fixed: full jitter, U(0, min({model.BACKOFF_CAP:g}, '
        f'{model.BACKOFF_BASE:g}·2^k)) s</text>',
        "</svg>",
    ]
    return "\n".join(parts) + "\n"


def main(out: str = DEFAULT_OUT) -> None:
    with open(out, "w") as f:
        f.write(svg(record(backoff=False), record(backoff=True)))
    print(f"wrote {os.path.relpath(out)}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
