import io

from bulkphone.console import ProgressDisplay
from bulkphone.executor import Progress


def test_without_a_terminal_progress_is_plain_periodic_lines():
    stream = io.StringIO()
    with ProgressDisplay(stream, every_seconds=3600) as display:
        display.update(Progress(done=1, total=3, writes=1, throttled=0, seconds=0.5))
        display.update(Progress(done=2, total=3, writes=2, throttled=0, seconds=1.0))
        display.update(Progress(done=3, total=3, writes=4, throttled=1, seconds=2.0))
    lines = stream.getvalue().splitlines()
    assert lines == [
        "bulkphone: 1/3 changes, 1 writes (2.0/s), 0 throttled, 0s",
        "bulkphone: 3/3 changes, 4 writes (2.0/s), 1 throttled, 2s",
    ]
