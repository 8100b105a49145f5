"""Programs that try to break the tool, and inputs that should not be taken.

Each program is run by the ``interleave`` command in a subprocess; the verdict must be the
one plain ``python`` gives the program (running it and calling main), the report must
come, the next run must start as the first did, and what interleave cannot control is
refused by name with exit code 2.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

PY311 = sys.version_info < (3, 12)


def run_cli(*args: str, cwd: Path, timeout: float = 120, stdin: int | None = subprocess.DEVNULL,
            ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "interleave", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, stdin=stdin)


def explore(tmp_path: Path, source: str, *args: str, name: str = "prog.py") -> subprocess.CompletedProcess:
    (tmp_path / name).write_text(textwrap.dedent(source))
    return run_cli("explore", name, "--workers", "1", *args, cwd=tmp_path)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


RACE = """
    import threading
    box = [0]
    def add():
        value = box[0]
        box[0] = value + 1
    def race():
        box[0] = 0
        threads = [threading.Thread(target=add) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert box[0] == 2, box[0]
"""

# ------------------------------------------------------------ the verdict real Python gives


@pytest.mark.parametrize("code, status, line", [
    ("1", 1, "FAILURE (exception) SystemExit: 1 in MainThread at prog.py:4"),
    ("'bye'", 1, "FAILURE (exception) SystemExit: bye in MainThread at prog.py:4"),
    ("0.0", 1, "FAILURE (exception) SystemExit: 0.0 in MainThread at prog.py:4"),
    ("False", 0, "runs, 1 distinct schedules"),  # no failure, in as many runs as the split makes
    ("0", 0, "runs, 1 distinct schedules"),
    ("None", 0, "runs, 1 distinct schedules"),
])
def test_sys_exit_in_main_is_the_exit_status(tmp_path, code, status, line):
    result = explore(tmp_path, f"""
        import sys
        def main():
            sys.exit({code})
        """)
    assert result.returncode == status, result.stderr
    assert line in result.stdout


def test_sys_exit_in_a_thread_is_ignored_as_threading_does(tmp_path):
    result = explore(tmp_path, """
        import sys, threading
        def main():
            t = threading.Thread(target=sys.exit, args=(3,))
            t.start()
            t.join()
        """)
    assert result.returncode == 0, result.stderr
    assert "interleave: no failure in" in result.stdout


@pytest.mark.parametrize("where, line", [
    ("thread", "FAILURE (exception) KeyboardInterrupt in Thread-1 (interrupt) at prog.py:4"),
    ("main", "FAILURE (exception) KeyboardInterrupt in MainThread at prog.py:4"),
])
def test_a_keyboard_interrupt_the_program_raises_is_its_exception(tmp_path, where, line):
    result = explore(tmp_path, f"""
        import threading
        def interrupt():
            raise KeyboardInterrupt
        def main():
            if {where == "main"}:
                interrupt()
            t = threading.Thread(target=interrupt)
            t.start()
            t.join()
        """)
    assert result.returncode == 1, result.stdout + result.stderr
    assert line in result.stdout
    assert "interrupted" not in result.stdout


def test_ctrl_c_stops_even_a_program_that_swallows_keyboard_interrupt(tmp_path):
    started = tmp_path / "started"
    (tmp_path / "stubborn.py").write_text(textwrap.dedent(f"""
        import threading, os
        def main():
            if not os.path.exists({str(started)!r}):
                open({str(started)!r}, "w").close()
            lock = threading.Lock()
            def add():
                with lock:
                    pass
            try:
                threads = [threading.Thread(target=add) for _ in range(3)]
                for t in threads: t.start()
                for t in threads: t.join()
            except KeyboardInterrupt:
                pass
        """))
    process = subprocess.Popen([sys.executable, "-m", "interleave", "explore", "stubborn.py", "--strategy", "random",
                                "--time-limit", "120", "--workers", "1"], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    try:
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, err  # interrupted, nothing found: not a clean "no failure"
    assert "interleave: interrupted; no failure in" in out


def test_endless_recursion_in_a_thread_is_its_recursion_error(tmp_path):
    result = explore(tmp_path, """
        import threading
        def down(n): return down(n + 1)
        def main():
            t = threading.Thread(target=down, args=(0,))
            t.start()
            t.join()
        """)
    assert result.returncode == 1, result.stderr
    assert "FAILURE (exception) RecursionError: maximum recursion depth exceeded in Thread-1 (down) at prog.py:3" \
        in result.stdout
    assert "died" not in result.stdout + result.stderr


@pytest.mark.skipif(not PY311, reason="the tracer CPython drops when it raises is 3.11's sys.settrace one")
def test_a_caught_recursion_error_that_cost_the_tracer_is_never_a_pass(tmp_path):
    """At line granularity on 3.11 the full stack can overflow inside the tracer; CPython then
    drops it, and if the program catches the RecursionError the rest of the run goes unseen."""
    result = explore(tmp_path, RACE + """
    def down(n): return down(n + 1)
    def deep_then_add():
        try:
            down(0)
        except RecursionError:
            pass
        add()
    def main():
        threads = [threading.Thread(target=deep_then_add) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert box[0] == 2, box[0]
    """, "--granularity", "line", "--runs", "100")
    assert result.returncode == 2, result.stdout
    assert one_line(result.stderr).startswith("interleave: error: cannot explore: the program used a stack so deep "
                                              "that interleave's tracer overflowed it and was dropped")
    assert "no failure" not in result.stdout


@pytest.mark.parametrize("call, line", [
    ("time.sleep(float('nan'))", "ValueError: Invalid value NaN (not a number) in MainThread at prog.py:4"),
    ("time.sleep(float('inf'))", "OverflowError: timestamp out of range for platform time_t in MainThread"),
    ("time.sleep(-1)", "ValueError: sleep length must be non-negative in MainThread at prog.py:4"),
    ("time.sleep('1')", "TypeError: 'str' object cannot be interpreted as an integer in MainThread"),
    ("threading.Lock().acquire(timeout=float('nan'))", "ValueError: Invalid value NaN (not a number)"),
])
def test_durations_are_converted_as_the_interpreter_converts_them(tmp_path, call, line):
    result = explore(tmp_path, f"""
        import threading, time
        def main():
            {call}
        """, "--time-limit", "30")
    assert result.returncode == 1, result.stderr
    assert f"FAILURE (exception) {line}" in result.stdout


@pytest.mark.parametrize("status, code, line", [
    (3, 1, "FAILURE (exception) os._exit(3) in Thread-1 (worker) at prog.py:4"),
    (0, 0, "interleave: no failure in"),
])
def test_os_exit_in_a_thread_ends_the_run_with_its_status_and_the_report_comes(tmp_path, status, code, line):
    result = explore(tmp_path, f"""
        import os, threading
        def worker():
            os._exit({status})
        def main():
            t = threading.Thread(target=worker)
            t.start()
            t.join()
        """)
    assert result.returncode == code, result.stderr
    assert line in result.stdout


@pytest.mark.skipif(not PY311, reason="3.12 and later switch with sys.monitoring, which a program's tracer leaves alone")
@pytest.mark.parametrize("call", ["sys.settrace(None)", "threading.settrace(print)"])
def test_a_tracer_of_the_program_is_refused_on_311(tmp_path, call):
    result = explore(tmp_path, f"""
        import sys, threading
        def main():
            {call}
        """, "--granularity", "line")
    assert result.returncode == 2
    name = call.split("(")[0]
    assert one_line(result.stderr).startswith(f"interleave: error: cannot explore: the program used {name} (")
    assert "prog.py:4" in result.stderr
    assert "no failure" not in result.stdout


# ------------------------------------------------------------ the report still comes


@pytest.mark.parametrize("closing", [
    "sys.stdout.close(); sys.stderr.close()",
    "sys.stdout = open(os.devnull, 'w'); sys.stderr = None",
    "sys.__stdout__.close(); os.close(1); os.close(2)",
])
def test_a_program_that_closes_or_replaces_stdout_still_gets_its_report(tmp_path, closing):
    result = explore(tmp_path, RACE + f"""
    import os, sys
    def main():
        {closing}
        race()
    """)
    assert result.returncode == 1, result.stderr
    assert "interleave: FAILURE (exception) AssertionError: 1 in MainThread at prog.py:14" in result.stdout
    assert "Replay it:" in result.stdout


def test_a_program_that_changes_directory_gets_its_json_where_the_command_ran(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    result = explore(tmp_path, RACE + f"""
    import os
    def main():
        os.chdir({str(tmp_path / "elsewhere")!r})
        race()
    """, "--json", "report.json", "--html", "report.html")
    assert result.returncode == 1, result.stderr
    assert "AssertionError: 1 in MainThread at prog.py:14" in result.stdout
    assert json.loads((tmp_path / "report.json").read_text())["failure"]["kind"] == "exception"
    assert (tmp_path / "report.html").exists()
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_the_next_run_starts_as_the_first_did(tmp_path):
    """Signal handlers, exit handlers, profiler, recursion limit, directory, environment: all put back."""
    (tmp_path / "elsewhere").mkdir()
    result = explore(tmp_path, f"""
        import atexit, os, signal, sys, threading
        def work():
            done = []
            done.append(1)
        def main():
            # (the command's own SIGTERM handler stops an exploration cleanly: not the program's lambda)
            assert getattr(signal.getsignal(signal.SIGTERM), "__name__", "") != "<lambda>", \
                "a SIGTERM handler of an earlier run"
            assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL, "a SIGUSR1 handler of an earlier run"
            assert sys.getrecursionlimit() == {sys.getrecursionlimit()}, "a recursion limit of an earlier run"
            assert sys.getprofile() is None, "a profiler of an earlier run"
            assert os.getcwd() == {str(tmp_path)!r}, "the directory of an earlier run"
            assert "INTERLEAVE_TEST_RUN" not in os.environ, "an environment variable of an earlier run"
            assert os.environ.get("HOME") == {os.environ.get("HOME")!r}, "HOME as an earlier run left it"
            os.environ["INTERLEAVE_TEST_RUN"] = "1"
            os.environ["HOME"] = "/nowhere"
            signal.signal(signal.SIGTERM, lambda *args: None)
            signal.signal(signal.SIGUSR1, signal.SIG_IGN)
            atexit.register(print, "an exit handler of a run")
            sys.setrecursionlimit(500)
            sys.setprofile(lambda *args: None)
            os.chdir({str(tmp_path / "elsewhere")!r})
            threads = [threading.Thread(target=work) for _ in range(2)]
            for t in threads: t.start()
            for t in threads: t.join()
        """, "--runs", "50", "--strategy", "random")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "interleave: no failure in 50 runs" in result.stdout
    assert "an exit handler of a run" not in result.stdout + result.stderr


def test_signal_handlers_set_by_keyword_are_taken_and_put_back(tmp_path):
    """``signal.signal(signalnum=..., handler=...)``: the run's stand-in takes the stdlib's names."""
    result = explore(tmp_path, """
        import signal, threading
        def work():
            done = []
            done.append(1)
        def main():
            assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL, "a SIGUSR1 handler of an earlier run"
            previous = signal.signal(signalnum=signal.SIGUSR1, handler=signal.SIG_IGN)
            assert previous == signal.SIG_DFL
            assert signal.getsignal(signal.SIGUSR1) == signal.SIG_IGN
            threads = [threading.Thread(target=work) for _ in range(2)]
            for t in threads: t.start()
            for t in threads: t.join()
        """, "--runs", "5", "--strategy", "random")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "interleave: no failure in 5 runs" in result.stdout


# ------------------------------------------------------------ refused by name


@pytest.mark.parametrize("body, name", [
    ("signal.alarm(5)", "signal.alarm"),
    ("signal.setitimer(signal.ITIMER_REAL, 5)", "signal.setitimer"),
    ("r, w = os.pipe(); os.read(r, 10)", "os.read"),
    ("os.read(0, 10)", "os.read"),
    ("input()", "input()"),
    ("sys.stdin.read()", "sys.stdin"),
    ("sys.stdin.buffer.readline()", "sys.stdin"),
    ("os.kill(os.getpid(), signal.SIGUSR1)", "os.kill"),
])
def test_what_waits_for_the_real_world_is_refused_by_name(tmp_path, body, name):
    result = explore(tmp_path, f"""
        import os, signal, sys
        def main():
            {body}
        """)
    assert result.returncode == 2, result.stdout + result.stderr
    assert one_line(result.stderr).startswith(f"interleave: error: cannot explore: the program used {name} (")
    assert "prog.py:4" in result.stderr
    assert "no failure" not in result.stdout


def test_reading_a_file_with_os_read_is_allowed(tmp_path):
    result = explore(tmp_path, """
        import os
        def main():
            fd = os.open(__file__, os.O_RDONLY)
            assert os.read(fd, 7) == b"\\nimport"
            os.close(fd)
        """)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "interleave: no failure in" in result.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pthread_create through the C library of Linux")
def test_a_c_thread_started_through_ctypes_is_refused_even_when_joined(tmp_path):
    result = explore(tmp_path, """
        import ctypes
        def main():
            libc = ctypes.CDLL(None)
            callback = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)(lambda arg: None)
            ident = ctypes.c_ulong()
            libc.pthread_create(ctypes.byref(ident), None, callback, None)
            libc.pthread_join(ident, None)
        """)
    assert result.returncode == 2, result.stdout + result.stderr
    assert one_line(result.stderr).startswith("interleave: error: cannot explore: the program used ctypes "
                                              "pthread_create (a real OS thread")
    assert "no failure" not in result.stdout


# ------------------------------------------------------------ inputs


@pytest.mark.parametrize("args, line", [
    (["--time-limit", "nan"], "Invalid value for '--time-limit': expected a number > 0, got nan"),
    (["--time-limit", "inf"], "Invalid value for '--time-limit': expected a number > 0, got inf"),
    (["--time-limit", "-1"], "Invalid value for '--time-limit': expected a number > 0, got -1.0"),
    (["--shrink-time", "nan"], "Invalid value for '--shrink-time': expected a number >= 0, got nan"),
    (["--time-limit", "soon"], "Invalid value for '--time-limit': expected a number > 0, got 'soon'"),
    (["--runs", "-5"], "Invalid value for '--runs': expected a whole number >= 1, got -5"),
])
def test_bad_option_values_are_one_line_and_exit_two(tmp_path, args, line):
    result = explore(tmp_path, "def main():\n    pass\n", *args)
    assert result.returncode == 2
    assert one_line(result.stderr) == f"interleave: error: {line}"


@pytest.mark.parametrize("settings, line", [
    ('{"max_steps": 2.5}', "max_steps must be a whole number of at least 1, not 2.5"),
    ('{"max_steps": float("nan")}', "max_steps must be a whole number of at least 1, not nan"),
    ('{"max_pauses": -1}', "max_pauses must be a whole number of at least 0, not -1"),
    ('{"max_faults": "2"}', "max_faults must be a whole number of at least 0, not '2'"),
    ('{"max_faults": True}', "max_faults must be a whole number of at least 0, not True"),
    ('{"max_step": 10}', "unknown setting 'max_step' (known: max_steps, max_pauses, max_faults"),
])
def test_bad_interleave_settings_are_one_line_and_exit_two(tmp_path, settings, line):
    result = explore(tmp_path, f"__interleave__ = {settings}\ndef main():\n    pass\n")
    assert result.returncode == 2
    assert one_line(result.stderr).startswith(f"interleave: error: __interleave__ of prog.py::main: {line}")


def test_interleave_settings_that_are_not_a_dict_are_refused(tmp_path):
    result = explore(tmp_path, "__interleave__ = [('max_steps', 10)]\ndef main():\n    pass\n")
    assert result.returncode == 2
    assert one_line(result.stderr) == "interleave: error: __interleave__ in prog.py must be a dict of settings, not list"


# ------------------------------------------------------------ outputs


@pytest.mark.parametrize("option", ["--json", "--html"])
def test_an_unwritable_output_path_is_refused_before_exploring(tmp_path, option):
    marker = tmp_path / "loaded"
    result = explore(tmp_path, f"""
        open({str(marker)!r}, "w").close()
        def main():
            pass
        """, option, "missing/dir/out.file")
    assert result.returncode == 2
    assert one_line(result.stderr) == f"interleave: error: {option} missing/dir/out.file: no such directory " \
                                      f"{tmp_path / 'missing' / 'dir'}"
    assert not marker.exists()  # the program was not even loaded


def test_replay_checks_its_html_path_first(tmp_path):
    result = run_cli("replay", "prog.py", "not-a-token", "--html", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert one_line(result.stderr) == f"interleave: error: --html {tmp_path}: is a directory"


def test_the_report_is_printed_before_the_json_is_written(tmp_path):
    """The program removes the report's directory: the write fails, the report is out already.
    (Through a directory descriptor: what a run removes by path is put back when it ends.)"""
    out = tmp_path / "out"
    out.mkdir()
    result = explore(tmp_path, RACE + f"""
    import os
    def main():
        if os.path.isdir({str(out)!r}):
            parent = os.open({str(tmp_path)!r}, os.O_RDONLY)
            os.rmdir("out", dir_fd=parent)
            os.close(parent)
        race()
    """, "--json", "out/report.json")
    assert result.returncode == 2
    assert "interleave: FAILURE (exception) AssertionError: 1 in MainThread" in result.stdout
    assert "Replay it:" in result.stdout
    # (the notice that the failure was found and shrinking's summary come first; then the one error line)
    after = result.stderr.split("Ctrl-C reports it as found)\n")[-1]
    assert one_line("".join(line for line in after.splitlines(keepends=True)
                            if not line.startswith("interleave: shrinking: "))).startswith(
        f"interleave: error: could not write {out / 'report.json'}: ")


def test_the_json_report_replaces_the_old_file_whole(tmp_path):
    """Written beside and renamed over: a second name of the old file still sees the old report."""
    (tmp_path / "report.json").write_text("old report")
    os.link(tmp_path / "report.json", tmp_path / "old.json")
    result = explore(tmp_path, RACE + "\n    def main():\n        race()\n", "--json", "report.json")
    assert result.returncode == 1, result.stderr
    assert json.loads((tmp_path / "report.json").read_text())["failure"]["kind"] == "exception"
    assert (tmp_path / "old.json").read_text() == "old report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json", "prog.py", "report.json"]
    assert (tmp_path / "report.json").stat().st_mode & 0o777 == (tmp_path / "prog.py").stat().st_mode & 0o777


def test_the_timeline_embeds_the_programs_strings_inertly(tmp_path):
    hostile = "</script><!--<script>alert(1)</script>&amp;"
    result = explore(tmp_path, RACE + f"""
    def main():
        box[0] = 0
        threads = [threading.Thread(target=add) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert box[0] == 2, {hostile!r}
    """, "--html", "page.html")
    assert result.returncode == 1, result.stderr
    page = (tmp_path / "page.html").read_text()
    opening = '<script type="application/json" id="model">'
    model = page[page.index(opening) + len(opening):]
    model = model[:model.index("</script>")]
    assert not set("<>&") & set(model)
    assert hostile in json.dumps(json.loads(model), ensure_ascii=False)
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert page.count("<!--") == 0


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path):
    from interleave.output import write_atomically

    (tmp_path / "report.json").write_text("old report")
    with pytest.raises(UnicodeEncodeError):
        write_atomically(tmp_path / "report.json", "x" * 100_000 + "\udc80")  # fails after 100 kB went out
    assert (tmp_path / "report.json").read_text() == "old report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
