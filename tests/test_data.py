"""Tests for workbench.data.examples: reading, validating, splitting and previewing instruction data files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datafiles import jsonl, write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.data.examples import (
    MAX_FIELD_CHARS,
    DataError,
    Example,
    RowProblem,
    preview_rows,
    read_examples,
    split_examples,
)

ALPACA = {"instruction": "Say hi", "output": "hi"}




def problem_map(report) -> dict[int, RowProblem]:
    return {p.line: p for p in report.problems}


# ---------------------------------------------------------------- shapes


def test_alpaca_with_and_without_input(tmp_path):
    path = write(tmp_path, "a.jsonl", jsonl(
        {"instruction": "Translate", "input": "Hallo", "output": "Hello"},
        {"instruction": "Say hi", "input": "", "output": "hi"},
        {"instruction": "Count", "output": " 1 2 3 ", "system": "Be brief."},
    ))
    report = read_examples(path)
    assert (report.rows_read, report.good, report.bad) == (3, 3, 0)
    first, second, third = report.examples
    assert first.messages == ({"role": "user", "content": "Translate\n\nHallo"},
                              {"role": "assistant", "content": "Hello"})
    assert second.messages[0]["content"] == "Say hi"
    assert third.messages[0] == {"role": "system", "content": "Be brief."}
    assert third.answer == " 1 2 3 "  # content is kept exactly, never stripped
    assert [e.line for e in report.examples] == [1, 2, 3]
    assert report.shapes == {"alpaca": 3}
    assert first.prompt_messages == ({"role": "user", "content": "Translate\n\nHallo"},)


def test_prompt_completion(tmp_path):
    path = write(tmp_path, "pc.jsonl", jsonl({"prompt": "2+2=", "completion": "4", "system": "math"}))
    (ex,) = read_examples(path).examples
    assert ex.shape == "prompt_completion"
    assert ex.messages == ({"role": "system", "content": "math"}, {"role": "user", "content": "2+2="},
                           {"role": "assistant", "content": "4"})
    assert ex.answer == "4"


def test_messages_multi_turn_with_system(tmp_path):
    turns = [{"role": "system", "content": "S"}, {"role": "user", "content": "U1"},
             {"role": "assistant", "content": "A1"}, {"role": "user", "content": "U2"},
             {"role": "assistant", "content": "A2", "weight": 1}]
    (ex,) = read_examples(write(tmp_path, "m.jsonl", jsonl({"messages": turns}))).examples
    assert ex.shape == "messages"
    assert [t["role"] for t in ex.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert ex.messages[-1] == {"role": "assistant", "content": "A2"}  # extra turn keys are dropped
    assert ex.answer == "A2" and len(ex.prompt_messages) == 4


def test_sharegpt_conversations(tmp_path):
    conv = [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]
    (ex,) = read_examples(write(tmp_path, "s.jsonl", jsonl({"conversations": conv}))).examples
    assert ex.messages == ({"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"})


def test_preference_rows(tmp_path):
    path = write(tmp_path, "p.jsonl", jsonl(
        {"prompt": "Q?", "chosen": "good", "rejected": "bad"},
        {"prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q2"}],
         "chosen": "yes", "rejected": "no"},
        {"prompt": "Q3", "chosen": "same", "rejected": " same "},
    ))
    report = read_examples(path, kind="preference")
    first, second = report.examples
    assert first.shape == "preference" and first.chosen == "good" and first.rejected == "bad"
    assert first.messages == ({"role": "user", "content": "Q?"},)
    assert first.prompt_messages == first.messages and first.answer == "good"
    assert [t["role"] for t in second.messages] == ["system", "user"]
    assert report.problems == [RowProblem(3, "rejected", report.problems[0].why)]
    assert "identical" in report.problems[0].reason


def test_kind_sft_rejects_preference_rows(tmp_path):
    path = write(tmp_path, "mix.jsonl", jsonl(ALPACA, {"prompt": "Q", "chosen": "a", "rejected": "b"}))
    report = read_examples(path, kind="sft")
    assert report.good == 1 and report.examples[0].line == 1
    assert report.problems[0].line == 2
    assert "preference/DPO" in report.problems[0].reason
    pref = read_examples(path, kind="preference")
    assert [p.line for p in pref.problems] == [1] and "prompt, chosen and rejected" in pref.problems[0].reason
    assert read_examples(path).shapes == {"alpaca": 1, "preference": 1}
    with pytest.raises(ValueError, match="kind"):
        read_examples(path, kind="dpo")


# ---------------------------------------------------------------- formats


def test_json_list_and_item_numbering(tmp_path):
    path = write(tmp_path, "d.json", json.dumps([ALPACA, {"instruction": "x", "output": ""}, ALPACA], indent=2))
    report = read_examples(path)
    assert report.file_format == "json" and report.good == 2
    assert [e.line for e in report.examples] == [1, 3]
    assert report.problems[0].line == 2 and report.problems[0].field == "output"
    assert 'item 2: field "output" is empty' in report.summary()


def test_json_with_data_key(tmp_path):
    path = write(tmp_path, "d.json", json.dumps({"version": 1, "data": [ALPACA, ALPACA]}))
    report = read_examples(path)
    assert report.good == 2
    assert any('"data"' in note for note in report.notes)


def test_json_top_level_object_without_list(tmp_path):
    with pytest.raises(DataError, match="must hold a list of objects") as err:
        read_examples(write(tmp_path, "one.json", json.dumps(ALPACA)))
    assert "single example" in str(err.value) and ".jsonl" in str(err.value)
    with pytest.raises(DataError, match="holds text"):
        read_examples(write(tmp_path, "s.json", '"hello"'))
    with pytest.raises(DataError, match="line 2, column"):
        read_examples(write(tmp_path, "bad.json", '[\n{"instruction": }\n]'))


def test_json_file_holding_jsonl_is_read_as_lines(tmp_path):
    report = read_examples(write(tmp_path, "lines.json", jsonl(ALPACA, ALPACA)))
    assert report.good == 2 and report.file_format == "jsonl"
    assert any("JSON Lines" in note for note in report.notes)


def test_csv_row_numbers_count_the_header(tmp_path):
    text = 'instruction,input,output\nSay hi,,hi\n"Multi\nline",x,""\nAdd,"1,2",3\n'
    report = read_examples(write(tmp_path, "d.csv", text))
    assert report.file_format == "csv" and report.good == 2
    assert [e.line for e in report.examples] == [2, 4]
    assert report.examples[1].messages[0]["content"] == "Add\n\n1,2"
    assert report.problems == [RowProblem(3, "output", report.problems[0].why)]
    assert "row 3:" in report.summary()


def test_tsv(tmp_path):
    report = read_examples(write(tmp_path, "d.tsv", "prompt\tcompletion\nA, B\tC\n"))
    assert report.examples[0].messages[0]["content"] == "A, B" and report.examples[0].line == 2


def test_csv_messages_column_holds_json(tmp_path):
    cell = json.dumps([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]).replace('"', '""')
    report = read_examples(write(tmp_path, "m.csv", f'messages\n"{cell}"\nnot json\n'))
    assert report.examples[0].answer == "yo"
    assert report.problems[0].line == 3 and report.problems[0].field == "messages"


def test_parquet(tmp_path):
    pd = pytest.importorskip("pandas")
    path = tmp_path / "d.parquet"
    pd.DataFrame({"instruction": ["A", "B", "C"], "input": [None, "ctx", float("nan")],
                  "output": ["a", None, "c"]}).to_parquet(path)
    report = read_examples(path)
    assert report.file_format == "parquet" and report.good == 2
    assert [e.line for e in report.examples] == [1, 3]
    assert report.examples[0].messages[0]["content"] == "A"  # None input counts as missing
    assert report.problems[0].line == 2 and report.problems[0].field == "output"
    assert "row 2:" in report.summary()


def test_parquet_messages_as_list_column(tmp_path):
    pd = pytest.importorskip("pandas")
    path = tmp_path / "m.parquet"
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    pd.DataFrame({"messages": [turns, turns[:1]]}).to_parquet(path)
    report = read_examples(path)
    assert report.good == 1 and report.examples[0].answer == "yo"
    assert report.problems[0].line == 2 and 'last turn messages[0] is "user"' in report.problems[0].reason
    text_path = tmp_path / "t.parquet"
    pd.DataFrame({"messages": [json.dumps(turns)]}).to_parquet(text_path)
    assert read_examples(text_path).examples[0].answer == "yo"


def test_parquet_wrong_columns(tmp_path):
    pd = pytest.importorskip("pandas")
    path = tmp_path / "w.parquet"
    pd.DataFrame({"question": ["q"], "answer": ["a"]}).to_parquet(path)
    with pytest.raises(DataError, match="question, answer") as err:
        read_examples(path)
    assert "instruction" in str(err.value) and "chosen" in str(err.value)


def test_parquet_corrupt(tmp_path):
    with pytest.raises(DataError, match="not a readable Parquet file"):
        read_examples(write(tmp_path, "x.parquet", b"this is not parquet at all"))


# ---------------------------------------------------------------- defects


def test_invalid_json_line_keeps_other_lines(tmp_path):
    path = write(tmp_path, "d.jsonl", jsonl(ALPACA) + '{"instruction": "x", "output": }\n' + jsonl(ALPACA))
    report = read_examples(path)
    assert report.good == 2 and [e.line for e in report.examples] == [1, 3]
    (problem,) = report.problems
    assert problem.line == 2 and problem.field is None
    assert "invalid JSON" in problem.reason and "column 32" in problem.reason


def test_empty_and_non_string_fields(tmp_path):
    path = write(tmp_path, "d.jsonl", jsonl(
        {"instruction": "ok", "input": "", "output": "fine"},
        {"instruction": "x", "output": ""},
        {"instruction": "   ", "output": "y"},
        {"instruction": "x", "output": 42},
        {"instruction": "x", "output": None},
        {"instruction": ["a"], "output": "y"},
        {"instruction": "x", "input": {"a": 1}, "output": "y"},
        {"instruction": "x"},
    ))
    report = read_examples(path)
    assert report.good == 1 and report.examples[0].answer == "fine"
    got = {p.line: (p.field, p.reason) for p in report.problems}
    assert got[2] == ("output", 'field "output" is empty; every row needs a non-empty answer')
    assert got[3][0] == "instruction" and "empty" in got[3][1] and "prompt" in got[3][1]
    assert got[4][0] == "output" and "is a number" in got[4][1]
    assert got[5][0] == "output" and "is null" in got[5][1]
    assert got[6][0] == "instruction" and "is a list" in got[6][1]
    assert got[7][0] == "input" and "is an object" in got[7][1]
    assert got[8][0] == "output" and 'missing field "output"' in got[8][1]


def test_unknown_keys_are_noted(tmp_path):
    rows = [dict(ALPACA, id=i) for i in range(3)] + [dict(ALPACA, source="web")]
    report = read_examples(write(tmp_path, "d.jsonl", jsonl(*rows)))
    assert report.good == 4 and report.bad == 0
    assert "ignored unknown keys: id (3 rows), source (1 row)" in report.notes


def test_row_matching_no_shape(tmp_path):
    report = read_examples(write(tmp_path, "d.jsonl", jsonl(ALPACA, {"question": "q", "answer": "a"})))
    (problem,) = report.problems
    assert problem.line == 2 and "question, answer" in problem.reason and "instruction" in problem.reason


def test_non_object_rows(tmp_path):
    path = write(tmp_path, "d.jsonl", jsonl(ALPACA, [1, 2], "text", 7))
    report = read_examples(path)
    assert report.good == 1
    reasons = {p.line: p.reason for p in report.problems}
    assert reasons[2] == 'expected a JSON object like {"instruction": ..., "output": ...}, got a list'
    assert reasons[3].endswith("got text") and reasons[4].endswith("got a number")


def test_messages_defects(tmp_path):
    u, a, s = ({"role": r, "content": r[0].upper()} for r in ("user", "assistant", "system"))
    path = write(tmp_path, "m.jsonl", jsonl(
        {"messages": [u, a]},
        {"messages": {"role": "user", "content": "hi"}},
        {"messages": [u, {"role": "assistant"}]},
        {"messages": [u, a, s, u, a]},
        {"messages": [u, u, a]},
        {"messages": [u, a, u]},
        {"messages": [u, {"role": "bot?", "content": "x"}]},
        {"messages": []},
        {"messages": [s, a]},
        {"messages": [u, "hello"]},
    ))
    report = read_examples(path)
    assert report.good == 1 and report.examples[0].line == 1
    got = problem_map(report)
    assert all(p.field == "messages" for p in report.problems)
    assert "is an object, expected a list" in got[2].reason
    assert 'messages[1] (assistant) has no "content"' in got[3].reason
    assert "messages[2] is a system turn" in got[4].reason
    assert 'messages[1] has role "user" but "assistant" was expected' in got[5].reason
    assert 'the last turn messages[2] is "user"' in got[6].reason
    assert 'messages[1] has role "bot?"' in got[7].reason
    assert "empty list" in got[8].reason
    assert 'messages[1] has role "assistant" but "user" was expected' in got[9].reason
    assert "messages[1] is text" in got[10].reason


def test_blank_lines_are_skipped(tmp_path):
    path = write(tmp_path, "d.jsonl", "\n" + jsonl(ALPACA) + "   \n\n" + jsonl(ALPACA) + "\n")
    report = read_examples(path)
    assert report.rows_read == 2 and report.bad == 0
    assert [e.line for e in report.examples] == [2, 5]
    assert "4 blank lines skipped" in report.notes


def test_utf8_bom_removed(tmp_path):
    report = read_examples(write(tmp_path, "d.jsonl", b"\xef\xbb\xbf" + jsonl(ALPACA).encode()))
    assert report.good == 1 and "removed a UTF-8 byte-order mark" in report.notes
    csv_report = read_examples(write(tmp_path, "d.csv", b"\xef\xbb\xbfinstruction,output\nA,B\n"))
    assert csv_report.good == 1 and csv_report.examples[0].answer == "B"


def test_crlf_line_endings(tmp_path):
    report = read_examples(write(tmp_path, "d.jsonl", jsonl(ALPACA, ALPACA).replace("\n", "\r\n")))
    assert report.good == 2 and report.examples[0].answer == "hi"
    assert "Windows line endings (CRLF) handled" in report.notes
    csv_report = read_examples(write(tmp_path, "d.csv", "instruction,output\r\nA,B\r\nC,D\r\n"))
    assert [e.answer for e in csv_report.examples] == ["B", "D"]


def test_ndjson_and_old_mac_line_endings(tmp_path):
    report = read_examples(write(tmp_path, "d.ndjson", jsonl(ALPACA, ALPACA).replace("\n", "\r")))
    assert report.file_format == "jsonl" and [e.line for e in report.examples] == [1, 2]


def test_non_utf8_line_names_the_encoding(tmp_path):
    korean = json.dumps({"instruction": "번역", "output": "안녕하세요"}, ensure_ascii=False).encode("cp949")
    data = jsonl(ALPACA, ALPACA, ALPACA).encode() + korean + b"\n" + jsonl(ALPACA).encode()
    report = read_examples(write(tmp_path, "d.jsonl", data))
    assert report.good == 4 and [e.line for e in report.examples] == [1, 2, 3, 5]
    (problem,) = report.problems
    assert problem.line == 4
    assert "line 4 is not valid UTF-8 (byte 0xb9 at position 17)" in problem.reason
    assert "cp949/EUC-KR" in problem.reason and "save it as UTF-8" in problem.reason


def test_non_utf8_csv_is_a_data_error(tmp_path):
    data = "instruction,output\nA,B\ncafé,x\n".encode("latin-1")
    with pytest.raises(DataError, match=r"line 3 is not valid UTF-8 \(byte 0xe9 at position 3\)") as err:
        read_examples(write(tmp_path, "d.csv", data))
    assert "Windows-1252" in str(err.value)


def test_binary_junk(tmp_path):
    with pytest.raises(DataError, match="binary file, not text"):
        read_examples(write(tmp_path, "d.jsonl", bytes(range(256)) * 4))
    with pytest.raises(DataError, match="Parquet"):
        read_examples(write(tmp_path, "p.jsonl", b"PAR1\x15\x04\x15\x10"))
    # UTF-16 is text, not junk: it is read (tests/test_data_faults.py covers the encodings).
    report = read_examples(write(tmp_path, "u.csv", "instruction,output\nA,B\n".encode("utf-16")))
    assert report.good == 1 and any("UTF-16 LE" in note for note in report.notes)


def test_header_only_csv(tmp_path):
    with pytest.raises(DataError, match="has a header .* but no data rows"):
        read_examples(write(tmp_path, "d.csv", "instruction,input,output\n"))


def test_ragged_csv(tmp_path):
    text = "instruction,output\nA,B\nC,D,E\nF\nG,H\n"
    report = read_examples(write(tmp_path, "d.csv", text))
    assert [e.line for e in report.examples] == [2, 5]
    got = problem_map(report)
    assert sorted(got) == [3, 4]
    assert "row has 3 fields but the header has 2" in got[3].reason and "unquoted comma" in got[3].reason
    assert "row has 1 fields but the header has 2" in got[4].reason


def test_absurdly_long_field(tmp_path):
    long = "x" * (MAX_FIELD_CHARS + 1)
    report = read_examples(write(tmp_path, "d.jsonl", jsonl(ALPACA, {"instruction": "x", "output": long})))
    (problem,) = report.problems
    assert problem.line == 2 and problem.field == "output"
    assert f"{MAX_FIELD_CHARS + 1:,} characters" in problem.reason and f"{MAX_FIELD_CHARS:,} limit" in problem.reason
    assert "split" in problem.reason and report.good == 1


def test_empty_files(tmp_path):
    for name, content in [("e.jsonl", b""), ("w.jsonl", b"\n\n  \n"), ("e.csv", b""), ("b.json", b"\xef\xbb\xbf")]:
        with pytest.raises(DataError, match="file is empty"):
            read_examples(write(tmp_path, name, content))
    with pytest.raises(DataError, match="empty"):
        read_examples(write(tmp_path, "l.json", "[]"))


def test_missing_unsupported_and_folder(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_examples(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match=r"\.jsonl \.json \.csv \.parquet"):
        read_examples(write(tmp_path, "d.txt", "hello"))
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(DataError, match="folder"):
        read_examples(tmp_path / "dir.jsonl")


def test_no_good_rows_explains_expected_keys(tmp_path):
    path = write(tmp_path, "d.jsonl", jsonl({"question": "q", "answer": "a"}, {"instruction": "x", "output": ""}))
    with pytest.raises(DataError) as err:
        read_examples(path)
    text = str(err.value)
    for phrase in ("no usable rows", "instruction, input (optional), output", "prompt, completion",
                   "messages = list of", "prompt, chosen, rejected",
                   "Keys found: answer, instruction, output, question", "line 1:", 'line 2: field "output" is empty'):
        assert phrase in text


def test_pathological_json_never_escapes(tmp_path):
    lines = ["[" * 100_000, '{"instruction": "x", "output": ' + "9" * 5000 + "}",
             '{"instruction": "x", "output": "\\ud800"}', json.dumps(ALPACA), '{"instruction": "x", "output": NaN}']
    report = read_examples(write(tmp_path, "d.jsonl", "\n".join(lines)))
    assert report.good == 1 and report.examples[0].line == 4
    got = problem_map(report)
    assert "nested too deeply" in got[1].reason or "invalid JSON" in got[1].reason
    assert "invalid JSON" in got[2].reason
    assert "surrogate" in got[3].reason and got[3].field == "output"
    assert "is a number" in got[5].reason
    with pytest.raises(DataError):
        read_examples(write(tmp_path, "deep.json", "[" * 100_000 + "]" * 100_000))


# ---------------------------------------------------------------- split, preview, summary


def make_examples(n: int) -> list[Example]:
    return [Example(({"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}), i + 1,
                    "alpaca") for i in range(n)]


def test_split_is_deterministic_and_sized():
    data = make_examples(100)
    train, val, test = split_examples(data, 0.1, 0.2, seed=7)
    assert (len(train), len(val), len(test)) == (70, 10, 20)
    assert sorted(e.line for e in train + val + test) == list(range(1, 101))
    assert (train, val, test) == split_examples(data, 0.1, 0.2, seed=7)
    assert split_examples(data, 0.1, 0.2, seed=8)[0] != train
    train, val, test = split_examples(data, 5, 0, seed=1)
    assert (len(train), len(val), len(test)) == (95, 5, 0)
    assert len(split_examples(make_examples(3), 0.1, 0.0, seed=0)[1]) == 1  # a nonzero fraction keeps one


def test_split_validation():
    data = make_examples(10)
    with pytest.raises(ValueError, match=r"validation share .*1\.5"):
        split_examples(data, 1.5, 0, seed=0)
    with pytest.raises(ValueError, match=r"test share .*-1"):
        split_examples(data, 0, -1, seed=0)
    with pytest.raises(ValueError, match="validation share"):
        split_examples(data, "0.1", 0, seed=0)
    with pytest.raises(ValueError, match="no training examples"):
        split_examples(data, 5, 5, seed=0)
    with pytest.raises(ValueError, match="no training examples"):
        split_examples([], 0, 0, seed=0)


def test_preview_rows():
    multi = Example(({"role": "system", "content": "S"}, {"role": "user", "content": "U1"},
                     {"role": "assistant", "content": "A1"}, {"role": "user", "content": "U2"},
                     {"role": "assistant", "content": "A2"}), 9, "messages")
    pref = Example(({"role": "user", "content": "Q"},), 3, "preference", chosen="C", rejected="R")
    rows = preview_rows(make_examples(10) + [multi, pref], n=20)
    assert len(rows) == 12 and len(preview_rows(make_examples(10))) == 5
    assert rows[0] == {"line": 1, "shape": "alpaca", "prompt": "q0", "answer": "a0"}
    assert rows[10]["prompt"] == "system: S\nuser: U1\nassistant: A1\nuser: U2" and rows[10]["answer"] == "A2"
    assert rows[11] == {"line": 3, "shape": "preference", "prompt": "Q", "answer": "✓ chosen: C\n✗ rejected: R"}


def test_summary_text(tmp_path):
    rows = [ALPACA] * 3 + [{"instruction": "x", "output": ""}] * 4 + [dict(ALPACA, id=1)]
    report = read_examples(write(tmp_path, "d.jsonl", jsonl(*rows)))
    text = report.summary(max_problems=2)
    assert "Rows read: 8, good: 4, bad: 4" in text and str(report.path) in text
    assert "Row layouts: Alpaca (instruction, input, output): 4" in text  # words, not the internal name
    assert 'line 4: field "output" is empty' in text and "line 5:" in text and "line 6:" not in text
    assert "... and 2 more" in text and "ignored unknown keys: id (1 row)" in text


def test_large_jsonl_keeps_every_row_in_order(tmp_path):
    rows = [{"instruction": f"q{i}", "input": "", "output": "a"} for i in range(100_000)]
    report = read_examples(write(tmp_path, "big.jsonl", jsonl(*rows)))
    assert report.good == 100_000
    assert report.examples[-1].line == 100_000 and report.examples[-1].messages[0]["content"] == "q99999"


# ---------------------------------------------------------------- fuzzing

_json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                                st.sampled_from(["instruction", "input", "output", "prompt", "completion",
                                                 "messages", "chosen", "rejected", "role", "content", "x"]),
                                inner, max_size=5), max_leaves=12)


def _check(path: Path) -> None:
    try:
        report = read_examples(path)
    except DataError as err:
        # The catch-all wrapper says "could not read the file": reaching it means an unguarded bug.
        assert "could not read the file" not in str(err)
        return
    assert report.good + report.bad == report.rows_read
    assert report.good >= 1


_FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_FUZZ
@given(data=st.binary(max_size=400), ext=st.sampled_from([".jsonl", ".json", ".csv", ".tsv", ".parquet"]))
def test_fuzz_random_bytes(tmp_path, data, ext):
    _check(write(tmp_path, "f" + ext, data))


@_FUZZ
@given(rows=st.lists(_json_values, max_size=6), junk=st.lists(st.text(max_size=10), max_size=2))
def test_fuzz_random_json_lines(tmp_path, rows, junk):
    lines = [json.dumps(r) for r in rows] + junk
    _check(write(tmp_path, "f.jsonl", "\n".join(lines).encode("utf-8", "surrogatepass")))
    _check(write(tmp_path, "f.json", json.dumps(rows)))
