"""`gen3c batch`: manifests, per-job status and integrity, resuming (also after SIGKILL),
retries, local worker processes, and the shipped example manifest."""

import csv
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from child_env import child_env
from typer.testing import CliRunner

from gen3c.batch import load_manifest, run_batch
from gen3c.batch.jobs import GeneratorPool
from gen3c.batch.runner import batch_lock
from gen3c.cli import app
from gen3c.errors import Gen3cInputError
from gen3c.io.video import read_video
from gen3c.pipelines.preview import PreviewGenerator
from gen3c.pipelines.request import GenerationRequest, run_request

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


def write_manifest(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return path


def box_row(box_scene, name: str, **settings) -> dict:
    image, depth, _, _ = box_scene
    return {"name": name, "input_image_path": str(image), "depth_path": str(depth), "fov": 60, "resolution": "64x112",
            "num_video_frames": 9, **settings}  # fmt: skip


def summary_states(folder: Path) -> dict[str, str]:
    with open(folder / "batch_summary.csv", newline="") as fh:
        return {row["name"]: row["state"] for row in csv.DictReader(fh)}


def status(folder: Path, name: str) -> dict:
    return json.loads((folder / f"{name}_status.json").read_text())


# -- manifests -------------------------------------------------------------------------------


def test_jsonl_and_csv_manifests_give_the_same_jobs(tmp_path):
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "K.json").write_text('{"fx": 100, "fy": 100, "cx": 50, "cy": 40}')
    rows = [
        {"name": "one", "input_image_path": "inputs/a.png", "depth_path": "/abs/a.npy", "fov": 60, "num_video_frames": 17,
         "save_buffer": True, "trajectory": "zoom_in"},
        {"name": "two", "input_image_path": "inputs/b.png", "intrinsics": "inputs/K.json", "depth_estimator": "prior"},
        {"name": "three", "input_image_path": "c.png", "intrinsics": "100,100,50,40", "movement_distance": 1},
    ]  # fmt: skip
    jsonl = write_manifest(tmp_path / "jobs.jsonl", rows)
    header = ["name", "input_image_path", "depth_path", "fov", "num_video_frames", "save_buffer", "trajectory", "intrinsics",
              "depth_estimator", "movement_distance"]  # fmt: skip
    with open(tmp_path / "jobs.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, header)
        writer.writeheader()
        writer.writerows(
            [{k: str(v).lower() if isinstance(v, bool) else v for k, v in row.items()} for row in rows]
        )
    from_jsonl, from_csv = load_manifest(jsonl), load_manifest(tmp_path / "jobs.csv")
    assert [j.settings for j in from_jsonl] == [j.settings for j in from_csv]
    assert [j.request_hash for j in from_jsonl] == [
        j.request_hash for j in from_csv
    ]  # 60 and "60" hash alike
    one, two, three = from_jsonl
    # Relative paths resolve against the manifest's folder; numbers, ids and absolute paths stay.
    assert one.settings["input_image_path"] == str(tmp_path / "inputs" / "a.png")
    assert one.settings["depth_path"] == "/abs/a.npy"
    assert (
        two.settings["intrinsics"] == str(tmp_path / "inputs" / "K.json")
        and two.settings["depth_estimator"] == "prior"
    )
    assert (
        three.settings["input_image_path"] == str(tmp_path / "c.png")
        and three.settings["intrinsics"] == "100,100,50,40"
    )
    request = one.request(tmp_path / "out")
    assert (request.num_video_frames, request.save_buffer, request.fov, request.trajectory) == (
        17,
        True,
        60.0,
        "zoom_in",
    )
    assert (request.video_save_folder, request.video_save_name) == (str(tmp_path / "out"), "one")
    # One changed setting changes only that job's hash.
    rows[1]["depth_estimator"] = "moge"
    changed = load_manifest(write_manifest(tmp_path / "jobs2.jsonl", rows))
    assert [a.request_hash == b.request_hash for a, b in zip(from_jsonl, changed, strict=True)] == [
        True,
        False,
        True,
    ]


def test_csv_cells_are_read_without_surrounding_spaces(tmp_path):
    (tmp_path / "m.csv").write_text("name, input_image_path, fov, trajectory, save_buffer\na, in/a.png , 60, up, true\n")
    (job,) = load_manifest(tmp_path / "m.csv")
    assert job.settings == {"input_image_path": str(tmp_path / "in" / "a.png"), "fov": 60.0, "trajectory": "up", "save_buffer": True}


def test_a_spreadsheets_empty_columns_past_the_table_are_no_columns(tmp_path):
    """Spreadsheets export empty columns past a table as ",," ending every line, the header's too:
    refused before as "column '' appears twice in the header". A cell under no name is still refused."""
    path = tmp_path / "m.csv"
    path.write_text("name,fov,trajectory,,\r\na,60,up,,\r\nb,50,,,\r\nc,40,left\r\n")
    assert [(job.name, job.settings) for job in load_manifest(path)] == [
        ("a", {"fov": 60.0, "trajectory": "up"}), ("b", {"fov": 50.0}), ("c", {"fov": 40.0, "trajectory": "left"})]  # fmt: skip
    path.write_text("name,fov\na,60, ,\n")  # empty cells past the header's end hold nothing either
    assert [(job.name, job.settings) for job in load_manifest(path)] == [("a", {"fov": 60.0})]
    path.write_text("name,fov,,\na,60,,left\n")
    with pytest.raises(Gen3cInputError, match=r"m.csv' line 2: cell 'left' is in column 4, whose header cell is empty: "
                                              r"write its setting's name in the header, or delete the cell$"):  # fmt: skip
        load_manifest(path)


def test_jsonl_files_joined_with_cat_keep_each_ones_byte_order_mark_out(tmp_path):
    """`cat a.jsonl b.jsonl > all.jsonl` of files saved with a byte order mark (Notepad) put one at
    the start of a line inside: "line 3 is not JSON (Unexpected UTF-8 BOM …)"."""
    path = tmp_path / "all.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"name": "a", "fov": 60}\r\n\r\n\xef\xbb\xbf{"name": "b", "fov": 50}\r\n\xef\xbb\xbf# c\r\n')
    assert [(job.name, job.line, job.settings) for job in load_manifest(path)] == [("a", 1, {"fov": 60.0}), ("b", 3, {"fov": 50.0})]


def test_a_utf16_manifest_with_its_byte_order_mark_is_read(tmp_path):
    """PowerShell 5's `>` and Notepad's "Unicode" save UTF-16 with a byte order mark: refused before
    as "cannot be read ('utf-8' codec can't decode byte 0xff …)"."""
    jsonl = '{"name": "caf\u00e9", "fov": 60}\r\n{"name": "b", "fov": 50}\r\n'
    for encoding in ("utf-16", "utf-16-be"):
        data = (b"\xfe\xff" if encoding == "utf-16-be" else b"") + jsonl.encode(encoding)
        (tmp_path / "m.jsonl").write_bytes(data)
        assert [(job.name, job.line, job.settings) for job in load_manifest(tmp_path / "m.jsonl")] == [
            ("caf\u00e9", 1, {"fov": 60.0}), ("b", 2, {"fov": 50.0})]  # fmt: skip
    (tmp_path / "m.csv").write_bytes("name,fov\r\na,60\r\n".encode("utf-16"))
    assert [(job.name, job.line, job.settings) for job in load_manifest(tmp_path / "m.csv")] == [("a", 2, {"fov": 60.0})]
    (tmp_path / "m.csv").write_bytes("name,fov\na,60\n".encode("cp1252") + b"\xe9\n")  # no mark, not UTF-8: still refused
    with pytest.raises(Gen3cInputError, match=r"^manifest '.*m\.csv' is not UTF-8 text \(line 3 holds the byte 0xe9\): save it as UTF-8$"):
        load_manifest(tmp_path / "m.csv")


def test_csv_comment_lines_and_blank_lines_are_skipped_as_in_jsonl(tmp_path):
    """A '#' line above the header was taken for the header ("line 2 has more cells than the
    header"), a row commented out with '#' ran as a job named "# b", and a blank first line
    read as "has no header row". A quoted cell starting with '#' (a prompt) is no comment."""
    path = tmp_path / "m.csv"
    path.write_text('\n# jobs for the room scene\nname,fov,trajectory,vipe_clip\na,60,up,\n# b,50,left,\n  # c,40\n'
                    '"#d",30,left,"x\n# y"\n\ne,20,lefft,\n')
    with pytest.raises(Gen3cInputError, match=r"m.csv' line 10: trajectory 'lefft' is unknown"):
        load_manifest(path)
    path.write_text(path.read_text().replace("lefft", "left"))
    assert [(job.name, job.line, job.settings.get("vipe_clip")) for job in load_manifest(path)] == [
        ("a", 4, None), ("#d", 7, "x\n# y"), ("e", 10, None)]  # fmt: skip
    path.write_text("# only a comment\nname,fov\n")
    with pytest.raises(Gen3cInputError, match="lists no jobs"):
        load_manifest(path)
    path.write_text("# header below\nname;fov\na;60\n")
    with pytest.raises(Gen3cInputError, match=r"m.csv' line 2: header cell 'name;fov' holds ';'"):
        load_manifest(path)


def test_jsonl_lines_end_at_newlines_only(tmp_path):
    """A JSON string may hold U+2028 or U+0085 raw (json.dumps(..., ensure_ascii=False) writes them
    so): the row stays one row; a form feed starts no line: lines are counted as an editor does."""
    path = tmp_path / "m.jsonl"
    path.write_text('{"name": "a", "vipe_path": "v", "vipe_clip": "x\u2028y\x85z"}\n\x0c\n{"name": "b", "trajectory": "lefft"}\n', encoding="utf-8")
    with pytest.raises(Gen3cInputError, match=r"m.jsonl' line 3: trajectory 'lefft' is unknown"):
        load_manifest(path)
    path.write_text('{"name": "a", "vipe_path": "v", "vipe_clip": "x\u2028y\x85z"}\n', encoding="utf-8")
    (job,) = load_manifest(path)
    assert job.settings["vipe_clip"] == "x\u2028y\x85z"


def test_csv_rows_are_named_by_their_first_line(tmp_path):
    """A quoted cell may span lines (a prompt): a row's messages name the line it starts on."""
    path = tmp_path / "m.csv"
    path.write_text('name,vipe_path,vipe_clip,trajectory\na,v,"x\ny\nz",left\n\nb,v,"x\ny",lefft\n')
    with pytest.raises(Gen3cInputError, match=r"m.csv' line 6: trajectory 'lefft' is unknown"):
        load_manifest(path)
    path.write_text('name,vipe_path,vipe_clip\na,v,"x\ny"\na,v,y\n')
    with pytest.raises(Gen3cInputError, match=r"line 4: name 'a' is already used on line 2"):
        load_manifest(path)


def test_whole_number_floats_are_taken_for_integer_settings(tmp_path):
    """pandas writes an int column that has gaps as 25.0: "must be int" before, in CSV and JSONL.
    Taken as the int, the job is the one its int row gives (the same request hash)."""
    ints = load_manifest(write_manifest(tmp_path / "i.jsonl", [
        {"name": "a", "num_video_frames": 25, "generator": "gen3c", "num_steps": 3, "seed": 7}]))  # fmt: skip
    floats = load_manifest(write_manifest(tmp_path / "f.jsonl", [
        {"name": "a", "num_video_frames": 25.0, "generator": "gen3c", "generator_options": {"num_steps": 3.0}, "seed": 7.0}]))  # fmt: skip
    (tmp_path / "f.csv").write_text("name,num_video_frames,generator,num_steps,seed\na,25.0,gen3c,3.0,7.0\n")
    cells = load_manifest(tmp_path / "f.csv")
    assert ints[0].settings["num_video_frames"] == floats[0].settings["num_video_frames"] == cells[0].settings["num_video_frames"] == 25
    assert type(floats[0].settings["num_video_frames"]) is type(cells[0].settings["generator_options"]["num_steps"]) is int
    assert ints[0].request_hash == floats[0].request_hash == cells[0].request_hash


def test_unnamed_rows_get_numbered_names(tmp_path):
    jobs = load_manifest(
        write_manifest(tmp_path / "m.jsonl", [{"trajectory": "left"}, {"name": "x"}, {"trajectory": "up"}])
    )
    assert [j.name for j in jobs] == ["job_00001", "x", "job_00003"]


@pytest.mark.parametrize(
    "text, suffix, message",
    [
        ('{"name": "a"}\n{"name": "b",\n', ".jsonl", "line 2 is not JSON"),
        ('{"name": "a"}\n[1, 2]\n', ".jsonl", "line 2 must be a JSON object"),
        ('{"name": "a", "trajectroy": "left"}\n', ".jsonl", "line 1: unknown settings 'trajectroy': did you mean 'trajectory'.$"),
        # A typo'd key names its nearest setting: a header's capital, a gen3c option on a preview row (and what it needs).
        ("Name,fov\na,60\n", ".csv", "line 2: unknown settings 'Name': did you mean 'name'.$"),
        ('{"name": "a", "num_step": 3}\n', ".jsonl", """line 1: unknown settings 'num_step': did you mean 'num_steps'. .gen3c generator options need "generator": "gen3c".$"""),
        ('{"name": "a", "checkpoint_dir": "c"}\n', ".jsonl", 'line 1: checkpoint_dir applies to "generator": "gen3c" only; remove the key or pass "generator": "gen3c"'),
        ('{"name": "a", "generator_options": "x"}\n', ".jsonl", "'generator_options' must be dict"),
        ('{"name": "a"}\n\n{"name": "a"}\n', ".jsonl", "line 3: name 'a' is already used on line 1"),
        ('{"name": "a", "video_save_folder": "x"}\n', ".jsonl", "video_save_folder are set by gen3c batch"),
        ('{"name": "sub/a"}\n', ".jsonl", "must be a plain file name"),
        ('{"name": 7}\n', ".jsonl", 'line 1: name must be text, got int .7.: quote it ."name": "7".'),
        ('{"name": "a", "num_video_frames": "ten"}\n', ".jsonl", "'num_video_frames' must be int"),
        # Spaces around a name wrote "  pad  .mp4" (a CSV cell is stripped: only JSONL can say it).
        ('{"name": "a"}\n{"name": "  pad  "}\n', ".jsonl", "line 2: name '  pad  ' starts or ends with spaces: remove them$"),
        ('{"name": "pad "}\n', ".jsonl", "line 1: name 'pad ' starts or ends with spaces: remove them$"),
        # Whole-number floats are taken for int settings (test_whole_number_floats_...); others are refused.
        ('{"name": "a", "num_video_frames": 25.5}\n', ".jsonl", "line 1: setting 'num_video_frames' must be int, got float '25.5'$"),
        ("name,num_video_frames\na,25.5\n", ".csv", "line 2: 'num_video_frames' must be int, got '25.5'$"),
        ('{"name": "a", "generator": "gen3c", "generator_options": {"num_steps": 2.5}}\n', ".jsonl",
         "line 1: gen3c generator: setting 'num_steps' must be int, got float '2.5'$"),
        (
            '{"name": "a", "generator_options": {"num_steps": 3}}\n',
            ".jsonl",
            'line 1: num_steps applies to "generator": "gen3c" only; remove the key or pass "generator": "gen3c"',
        ),
        ("# only a comment\n\n", ".jsonl", "lists no jobs"),
        ("name,save_buffer\na,maybe\n", ".csv", "line 2: 'save_buffer' must be true or false"),
        ("name,fov\na,60,extra\n", ".csv", "more cells than the header"),
        ('{"name": "a"}\n', ".txt", "must end in .jsonl or .csv"),
        # A .json manifest is a run record (NAME_run.json); anything else is refused as none.
        ('{"name": "a"}\n', ".json", "is no run record .* listing its outputs"),
        ('{"name": "a",\n', ".json", "is not JSON"),
        # Jobs as one JSON array: said as such (it was "no run record").
        ('[{"name": "a"}, {"name": "b"}]\n', ".json", "m.json' is a JSON list: a manifest of jobs is JSONL, one JSON object per line, in a .jsonl file .or pass a run record NAME_run.json.$"),
        # Value typos are refused at once, not when row 900 comes up hours later.
        ('{"name": "a"}\n{"name": "b", "trajectory": "lefft"}\n', ".jsonl", "line 2: trajectory 'lefft' is unknown"),
        ('{"name": "a", "camera_rotation": "centre"}\n', ".jsonl", "line 1: camera_rotation 'centre' is unknown"),
        ('{"name": "a", "resolution": "64x100"}\n', ".jsonl", "line 1: resolution '64x100': the height and width must be multiples of 8 .*: pass resolution '64x96' or '64x104'$"),
        ('{"name": "a.mp4"}\n', ".jsonl", "line 1: .*ends in .mp4"),
        ('{"name": "a", "fps": 0}\n', ".jsonl", "line 1: fps 0.0 is impossible"),
        ('{"name": "a", "num_video_frames": 0}\n', ".jsonl", "line 1: num_video_frames 0 is impossible"),
        ('{"name": "a"}\n{"name": "b", "depth_estimator": "mogee"}\n', ".jsonl", "line 2: depth_estimator 'mogee' is unknown .did you mean 'moge'.."),
        # An empty one was taken for a path, the manifest's folder, and loaded as a model.
        ('{"name": "a", "depth_estimator": " "}\n', ".jsonl", "line 1: depth_estimator is empty: pass moge, prior"),
        # Two names writing one file: job a's buffer video is a_buffer_masks.mp4.
        ('{"name": "a", "save_buffer": true}\n{"name": "a_buffer_masks"}\n', ".jsonl",
         "line 2: name 'a_buffer_masks' writes a_buffer_masks.mp4, which job 'a' .line 1. writes too"),
        # Names differing only in case write one file on macOS and Windows.
        ('{"name": "Room"}\n{"name": "room"}\n', ".jsonl",
         "line 2: name 'room' writes room.mp4, which job 'Room' .line 1. writes too .as Room.mp4: one file on macOS and Windows."),
        # Names differing only in their Unicode form (é, or e and a combining accent) write one file on macOS.
        ('{"name": "caf\\u00e9"}\n{"name": "cafe\\u0301"}\n', ".jsonl",
         "line 2: name 'cafe.' writes cafe..mp4, which job 'caf.' .line 1. writes too .as caf..mp4, in another Unicode form: one file on macOS."),
        # A line of JSON that is no object, named in JSON's words (it said "got NoneType").
        ('null\n', ".jsonl", 'line 1 must be a JSON object of settings .{"name": …, …}., not a JSON null$'),
        ('{"name": "a"}\n["a.png"]\n', ".jsonl", "line 2 must be a JSON object of settings .*, not a JSON list$"),
        ('"a.png"\n', ".jsonl", "line 1 must be a JSON object of settings .*, not a JSON string$"),
        ('7\n', ".jsonl", "line 1 must be a JSON object of settings .*, not a JSON number$"),
        ('true\n', ".jsonl", "line 1 must be a JSON object of settings .*, not a JSON boolean$"),
        # Names Windows takes for no file (an output folder is meant to be copied anywhere): written here, lost there.
        ('{"name": "a"}\n{"name": "take:1"}\n', ".jsonl",
         "line 2: name 'take:1' holds ':', which Windows takes in no file name .< > : \" .* rename it .outputs are meant to be copied to any system.$"),
        ("name\nwhat?\n", ".csv", "line 2: name 'what.' holds '.', which Windows takes in no file name"),
        ('{"name": "a\\\\b"}\n', ".jsonl", "line 1: name 'a.*b' holds '.*', which Windows takes in no file name"),
        ('{"name": "con"}\n', ".jsonl", "line 1: name 'con' is a device name on Windows .CON, PRN, AUX, NUL, CONIN\\$, CONOUT\\$, COM1…9, LPT1…9., which no file there can have: rename it"),
        ('{"name": "conout$.take2"}\n', ".jsonl", "line 1: name 'conout.*' starts with 'conout.', a device name on Windows"),
        ('{"name": "Nul.v2"}\n', ".jsonl", "line 1: name 'Nul.v2' starts with 'Nul', a device name on Windows"),
        ('{"name": "COM1"}\n', ".jsonl", "line 1: name 'COM1' is a device name on Windows"),
        ('{"name": "a"}\n{"name": "b", "fov": 50, "trajectory": "up", "fov": 60}\n', ".jsonl", "line 2: 'fov' appears twice in the row: keep one"),
        ("name,fov,fov\na,50,60\n", ".csv", "line 1: column 'fov' appears twice"),
        # A spreadsheet's export with ';' (Excel in many locales) or tabs: one column, taken for a mistyped setting before.
        ("name;fov;trajectory\na;60;left\n", ".csv", "line 1: header cell 'name;fov;trajectory' holds ';': a CSV manifest's cells are separated by commas"),
        ("name\tfov\na\t60\n", ".csv", "line 1: header cell 'name.tfov' holds '.t': a CSV manifest's cells are separated by commas"),
        ("name,fov,trajectory\na,60\n", ".csv", "line 2 has fewer cells than the header"),
        # A generator option naming a path that is no text, a path no file system takes: a TypeError / OSError traceback before.
        ('{"name": "a", "input_image_path": "a.png", "generator": "gen3c", "checkpoint_dir": 5}\n', ".jsonl",
         "line 1: checkpoint_dir must be text .a path., got int '5'"),
        # JSON nested thousands deep: json's raw RecursionError before.
        ('{"name": "a", "x": ' + "[" * 100_000 + "\n", ".jsonl", "line 1 nests its JSON lists or objects thousands deep, as no row of settings does"),
        ('{"outputs": ' + "[" * 100_000, ".json", "run record '.*m.json' nests its JSON lists or objects thousands deep"),
        ("name,generator_options\na," + '"{""x"": ' + "[" * 100_000 + '"\n', ".csv", "line 2: 'generator_options' nests its JSON lists"),
        # A home folder of no user: Path.expanduser's raw RuntimeError before.
        ('{"name": "a", "input_image_path": "~nouser_gen3c/x.png"}\n', ".jsonl",
         "line 1: input_image_path '~nouser_gen3c/x.png' starts with ~nouser_gen3c, the home folder of 'nouser_gen3c', no user on this machine: write the path out in full"),
    ],
)
def test_manifest_mistakes_name_the_line(tmp_path, text, suffix, message):
    path = tmp_path / f"m{suffix}"
    path.write_text(text)
    with pytest.raises(Gen3cInputError, match=message.replace("(", r"\(")):
        load_manifest(path)


def test_a_run_records_name_is_taken_as_its_run_wrote_it_even_where_windows_would_refuse_it(tmp_path):
    """A manifest's names must suit Windows too (test_manifest_mistakes_name_the_line); a run
    record's name is the one gen3c generate already wrote here, so running it again keeps it."""
    record = {"video_save_name": "take:1", "video_save_folder": str(tmp_path), "outputs": {"video": "take:1.mp4"}, "input_image_path": "a.png"}
    (tmp_path / "take:1_run.json").write_text(json.dumps(record))
    [job] = load_manifest(tmp_path / "take:1_run.json")
    assert job.name == "take:1"


def test_names_that_differ_as_sharp_s_and_ss_write_one_file_on_macos(tmp_path):
    """macOS's APFS folds case in full, ß to ss (as str.casefold), so straße.mp4 and STRASSE.mp4 are
    one file there, though two on Windows (its table of upper cases maps a character to one): two
    such jobs were taken as writing two files, and on a Mac the second wrote over the first's outputs.
    They are refused as one file on macOS; names differing in case are one file on both."""
    path = tmp_path / "m.jsonl"
    path.write_text('{"name": "stra\u00dfe"}\n{"name": "STRASSE"}\n')
    with pytest.raises(Gen3cInputError, match="line 2: name 'STRASSE' writes STRASSE.mp4, which job 'stra.e' .line 1. writes too .as stra.e.mp4: one file on macOS.: rename"):
        load_manifest(path)
    path.write_text('{"name": "stra\u00dfe"}\n{"name": "STRA\u1e9eE"}\n')  # ẞ, ß's capital, upper-cases to itself on Windows
    with pytest.raises(Gen3cInputError, match="line 2: name 'STRA.E' writes STRA.E.mp4, which job 'stra.e' .line 1. writes too .as stra.e.mp4: one file on macOS.: rename"):
        load_manifest(path)
    path.write_text('{"name": "strasse"}\n{"name": "STRASSE"}\n')
    with pytest.raises(Gen3cInputError, match="line 2: name 'STRASSE' writes STRASSE.mp4, which job 'strasse' .line 1. writes too .as strasse.mp4: one file on macOS and Windows.: rename"):
        load_manifest(path)
    path.write_text('{"name": "stra\u00dfe"}\n{"name": "strase"}\n')
    assert [job.name for job in load_manifest(path)] == ["stra\u00dfe", "strase"]


def test_gen3c_options_of_another_generator_are_the_shared_refusal_and_null_is_unset(tmp_path):
    """A preview row's gen3c options are refused as gen3c.generate and the CLI refuse them
    (refuse_gen3c_only), flat or nested, in the manifest's spelling; null is unset there as in a
    request (check_gen3c_only), so a manifest written from a table (nulls in the other rows'
    gen3c columns) loads, and its job carries none of them. A mistyped generator is named as such."""
    both = {"name": "a", "generator": "preview", "lora": "x", "generator_options": {"num_steps": 3, "guidance": None}}
    with pytest.raises(Gen3cInputError, match='line 1: lora, num_steps apply to "generator": "gen3c" only; remove the keys or pass "generator": "gen3c"$'):
        load_manifest(write_manifest(tmp_path / "m.jsonl", [both]))
    nulls = {"name": "a", "generator": "preview", "lora": None, "generator_options": {"num_steps": None}}
    [job] = load_manifest(write_manifest(tmp_path / "m.jsonl", [nulls]))
    assert job.settings["generator_options"] == {}
    assert job.request(tmp_path).generator_options == {}
    [plain] = load_manifest(write_manifest(tmp_path / "m.jsonl", [{"name": "a", "generator": "preview", "generator_options": {}}]))
    assert plain.request_hash == job.request_hash
    nested_typo = {"name": "a", "generator_options": {"num_step": 3}}  # its typo first, not "set gen3c" (which refuses it next)
    with pytest.raises(Gen3cInputError, match="line 1: unknown gen3c generator options 'num_step': did you mean 'num_steps'.$"):
        load_manifest(write_manifest(tmp_path / "m.jsonl", [nested_typo]))
    typo = {"name": "a", "generator": "gen3cc", "generator_options": {"num_steps": 3}}
    with pytest.raises(Gen3cInputError, match="line 1: generator 'gen3cc' is unknown: choose one of preview, gen3c"):
        load_manifest(write_manifest(tmp_path / "m.jsonl", [typo]))


def test_a_run_records_missing_relative_input_says_it_starts_at_the_current_folder(tmp_path, monkeypatch):
    """A record written before its paths were absolute names them as typed where the run started,
    so the fix points at the current folder, not the record's (a manifest's) folder."""
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    record = {"video_save_name": "a", "video_save_folder": "runs", "outputs": {"video": "a.mp4"}, "input_image_path": "gone.png"}
    (tmp_path / "runs" / "a_run.json").write_text(json.dumps(record))
    with pytest.raises(Gen3cInputError, match=r"line 1: input_image_path '.*gone.png' does not exist: fix the path \(a relative one starts at the current folder\)$"):
        load_manifest(tmp_path / "runs" / "a_run.json", check_inputs=True)


def test_depth_estimators_are_checked_at_planning_from_the_manifests_folder(tmp_path, monkeypatch):
    """A mistyped estimator is refused when the manifest is read, naming its line, not when its job
    comes up; names, hub ids and a model.pt beside the manifest (from another current folder) are taken."""
    (tmp_path / "m" / "weights").mkdir(parents=True)
    (tmp_path / "m" / "weights" / "model.pt").write_bytes(b"")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    rows = [{"name": f"r{i}", "input_image_path": "a.png", "depth_estimator": e} for i, e in
            enumerate(("prior", "depth_pro", "someone/depth-model", "weights/model.pt", " moge "))]  # fmt: skip
    jobs = load_manifest(write_manifest(tmp_path / "m" / "m.jsonl", rows))
    assert jobs[3].settings["depth_estimator"] == str(tmp_path / "m" / "weights" / "model.pt")
    typo = {"name": "t", "input_image_path": "a.png", "depth_estimator": "zoedept"}
    with pytest.raises(Gen3cInputError, match=r"m.jsonl' line 6: depth_estimator 'zoedept' is unknown \(did you mean 'zoedepth'\?\)"):
        load_manifest(write_manifest(tmp_path / "m" / "m.jsonl", [*rows, typo]))


def test_path_or_name_settings_follow_one_rule_of_what_is_a_path(tmp_path):
    """depth_estimator and checkpoint_dir are paths where gen3c.io.paths.looks_like_path says so:
    an absolute one is checked at planning (it was taken for a name, and failed when its job came
    up), an empty one is no path (it was resolved to the manifest's folder)."""
    from gen3c.io.paths import looks_like_path
    from gen3c.pipelines.request import may_name_no_path

    for value in ("moge", "owner/name", " moge ", "", "/abs", "./x", "~/x", "a/b/c", "w/model.PT", "model.pth", "owner/x.pt/"):
        for key in ("depth_estimator", "checkpoint_dir"):
            assert may_name_no_path(key, value) is not looks_like_path(value), (key, value)
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"")
    missing = {"name": "a", "input_image_path": "a.png", "depth_estimator": str(tmp_path / "no_moge")}
    with pytest.raises(Gen3cInputError, match=r"line 1: depth_estimator '.*no_moge' does not exist: fix the path"):
        load_manifest(write_manifest(folder / "m.jsonl", [missing]), check_inputs=True)
    # A name no file system takes (OSError "File name too long" before) names no file either.
    long = {"name": "a", "input_image_path": "x" * 5000}
    with pytest.raises(Gen3cInputError, match=r"line 1: input_image_path '/tmp/[^'…]{45}…x{149}' does not exist: fix the path") as refused:
        load_manifest(write_manifest(folder / "l.jsonl", [long]), check_inputs=True)
    assert "x" * 150 not in str(refused.value)  # the path's start and its last 149 characters, not all 5000

def test_an_empty_path_setting_is_refused_naming_its_line_and_field(tmp_path):
    """An empty path in a JSONL row named nothing: "" checkpoint_dir / lora / cache_dir ran as if
    unset (GEN3C's weights, no LoRA), "" depth_path or input_image_path became the manifest's
    folder. Refused like an empty depth_estimator; a CSV's empty cell stays a default. A ~user of no
    user in a generator option is one line too."""
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"")
    for key in ("checkpoint_dir", "lora", "cache_dir", "depth_path", "input_image_path", "camera_file"):
        for value in ("", " "):
            row = {"name": "a", "input_image_path": "a.png", "generator": "gen3c", key: value}
            with pytest.raises(Gen3cInputError, match=rf"e\.jsonl' line 1: {key} is empty: pass .*, or leave it out$"):
                load_manifest(write_manifest(folder / "e.jsonl", [row]))
    for key in ("checkpoint_dir", "lora", "cache_dir"):  # ~user of no user was Path.expanduser's RuntimeError
        row = {"name": "a", "input_image_path": "a.png", "generator": "gen3c", key: "~no_such_user_x/w"}
        with pytest.raises(Gen3cInputError, match=rf"e\.jsonl' line 1: {key} '~no_such_user_x/w' starts with ~no_such_user_x, .*no user"):
            load_manifest(write_manifest(folder / "e.jsonl", [row]))
    (folder / "c.csv").write_text("name,input_image_path,checkpoint_dir,depth_path\na,a.png,,\n")
    assert "depth_path" not in load_manifest(folder / "c.csv")[0].settings


def test_a_manifest_that_is_a_folder_is_refused_as_such(tmp_path):
    """It was "cannot be read ([Errno 21] Is a directory): write it as UTF-8 text"."""
    (tmp_path / "jobs.jsonl").mkdir()
    with pytest.raises(Gen3cInputError, match=r"manifest '.*jobs\.jsonl' is a folder: pass the manifest file in it$"):
        load_manifest(tmp_path / "jobs.jsonl")


def test_every_mistake_of_a_manifest_is_listed_before_anything_runs(box_scene, tmp_path):
    """One check shows all there is to fix, missing input files included: not the first mistake
    only, and not a missing image found hours later when its row comes up."""
    (tmp_path / "jobs").mkdir()
    rows = [
        box_row(box_scene, "a"),
        box_row(box_scene, "b", input_image_path="inputs/b.png"),  # relative to the manifest: missing
        box_row(box_scene, "a"),
        box_row(box_scene, "c", trajectroy="left"),
        box_row(box_scene, "d", num_video_frames="nine"),
        {"name": "e", "trajectory": "up"},  # no input at all
        box_row(box_scene, "f", camera_file="cams.json"),
        box_row(box_scene, "g", fov=None, intrinsics="K.json"),  # neither beside the manifest nor 4 numbers
        box_row(box_scene, "h", fov=None, intrinsics="60,60,56"),
    ]
    manifest = write_manifest(tmp_path / "jobs" / "m.jsonl", rows)
    res = runner.invoke(app, ["batch", str(manifest), "--output_folder", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    message = " ".join(res.output.split())
    assert "has 8 mistakes, so no job ran: line 2: input_image_path" in message
    for expected in (f"{tmp_path / 'jobs' / 'inputs' / 'b.png'}' does not exist", "line 3: name 'a' is already used on line 1",
                     "line 4: unknown settings 'trajectroy'", "line 5: setting 'num_video_frames' must be int",
                     "line 6: no input", f"line 7: camera file '{tmp_path / 'jobs' / 'cams.json'}' does not exist",
                     f"line 8: intrinsics '{tmp_path / 'jobs' / 'K.json'}' does not exist",
                     "line 9: intrinsics '60,60,56' must hold 4 numbers"):  # fmt: skip
        assert expected in message, expected
    assert "Traceback" not in res.output and not (tmp_path / "out").exists()


def test_a_relative_camera_file_counts_its_cameras_from_the_manifest_folder(box_scene, tmp_path, monkeypatch):
    """A row without num_video_frames takes its camera file's count, read where the row's paths
    resolve (the manifest's folder), wherever the command runs."""
    from gen3c.cameras import Cameras
    from gen3c.io.camera_files import save_cameras

    def cameras(n: int) -> Cameras:
        return Cameras(torch.eye(4).expand(n, 4, 4), torch.tensor([[60.0, 0, 56], [0, 60, 32], [0, 0, 1]]).expand(n, 3, 3), 64, 112)

    (tmp_path / "jobs").mkdir()
    save_cameras(tmp_path / "jobs" / "cams.json", cameras(5))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    row = box_row(box_scene, "a", camera_file="cams.json")
    del row["num_video_frames"]
    (job,) = load_manifest(write_manifest(tmp_path / "jobs" / "m.jsonl", [row]))
    request = job.request(tmp_path / "out")
    assert request.camera_file == str(tmp_path / "jobs" / "cams.json") and request.num_video_frames == 5


def test_relative_intrinsics_and_depth_estimator_paths_start_at_the_manifest_folder(box_scene, tmp_path, monkeypatch):
    """Every path field resolves against the manifest's folder, as input_image_path does: an
    intrinsics file or depth estimator path that is not there is refused by line (before: a
    file of that name in the folder `gen3c batch` ran from was read instead, silently)."""
    (tmp_path / "jobs" / "cams").mkdir(parents=True)
    (tmp_path / "jobs" / "cams" / "K.json").write_text('{"fx": 60, "fy": 60, "cx": 56, "cy": 32}')
    (tmp_path / "jobs" / "weights").mkdir()
    (tmp_path / "jobs" / "weights" / "model.pt").write_bytes(b"x")
    here = tmp_path / "elsewhere --seed 3"  # (a flag-like folder name stays as it is in a row's message)
    (here / "cams").mkdir(parents=True)
    (here / "cams" / "other.json").write_text('{"fx": 90, "fy": 90, "cx": 56, "cy": 32}')
    (here / "depth" / "model").mkdir(parents=True)
    (here / "depth" / "model" / "config.json").write_text("{}")
    (here / "moge").mkdir()  # a folder named as GEN3C's estimator does not make 'moge' a path
    monkeypatch.chdir(here)
    rows = [
        box_row(box_scene, "a", fov=None, intrinsics="cams/K.json", depth_path=None, depth_estimator="weights/model.pt"),
        box_row(box_scene, "b", fov=None, intrinsics="cams/other.json"),
        box_row(box_scene, "c", depth_path=None, depth_estimator="depth/model"),
        box_row(box_scene, "d", depth_path=None, depth_estimator="moge"),
    ]
    manifest = write_manifest(tmp_path / "jobs" / "m.jsonl", rows)
    with pytest.raises(Gen3cInputError) as caught:
        load_manifest(manifest, check_inputs=True)
    message = str(caught.value)
    assert "has 2 mistakes" in message and "line 1" not in message and "line 4" not in message
    assert f"line 2: intrinsics '{tmp_path / 'jobs' / 'cams' / 'other.json'}' does not exist: fix the path (a relative one starts at the manifest's folder)" in message
    assert (f"line 3: depth_estimator 'depth/model' is not in the manifest's folder, but is in the current folder ({str(here)!r}), "
            "which a manifest's relative paths do not start from") in message  # fmt: skip
    a, d = load_manifest(write_manifest(manifest, [rows[0], rows[3]]), check_inputs=True)
    assert a.settings["intrinsics"] == str(tmp_path / "jobs" / "cams" / "K.json")
    assert a.settings["depth_estimator"] == str(tmp_path / "jobs" / "weights" / "model.pt")
    assert d.settings["depth_estimator"] == "moge"
    # A path that can be nothing else resolves against the manifest's folder even where it is missing.
    (job,) = load_manifest(write_manifest(manifest, [box_row(box_scene, "e", depth_path=None, depth_estimator="./w/model.pt", cache_dir="cache",
                                                             generator="gen3c")]))  # fmt: skip
    assert job.settings["depth_estimator"] == str(tmp_path / "jobs" / "w" / "model.pt")
    assert job.settings["generator_options"]["cache_dir"] == str(tmp_path / "jobs" / "cache")


def test_generator_pool_loads_once_and_sets_per_job_settings(monkeypatch):
    """The pool gives a loaded generator each job's seed and options (its configure takes the prompts
    and sampling settings: test_python_api's configure tests); other model settings reload."""
    made = []

    class FakeModel:
        name = "gen3c"

        def __init__(self, seed: int = 1) -> None:
            self.seed, self.prompt = seed, None
            made.append(self)

        def configure(self, options: dict) -> None:
            self.prompt = options.get("prompt", "")

    monkeypatch.setattr("gen3c.pipelines.request.make_generator", lambda request, progress=None: FakeModel())
    pool = GeneratorPool()

    def request(**options):
        seed = options.pop("seed", 1)
        return GenerationRequest(
            generator="gen3c", seed=seed, generator_options={"checkpoint_dir": "ckpt", **options}
        )

    gen, loaded = pool.get(request(prompt="a cat", seed=5))
    assert loaded and (gen.prompt, gen.seed) == ("a cat", 5)
    gen2, loaded2 = pool.get(request(seed=7))  # no prompt: back to the default, same model
    assert gen2 is gen and not loaded2 and (gen2.prompt, gen2.seed) == ("", 7)
    # sampling-only settings change on the loaded model (before: a reload per step count)
    assert not pool.get(request(num_steps=10, guidance=2.0, sampler="dpmpp_2m", step_cache="fbc"))[1] and len(made) == 1
    gen3, loaded3 = pool.get(request(fp8=True))  # other model settings (the memory plan): reloaded
    assert loaded3 and gen3 is not gen and len(made) == 2 and pool.loads == 2

    def sized(resolution: str, **options) -> GenerationRequest:
        return GenerationRequest(generator="gen3c", resolution=resolution, generator_options={"checkpoint_dir": "ckpt", **options})

    # --max_gpu_memory picks a memory mode for the frame size (before: a job of another size
    # reused the plan made for the first one's); without it the size changes nothing loaded.
    assert pool.get(sized("704x1280", max_gpu_memory=24))[1] and pool.get(sized("352x640", max_gpu_memory=24))[1]
    assert pool.get(sized("704x1280"))[1] and not pool.get(sized("352x640"))[1]


def test_a_reused_generator_says_what_its_loading_noted_to_each_request(monkeypatch):
    """What loading noted (a preset a distilled student overrides, --max_gpu_memory's memory mode)
    reached only the request that loaded the model: a batch's later jobs and gen3c.generate()'s
    later calls on the kept model said and recorded it nowhere. Each request given the pool's
    generator says it; a note its run said before the load (a check make_generator repeats) once."""
    import warnings

    from gen3c.errors import note, record_notes

    class FakeModel:
        name = "gen3c"

    def make(request, progress=None):
        note("checked")  # (make_generator's check_generator, which the run made before the load)
        note("loaded in memory mode 'offload'")
        return FakeModel()

    monkeypatch.setattr("gen3c.pipelines.request.make_generator", make)
    pool = GeneratorPool()
    request = GenerationRequest(generator="gen3c", generator_options={"checkpoint_dir": "ckpt"})
    runs = []
    for _ in range(2):
        with warnings.catch_warnings(record=True) as caught, record_notes() as recorded:
            warnings.simplefilter("always")
            note("checked")
            loaded = pool.get(request)[1]
        runs.append((loaded, [str(w.message) for w in caught], recorded))
    both = ["checked", "loaded in memory mode 'offload'"]
    assert runs == [(True, both, both), (False, both, both)] and pool.loads == 1, runs


def test_the_pool_loads_again_for_a_prompt_t5_must_encode_beside_a_plan_without_t5(monkeypatch):
    """--max_gpu_memory's plan counts T5 only for a prompt the prompt cache lacks: the pool ran a
    later job's such prompt on the plan chosen for the first job's cached one (T5's 9 GB on the GPU
    beside it). The loaded generator says so (Gen3cGenerator.memory_plan_misfit), and the pool loads again."""
    import types

    from gen3c.pipelines.gen3c import Gen3cGenerator

    class Planned:
        name, negative_prompt, guidance = "gen3c", None, 0.0
        memory_plan_misfit = Gen3cGenerator.memory_plan_misfit

        def __init__(self, request) -> None:
            self.memory_planned_for = ((48, 80), bool(request.generator_options.get("prompt")))
            self.pipeline = types.SimpleNamespace(text_encoder_bytes=lambda prompts: 9 << 30 if any(prompts) else 0, sampling_defaults={})

        def configure(self, options: dict) -> None:
            self.prompt = options.get("prompt", "")

    made = []
    monkeypatch.setattr("gen3c.pipelines.request.make_generator", lambda request, progress=None: made.append(Planned(request)) or made[-1])
    pool = GeneratorPool()

    def request(prompt: str) -> GenerationRequest:
        return GenerationRequest(generator="gen3c", resolution="48x80", generator_options={"checkpoint_dir": "ckpt", "max_gpu_memory": 24, "prompt": prompt})

    assert pool.get(request(""))[1] and not pool.get(request(""))[1] and len(made) == 1
    gen, loaded = pool.get(request("a red barn"))
    assert loaded and gen is made[1] and gen.memory_planned_for == ((48, 80), True) and pool.loads == 2
    assert not pool.get(request(""))[1] and not pool.get(request("a cat"))[1] and len(made) == 2  # a plan counting T5 fits both


def test_the_pool_key_covers_exactly_the_model_settings(monkeypatch):
    """GeneratorPool.key and configure's check of a loaded generator read one list of model
    settings (MODEL_GENERATOR_SETTINGS): the key changes with each of them and with nothing else,
    and a setting added to that list changes the key (before: the key had its own "all but the
    per-run settings")."""
    from gen3c.pipelines import loading
    from gen3c.pipelines import request as requests
    from gen3c.pipelines.options import GENERATOR_OPTIONS

    values = {str: ("x", "y"), bool: (False, True), int: (1, 2), float: (1.0, 2.0)}
    base = {name: values[kind][0] for name, kind in GENERATOR_OPTIONS.items()}

    def key(**changed) -> str:
        return GeneratorPool.key(GenerationRequest(generator="gen3c", resolution="64x112", generator_options={**base, **changed}))

    changing = {name for name, kind in GENERATOR_OPTIONS.items() if key(**{name: values[kind][1]}) != key()}
    assert changing == set(requests.MODEL_GENERATOR_SETTINGS) and "fp8" in changing and "num_steps" not in changing
    assert not changing & {"verify_checksums", "offload_guardrail_models", "disable_guardrail"}  # they shape nothing loaded
    assert loading.MODEL_GENERATOR_SETTINGS is requests.MODEL_GENERATOR_SETTINGS  # configure's check reads the same list
    monkeypatch.setattr(requests, "MODEL_GENERATOR_SETTINGS", (*requests.MODEL_GENERATOR_SETTINGS, "num_steps"))
    assert key(num_steps=1) != key(num_steps=2)


# -- runs, resuming, retries -----------------------------------------------------------------


def test_batch_records_failures_skips_finished_jobs_and_retries(box_scene, tmp_path):
    out = tmp_path / "out"
    missing = tmp_path / "late.png"
    missing.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))  # an image not written yet: only the run finds it
    rows = [
        box_row(box_scene, "a"),
        box_row(box_scene, "b", trajectory="zoom_in"),
        box_row(box_scene, "c", input_image_path=str(missing)),
    ]
    manifest = write_manifest(tmp_path / "m.jsonl", rows)
    res = runner.invoke(app, ["batch", str(manifest), "--output_folder", str(out)])
    assert res.exit_code == 1, res.output
    assert "late.png" in res.output and "1 of 3 jobs failed" in res.output
    assert summary_states(out) == {"a": "done", "b": "done", "c": "failed"}
    a, b = read_video(out / "a.mp4")[0], read_video(out / "b.mp4")[0]
    assert (
        a.shape == b.shape == (9, 64, 112, 3) and np.abs(a[-1].astype(int) - b[-1]).mean() > 3
    )  # two different paths
    # The batch writes exactly what `gen3c generate` writes for the same settings.
    generate = ["generate", "--input_image_path", rows[0]["input_image_path"], "--depth_path", rows[0]["depth_path"], "--fov", "60",
                "--resolution", "64x112", "--num_video_frames", "9", "--video_save_folder", str(tmp_path / "single")]  # fmt: skip
    assert runner.invoke(app, generate).exit_code == 0
    assert np.abs(read_video(tmp_path / "single" / "output.mp4")[0].astype(int) - a).max() <= 2
    done = status(out, "a")
    assert done["state"] == "done" and done["outputs"]["video"]["frames"] == 9
    assert done["outputs"]["video"]["sha256"] == hashlib.sha256((out / "a.mp4").read_bytes()).hexdigest()
    assert set(done["outputs"]) == {"video", "cameras", "run"}
    failed = status(out, "c")
    assert (
        failed["state"] == "failed"
        and str(missing) in failed["error"]
        and failed["error_type"] == "Gen3cInputError"
    )

    # Re-run: finished jobs are verified and skipped, the failure is reported, not retried.
    mtime = (out / "a.mp4").stat().st_mtime_ns
    res = runner.invoke(app, ["batch", str(manifest), "--output_folder", str(out)])
    assert res.exit_code == 1 and summary_states(out) == {
        "a": "skipped",
        "b": "skipped",
        "c": "failed_earlier",
    }
    assert (out / "a.mp4").stat().st_mtime_ns == mtime and status(out, "c")["attempt"] == 1

    # Fix the input and retry on request; damage b's video and change a's row: both re-run.
    shutil.copy(rows[0]["input_image_path"], missing)
    with open(out / "b.mp4", "r+b") as fh:
        fh.truncate(fh.seek(0, 2) // 2)
    rows[0]["trajectory"] = "up"
    write_manifest(manifest, rows)
    res = runner.invoke(app, ["batch", str(manifest), "--output_folder", str(out), "--retry_failed"])
    assert res.exit_code == 0, res.output
    assert summary_states(out) == {"a": "done", "b": "done", "c": "done"}
    assert status(out, "c")["attempt"] == 2 and status(out, "a")["attempt"] == 1  # a's row changed: a new job
    with open(out / "batch_summary.csv", newline="") as fh:
        notes = {row["name"]: row["note"] for row in csv.DictReader(fh)}
    assert (
        notes["a"] == "re-ran: its manifest row changed"
        and notes["b"] == "re-ran: its video output b.mp4 changed since it was written"
    )
    assert np.abs(read_video(out / "a.mp4")[0][-1].astype(int) - a[-1]).mean() > 3  # now the 'up' path
    assert read_video(out / "b.mp4")[0].shape == (9, 64, 112, 3)



def test_an_internal_error_is_one_line_in_the_summary_and_whole_in_the_traceback(box_scene, tmp_path, monkeypatch):
    """docs/batch.md: a failed job's ``error`` is one line; a library's multi-line message (CUDA's)
    is kept whole in the status file's traceback."""
    import gen3c.pipelines.request as request_module

    def cuda_error(request, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered\nCompile with TORCH_USE_CUDA_DSA")

    monkeypatch.setattr(request_module, "run_request", cuda_error)
    summary = run_batch(write_manifest(tmp_path / "m.jsonl", [box_row(box_scene, "a")]), tmp_path / "out")
    assert summary.outcomes[0].error == "RuntimeError: CUDA error: an illegal memory access was encountered"
    with open(tmp_path / "out" / "batch_summary.csv", newline="") as fh:
        assert next(csv.DictReader(fh))["error"] == summary.outcomes[0].error
    recorded = status(tmp_path / "out", "a")
    assert recorded["error"] == summary.outcomes[0].error and recorded["error_type"] == "RuntimeError"
    assert "Compile with TORCH_USE_CUDA_DSA" in recorded["traceback"]


def test_a_jobs_notes_are_its_own_and_recorded(box_scene, tmp_path):
    """What `gen3c generate` prints as "note:" lands in the job's status and summary row."""
    _, depth_path, _, depth = box_scene
    half = tmp_path / "half_depth.npy"
    np.save(half, depth.numpy()[::2, ::2])  # same aspect ratio, half the size: resized with a note
    rows = [box_row(box_scene, "resized", depth_path=str(half)), box_row(box_scene, "plain")]
    summary = run_batch(write_manifest(tmp_path / "m.jsonl", rows), tmp_path / "out")
    assert summary.counts["done"] == 2
    notes = status(tmp_path / "out", "resized")["notes"]
    assert len(notes) == 1 and "resizing the depth" in notes[0] and str(half) in notes[0]
    assert status(tmp_path / "out", "plain")["notes"] == []
    # Skipped on a re-run, a job's summary row keeps the notes of the run that made it (it was empty).
    again = run_batch(tmp_path / "m.jsonl", tmp_path / "out")
    assert again.counts["skipped"] == 2 and [o.note for o in again.outcomes] == [notes[0], ""]
    with open(tmp_path / "out" / "batch_summary.csv", newline="") as fh:
        assert [row["note"] for row in csv.DictReader(fh)] == [notes[0], ""]


def test_a_jobs_notes_name_the_rows_keys_as_its_refusals_do(box_scene, tmp_path):
    """A job's notes were worded for gen3c generate's flags (``--chunk_frames 30``) in its status,
    summary and run record; they name the row's keys, as its refusals do (row_spelling)."""
    manifest = write_manifest(tmp_path / "m.jsonl", [box_row(box_scene, "a", chunk_frames=30, save_buffer=False, save_point_cloud=False)])
    summary = run_batch(manifest, tmp_path / "out")
    said = "chunk_frames 30: the run has only 9 frames; making them in one chunk"
    assert status(tmp_path / "out", "a")["notes"] == [said] and summary.outcomes[0].note == said
    assert json.loads((tmp_path / "out" / "a_run.json").read_text())["notes"] == [said]


def test_every_job_sharing_a_loaded_model_records_what_its_loading_noted(box_scene, tmp_path):
    """A note made as the model loads (tiny_fast, a distilled student, samples with its own 5
    steps, not speed fast's) was in the status of the job that loaded it only, and in no run
    record; the next job, sharing the loaded model, had it nowhere, while gen3c generate records
    it in every run. Now each job's status, summary row and run record say it, in the row's keys,
    and the model still loads once."""
    rows = [box_row(box_scene, name, resolution="32x48", num_video_frames=17, generator="gen3c", model="tiny_fast", speed="fast",
                    seed=seed, save_buffer=False, save_point_cloud=False) for seed, name in enumerate("ab")]  # fmt: skip
    summary = run_batch(write_manifest(tmp_path / "m.jsonl", rows), tmp_path / "out")
    said = "speed fast: this model is a distilled student and samples with its own 5 steps, not the preset's 18 (num_steps sets them)"
    outcomes = [(o.state, o.loaded_generator, o.note) for o in summary.outcomes]
    assert outcomes == [("done", True, said), ("done", False, said)], outcomes
    for name in "ab":
        assert status(tmp_path / "out", name)["notes"] == [said]
        assert json.loads((tmp_path / "out" / f"{name}_run.json").read_text())["notes"] == [said]


def test_a_manifests_notes_name_the_rows_keys(box_scene, tmp_path):
    """What the manifest's read notes (the gen3c options' check) named gen3c generate's flags."""
    import warnings

    row = box_row(box_scene, "a", generator="gen3c", model="tiny", offload_text_encoder_model=True, disable_prompt_encoder=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_manifest(write_manifest(tmp_path / "m.jsonl", [row]))
    said = [str(w.message) for w in caught if "offload_text_encoder_model" in str(w.message)]
    assert said == ["offload_text_encoder_model: accepted for GEN3C command lines; T5 never loads with disable_prompt_encoder, so nothing changes"], said

def test_a_manifest_of_the_same_file_name_does_not_overwrite_anothers_outputs(box_scene, tmp_path, monkeypatch):
    """Two manifests named jobs.jsonl in two folders share the default folder outputs/jobs: the
    second one's job_00001 overwrote the first one's video, noted only "its manifest row changed".
    A status file names its manifest; another manifest's jobs are refused before anything runs,
    unless that manifest is gone (moved, renamed) or its row is this one."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    row = {key: value for key, value in box_row(box_scene, "").items() if key != "name"}
    first = write_manifest(tmp_path / "a" / "jobs.jsonl", [row])
    second = write_manifest(tmp_path / "b" / "jobs.jsonl", [{**row, "trajectory": "up"}])
    assert run_batch(first).counts["done"] == 1
    out = tmp_path / "outputs" / "jobs"
    assert status(out, "job_00001")["manifest"] == str(first)
    video = (out / "job_00001.mp4").read_bytes()
    res = runner.invoke(app, ["batch", str(second)])
    assert res.exit_code == 2, res.output
    assert " ".join(res.output.split()) == (
        f"error: {str(out)!r} holds the outputs of job job_00001 of another manifest, {str(first)!r}, which this manifest's "
        "jobs of those names would overwrite: pass another --output_folder (the default, outputs/<manifest name>, is one "
        "folder for manifests of one file name), or delete that job's status file job_00001_status.json there to replace its outputs"
    )
    assert (out / "job_00001.mp4").read_bytes() == video and status(out, "job_00001")["manifest"] == str(first)
    # The same row is no other work: skipped. The first manifest moved away: its outputs are replaced.
    assert run_batch(write_manifest(tmp_path / "b" / "jobs.jsonl", [row])).counts["skipped"] == 1
    write_manifest(second, [{**row, "trajectory": "up"}])
    first.rename(tmp_path / "a" / "old.jsonl")
    summary = run_batch(second)
    assert summary.counts["done"] == 1 and summary.outcomes[0].note == "re-ran: its manifest row changed"
    assert status(out, "job_00001")["manifest"] == str(second)
    # A copy of a folder is this manifest's to change: its status files were written for the original folder.
    shutil.copytree(out, tmp_path / "copy")
    write_manifest(first, [row])
    assert run_batch(first, tmp_path / "copy").outcomes[0].note == "re-ran: its manifest row changed"


def test_outputs_of_several_other_manifests_are_all_named(box_scene, tmp_path):
    """A folder holding the outputs of two other manifests' jobs was refused naming the first
    manifest only: deleting the status files named left the next run refused again, for the
    second. Every other manifest is named (the first 3 of more), with its jobs and the files to delete."""
    from gen3c.batch.runner import _check_not_another_manifests

    out = tmp_path / "out"
    for sub in ("m1", "m2", "m3", "mine"):
        (tmp_path / sub).mkdir()
    others = [write_manifest(path, []) for path in (tmp_path / "m0.jsonl", *(tmp_path / f"m{k}" / "jobs.jsonl" for k in (1, 2, 3)))]
    jobs = load_manifest(write_manifest(tmp_path / "mine" / "jobs.jsonl", [box_row(box_scene, n) for n in "abcde"]))
    owners = {"a": others[0], "b": others[0], "c": others[1]}
    planned = {job.name: {"manifest": str(owners[job.name]), "output_folder": str(out)} if job.name in owners else None for job in jobs}
    with pytest.raises(Gen3cInputError) as refused:
        _check_not_another_manifests(jobs, planned, out, {})
    assert str(refused.value) == (
        f"{str(out)!r} holds the outputs of jobs of 2 other manifests: a, b of {str(others[0])!r}; c of {str(others[1])!r}, which "
        "this manifest's jobs of those names would overwrite: pass another --output_folder (the default, outputs/<manifest name>, "
        "is one folder for manifests of one file name), or delete those jobs' status files a_status.json, b_status.json, "
        "c_status.json there to replace their outputs"
    )
    owners = dict(zip("abcde", [others[0], others[1], others[2], others[3], others[3]], strict=True))
    planned = {job.name: {"manifest": str(owners[job.name]), "output_folder": str(out)} for job in jobs}
    with pytest.raises(Gen3cInputError, match=r"of 4 other manifests: a of .*m0.jsonl'; b of .*; c of .*m2/jobs.jsonl'; and jobs of 1 more, "
                                              r"which .* status files a_status.json, b_status.json, c_status.json … there"):
        _check_not_another_manifests(jobs, planned, out, {})


def test_a_copied_manifest_naming_the_same_files_resumes_and_another_projects_is_refused(box_scene, tmp_path):
    """A copy of a manifest in another folder naming the same input files (`../inputs/…`) was
    refused as another manifest's work (its request hash, paths relative to its folder, differed):
    its status files had to be deleted by hand. Two projects of one layout (inputs/… relative to
    each manifest: the same hash) writing one folder: the second overwrote the first one's videos."""
    image, depth, _, _ = box_scene
    project = tmp_path / "project"
    (project / "inputs").mkdir(parents=True)
    shutil.copy(image, project / "inputs" / "image.png")
    np.save(project / "inputs" / "depth.npy", np.load(depth))

    def rows(inputs: str, trajectory: str = "up") -> list[dict]:
        return [box_row(box_scene, name, input_image_path=f"{inputs}/image.png", depth_path=f"{inputs}/depth.npy", trajectory=t)
                for name, t in (("a", "left"), ("b", trajectory))]  # fmt: skip

    out = project / "out"
    assert run_batch(write_manifest(project / "jobs.jsonl", rows("inputs")), out).counts["done"] == 2
    video = (out / "b.mp4").read_bytes()
    # Another project of the same layout, other inputs: refused, the first one's outputs kept.
    other = tmp_path / "other"
    shutil.copytree(project / "inputs", other / "inputs")
    np.save(other / "inputs" / "depth.npy", np.load(depth) * 2)
    with pytest.raises(Gen3cInputError, match=r"holds the outputs of jobs a, b of another manifest.*one file name\), or delete those jobs' "
                                              r"status files a_status.json, b_status.json there to replace their outputs$"):
        run_batch(write_manifest(other / "jobs.jsonl", rows("inputs")), out)
    assert (out / "b.mp4").read_bytes() == video
    (project / "sub").mkdir()
    summary = run_batch(write_manifest(project / "sub" / "copy.jsonl", rows("../inputs")), out)
    assert summary.counts["skipped"] == 2, [(o.name, o.state, o.note) for o in summary.outcomes]
    # A copy with a changed row is refused, naming the file that makes way for it.
    with pytest.raises(Gen3cInputError) as refused:
        run_batch(write_manifest(project / "sub" / "copy.jsonl", rows("../inputs", "down")), out)
    assert str(refused.value) == (
        f"{str(out)!r} holds the outputs of job b of another manifest, {str(project / 'jobs.jsonl')!r}, which this manifest's "
        "jobs of those names would overwrite: pass another --output_folder, or delete that job's status file b_status.json there "
        "to replace its outputs"
    )
    (out / "b_status.json").unlink()
    assert [o.state for o in run_batch(project / "sub" / "copy.jsonl", out).outcomes] == ["skipped", "done"]
    assert (out / "b.mp4").read_bytes() != video


def test_a_project_folder_moved_with_its_outputs_keeps_its_finished_jobs(box_scene, tmp_path):
    """Moving a folder of manifest, inputs and outputs re-ran every job as "its manifest row
    changed": the request hash held the inputs' absolute paths. Paths inside the manifest's folder
    are hashed relative to it; what the files hold is still checked: a changed one re-runs."""
    image, depth, _, _ = box_scene
    project = tmp_path / "project"
    (project / "inputs").mkdir(parents=True)
    shutil.copy(image, project / "inputs" / "image.png")
    np.save(project / "inputs" / "depth.npy", np.load(depth))
    rows = [box_row(box_scene, name, input_image_path="inputs/image.png", depth_path="inputs/depth.npy", trajectory=trajectory)
            for name, trajectory in (("a", "left"), ("b", "up"))]  # fmt: skip
    write_manifest(project / "m.jsonl", rows)
    assert run_batch(project / "m.jsonl", project / "out").counts["done"] == 2
    video = (project / "out" / "a.mp4").read_bytes()
    moved = project.rename(tmp_path / "moved")
    summary = run_batch(moved / "m.jsonl", moved / "out")
    assert summary.counts["skipped"] == 2, [(o.name, o.state, o.note) for o in summary.outcomes]
    assert (moved / "out" / "a.mp4").read_bytes() == video
    # A changed input under the moved folder still re-runs its jobs.
    np.save(moved / "inputs" / "depth.npy", np.load(depth) * 2)
    summary = run_batch(moved / "m.jsonl", moved / "out")
    assert summary.counts["done"] == 2
    assert summary.outcomes[0].note.startswith("re-ran: its depth_path depth.npy changed since it ran")
    # A status file of the earlier hash (absolute paths, HASH_VERSION 1) is its job's too: no re-run.
    # (its settings name the paths before the move: only its hash can tell it is this job's)
    job = load_manifest(moved / "m.jsonl")[0]
    status_file = moved / "out" / "a_status.json"
    before_move = json.loads(json.dumps(status(moved / "out", "a")["settings"]).replace(str(moved), str(project)))
    status_file.write_text(json.dumps({**status(moved / "out", "a"), "request_sha256": job.earlier_hashes[-1], "settings": before_move}))
    assert run_batch(moved / "m.jsonl", moved / "out").counts["skipped"] == 2
    status_file.write_text(json.dumps({**status(moved / "out", "a"), "request_sha256": "0" * 64, "settings": before_move}))
    assert run_batch(moved / "m.jsonl", moved / "out").outcomes[0].note == "re-ran: its manifest row changed"


def test_a_moved_project_folder_keeps_the_hash_of_rows_naming_a_checkpoint_cache_or_estimator_inside_it(tmp_path, monkeypatch):
    """checkpoint_dir, cache_dir and a depth_estimator file inside the manifest's folder were hashed
    by their absolute path: moving the folder re-ran every such job as "its manifest row changed"."""
    monkeypatch.setattr("gen3c.batch.manifest._generator_option_types", lambda: {"checkpoint_dir": str, "cache_dir": str})
    project = tmp_path / "project"
    for folder in ("ckpt", "cache", "weights"):
        (project / folder).mkdir(parents=True)
    (project / "weights" / "depth.pt").write_bytes(b"")
    rows = [{"name": "a", "generator": "gen3c", "checkpoint_dir": "ckpt", "depth_estimator": "weights/depth.pt"},
            {"name": "b", "generator": "gen3c", "cache_dir": "cache"}]  # fmt: skip
    before = load_manifest(write_manifest(project / "m.jsonl", rows))
    assert before[0].settings["generator_options"]["checkpoint_dir"] == str(project / "ckpt")
    after = load_manifest(project.rename(tmp_path / "moved") / "m.jsonl")
    assert [job.request_hash for job in after] == [job.request_hash for job in before]
    # A status file of gen3c's earlier hash (version 2: these paths absolute) still matches in place.
    written = json.dumps({"v": 2, "name": "a", **after[0].settings}, sort_keys=True, default=str)
    assert after[0].same_request({"request_sha256": hashlib.sha256(written.encode()).hexdigest()})


def test_jobs_of_two_clips_of_one_vipe_root_count_their_own_clip(tmp_path):
    """Each job's ViPE input counted every clip of its root: a clip re-exported (or added) re-ran
    the finished jobs of the other clips too. Now a job re-runs for its own clip only."""
    from layouts import scene, write_vipe

    rgb, depth, _, w2c, K = scene(9, 36, 64)
    root = write_vipe(tmp_path / "vipe", "c", rgb, depth, w2c, K)
    write_vipe(root, "d", rgb, depth, w2c, K)
    rows = [{"name": clip, "vipe_path": str(root), "vipe_clip": clip, "resolution": "32x64", "num_video_frames": 9} for clip in "cd"]
    manifest = write_manifest(tmp_path / "m.jsonl", rows)
    assert run_batch(manifest, tmp_path / "out").counts["done"] == 2
    write_vipe(root, "d", rgb, depth * 2, w2c, K)  # ViPE run again on clip d
    summary = run_batch(manifest, tmp_path / "out")
    assert [(o.state, o.note[:40]) for o in summary.outcomes] == [("skipped", ""), ("done", "re-ran: its vipe_path vipe changed since")]


def test_a_gen3c_jobs_sampling_draws_no_bar_of_its_own(box_scene, tmp_path, capfd):
    """The diffusion pipeline's own step bar (raw tqdm, "2/2 [00:00, 7.5it/s]") ran in every gen3c
    job: carriage-return segments in a batch's log, and with --workers the bars of jobs running at
    once overwrote each other on one line. The batch's own bar and lines say how jobs go."""
    row = box_row(box_scene, "a", resolution="32x48", num_video_frames=17, generator="gen3c", model="tiny", num_steps=2)
    summary = run_batch(write_manifest(tmp_path / "m.jsonl", [row]), tmp_path / "out")
    assert summary.counts["done"] == 1
    captured = capfd.readouterr()
    assert "it/s" not in captured.err + captured.out and "\r" not in captured.err


def test_a_rows_device_without_a_gpu_is_refused_in_the_rows_words(box_scene, tmp_path, monkeypatch):
    """A row's "device": "cuda" on a machine without a GPU failed its job with Python's words
    ("pass device='cpu'") in the summary and status file."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    row = box_row(box_scene, "a", resolution="32x48", num_video_frames=17, generator="gen3c", model="tiny", num_steps=2, device="cuda")
    outcome = run_batch(write_manifest(tmp_path / "m.jsonl", [row]), tmp_path / "out").outcomes[0]
    assert (outcome.state, outcome.error) == ("failed", "device 'cuda': no CUDA GPU is visible here: pass 'cpu' or nothing")


def test_a_job_whose_output_would_replace_an_input_file_is_refused_before_anything_runs(box_scene, tmp_path):
    """A camera file kept as shot_cameras.json in the output folder was replaced by job "shot"'s
    cameras, silently: the user's file was lost and the job replaying it ran on other cameras next
    time. Reading another job's output that this run does not write again (it is skipped) is fine."""
    out = tmp_path / "out"
    first = run_batch(write_manifest(tmp_path / "a.jsonl", [box_row(box_scene, "a")]), out)
    mine = out / "shot_cameras.json"
    shutil.copy(out / "a_cameras.json", mine)
    before = mine.read_bytes()
    rows = [box_row(box_scene, "replay", camera_file=str(mine)), box_row(box_scene, "shot", trajectory="right")]
    manifest = write_manifest(tmp_path / "m.jsonl", rows)
    message = (f"manifest {str(manifest)!r} line 1: camera_file {str(mine)!r} is a file that job 'shot' (line 2) writes "
               "into the output folder, replacing it: pass another --output_folder, or move that file")  # fmt: skip
    with pytest.raises(Gen3cInputError) as refused:
        run_batch(manifest, out)
    assert str(refused.value) == message and mine.read_bytes() == before
    assert not (out / "shot.mp4").exists() and not (out / "replay_status.json").exists()
    assert first.counts["done"] == 1
    # Another job's output read as it stands, by a later run that does not write it again: no refusal.
    rows = [box_row(box_scene, "a"), box_row(box_scene, "replay", camera_file=str(out / "a_cameras.json"))]
    assert run_batch(write_manifest(tmp_path / "a.jsonl", rows), out).counts == {
        "done": 1, "skipped": 1, "failed": 0, "failed_earlier": 0, "not_run": 0}  # fmt: skip


def test_an_input_that_is_a_job_s_output_in_another_unicode_form_is_said_to_be_one_file_on_macos(box_scene, tmp_path):
    """An input kept as cafe + combining accent + _cameras.json in the output folder, which job
    "café" (é one character) writes on macOS, was said to be "one file on macOS and Windows":
    Windows tells the two forms apart, as batch's check of two jobs' names says."""
    from gen3c.cameras import Cameras
    from gen3c.io.camera_files import save_cameras

    out = tmp_path / "out"
    out.mkdir()
    mine = out / "cafe\u0301_cameras.json"
    save_cameras(mine, Cameras(torch.eye(4).expand(9, 4, 4), [[60.0, 0, 56], [0, 60.0, 32], [0, 0, 1]], 64, 112))
    manifest = write_manifest(tmp_path / "m.jsonl", [box_row(box_scene, "replay", camera_file=str(mine)), box_row(box_scene, "caf\u00e9")])
    with pytest.raises(Gen3cInputError) as refused:
        run_batch(manifest, out)
    assert str(refused.value) == (
        f"manifest {str(manifest)!r} line 1: camera_file {str(mine)!r} is a file that job 'caf\u00e9' (line 2) writes "
        "(as caf\u00e9_cameras.json, in another Unicode form: one file on macOS) into the output folder, replacing it: "
        "pass another --output_folder, or move that file"
    )


def test_second_batch_on_the_same_folder_is_refused(box_scene, tmp_path):
    manifest = write_manifest(tmp_path / "m.jsonl", [box_row(box_scene, "a")])
    (tmp_path / "out").mkdir()
    with batch_lock(tmp_path / "out"), pytest.raises(Gen3cInputError, match="another gen3c batch"):
        run_batch(manifest, tmp_path / "out")
    assert run_batch(manifest, tmp_path / "out").counts["done"] == 1  # the lock is gone with its holder


def test_an_output_folder_that_cannot_be_locked_runs_the_batch_with_a_note(box_scene, tmp_path, monkeypatch):
    """Lustre mounted without flock (its default) or NFS without a lock daemon refuse the lock
    (ENOSYS, ENOLCK): the batch stopped on a raw OSError traceback before."""
    import errno
    import fcntl

    real = fcntl.flock

    def flock(fd, operation):
        if getattr(fd, "name", "").endswith(".gen3c_batch.lock"):
            raise OSError(errno.ENOSYS, "Function not implemented")
        return real(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    manifest = write_manifest(tmp_path / "m.jsonl", [box_row(box_scene, "a")])
    said = r"out' cannot be locked \(Function not implemented\), so a second gen3c batch writing into it at the same time would not be refused: run one batch at a time into this --output_folder$"
    with pytest.warns(UserWarning, match=said):
        summary = run_batch(manifest, tmp_path / "out")
    assert summary.counts["done"] == 1 and status(tmp_path / "out", "a")["state"] == "done"


def test_killed_batch_loses_only_the_job_in_flight(box_scene, tmp_path):
    out = tmp_path / "out"
    names = [f"j{i}" for i in range(4)]
    trajectories = ["left", "right", "up", "down"]
    rows = [
        box_row(box_scene, n, trajectory=t, num_video_frames=17)
        for n, t in zip(names, trajectories, strict=True)
    ]
    manifest = write_manifest(tmp_path / "m.jsonl", rows)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "gen3c", "batch", str(manifest), "--output_folder", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not any(_state(out, n) == "done" for n in names):
            assert proc.poll() is None and time.monotonic() < deadline, (
                "the batch ended before its first job finished"
            )
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    finished = {n for n in names if _state(out, n) == "done"}
    assert 1 <= len(finished) < len(names)
    assert all(
        p.name.startswith(".") for p in out.glob("*.part*")
    )  # atomic: nothing half-written under a real name
    res = runner.invoke(app, ["batch", str(manifest), "--output_folder", str(out)])
    assert res.exit_code == 0, res.output
    states = summary_states(out)
    assert {n for n, s in states.items() if s == "skipped"} == finished
    assert {n for n, s in states.items() if s == "done"} == set(names) - finished
    for n in names:
        assert read_video(out / f"{n}.mp4")[0].shape == (17, 64, 112, 3)
    assert not list(out.glob(".*.part*"))  # the killed job's temporary files were cleaned up


def test_stale_temporary_files_of_a_job_are_removed(tmp_path):
    from gen3c.batch.jobs import remove_stale_parts

    for stale in (".a.x1.part.mp4", ".a_run.x2.part.json", ".a_status.x3.part.json"):
        (tmp_path / stale).touch()
    for other in (
        ".ab.x4.part.mp4",
        ".a_run.x5.part.mp4",
        ".a.v2.x6.part.mp4",
        "a.mp4",
    ):  # job "ab"'s, job "a_run"'s video, job "a.v2"'s video (maybe being written by another worker), a real output
        (tmp_path / other).touch()
    assert remove_stale_parts(tmp_path, "a") == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [".a.v2.x6.part.mp4", ".a_run.x5.part.mp4", ".ab.x4.part.mp4", "a.mp4"]


class StopsAtChunk(PreviewGenerator):
    """The preview, pressing Ctrl-C when asked for chunk ``stop_at`` (0-based)."""

    def __init__(self, stop_at: int) -> None:
        super().__init__()
        self.stop_at, self.calls = stop_at, 0

    def generate(self, *args, **kwargs):
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        self.calls += 1
        return super().generate(*args, **kwargs)


def test_long_job_cut_short_continues_from_its_kept_chunks(box_scene, tmp_path):
    row = box_row(box_scene, "long", num_video_frames=25, chunk_frames=9)  # 3 chunks
    manifest = write_manifest(tmp_path / "m.jsonl", [row])
    whole = run_batch(manifest, tmp_path / "whole")
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):  # a batch killed in the job's third chunk
        run_request(load_manifest(manifest)[0].request(out), generator=StopsAtChunk(2), keep_frames=False)
    assert (out / "long.partial").is_dir()
    summary = run_batch(manifest, out)  # was: failed, "pass --resume" (an option gen3c batch lacks)
    assert summary.counts["done"] == 1, summary.outcomes[0].error
    assert not (out / "long.partial").exists()
    assert np.array_equal(read_video(out / "long.mp4")[0], read_video(tmp_path / "whole" / "long.mp4")[0])
    assert whole.counts["done"] == 1
    # Chunks kept by an older version of the row are dropped: the changed job starts over.
    with pytest.raises(KeyboardInterrupt):
        run_request(load_manifest(manifest)[0].request(out), generator=StopsAtChunk(1), keep_frames=False)
    write_manifest(manifest, [{**row, "trajectory": "up"}])
    assert run_batch(manifest, out).counts["done"] == 1
    assert not (out / "long.partial").exists()


def test_a_long_job_failing_in_chunk_2_says_retry_failed_continues_it(box_scene, tmp_path, monkeypatch):
    """A long job's error in its second chunk is recorded with what is kept and how gen3c batch
    continues it (--retry_failed, which resumes from the kept chunk), not gen3c generate's --resume."""
    manifest = write_manifest(tmp_path / "m.jsonl", [box_row(box_scene, "long", num_video_frames=25, chunk_frames=9)])
    out = tmp_path / "out"
    generate, calls = PreviewGenerator.generate, []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise Gen3cInputError("stop")
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(PreviewGenerator, "generate", failing)
    summary = run_batch(manifest, out)
    kept = repr(str(out / "long.partial"))
    assert summary.outcomes[0].error == f"stop; 1 of 3 chunks is kept in {kept}: run the batch again with --retry_failed to continue"
    calls.clear()
    monkeypatch.setattr(PreviewGenerator, "generate", lambda self, *a, **k: calls.append(1) or generate(self, *a, **k))
    assert run_batch(manifest, out, retry_failed=True).counts["done"] == 1
    assert len(calls) == 2 and not (out / "long.partial").exists()  # chunks 2 and 3 made, chunk 1 kept


def test_a_long_job_cut_short_in_a_moved_project_folder_continues_from_its_kept_chunks(box_scene, tmp_path, monkeypatch):
    """A folder of manifest, inputs and outputs moved while a long job was cut short: its kept
    chunks were deleted as "an older version of this job" (run.json held the old absolute paths)
    and the job started over. Now they are resumed; a changed input still starts it over."""
    image, depth, _, _ = box_scene
    project = tmp_path / "project"
    (project / "inputs").mkdir(parents=True)
    shutil.copy(image, project / "inputs" / "image.png")
    np.save(project / "inputs" / "depth.npy", np.load(depth))
    row = box_row(box_scene, "long", num_video_frames=17, chunk_frames=9)  # 2 chunks
    row = {**row, "input_image_path": "inputs/image.png", "depth_path": "inputs/depth.npy"}
    write_manifest(project / "m.jsonl", [row])
    assert run_batch(write_manifest(tmp_path / "w.jsonl", [{**row, "input_image_path": str(image), "depth_path": str(depth)}]), tmp_path / "whole").counts["done"] == 1
    whole = read_video(tmp_path / "whole" / "long.mp4")[0]
    calls = []
    generate = PreviewGenerator.generate
    monkeypatch.setattr(PreviewGenerator, "generate", lambda self, *a, **k: calls.append(1) or generate(self, *a, **k))
    for changed in (False, True):
        with pytest.raises(KeyboardInterrupt):  # a batch killed in the job's second chunk
            run_request(load_manifest(project / "m.jsonl")[0].request(project / "out"), generator=StopsAtChunk(1), keep_frames=False)
        moved = project.rename(tmp_path / "moved")
        if changed:
            np.save(moved / "inputs" / "depth.npy", np.load(depth) * 2)
        calls.clear()
        summary = run_batch(moved / "m.jsonl", moved / "out")
        assert summary.counts["done"] == 1, summary.outcomes[0].error
        assert len(calls) == (2 if changed else 1)  # resumed: only the second chunk made; changed: both
        assert not (moved / "out" / "long.partial").exists()
        assert np.array_equal(read_video(moved / "out" / "long.mp4")[0], whole) != changed
        project = moved.rename(tmp_path / "project")


def test_a_job_whose_kept_chunks_were_made_with_other_generator_settings_starts_over(box_scene, tmp_path, monkeypatch):
    """A checkpoint or sampler changed since the job's chunks were kept (only the loaded generator
    can tell): the batch redoes the job from its first chunk, saying why, as for a changed row;
    ``--resume`` refuses it (tests/test_resume.py)."""
    row = box_row(box_scene, "long", num_video_frames=25, chunk_frames=9)
    manifest = write_manifest(tmp_path / "m.jsonl", [row])
    run_batch(manifest, tmp_path / "whole")
    out = tmp_path / "out"
    steps = {"num_steps": 35}
    monkeypatch.setattr(PreviewGenerator, "settings", lambda self: dict(steps), raising=False)
    with pytest.raises(KeyboardInterrupt):
        run_request(load_manifest(manifest)[0].request(out), generator=StopsAtChunk(2), keep_frames=False)
    steps["num_steps"] = 20
    # A file gen3c did not write in that folder: it is not deleted (the job fails, saying so).
    (out / "long.partial" / "notes.txt").write_text("mine")
    failed = run_batch(manifest, out).outcomes[0]
    assert failed.state == "failed" and "made with other settings (num_steps: recorded 35, now 20)" in failed.error
    assert (out / "long.partial" / "notes.txt").read_text() == "mine"
    (out / "long.partial" / "notes.txt").unlink()
    summary = run_batch(manifest, out, retry_failed=True)  # was: failed, "--resume: … was made with other settings"
    assert summary.counts["done"] == 1, summary.outcomes[0].error
    why = "re-ran from the first chunk: kept chunks were made with other settings (num_steps: recorded 35, now 20)"
    assert summary.outcomes[0].note == why and status(out, "long")["notes"] == [why]
    assert not (out / "long.partial").exists()
    assert np.array_equal(read_video(out / "long.mp4")[0], read_video(tmp_path / "whole" / "long.mp4")[0])


def test_kept_chunks_are_deleted_only_from_a_folder_gen3c_wrote_and_no_run_holds(box_scene, tmp_path):
    """A job's NAME.partial/ that is not a gen3c run's (a user's own folder of that name, an
    unreadable run.json) or that a run still going holds (its lock) was deleted as chunks of an
    older version; now the job fails in one line naming the folder and the fix, the folder left
    as it was, and the batch goes on."""
    from gen3c.io.atomic import try_flock

    row = box_row(box_scene, "long", num_video_frames=25, chunk_frames=9)
    manifest = write_manifest(tmp_path / "m.jsonl", [row, box_row(box_scene, "short")])
    out = tmp_path / "out"
    kept = out / "long.partial"
    kept.mkdir(parents=True)
    (kept / "notes.txt").write_text("mine")
    for i, (run_json, why) in enumerate(((None, "it has no run.json"), ("{oops", r"its run.json cannot be read \(Expecting"))):
        if run_json is not None:
            (kept / "run.json").write_text(run_json)
        summary = run_batch(manifest, out, retry_failed=True)
        failed, short = summary.outcomes
        assert (failed.state, short.state) == ("failed", "skipped" if i else "done"), failed.error
        assert re.fullmatch(rf"{re.escape(repr(str(kept)))} is where this job keeps its finished chunks, but gen3c did not write it "
                            rf"\({why}.*\): move that folder away or delete it, then run the batch again", failed.error)  # fmt: skip
        assert (kept / "notes.txt").read_text() == "mine"
    shutil.rmtree(kept)
    # gen3c's chunks of an older version of the row, held by a run still going: kept until it ends.
    with pytest.raises(KeyboardInterrupt):
        run_request(load_manifest(manifest)[0].request(out), generator=StopsAtChunk(2), keep_frames=False)
    write_manifest(manifest, [{**row, "trajectory": "up"}])
    with try_flock(kept) as held:
        assert held
        failed = run_batch(manifest, out).outcomes[0]
        assert failed.state == "failed" and "a run still going holds that folder (its lock)" in failed.error
        assert (kept / "chunk_0001").is_dir()
    assert run_batch(manifest, out, retry_failed=True).counts["done"] == 1 and not kept.exists()


def test_interrupted_batch_writes_the_summary_and_says_what_happened(box_scene, tmp_path):
    rows = [box_row(box_scene, n, trajectory=t) for n, t in (("a", "left"), ("b", "up"), ("c", "down"))]
    manifest = write_manifest(tmp_path / "m.jsonl", rows)

    def ctrl_c_after_the_first(outcome):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt, match=r"stopped \(1 done, 2 not run\).*batch_summary.csv' lists every job"):
        run_batch(manifest, tmp_path / "out", on_outcome=ctrl_c_after_the_first)
    assert summary_states(tmp_path / "out") == {"a": "done", "b": "not_run", "c": "not_run"}
    res = runner.invoke(app, ["batch", str(manifest), "--output_folder", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert summary_states(tmp_path / "out") == {"a": "skipped", "b": "done", "c": "done"}


def test_the_summary_marks_the_job_cut_short_not_an_earlier_batchs(box_scene, tmp_path, monkeypatch):
    """The summary's note names the job this run cut short, however the file server's clock sets
    its status file's time, and not a job a killed earlier batch left running that this run never
    reached."""
    import gen3c.pipelines.request as request_module

    rows = [box_row(box_scene, n, trajectory=t) for n, t in (("a", "left"), ("b", "up"), ("c", "down"))]
    manifest = write_manifest(tmp_path / "m.jsonl", rows)
    out = tmp_path / "out"
    assert run_batch(manifest, out).counts["done"] == 3
    earlier = {**status(out, "c"), "state": "running"}  # c, killed in an earlier batch
    (out / "c_status.json").write_text(json.dumps(earlier))
    (out / "b.mp4").unlink()
    run = request_module.run_request

    def ctrl_c_in_b(request, **kwargs):
        if request.video_save_name == "b":
            past = time.time() - 3600  # a file server whose clock is an hour behind this one
            os.utime(out / "b_status.json", (past, past))
            raise KeyboardInterrupt
        return run(request, **kwargs)

    monkeypatch.setattr(request_module, "run_request", ctrl_c_in_b)
    with pytest.raises(KeyboardInterrupt, match=r"stopped \(1 skipped, 2 not run; 1 cut short while running\)"):
        run_batch(manifest, out)
    with open(out / "batch_summary.csv", newline="") as fh:
        notes = {row["name"]: (row["state"], row["note"]) for row in csv.DictReader(fh)}
    assert notes == {"a": ("skipped", ""), "b": ("not_run", "interrupted while running; it runs again next time"),
                     "c": ("not_run", "")}  # fmt: skip


def _state(folder: Path, name: str) -> str | None:
    try:
        return status(folder, name)["state"]
    except (OSError, ValueError):
        return None


def test_worker_threads_split_the_cpus_this_process_may_use_and_keep_its_own_limit(monkeypatch):
    """Each CPU worker ran (the machine's CPU count) / workers threads: 4 workers given 8 of 128
    cores (taskset, SLURM) ran 32 threads each, and OMP_NUM_THREADS=1 was set over."""
    from gen3c.batch.local import worker_threads

    monkeypatch.setattr(os, "cpu_count", lambda: 128)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 64)
    assert [worker_threads(n) for n in (1, 2, 4, 8, 16)] == [8, 4, 2, 1, 1]
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)  # OMP_NUM_THREADS=1
    assert worker_threads(1) == worker_threads(2) == 1


def test_worker_processes_match_the_sequential_run(box_scene, tmp_path):
    rows = [
        box_row(box_scene, n, trajectory=t) for n, t in (("l", "left"), ("r", "right"), ("cw", "clockwise"))
    ]
    manifest = write_manifest(tmp_path / "m.jsonl", rows)
    seq = run_batch(manifest, tmp_path / "seq")
    par = run_batch(manifest, tmp_path / "par", workers=2, gpus_per_job=0)
    assert seq.counts["done"] == par.counts["done"] == 3
    workers = {o.worker for o in par.outcomes}
    assert 1 <= len(workers) <= 2 and os.getpid() not in {int(w.split(":")[1]) for w in workers}
    assert sum(o.loaded_generator for o in par.outcomes) == len(workers)  # one generator per worker process
    assert sum(o.loaded_generator for o in seq.outcomes) == 1
    for n in ("l", "r", "cw"):
        a, b = read_video(tmp_path / "seq" / f"{n}.mp4")[0], read_video(tmp_path / "par" / f"{n}.mp4")[0]
        assert np.abs(a.astype(int) - b).max() <= 2


_SCRIPT = """\
import json
from pathlib import Path

from gen3c.batch import run_batch

assets = Path({assets!r})
rows = [{{"name": n, "input_image_path": str(assets / "demo_image.png"), "depth_path": str(assets / "demo_depth.npz"),
          "intrinsics": str(assets / "demo_camera.json"), "resolution": "32x48", "num_video_frames": 3, "trajectory": t}}
        for n, t in (("a", "left"), ("b", "right"))]
Path("m.jsonl").write_text("\\n".join(json.dumps(r) for r in rows) + "\\n")
print("script body ran", flush=True)
{call}
"""


@pytest.mark.slow
def test_workers_from_a_script_without_a_main_guard_fail_in_one_line(tmp_path):
    """Spawned workers run the calling script again: without `if __name__ == "__main__":` each
    re-entered run_batch (pages of tracebacks, "another gen3c batch is writing", then "workers keep
    dying"). Now the batch stops at once with one line saying what to do."""
    assets = REPO / "src" / "gen3c" / "assets"
    call = 'summary = run_batch("m.jsonl", "out", workers=2, gpus_per_job=0)\nprint(summary.counts)'
    env = child_env(OMP_NUM_THREADS="1")
    (tmp_path / "bare").mkdir()
    script = tmp_path / "bare" / "jobs.py"
    script.write_text(_SCRIPT.format(assets=str(assets), call=call))
    res = subprocess.run([sys.executable, str(script)], cwd=script.parent, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1, res.stderr
    assert res.stderr.count("Traceback") == 1, res.stderr  # the calling script's own, none from the workers
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("gen3c.errors.Gen3cInputError: ") and "jobs.py" in last and 'if __name__ == "__main__":' in last, last
    assert summary_states(script.parent / "out") == {"a": "not_run", "b": "not_run"}  # nothing recorded as failed
    # The script's code before the call runs here and in each worker (the second may be stopped before it gets there).
    assert res.stdout.count("script body ran") in (2, 3)


_SLOW_START = """\
import os
import sys
import time
from pathlib import Path

if __name__ == "__mp_main__":  # a worker process starting: its imports take seconds on a GPU machine
    Path(f"starting_{{os.getpid()}}").touch()
    time.sleep(60)
else:
{body}
    if __name__ == "__main__":
        from gen3c.batch import run_batch

        try:
            run_batch("m.jsonl", "out", workers=2, gpus_per_job=0)
        except KeyboardInterrupt as exc:
            print(f"interrupted: {{exc}}", file=sys.stderr)
            sys.exit(130)
"""


@pytest.mark.slow
def test_ctrl_c_while_workers_start_says_one_line(tmp_path):
    """Ctrl-C reaches the whole process group: a worker still starting (importing torch, CUDA)
    died of it with a KeyboardInterrupt traceback under the batch's one line. Workers start
    ignoring it; the batch ends them."""
    assets = REPO / "src" / "gen3c" / "assets"
    body = "\n".join("    " + line if line else "" for line in _SCRIPT.format(assets=str(assets), call="").splitlines())
    script = tmp_path / "jobs.py"
    script.write_text(_SLOW_START.format(body=body))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=child_env(OMP_NUM_THREADS="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("starting_*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(list(tmp_path.glob("starting_*"))) == 2
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines() == [err.strip()], err
    assert err.startswith("interrupted: the batch stopped (2 not run)"), err
    assert summary_states(tmp_path / "out") == {"a": "not_run", "b": "not_run"}


def test_a_worker_whose_work_is_over_ends_at_once_on_the_batchs_sigterm(tmp_path):
    """After a Ctrl-C the workers' loops end and the batch ends them with SIGTERM, which came in
    Python's exit clean-up and was raised there: an "Exception ignored in atexit callback"
    traceback under the batch's one line. Now it ends the worker at once."""
    code = (
        "import atexit, os, queue, signal, time\n"
        "from gen3c.batch.local import _worker_main\n"
        "tasks = queue.Queue()\n"
        "tasks.put(None)\n"
        "_worker_main(None, 1, '.', tasks, queue.Queue(), os.getppid(), None)\n"
        "atexit.register(lambda: (os.kill(os.getpid(), signal.SIGTERM), time.sleep(10)))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=60)
    assert res.returncode == -signal.SIGTERM and res.stderr == "", (res.returncode, res.stderr)


class _DyingContext:
    """A multiprocessing context whose worker processes are killed (SIGKILL) 10 ms after they start,
    before taking a job."""

    def Queue(self):  # noqa: N802 - multiprocessing's name
        import queue

        class Silent(queue.Queue):
            def get(self, block=True, timeout=None):
                time.sleep(0.02)  # no worker ever reports
                raise queue.Empty

            def cancel_join_thread(self) -> None: ...

        return Silent()

    def Process(self, **_):  # noqa: N802
        class Dying:
            pid = 4242

            def start(self) -> None:
                self.started = time.monotonic()

            def is_alive(self) -> bool:
                return time.monotonic() < self.started + 0.01

            @property
            def exitcode(self) -> int | None:
                return None if self.is_alive() else -signal.SIGKILL

            def join(self, timeout=None) -> None: ...
            def terminate(self) -> None: ...

        return Dying()


class _UnwindingContext:
    """A multiprocessing context whose batch sees a Ctrl-C at once; its first worker saw it too and
    ends by itself 0.3 s later (unwinding), the others (still starting: they ignore Ctrl-C) never do."""

    def __init__(self) -> None:
        self.procs: list = []

    def Queue(self):  # noqa: N802 - multiprocessing's name
        import queue

        procs = self.procs

        class Interrupted(queue.Queue):
            def get(self, block=True, timeout=None):
                procs[0].ends = time.monotonic() + 0.3
                raise KeyboardInterrupt

            def cancel_join_thread(self) -> None: ...

        return Interrupted()

    def Process(self, **_):  # noqa: N802
        procs = self.procs

        class Worker:
            pid = 4243
            ends = float("inf")
            terminated = False

            def start(self) -> None:
                procs.append(self)

            def is_alive(self) -> bool:
                return time.monotonic() < self.ends

            @property
            def exitcode(self) -> int | None:
                return None if self.is_alive() else 0

            def join(self, timeout=None) -> None:
                time.sleep(max(0.0, min(timeout, self.ends - time.monotonic())))

            def terminate(self) -> None:
                self.terminated, self.ends = True, time.monotonic()

        return Worker()


def test_after_ctrl_c_workers_get_a_grace_period_before_sigterm(tmp_path, monkeypatch):
    """After Ctrl-C the batch sent SIGTERM at once to workers still unwinding from it, which could
    cut their clean-up short (a traceback); they now get STOP_GRACE_S, and only those still alive
    after it (a worker still starting ignores Ctrl-C) are ended."""
    from gen3c.batch.local import STOP_GRACE_S, run_processes

    context = _UnwindingContext()
    monkeypatch.setattr("gen3c.batch.local.mp.get_context", lambda method: context)
    jobs = load_manifest(write_manifest(tmp_path / "m.jsonl", [{"name": "a"}, {"name": "b"}]))
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        list(run_processes(jobs, tmp_path, 2, gpus_per_job=0))
    assert [proc.terminated for proc in context.procs] == [False, True]
    assert STOP_GRACE_S <= time.monotonic() - started < STOP_GRACE_S + 1


def test_what_a_batch_cannot_run_in_one_process_per_job_is_refused_before_it_runs(box_scene, tmp_path, monkeypatch):
    """A row's num_gpus above 1 needs a torchrun launch of its own: every such job failed at run
    time with "launch with torchrun" (after the plan). Under torchrun every rank ran every job,
    writing the same files side by side (each job failed there: "--num_gpus is 1"). A null num_gpus
    is unset (one GPU): it was named among those above 1."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the old run reached for GEN3C's weights
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    rows = [box_row(box_scene, "a"), box_row(box_scene, "b", generator="gen3c", num_gpus=2), box_row(box_scene, "c", generator="gen3c", num_gpus=4),
            box_row(box_scene, "d", generator="gen3c", num_gpus=None)]  # fmt: skip
    manifest = write_manifest(tmp_path / "jobs.jsonl", rows)
    with pytest.raises(Gen3cInputError, match=r"^manifest lines 2, 3 set num_gpus above 1, which needs a torchrun launch of its own: "
                       r"a batch job runs in one process; drop num_gpus \(--workers N runs N jobs at once, each on its own GPU\), "
                       r"or run that job alone with `torchrun --nproc_per_node=N -m gen3c generate … --num_gpus N`$"):  # fmt: skip
        run_batch(manifest, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # num_gpus 0 was refused as "above 1"; now as the run refuses it, where the manifest is read
    manifest = write_manifest(tmp_path / "jobs.jsonl", [*rows[:1], box_row(box_scene, "z", generator="gen3c", num_gpus=0)])
    with pytest.raises(Gen3cInputError, match=r"^manifest '.*jobs\.jsonl' line 2: num_gpus must be a whole number of at least 1, got 0$"):
        run_batch(manifest, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # Under torchrun: refused before the manifest is read (each rank read every input and said its mistakes first)
    (tmp_path / "bad.jsonl").write_text('{"input_image_path": "nowhere.png"}\n')
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(Gen3cInputError, match=r"^gen3c batch was launched as one of 2 processes \(WORLD_SIZE=2 in the environment, as torchrun sets it\), "
                       r"each of which would run every job: launch it without torchrun \(--workers N runs N jobs at once, each on its own GPU\), "
                       r"or, where something else left WORLD_SIZE set, remove it from the environment first \(`unset WORLD_SIZE`; .*\)$"):  # fmt: skip
        run_batch(tmp_path / "bad.jsonl", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_workers_that_keep_dying_stop_the_batch_in_one_line(box_scene, tmp_path, monkeypatch):
    """Worker processes killed again and again (the out-of-memory killer) ended `gen3c batch` in a
    RuntimeError traceback; now one line, exit code 1, and the summary lists every job."""
    monkeypatch.setattr("gen3c.batch.local.mp.get_context", lambda method: _DyingContext())
    manifest = write_manifest(tmp_path / "m.jsonl", [box_row(box_scene, "a"), box_row(box_scene, "b")])
    res = runner.invoke(app, ["batch", str(manifest), "--output_folder", str(tmp_path / "out"), "--workers", "2", "--gpus_per_job", "0"])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
    message = " ".join(res.output.split())
    assert "Traceback" not in res.output and "error: gen3c batch stopped: its worker processes keep dying" in message, message
    assert ("the last with exit code -9 (SIGKILL: often the out-of-memory killer): find why (memory, the GPU driver), "
            "then rerun with --retry_failed (2 not run); ") in message  # fmt: skip
    assert message.endswith(f"{str(tmp_path / 'out' / 'batch_summary.csv')!r} lists every job")
    assert summary_states(tmp_path / "out") == {"a": "not_run", "b": "not_run"}


def test_a_status_file_that_cannot_be_written_stops_the_batch_in_one_line(box_scene, tmp_path, monkeypatch):
    """A full disk (or a folder made read-only) under the batch: an OSError traceback before; now
    one line naming the file and the fix, exit code 1, the summary written."""
    import errno

    def full(path, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr("gen3c.batch.jobs.write_text_atomic", full)
    out = tmp_path / "out"
    manifest = write_manifest(tmp_path / "m.jsonl", [box_row(box_scene, "a"), box_row(box_scene, "b")])
    res = runner.invoke(app, ["batch", str(manifest), "--output_folder", str(out)])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit) and "Traceback" not in res.output, res.output
    message = " ".join(res.output.split())
    assert (f"error: gen3c batch stopped: cannot write '{out / 'a_status.json'}' (No space left on device): free space on that disk "
            f"or fix the folder's permissions, then run the same command again (2 not run); {str(out / 'batch_summary.csv')!r} lists every job") in message  # fmt: skip
    assert summary_states(out) == {"a": "not_run", "b": "not_run"}


def test_shipped_example_manifest_runs(tmp_path):
    manifest = REPO / "docs" / "examples" / "batch_manifest.jsonl"
    jobs = load_manifest(manifest)
    assert len(jobs) == 4 and all(Path(j.settings["input_image_path"]).is_file() for j in jobs)
    summary = run_batch(manifest, tmp_path)
    assert summary.counts["done"] == 4, [o.error for o in summary.outcomes]
    widths = {o.name: read_video(tmp_path / o.video)[0].shape for o in summary.outcomes}
    assert widths["demo_orbit_buffers"] == (25, 176, 640, 3) and widths["demo_diagonal"] == (25, 176, 320, 3)


def test_gen3c_options_flat_or_nested_and_in_csv(tmp_path, monkeypatch):
    # The option names and types of gen3c.pipelines.loading.GENERATOR_OPTIONS (importing it loads diffusers).
    options = {"checkpoint_dir": str, "num_steps": int, "guidance": float, "prompt": str}
    monkeypatch.setattr("gen3c.batch.manifest._generator_option_types", lambda: options)
    (tmp_path / "ckpt").mkdir()
    flat = {
        "name": "g",
        "generator": "gen3c",
        "checkpoint_dir": "ckpt",
        "num_steps": 20,
        "guidance": 1,
        "prompt": "a room",
    }
    nested = {"name": "g", "generator": "gen3c", "generator_options": {"checkpoint_dir": "ckpt", "num_steps": 20, "guidance": 1.0,
                                                                        "prompt": "a room"}}  # fmt: skip
    (tmp_path / "m.csv").write_text(
        "name,generator,checkpoint_dir,num_steps,guidance,prompt\ng,gen3c,ckpt,20,1,a room\n"
    )
    jobs = [
        load_manifest(write_manifest(tmp_path / f"{k}.jsonl", [row]))[0]
        for k, row in (("flat", flat), ("nested", nested))
    ]
    jobs.append(load_manifest(tmp_path / "m.csv")[0])
    assert jobs[0].settings["generator_options"] == {
        "checkpoint_dir": str(tmp_path / "ckpt"),
        "num_steps": 20,
        "guidance": 1.0,
        "prompt": "a room",
    }
    assert all(j.settings == jobs[0].settings and j.request_hash == jobs[0].request_hash for j in jobs)
    # Their types and names are checked with the manifest, not when the job comes up.
    with pytest.raises(Gen3cInputError, match="line 1: gen3c generator: setting 'num_steps' must be int, got str 'x'"):
        load_manifest(write_manifest(tmp_path / "bad.jsonl", [{**flat, "num_steps": "x"}]))
    with pytest.raises(Gen3cInputError, match="line 1: unknown gen3c generator options 'num_stesp': did you mean 'num_steps'"):
        load_manifest(write_manifest(tmp_path / "typo.jsonl", [{**nested, "generator_options": {"num_stesp": 5}}]))
    both = {**flat, "generator_options": {"num_steps": 5}}
    with pytest.raises(Gen3cInputError, match="num_steps given both flat and in generator_options"):
        load_manifest(write_manifest(tmp_path / "both.jsonl", [both]))


@pytest.mark.parametrize(
    "engine, message",
    [
        ({"workers": 0}, r"^--workers 0 must be 1 or more, a whole number$"),
        ({"workers": True}, r"^--workers True must be 1 or more, a whole number$"),  # (ran 1 worker)
        ({"workers": 2.5}, r"^--workers 2\.5 must be 1 or more, a whole number$"),
        ({"workers": 2, "gpus_per_job": 0.5}, "fractions need --ray"),
        ({"ray": True, "cpus_per_job": -1}, "must be 0 or more"),
    ],  # fmt: skip
)
def test_impossible_engine_settings_are_refused_before_anything_runs(box_scene, tmp_path, engine, message):
    manifest = write_manifest(tmp_path / "m.jsonl", [box_row(box_scene, "a")])
    with pytest.raises(Gen3cInputError, match=message):
        run_batch(manifest, tmp_path / "out", **engine)
    assert not (tmp_path / "out").exists()


def test_every_input_kind_in_one_manifest(tmp_path):
    from layouts import render, scene, write_multiview, write_sample, write_vipe

    rgb, depth, ids, w2c, K = scene(10, 72, 128)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    write_sample(inputs / "batch_0000", rgb, depth, depth > 0, w2c, K)
    write_vipe(inputs / "vipe", "walk", rgb, depth, w2c, K, ids)
    keys = [0, 5, 9]
    still, still_depth, _ = render(w2c, K, 72, 128, times=np.zeros(10))
    write_multiview(
        inputs / "mv.npz", still[keys], still_depth[keys], still_depth[keys] > 0, K[keys], w2c[keys], w2c
    )
    common = {"resolution": "64x128", "num_video_frames": 9}
    rows = [
        {"name": "sample", "input_image_path": "inputs/batch_0000", "trajectory": "right", **common},
        {"name": "vipe", "vipe_path": "inputs/vipe", "vipe_starting_frame_idx": 1, **common},
        {"name": "multiview", "multiview_npz": "inputs/mv.npz", **common},
    ]
    summary = run_batch(write_manifest(tmp_path / "m.jsonl", rows), tmp_path / "out")
    assert [o.state for o in summary.outcomes] == ["done"] * 3, [o.error for o in summary.outcomes]

    def diff(a, b):
        return float(np.abs(a.astype(float) - b[4:68]).mean())  # 72 rows centre-cropped to 64

    out = {name: read_video(tmp_path / "out" / f"{name}.mp4")[0] for name in ("sample", "vipe", "multiview")}
    assert all(frames.shape == (9, 64, 128, 3) for frames in out.values())
    # Each starts from its own input's first frame (the ViPE job from frame 1).
    assert diff(out["sample"][0], rgb[0]) < 4 < diff(out["sample"][0], rgb[1])  # measured 3.2 and 7.4
    assert diff(out["vipe"][0], rgb[1]) < 4 < diff(out["vipe"][0], rgb[0])  # 3.3 and 8.1
    assert diff(out["multiview"][0], still[0]) < 4


@pytest.mark.parametrize(
    "options, message",
    [
        ({"model": "tiny", "checkpoint_dir": "ckpt"}, "--model tiny and --checkpoint_dir both name a model"),
        ({"model": "tiny", "lora": "/no_such_adapter"}, "LoRA '/no_such_adapter'"),  # absolute: a manifest's resolve against its folder
        ({"model": "tiny", "speed": "ludicrous"}, "--speed 'ludicrous'"),
        ({"model": "tiny", "guidance": 0, "guidance_every": 2}, "--guidance_every shapes guidance's two branches"),
        ({"model": "tiny", "cache_dir": "cache"}, "--cache_dir is where GEN3C's own weights are kept"),
        ({"model": "tiny", "chunk_frames": 9}, "--chunk_frames 9: the gen3c generator makes 17 frames per chunk"),
        ({"model": "tiny", "resolution": "4096x4096"}, "is larger than this model takes"),
        # the model's multiples of 16 offered at once (it offered the tokenizer's 8, '72x104', which the model then refused)
        ({"model": "tiny", "resolution": "70x100"}, "--resolution '70x100': this model takes heights and widths that are multiples "
         "of 16 (GEN3C works at 704x1280): pass --resolution '64x96' or '80x112'"),
    ],
    ids=["two_models", "lora", "speed", "guidance", "cache_dir", "chunk", "size", "size_in_one_step"],
)
def test_a_gen3c_option_is_refused_by_the_batch_for_the_reason_the_cli_refuses_it(box_scene, tmp_path, options, message):
    """One checker of the gen3c generator's options: every mistake `gen3c generate` refuses is
    refused when the manifest is read, for the same reason (the batch used to check only names and
    types, and find the rest when the job came up), and what the manifest refuses the CLI refuses;
    each in its own spelling of the options (``--speed``, ``speed``)."""
    from gen3c.batch.manifest import row_spelling

    image, depth, _, _ = box_scene
    settings = {"input_image_path": str(image), "depth_path": str(depth), "fov": 60, "resolution": "32x48", "num_video_frames": 17,
                "generator": "gen3c", **options}  # fmt: skip
    argv = ["generate", "--video_save_folder", str(tmp_path / "out")]
    argv += [x for key, value in settings.items() for x in (f"--{key}", str(value))]
    res = runner.invoke(app, argv)
    assert res.exit_code == 2 and res.output.startswith("error: "), res.output
    cli_reason = res.output.removeprefix("error: ").strip()
    assert message in cli_reason
    manifest = write_manifest(tmp_path / "m.jsonl", [{"name": "a", **settings}])
    with pytest.raises(Gen3cInputError) as caught:
        load_manifest(manifest)
    assert str(caught.value) == f"manifest {str(manifest)!r} line 1: {row_spelling(cli_reason)}"



@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_row_s_setting_to_drop_is_dropped_as_its_manifest_drops_one(tmp_path, suffix):
    """A row refused for a setting its job would not use (a noise_aug_strength of 0 for a video
    input, a seed for the preview) was told "drop it", the command line's words: in a CSV, whose
    column other rows may fill, the fix is to leave the row's cell empty ("drop" read as the
    column), in a JSON row to remove the key. A refusal with another fix keeps its words."""
    from gen3c.cameras import Cameras
    from gen3c.io.camera_files import save_cameras

    (tmp_path / "v").mkdir()
    save_cameras(tmp_path / "cams.json", Cameras(torch.eye(4).expand(3, 4, 4), torch.tensor([[60.0, 0, 56], [0, 60, 32], [0, 0, 1]]), 64, 112))
    rows = [{"name": "a", "vipe_path": "v", "generator": "gen3c", "noise_aug_strength": 0}, {"name": "b", "vipe_path": "v", "seed": 3},
            {"name": "c", "vipe_path": "v", "trajectory": "left", "camera_rotation": "no_rotation", "camera_file": "cams.json"}]  # fmt: skip
    if suffix == ".csv":  # (under its header: the rows are lines 2 to 4)
        keys = list(dict.fromkeys(key for row in rows for key in row))
        manifest = tmp_path / "m.csv"
        manifest.write_text("\n".join([",".join(keys), *(",".join(str(row.get(key, "")) for key in keys) for row in rows)]) + "\n")
        first, one, two = 2, "leave its cell empty", "leave their cells empty"
    else:
        manifest = write_manifest(tmp_path / "m.jsonl", rows)
        first, one, two = 1, "remove the key", "remove the keys"
    with pytest.raises(Gen3cInputError) as caught:
        load_manifest(manifest)
    assert str(caught.value) == (
        f"manifest {str(manifest)!r} has 3 mistakes, so no job ran: line {first}: noise_aug_strength 0 applies to a single image: GEN3C "
        f"noises the buffers of the single-image mode's growing cache only, not those of a video input; {one}; line {first + 1}: seed "
        f'applies to "generator": "gen3c" only (the preview is deterministic): {one}; line {first + 2}: trajectory, camera_rotation shape '
        f"a preset path, which camera_file replaces: {two}"
    )


@pytest.mark.parametrize(
    "settings, flags, row_words",
    [
        ({"seed": 3}, "--seed applies to --generator gen3c only", 'seed applies to "generator": "gen3c" only (the preview is deterministic)'),
        ({"png_depth_scale": 0.5}, "--png_depth_scale applies to a 16-bit PNG or TIFF --depth_path only",
         "png_depth_scale applies to a 16-bit PNG or TIFF depth_path only: remove the key"),
        ({"generator": "gen3c", "low_memory": True, "fp8": True}, "--low_memory and --fp8 each choose the memory mode",
         "low_memory and fp8 each choose the memory mode: pass only one of them"),
        ({"generator": "gen3c", "num_steps": 0}, "--num_steps 0 must be", "num_steps 0 must be a whole number ≥ 1 (GEN3C: 35)"),
    ],
    ids=["seed", "png_depth_scale", "memory", "num_steps"],
)  # fmt: skip
def test_a_manifest_rows_refusal_names_the_rows_keys_and_the_clis_its_flags(box_scene, tmp_path, settings, flags, row_words):
    """A row's mistake is told in the manifest's words: its key (``seed``), not the CLI's flag
    (``--seed``), which no manifest has; `gen3c generate` still names its flags."""
    row = box_row(box_scene, "a", **settings)
    manifest = write_manifest(tmp_path / "m.jsonl", [row])
    with pytest.raises(Gen3cInputError) as caught:
        load_manifest(manifest)
    message = str(caught.value)
    assert message.startswith(f"manifest {str(manifest)!r} line 1: {row_words}"), message
    assert "--" not in message, message
    argv = ["generate", "--video_save_folder", str(tmp_path / "out")]
    argv += [x for key, value in row.items() if key != "name" for x in ((f"--{key}",) if value is True else (f"--{key}", str(value)))]
    res = runner.invoke(app, argv)
    assert res.exit_code == 2 and flags in " ".join(res.output.split()), res.output


def test_a_jobs_refusal_at_run_time_names_the_rows_keys(tmp_path):
    """What only the run finds (a multi-view npz of fewer cameras than the row's frames) is told
    in the row's keys too, in the summary and the job's status, as the CLI tells it in its flags.
    Before: "… but --num_video_frames is 9: pass --num_video_frames 5, or a --camera_file …"."""
    from layouts import render, scene, write_multiview

    _, _, _, w2c, K = scene(5, 32, 48)
    still, still_depth, _ = render(w2c, K, 32, 48, times=np.zeros(5))
    keys = [0, 4]
    npz = write_multiview(tmp_path / "mv.npz", still[keys], still_depth[keys], still_depth[keys] > 0, K[keys], w2c[keys], w2c)
    settings = {"multiview_npz": str(npz), "resolution": "32x48", "num_video_frames": 9}
    summary = run_batch(write_manifest(tmp_path / "m.jsonl", [{"name": "mv", **settings}]), tmp_path / "out")
    [outcome] = summary.outcomes
    assert outcome.state == "failed"
    reason = f"multi-view npz {str(npz)!r} has 5 cameras in w2cs_all but num_video_frames is 9: pass num_video_frames 5, or a camera_file with 9 cameras"
    assert outcome.error == reason and status(tmp_path / "out", "mv")["error"] == reason
    argv = ["generate", "--video_save_folder", str(tmp_path / "cli"), *(x for key, value in settings.items() for x in (f"--{key}", str(value)))]
    res = runner.invoke(app, argv)
    assert res.exit_code == 2 and " ".join(res.output.split()).startswith(f"error: multi-view npz {str(npz)!r} has 5 cameras in w2cs_all but --num_video_frames is 9"), res.output


@pytest.mark.parametrize(
    "settings, reason",
    [
        ({"fov": 500}, "fov 500.0 is impossible: pass degrees between 0.01 and 179"),
        ({"fov": 0}, "fov 0.0 is impossible: pass degrees between 0.01 and 179"),
        ({"intrinsics": "40,40,24,16"}, "pass either intrinsics or fov, not both"),
        ({"chunk_frames": 1}, "chunk_frames 1 is too small: chunks overlap by one frame, so pass 2 or more"),
    ],
    ids=["fov_500", "fov_0", "fov_and_intrinsics", "chunk_frames_1"],
)
def test_a_row_the_cli_refuses_before_the_run_is_refused_when_the_manifest_is_read(box_scene, tmp_path, settings, reason):
    """A batch fails fast on a row `gen3c generate` refuses before reading its input: at once, not
    when the job comes up (before: the manifest was accepted and the job failed at run time)."""
    manifest = write_manifest(tmp_path / "m.jsonl", [box_row(box_scene, "a", **settings)])
    with pytest.raises(Gen3cInputError) as caught:
        load_manifest(manifest, check_inputs=True)
    assert str(caught.value) == f"manifest {str(manifest)!r} line 1: {reason}"


def test_row_spelling_leaves_quoted_values_command_lines_and_other_flags_alone():
    from gen3c.batch.manifest import row_spelling

    assert row_spelling("--seed 3 and --no_compile: pass --generator gen3c") == 'seed 3 and compile false: pass "generator": "gen3c"'
    kept = "path 'a --seed.png', `torchrun -m gen3c generate … --num_gpus N` and --output_folder"
    assert row_spelling(kept) == kept
    # a job's outputs are its row's name in gen3c batch's folder (before: --video_save_name, --video_save_folder kept)
    assert row_spelling("pass another --video_save_folder or --video_save_name") == "pass another --output_folder or name"
    assert row_spelling("--video_save_name v.mp4 ends in .mp4") == "name v.mp4 ends in .mp4"


def test_a_gen3c_option_of_the_wrong_type_is_one_message_from_a_manifest_and_from_python(box_scene, tmp_path):
    """The options' types are coerced and checked in one place: a manifest's and gen3c.generate's
    refusals used to be worded apart ("setting 'num_steps' must be int" / "gen3c option num_steps
    must be int")."""
    import gen3c

    image, depth, _, _ = box_scene
    settings = {"fov": 60.0, "resolution": "32x48", "num_video_frames": 17, "model": "tiny", "num_steps": 2.5}
    with pytest.raises(Gen3cInputError) as from_python:
        gen3c.generate(image, depth=depth, video_save_folder=tmp_path / "out", progress=False, **settings)
    manifest = write_manifest(tmp_path / "m.jsonl", [{"name": "a", "input_image_path": str(image), "depth_path": str(depth),
                                                      "generator": "gen3c", **settings}])  # fmt: skip
    with pytest.raises(Gen3cInputError) as from_manifest:
        load_manifest(manifest)
    assert str(from_manifest.value) == f"manifest {str(manifest)!r} line 1: {from_python.value}"
    assert "gen3c generator: setting 'num_steps' must be int, got float '2.5'" in str(from_python.value)


def test_a_lora_beside_the_manifest_is_found_from_any_folder(tmp_path, monkeypatch):
    """A relative `lora` resolves against the manifest's folder, as `checkpoint_dir` does (it
    used to be looked up from wherever `gen3c batch` ran, and is now checked as the manifest is read)."""
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "adapter.safetensors").write_bytes(b"x")
    row = {"name": "a", "input_image_path": "a.png", "generator": "gen3c", "model": "tiny", "resolution": "64x112", "lora": "adapter.safetensors"}
    manifest = write_manifest(tmp_path / "jobs" / "m.jsonl", [row])
    monkeypatch.chdir(tmp_path)
    assert load_manifest(manifest)[0].settings["generator_options"]["lora"] == str(tmp_path / "jobs" / "adapter.safetensors")
    (tmp_path / "elsewhere.safetensors").write_bytes(b"x")  # in the current folder, not beside the manifest
    write_manifest(manifest, [{**row, "lora": "elsewhere.safetensors"}])
    with pytest.raises(Gen3cInputError, match=f"line 1: LoRA '{tmp_path / 'jobs' / 'elsewhere.safetensors'}' does not exist"):
        load_manifest(manifest)


# -- model loads and changed inputs ----------------------------------------------------------


@pytest.mark.slow
def test_a_manifest_alternating_two_models_loads_each_once(tmp_path):
    """Jobs run grouped by the generator they load (before: in manifest order, one load per job
    here), yet the summary lists them in manifest order and each writes under its own name."""
    assets = Path(__file__).resolve().parents[1] / "src" / "gen3c" / "assets"
    common = {"input_image_path": str(assets / "demo_image.png"), "depth_path": str(assets / "demo_depth.npz"),
              "intrinsics": str(assets / "demo_camera.json"), "resolution": "32x48", "num_video_frames": 17,
              "generator": "gen3c", "num_steps": 2}  # fmt: skip
    rows = [{"name": f"j{i}", "model": ("tiny", "tiny_fast")[i % 2], "seed": i, **common} for i in range(4)]
    manifest = write_manifest(tmp_path / "m.jsonl", rows)
    ran: list[str] = []
    summary = run_batch(manifest, tmp_path / "out", on_outcome=lambda o: ran.append(o.name))
    assert ran == ["j0", "j2", "j1", "j3"]  # tiny's jobs, then tiny_fast's
    assert [o.name for o in summary.outcomes] == ["j0", "j1", "j2", "j3"] and summary.counts["done"] == 4
    assert {o.name: o.loaded_generator for o in summary.outcomes} == {"j0": True, "j1": True, "j2": False, "j3": False}
    assert list(summary_states(tmp_path / "out")) == ["j0", "j1", "j2", "j3"]
    for i, row in enumerate(rows):
        assert status(tmp_path / "out", f"j{i}")["settings"]["generator_options"]["model"] == row["model"]
        assert json.loads((tmp_path / "out" / f"j{i}_run.json").read_text())["generator_options"]["model"] == row["model"]
        assert read_video(tmp_path / "out" / f"j{i}.mp4")[0].shape == (17, 32, 48, 3)


def test_a_finished_job_whose_input_file_changed_runs_again(box_scene, tmp_path):
    """Its run record's inputs_sha256 is what the outputs were made from: an image edited under
    the same path re-runs the job (before: skipped as done, its video of the old image kept)."""
    from PIL import Image

    shutil.copy(box_scene[0], tmp_path / "image.png")
    rows = [box_row(box_scene, "edited", input_image_path="image.png"), box_row(box_scene, "kept", trajectory="right")]
    manifest = write_manifest(tmp_path / "m.jsonl", rows)
    out = tmp_path / "out"
    assert run_batch(manifest, out).counts["done"] == 2
    before = read_video(out / "edited.mp4")[0]
    Image.fromarray(255 - np.asarray(Image.open(tmp_path / "image.png"))).save(tmp_path / "image.png")  # its negative
    res = runner.invoke(app, ["batch", str(manifest), "--output_folder", str(out)])
    assert res.exit_code == 0, res.output
    assert summary_states(out) == {"edited": "done", "kept": "skipped"}
    with open(out / "batch_summary.csv", newline="") as fh:
        notes = {row["name"]: row["note"] for row in csv.DictReader(fh)}
    assert notes["edited"] == "re-ran: its input_image_path image.png changed since it ran (its sha256 is not the recorded one)"
    record = json.loads((out / "edited_run.json").read_text())
    assert record["inputs_sha256"]["input_image_path"] == hashlib.sha256((tmp_path / "image.png").read_bytes()).hexdigest()
    after = read_video(out / "edited.mp4")[0]
    assert np.abs(after[0].astype(int) + before[0] - 255).mean() < 4  # made from the negative
    # Unchanged since: skipped.
    assert run_batch(manifest, out).counts["skipped"] == 2


@pytest.mark.slow
def test_a_lora_adapter_replaced_at_its_path_is_loaded_again_and_its_finished_jobs_rerun(tmp_path):
    """A LoRA counts by its weights (generator_settings.lora_sha256), not its path: an adapter
    replaced during a batch is loaded again for the next job (before: the pool kept the old one,
    and the job recorded it), and a finished job whose adapter changed since runs again (before:
    skipped as done). A run record without the digest (an older gen3c's) cannot tell: skipped, noted."""
    from diffusers import CosmosTransformer3DModel

    from gen3c.models.packaged import packaged_model_dir
    from gen3c.training import lora

    # An adapter of the tiny model's shapes (its weights need not be loaded for that)
    config = CosmosTransformer3DModel.load_config(packaged_model_dir("tiny") / "transformer")
    transformer = CosmosTransformer3DModel.from_config(config)
    lora.add_lora(transformer, rank=2, targets=["to_q"])

    def write_adapter(value: float) -> str:
        for name, p in transformer.named_parameters():
            if "lora_B" in name:
                p.data.fill_(value)
        return hashlib.sha256((lora.save_lora(transformer, tmp_path / "adapter") / lora.WEIGHTS_NAME).read_bytes()).hexdigest()

    assets = REPO / "src" / "gen3c" / "assets"
    common = {"input_image_path": str(assets / "demo_image.png"), "depth_path": str(assets / "demo_depth.npz"),
              "intrinsics": str(assets / "demo_camera.json"), "resolution": "32x48", "num_video_frames": 17,
              "generator": "gen3c", "model": "tiny", "num_steps": 2, "lora": "adapter"}  # fmt: skip
    manifest = write_manifest(tmp_path / "m.jsonl", [{"name": "a", **common}, {"name": "b", "seed": 2, **common}])
    out = tmp_path / "out"

    def recorded(name: str) -> str | None:
        return json.loads((out / f"{name}_run.json").read_text())["generator_settings"].get("lora_sha256")

    digests = [write_adapter(0.0)]

    def replace_after_a(outcome) -> None:  # the adapter replaced between the batch's two jobs
        if outcome.name == "a":
            digests.append(write_adapter(0.02))

    summary = run_batch(manifest, out, on_outcome=replace_after_a)
    assert [(o.state, o.loaded_generator) for o in summary.outcomes] == [("done", True), ("done", True)]
    assert (recorded("a"), recorded("b")) == tuple(digests) and digests[0] != digests[1]
    # b's record as an older gen3c wrote it, without the digest (its status's record of that file to match)
    record = json.loads((out / "b_run.json").read_text())
    del record["generator_settings"]["lora_sha256"]
    (out / "b_run.json").write_text(json.dumps(record))
    state = status(out, "b")
    state["outputs"]["run"].update(bytes=(out / "b_run.json").stat().st_size,
                                   sha256=hashlib.sha256((out / "b_run.json").read_bytes()).hexdigest())  # fmt: skip
    (out / "b_status.json").write_text(json.dumps(state))
    digests.append(write_adapter(0.04))
    summary = run_batch(manifest, out)
    unknown = ("its run record does not list its LoRA adapter's sha256 (an older gen3c ran it), so an adapter "
               "replaced since cannot be told: delete b_status.json to run it again")  # fmt: skip
    assert [(o.name, o.state, o.note) for o in summary.outcomes] == [
        ("a", "done", "re-ran: its LoRA adapter changed since it ran"), ("b", "skipped", unknown)]
    assert recorded("a") == digests[2] and run_batch(manifest, out).counts["skipped"] == 2


def test_a_batch_reads_each_lora_adapter_once(box_scene, tmp_path, monkeypatch):
    """Two jobs naming one adapter: the batch's plan, its grouping and the generator pool share
    one digest cache, so the adapter's weights are hashed once per batch run (before: once per
    job when grouped, again per job in the pool: 4 reads; a rerun's check of finished jobs and
    the pool each kept their own)."""
    from gen3c.training import lora

    adapter = tmp_path / "adapter.safetensors"
    adapter.write_bytes(b"adapter weights")
    digest = hashlib.sha256(b"adapter weights").hexdigest()

    class Fake(PreviewGenerator):  # a gen3c generator with that adapter loaded, as its run record says
        def settings(self) -> dict:
            return {"lora_sha256": digest}

    monkeypatch.setattr("gen3c.pipelines.request.make_generator", lambda request, progress=None: Fake())
    hashed = []
    real = lora.sha256_file
    monkeypatch.setattr(lora, "sha256_file", lambda path, progress=None: hashed.append(path) or real(path, progress))
    rows = [box_row(box_scene, name, seed=seed, generator="gen3c", model="tiny", lora=str(adapter), num_video_frames=17) for name, seed in (("a", 1), ("b", 2))]
    manifest, out = write_manifest(tmp_path / "m.jsonl", rows), tmp_path / "out"
    summary = run_batch(manifest, out)
    assert [(o.state, o.loaded_generator, o.error) for o in summary.outcomes] == [("done", True, ""), ("done", False, "")]
    assert hashed == [adapter]
    assert run_batch(manifest, out).counts["skipped"] == 2 and hashed == [adapter, adapter]  # finished: checked, read once
    adapter.write_bytes(b"other weights")  # replaced: both jobs run again, on the adapter read once more
    summary = run_batch(manifest, out)
    assert [o.note for o in summary.outcomes] == ["re-ran: its LoRA adapter changed since it ran"] * 2 and len(hashed) == 3


def test_a_hand_edited_status_file_runs_its_job_again_with_a_note(box_scene, tmp_path):
    """A status file that is not JSON, or says done with outputs that are no file records, made
    planning crash (AttributeError: 'str' object has no attribute 'get'); now the job runs again,
    its note naming the file and what is wrong with it. A stray value where a number goes is read as 0."""
    manifest = write_manifest(tmp_path / "m.jsonl", [box_row(box_scene, "a")])
    out = tmp_path / "out"
    assert run_batch(manifest, out).counts["done"] == 1
    good = status(out, "a")
    edits = {
        "{not json": "its status file a_status.json cannot be read (not JSON (Expecting property name enclosed in double quotes))",
        json.dumps({**good, "outputs": {**good["outputs"], "video": "a.mp4"}}):
            "its status file a_status.json is malformed (output 'video' is no file record)",
        json.dumps({**good, "outputs": {**good["outputs"], "run": {**good["outputs"]["run"], "file": "../m.jsonl"}}}):
            "its status file a_status.json is malformed (output 'run' is no file record)",
    }  # fmt: skip
    for text, why in edits.items():
        (out / "a_status.json").write_text(text)
        res = runner.invoke(app, ["batch", str(manifest), "--output_folder", str(out)])
        assert res.exit_code == 0 and "Traceback" not in res.output, res.output
        assert "done a (9 frames" in res.output and f"re-ran: {why}" in " ".join(res.output.split()), res.output
        assert status(out, "a")["state"] == "done"
    (out / "a_status.json").write_text(json.dumps({**status(out, "a"), "seconds": "slow"}))
    (skipped,) = run_batch(manifest, out).outcomes
    assert (skipped.state, skipped.seconds, skipped.frames) == ("skipped", 0.0, 9)


def test_a_failed_job_whose_input_file_was_fixed_runs_again_unasked(box_scene, tmp_path):
    """A failure is held back (failed_earlier) while its input files are as they were when it
    failed; fixing the file under the same path runs it again without --retry_failed."""
    image = tmp_path / "late.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))  # not an image yet
    manifest = write_manifest(tmp_path / "m.jsonl", [box_row(box_scene, "late", input_image_path=str(image))])
    out = tmp_path / "out"
    assert run_batch(manifest, out).counts["failed"] == 1
    assert status(out, "late")["inputs_sha256"]["input_image_path"] == hashlib.sha256(image.read_bytes()).hexdigest()
    assert run_batch(manifest, out).counts["failed_earlier"] == 1  # unchanged: not retried
    shutil.copy(box_scene[0], image)
    summary = run_batch(manifest, out)
    assert summary.counts["done"] == 1 and status(out, "late")["attempt"] == 2
    assert summary.outcomes[0].note == "re-ran: its input_image_path late.png changed since it failed (its sha256 is not the recorded one)"


class Unpicklable:
    """An object only full unpickling loads (``weights_only`` refuses it)."""


def test_a_pickled_pt_rows_refusal_says_how_a_batch_grants_trust(tmp_path):
    """The row failed with the command line's advice, "pass --trust_checkpoint", which for a batch
    is half of it: the row must set trust_checkpoint too (load_manifest's rule). Python's
    gen3c.generate names its own keyword."""
    import gen3c

    pickled = tmp_path / "sample.pt"
    torch.save((torch.zeros(2, 3, 8, 8), torch.ones(2, 1, 8, 8), torch.ones(2, 1, 8, 8), torch.eye(4).expand(2, 4, 4), Unpicklable()), pickled)
    manifest = write_manifest(tmp_path / "m.jsonl", [{"name": "a", "input_image_path": str(pickled), "num_video_frames": 2, "resolution": "16x16"}])
    out = tmp_path / "out"
    res = runner.invoke(app, ["batch", str(manifest), "--output_folder", str(out)])
    assert res.exit_code == 1, res.output
    error = status(out, "a")["error"]
    assert error.endswith("set the row's trust_checkpoint to true and pass `--trust_checkpoint` to gen3c batch if you trust its source"), error
    with pytest.raises(Gen3cInputError, match=r", or pass trust_checkpoint=True if you trust its source$"):
        gen3c.generate(str(pickled), generator="preview", num_video_frames=2, resolution="16x16", video_save_folder=str(tmp_path / "py"), progress=False)


def test_a_manifest_cannot_grant_trust_checkpoint_itself(tmp_path):
    """trust_checkpoint unpickles a legacy .pt input (which can run code): a manifest's row, or a
    run record someone sent, set it and `gen3c batch` honoured it without the user typing the flag."""
    manifest = write_manifest(tmp_path / "m.jsonl", [{"name": "a", "input_image_path": str(tmp_path / "sample.pt"), "trust_checkpoint": True}])
    with pytest.raises(Gen3cInputError, match=r"line 1: trust_checkpoint lets a legacy \.pt input be unpickled, which can run code, "
                       r"and a manifest cannot grant that itself: if you trust this row's inputs, pass --trust_checkpoint to gen3c batch"):  # fmt: skip
        load_manifest(manifest)
    (job,) = load_manifest(manifest, trust_checkpoint=True)
    assert job.settings["trust_checkpoint"] is True
    res = CliRunner().invoke(app, ["batch", str(manifest), "--output_folder", str(tmp_path / "out")])
    assert res.exit_code == 2 and "pass --trust_checkpoint to gen3c batch" in res.output, res.output
    assert not (tmp_path / "out").exists()


def test_the_batch_bar_says_how_many_jobs_run_and_how_many_an_earlier_run_settled(monkeypatch, box_scene, tmp_path):
    """A fresh batch was labelled "Batch (0 of 2 jobs finished or failed earlier)"."""
    import gen3c.pipelines.request as request_module

    def failing(request, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(request_module, "run_request", failing)
    labels: list[tuple[str, int]] = []

    def progress(stage, total):
        labels.append((stage, total))
        return lambda n=1: None

    manifest = write_manifest(tmp_path / "m.jsonl", [box_row(box_scene, "a"), box_row(box_scene, "b")])
    run_batch(manifest, tmp_path / "out", progress=progress)
    assert labels == [("Batch of 2 jobs", 2)]
    rows = [box_row(box_scene, "a"), box_row(box_scene, "b"), box_row(box_scene, "c")]
    run_batch(write_manifest(tmp_path / "m.jsonl", rows), tmp_path / "out", progress=progress)
    assert labels[1] == ("Batch: 1 of 3 jobs to run, 2 finished or failed earlier", 1)


def test_a_null_setting_that_has_a_default_says_to_leave_it_out(tmp_path):
    """A JSON manifest exported from a table writes null for an empty cell: the refusal tells how to
    get the default (was: "setting 'trajectory' cannot be empty")."""
    from gen3c.pipelines.settings import GenerationRequest

    with pytest.raises(Gen3cInputError, match=r"^row 3: setting 'trajectory' is null \(None\): give it a value, or leave it out for its default$"):
        GenerationRequest.from_dict({"input_image_path": "x.png", "trajectory": None}, "row 3")


def test_a_job_whose_files_the_folder_holds_in_another_case_is_refused_before_its_status_is_read(box_scene, tmp_path, case_insensitive_folders):
    """On macOS and Windows job "room" after an earlier batch's job "Room" in the same folder read
    Room_status.json as its own status (a finished Room could pass for it) and wrote its own over
    it, its run refused by then; now the batch is refused before any status is read, nothing written."""
    out = tmp_path / "out"
    assert run_batch(write_manifest(tmp_path / "a.jsonl", [box_row(box_scene, "Room")]), out).counts["done"] == 1
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.name != ".gen3c_batch.lock"}
    manifest = write_manifest(tmp_path / "b.jsonl", [box_row(box_scene, "kitchen"), box_row(box_scene, "room", trajectory="right")])
    with pytest.raises(Gen3cInputError) as refused:
        run_batch(manifest, out)
    assert str(refused.value) == (
        f"manifest {str(manifest)!r} line 2: job 'room' would write room.mp4 over 'Room.mp4' in {str(out)!r}, the same file to this "
        "file system (it ignores case, as macOS and Windows do): rename the job or pass another --output_folder, or spell its name "
        "as that file's is, to replace it"
    )
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != ".gen3c_batch.lock"} == before


def test_a_job_of_another_case_is_another_job_where_the_file_system_tells_case(box_scene, tmp_path):
    """Linux: job "room" beside an earlier "Room" writes its own files, as before."""
    out = tmp_path / "out"
    run_batch(write_manifest(tmp_path / "a.jsonl", [box_row(box_scene, "Room")]), out)
    assert run_batch(write_manifest(tmp_path / "b.jsonl", [box_row(box_scene, "room", trajectory="right")]), out).counts["done"] == 1
    assert status(out, "Room")["name"] == "Room" and status(out, "room")["name"] == "room"


def test_a_job_whose_kept_chunks_the_folder_holds_in_another_case_is_refused(box_scene, tmp_path, case_insensitive_folders):
    """Room.partial (a stopped long job's kept chunks) is room.partial on macOS and Windows: job
    "room" would take them for its own, or remove the chunk left unfinished in it."""
    out = tmp_path / "out"
    (out / "Room.partial").mkdir(parents=True)
    manifest = write_manifest(tmp_path / "m.jsonl", [box_row(box_scene, "room")])
    with pytest.raises(Gen3cInputError, match=r"line 1: job 'room' would write room\.partial over 'Room\.partial' in "):
        run_batch(manifest, out)
    assert sorted(p.name for p in out.iterdir() if p.name != ".gen3c_batch.lock") == ["Room.partial"]


@pytest.mark.parametrize("key", ["speed", "model", "attention_backend", "sampler", "step_cache"])
def test_a_rows_huge_value_is_quoted_short(tmp_path, key):
    """A 5000-character speed, model, attention_backend or sampler (a cell pasted wrong) was quoted
    whole: the manifest's one-line refusal ran to 5000 characters."""
    (tmp_path / "a.png").write_bytes(b"")
    row = {"name": "a", "input_image_path": "a.png", "fov": 60, "generator": "gen3c", key: "x" * 5000}
    with pytest.raises(Gen3cInputError, match=rf"line 1: .*{key} 'x{{40,80}}…'") as refused:
        load_manifest(write_manifest(tmp_path / "m.jsonl", [row]))
    assert len(str(refused.value)) < 400, str(refused.value)
