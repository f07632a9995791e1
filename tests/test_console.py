import io

from bulkphone._console import ProgressDisplay, RowProgress
from bulkphone._executor import Progress


def test_without_a_terminal_progress_is_plain_periodic_lines():
    stream = io.StringIO()
    with ProgressDisplay(stream, every_seconds=3600) as display:
        display.update(Progress(done=1, total=3, writes=1, throttled=0, seconds=0.5))
        display.update(Progress(done=2, total=3, writes=2, throttled=0, seconds=1.0))
        display.update(Progress(done=3, total=3, writes=4, throttled=1, seconds=2.0))
    lines = stream.getvalue().splitlines()
    assert lines == [
        "bulkphone: 1/3 changes, 1 writes (1.0/s), 0 throttled, 0s",  # over at least a second, not 2/s
        "bulkphone: 3/3 changes, 4 writes (2.0/s), 1 throttled, 2s",
    ]


def test_normalize_shows_a_bar_with_the_row_count_on_a_terminal(tmp_path):
    """Through a real pseudo-terminal: the bar is drawn on it, and nothing of it lands in the report."""
    import os
    import pty
    import subprocess
    import sys

    source = tmp_path / "in.csv"
    source.write_text("user,mobile\n" + "".join(f"u{i}@contoso.com,+1 425 555 {i % 10000:04d}\n" for i in range(250_000)))
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bulkphone", "normalize", str(source), "--report", str(tmp_path / "n.csv")],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=follower, timeout=300,
            env={**os.environ, "COLUMNS": "100", "TERM": "xterm"},
        )
        os.close(follower)
        drawn = b""
        while True:
            try:
                piece = os.read(leader, 65536)
            except OSError:
                break
            if not piece:
                break
            drawn += piece
    finally:
        os.close(leader)
    assert done.returncode == 0, done.stdout
    assert b"normalising" in drawn and b"/250000" in drawn and b"rows" in drawn
    assert b"250000 values: ok 250000" in done.stdout


def test_a_log_gets_no_bar_and_the_input_is_not_counted():
    counted = []
    with RowProgress(total=lambda: counted.append("counted") or 10, stream=io.StringIO()) as progress:
        progress.update(5)
    assert counted == []  # a scheduled run reads its input once: no counting pass for a bar nobody sees
