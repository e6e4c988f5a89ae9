"""Generated files of good rows mixed with malformed ones: every good row is kept, in order and unchanged, and every
bad row is named by its line (and by its field, where one field is at fault). No model needed.

300 JSONL files and 100 JSON files per run (hypothesis; the seed varies between runs and failures are replayed).
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.data.examples import MAX_FIELD_CHARS, DataError, read_examples

TEXT = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40).filter(lambda t: t.strip())
NOT_TEXT = st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(),
                     st.lists(st.integers(), max_size=3), st.dictionaries(st.just("k"), st.integers(), max_size=1))

# A good row: its JSON and the (prompt, answer) it must come back as.
GOOD = st.builds(lambda instruction, answer, extra: (
    {"instruction": instruction, "output": answer, **({"input": extra} if extra else {})},
    (instruction, extra, answer)), TEXT, TEXT, st.one_of(st.just(""), TEXT))

# A bad row: its JSON value (or a raw line that is not JSON) and the field its problem must name (None: the row).
BAD = st.one_of(
    st.builds(lambda v: ({"instruction": v, "output": "ok"}, "instruction"), NOT_TEXT),
    st.builds(lambda v: ({"instruction": "ok", "output": v}, "output"), NOT_TEXT),
    st.builds(lambda t: ({"instruction": t}, "output"), TEXT),  # missing answer
    st.builds(lambda t, blank: ({"instruction": t, "output": blank}, "output"), TEXT,
              st.sampled_from(["", " ", "\n\t"])),
    st.just(({"instruction": "long", "output": "x" * (MAX_FIELD_CHARS + 1)}, "output")),
    st.builds(lambda k: ({k: "value"}, None), st.sampled_from(["foo", "question", "text", "label"])),
    st.builds(lambda v: (v, None), st.one_of(st.lists(st.integers(), max_size=2), st.integers(), TEXT)),
    st.builds(lambda t: (RawLine(t), None), st.sampled_from(['{"instruction": "cut off', "{'single': 'quotes'}",
                                                            "instruction=hello", "[1, 2", "{}}"])),
)


class RawLine(str):
    """A line written as is: not JSON at all."""


FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _check(report, rows) -> None:
    good = [expected for _row, expected, _field in rows if expected is not False]
    assert report.good == len(good) and report.rows_read == len(rows)
    kept = [(ex.messages[-2]["content"], ex.answer) for ex in report.examples]
    assert [answer for _, answer in kept] == [answer for _, _, answer in good]  # kept, in order, unchanged
    for (prompt, _), (instruction, extra, _) in zip(kept, good, strict=True):
        assert instruction in prompt and extra in prompt
    expected_problems = [(number, field) for number, (_row, expected, field) in enumerate(rows, start=1)
                         if expected is False]
    # The line of every bad row; its field where one field is at fault (a row-level problem may name none).
    assert [(p.line, p.field if field is not None else None) for p, (_, field) in
            zip(report.problems, expected_problems, strict=True)] == expected_problems
    for problem in report.problems:
        assert problem.reason and str(problem.line) in report.summary(max_problems=10_000)


def _rows(draw_good, draw_bad):
    return st.lists(st.one_of(draw_good.map(lambda g: (g[0], g[1], None)),
                              draw_bad.map(lambda b: (b[0], False, b[1]))), min_size=1, max_size=12)


@settings(FUZZ, max_examples=300)
@given(rows=_rows(GOOD, BAD), ascii_only=st.booleans(), newline=st.sampled_from(["\n", "\r\n"]),
       bom=st.booleans())
def test_jsonl_keeps_every_good_row_and_names_every_bad_line(tmp_path_factory, rows, ascii_only, newline, bom):
    lines = [row if isinstance(row, RawLine) else json.dumps(row, ensure_ascii=ascii_only) for row, _, _ in rows]
    path = Path(tmp_path_factory.mktemp("fuzz")) / "rows.jsonl"
    path.write_bytes(("\ufeff" if bom else "").encode() + newline.join(lines).encode("utf-8") + newline.encode())
    if all(expected is False for _, expected, _ in rows):
        try:
            read_examples(path)
        except DataError as err:  # no good row: one clear error that names the problems
            assert "no usable rows" in str(err) and "line 1" in str(err)
            return
        raise AssertionError("a file without a good row must raise DataError")
    _check(read_examples(path), rows)


@settings(FUZZ, max_examples=100)
@given(rows=_rows(GOOD, BAD.filter(lambda b: not isinstance(b[0], RawLine))))
def test_json_list_keeps_every_good_item_and_names_every_bad_item(tmp_path_factory, rows):
    if all(expected is False for _, expected, _ in rows):
        rows = [*rows, ({"instruction": "q", "output": "a"}, ("q", "", "a"), None)]
    path = Path(tmp_path_factory.mktemp("fuzz")) / "rows.json"
    path.write_text(json.dumps([row for row, _, _ in rows], ensure_ascii=False), encoding="utf-8")
    _check(read_examples(path), rows)
