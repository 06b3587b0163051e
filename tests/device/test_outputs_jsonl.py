import json

from edgefer.device.daemon_config import JsonlConfig
from edgefer.device.outputs.jsonl import JsonlSink


def test_events_rotate_by_size_and_count_and_stay_in_order(tmp_path):
    path = tmp_path / "logs" / "events.jsonl"
    sink = JsonlSink(JsonlConfig(path=path, max_bytes=2048, backups=2))
    for seq in range(200):
        sink.send({"seq": seq, "type": "face_appeared", "pad": "x" * 40})
    sink.close()
    files = sorted(path.parent.iterdir())
    assert [f.name for f in files] == ["events.jsonl", "events.jsonl.1", "events.jsonl.2"]
    assert all(f.stat().st_size <= 2048 for f in files)
    # oldest backup first, then the current file: one unbroken, increasing run ending at 199
    seqs = [
        json.loads(line)["seq"]
        for f in (files[2], files[1], files[0])
        for line in f.read_text().splitlines()
    ]
    assert seqs == list(range(seqs[0], 200)) and seqs[0] > 0  # the oldest were dropped


def test_nothing_propagates_to_the_root_logger(tmp_path, caplog):
    sink = JsonlSink(JsonlConfig(path=tmp_path / "e.jsonl"))
    sink.send({"seq": 1})
    sink.close()
    assert caplog.records == []
    assert json.loads((tmp_path / "e.jsonl").read_text()) == {"seq": 1}
