"""Whole-or-nothing writes of the run directory's JSON and text files."""

import json
import os

import pytest

from mmali_tf.atomic_files import write_json_atomic, write_text_atomic


def test_write_replaces_the_whole_file_and_leaves_no_temporary(tmp_path):
    path = str(tmp_path / "metrics.json")
    write_json_atomic(path, {"b": 1, "a": [1, 2]})
    assert json.loads(open(path).read()) == {"a": [1, 2], "b": 1}
    write_text_atomic(path, "short")
    assert open(path).read() == "short"
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = str(tmp_path / "config.json")
    write_json_atomic(path, '{"step": 1}')
    with pytest.raises(TypeError):
        write_json_atomic(path, {"step": object()})  # fails before anything is written
    assert open(path).read() == '{"step": 1}'
    with pytest.raises(TypeError):
        write_text_atomic(path, None)  # fails while writing the temporary file
    assert open(path).read() == '{"step": 1}'
    assert os.listdir(tmp_path) == ["config.json"]
