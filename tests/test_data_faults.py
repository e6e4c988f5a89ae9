"""Faults in data files that must not cost their good rows, and the fast token counts of the Data tab.

- A CSV field longer than the csv module's own limit (131,072 characters) is that row's problem, not the file's.
- A stray NUL byte names its line; a real binary file (Parquet, ZIP, gzip, mostly control bytes) is still refused.
- UTF-16 and UTF-32 files (with or without a byte-order mark) and Korean CP949/EUC-KR files are read, with a note
  naming the encoding found; one broken line among UTF-8 lines is still named by its line, not guessed from.
- The Data tab's token lengths equal encode_examples' exactly, and its count of examples over max_seq_len is exact
  whatever the max length, while a big file is read once and only sampled for the chart.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from datafiles import jsonl, write

from workbench.data.examples import MAX_FIELD_CHARS, DataError, Example, file_kind, read_examples, read_with_kind
from workbench.data.files import CP949_NOTE
from workbench.data.samples import SAMPLES_DIR
from workbench.i18n import say

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((SAMPLES_DIR).glob("*.jsonl"))
ALPACA = {"instruction": "Say hi", "output": "hi"}
KOREAN = [{"instruction": "존댓말로 바꿔 주세요: 나 내일 휴가야.", "output": "저는 내일 휴가입니다."},
          {"instruction": "Translate to Korean: thank you", "input": "formal", "output": "감사합니다."},
          {"instruction": "요약해 주세요", "output": "배송이 빠르고 포장이 꼼꼼했어요. 가격도 괜찮아요."}]




def korean_csv() -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # as Excel writes it
    writer.writerow(["instruction", "input", "output"])
    for row in KOREAN:
        writer.writerow([row["instruction"], row.get("input", ""), row["output"]])
    return out.getvalue()


def answers(report) -> list[str]:
    return [example.answer for example in report.examples]


# ---------------------------------------------------------------- a CSV field over the csv module's limit


@pytest.mark.parametrize(("name", "sep"), [("long.csv", ","), ("long.tsv", "\t")])
def test_csv_field_over_the_csv_module_limit_is_that_rows_problem(tmp_path, name, sep):
    huge = "word " * 40_000  # 200,000 characters: over csv's 131,072 and over MAX_FIELD_CHARS
    text = f"instruction{sep}output\nfirst{sep}one\nlong{sep}\"{huge}\"\nlast{sep}three\n"
    report = read_examples(write(tmp_path, name, text))
    assert answers(report) == ["one", "three"]
    (problem,) = report.problems
    assert problem.line == 3 and problem.field == "output"
    assert f"{len(huge):,} characters long, over the {MAX_FIELD_CHARS:,} limit" in problem.reason


def test_csv_long_answer_within_the_row_limit_is_read(tmp_path):
    answer = "x" * MAX_FIELD_CHARS  # a long answer is legitimate; the csv module's limit must not decide
    path = write(tmp_path, "d.csv", f"instruction,output\nwrite a lot,{answer}\nshort,ok\n")
    report = read_examples(path)
    assert answers(report) == [answer, "ok"] and report.bad == 0
    # A field over the csv module's default limit, in a quoted multi-line cell, with its header and rows around it.
    multi = ("line\n" * 30_000).strip()
    report = read_examples(write(tmp_path, "m.csv", f'instruction,output\nA,B\nC,"{multi}"\nE,F\n'))
    assert answers(report) == ["B", "F"] and "characters long" in report.problems[0].reason


# ---------------------------------------------------------------- NUL bytes


def test_stray_nul_byte_names_its_line_and_keeps_the_rest(tmp_path):
    lines = jsonl(ALPACA, ALPACA).encode() + b'{"instruction": "bro\x00ken", "output": "x"}\n' + jsonl(ALPACA).encode()
    report = read_examples(write(tmp_path, "d.jsonl", lines))
    assert [e.line for e in report.examples] == [1, 2, 4]
    (problem,) = report.problems
    assert problem.line == 3
    assert "the line contains a NUL byte (\\x00), the first at column 21" in problem.reason
    assert "remove" in problem.reason


def test_nul_padding_after_a_crash_keeps_the_lines_before_it(tmp_path):
    # A file cut short by a crash is often padded with zero bytes by the file system.
    data = jsonl(ALPACA, ALPACA, ALPACA).encode() + b"\x00" * 4096
    report = read_examples(write(tmp_path, "d.jsonl", data))
    assert report.good == 3
    (problem,) = report.problems
    assert problem.line == 4 and "4,096 NUL bytes" not in problem.reason and "4096 NUL bytes" in problem.reason


def test_nul_in_a_csv_cell_names_its_row(tmp_path):
    report = read_examples(write(tmp_path, "d.csv", b"instruction,output\nA,B\nC\x00,D\nE,F\n"))
    assert answers(report) == ["B", "F"]
    (problem,) = report.problems
    assert problem.line == 3 and "the row contains a NUL byte" in problem.reason


def test_nul_in_a_json_document_is_named(tmp_path):
    data = b'[{"instruction": "A", "output": "B"}, {"instruction": "C\x00", "output": "D"}]'
    column = data.index(b"\x00") + 1
    with pytest.raises(DataError, match=rf"invalid JSON at line 1, column {column}: a NUL byte \(\\x00\)"):
        read_examples(write(tmp_path, "d.json", data))


def _parquet_bytes(tmp_path: Path) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"instruction": ["A"], "output": ["B"]}), tmp_path / "real.parquet")
    return (tmp_path / "real.parquet").read_bytes()


def _zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("data.csv", "instruction,output\nA,B\n")
    return out.getvalue()


@pytest.mark.parametrize(("name", "make", "expected"), [
    ("p.jsonl", _parquet_bytes, "Parquet"),
    ("z.csv", lambda _: _zip_bytes(), "ZIP archive or Excel workbook"),
    ("g.jsonl", lambda _: gzip.compress(jsonl(ALPACA, ALPACA).encode()), "gzip-compressed"),
    ("j.jsonl", lambda _: bytes(range(256)) * 4, "binary file, not text; use a .jsonl"),
    ("r.csv", lambda _: random.Random(0).randbytes(4096), "binary file, not text; use a .jsonl"),
    ("r.json", lambda _: random.Random(1).randbytes(300), "binary file, not text; use a .jsonl"),
    # Small numbers as 16-bit integers: zero bytes in every other place, like UTF-16, but control characters.
    ("i.jsonl", lambda _: struct.pack("<600h", *([1, 2, 3, 7, 30, 200] * 100)), "binary file, not text"),
    ("png.jsonl", lambda _: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + random.Random(2).randbytes(2000), "binary"),
])
def test_binary_files_are_still_refused(tmp_path, name, make, expected):
    with pytest.raises(DataError, match="binary file, not text") as err:
        read_examples(write(tmp_path, name, make(tmp_path)))
    assert expected in str(err.value)


# ---------------------------------------------------------------- UTF-16, UTF-32


# (Python codec, the name the note gives). "utf-16" and "utf-32" write a byte-order mark, little-endian; the UTF-32 LE
# mark FF FE 00 00 starts with UTF-16 LE's FF FE, and must still be named UTF-32.
WIDE = [("utf-16", "UTF-16 LE"), ("utf-16-be", "UTF-16 BE"), ("utf-16-le", "UTF-16 LE"),
        ("utf-32", "UTF-32 LE"), ("utf-32-be", "UTF-32 BE"), ("utf-32-le", "UTF-32 LE")]


def _bom(codec: str) -> bytes:
    return "\ufeff".encode(codec) if codec.endswith(("-be", "-le")) else b""


@pytest.mark.parametrize(("codec", "name"), WIDE)
@pytest.mark.parametrize("with_bom", [False, True])
def test_utf16_and_utf32_files_are_read_and_named(tmp_path, codec, name, with_bom):
    expected = read_examples(write(tmp_path, "utf8.jsonl", jsonl(*KOREAN)))
    bom = _bom(codec) if with_bom else b""
    marked = with_bom or codec in ("utf-16", "utf-32")
    how = "its byte-order mark" if marked else "its zero bytes; it has no byte-order mark"
    report = read_examples(write(tmp_path, "wide.jsonl", bom + jsonl(*KOREAN).encode(codec)))
    assert report.examples == expected.examples and report.bad == 0
    (note,) = [n for n in report.notes if "encoded as" in n]
    assert note == f"the file was encoded as {name} (told by {how}); read it as such"
    csv_report = read_examples(write(tmp_path, "wide.csv", bom + korean_csv().encode(codec)))
    assert answers(csv_report) == [row["output"] for row in KOREAN]
    assert any(name in n for n in csv_report.notes)


def test_utf32_is_not_called_utf16(tmp_path):
    report = read_examples(write(tmp_path, "d.csv", "instruction,output\nA,B\n".encode("utf-32")))
    assert answers(report) == ["B"]
    assert not any("UTF-16" in n for n in report.notes) and any("UTF-32 LE" in n for n in report.notes)


def test_bundled_korean_sample_in_utf16_without_bom_reads_the_same(tmp_path):
    sample = SAMPLES_DIR / "ko_chat_polite.jsonl"
    text = sample.read_text(encoding="utf-8")
    report = read_examples(write(tmp_path, "ko.jsonl", text.encode("utf-16-le")))
    assert report.examples == read_examples(sample).examples


def test_utf16_file_with_a_nul_character_names_its_line(tmp_path):
    text = jsonl(ALPACA) + '{"instruction": "A\x00", "output": "B"}\n' + jsonl(ALPACA)
    report = read_examples(write(tmp_path, "d.jsonl", text.encode("utf-16")))
    assert [e.line for e in report.examples] == [1, 3]
    assert report.problems[0].line == 2 and "NUL byte" in report.problems[0].reason


def test_broken_utf16_is_named_with_its_encoding(tmp_path):
    data = codecs_bom_le() + jsonl(ALPACA).encode("utf-16-le") + b"\x00\xd8A\x00"  # a lone high surrogate
    with pytest.raises(DataError, match=r"looks UTF-16 LE encoded \(told by its byte-order mark\), but it is not "
                                        r"valid UTF-16 LE at byte \d+"):
        read_examples(write(tmp_path, "d.jsonl", data))


def codecs_bom_le() -> bytes:
    import codecs

    return codecs.BOM_UTF16_LE


# ---------------------------------------------------------------- Korean CP949 / EUC-KR


@pytest.mark.parametrize("codec", ["cp949", "euc-kr"])
def test_korean_excel_csv_is_read(tmp_path, codec):
    report = read_examples(write(tmp_path, "excel.csv", korean_csv().encode(codec)))
    assert answers(report) == [row["output"] for row in KOREAN] and report.bad == 0
    assert CP949_NOTE in report.read_notes
    assert report.examples[1].messages[0]["content"] == "Translate to Korean: thank you\n\nformal"


def test_korean_cp949_jsonl_and_json_are_read(tmp_path):
    expected = read_examples(write(tmp_path, "utf8.jsonl", jsonl(*KOREAN))).examples
    report = read_examples(write(tmp_path, "d.jsonl", jsonl(*KOREAN).encode("cp949")))
    assert report.examples == expected and CP949_NOTE in report.read_notes
    document = json.dumps(KOREAN, ensure_ascii=False).encode("cp949")
    assert answers(read_examples(write(tmp_path, "d.json", document))) == [row["output"] for row in KOREAN]


def test_one_cp949_line_among_utf8_korean_lines_is_named_not_guessed(tmp_path):
    good = jsonl(*KOREAN).encode()
    odd = json.dumps({"instruction": "번역", "output": "안녕하세요"}, ensure_ascii=False).encode("cp949") + b"\n"
    report = read_examples(write(tmp_path, "d.jsonl", good + odd + good))
    assert report.good == 6 and CP949_NOTE not in report.read_notes
    (problem,) = report.problems
    assert problem.line == 4 and "line 4 is not valid UTF-8" in problem.reason and "cp949/EUC-KR" in problem.reason


def test_cp949_lines_in_a_utf8_csv_still_name_the_line(tmp_path):
    data = korean_csv().encode("utf-8") + "깨진,행\r\n".encode("cp949")
    with pytest.raises(DataError, match=r"line 5 is not valid UTF-8") as err:
        read_examples(write(tmp_path, "d.csv", data))
    assert "cp949/EUC-KR" in str(err.value)


def test_latin1_is_not_taken_for_korean(tmp_path):
    data = jsonl(*[{"instruction": "café crème", "output": "déjà vu"}] * 3).encode("latin-1")
    report = read_examples(write(tmp_path, "d.jsonl", data + jsonl(ALPACA).encode()))
    assert report.good == 1 and report.bad == 3 and CP949_NOTE not in report.read_notes
    assert "Windows-1252" in report.problems[0].reason


# ---------------------------------------------------------------- one read, the file's kind


def test_read_with_kind_reads_once_and_equals_read_examples_for_that_kind(tmp_path, monkeypatch):
    import workbench.data.examples as data

    pair = {"prompt": "Q", "chosen": "good", "rejected": "bad"}
    mostly_sft = write(tmp_path, "m.jsonl", jsonl(ALPACA, pair, {"instruction": "x"}, ALPACA, {"chosen": "c"}))
    mostly_pairs = write(tmp_path, "p.jsonl", jsonl(pair, pair, {"instruction": "x"}, {"output": 3}, {"foo": 1}))
    calls = []
    real = data.read_rows
    monkeypatch.setattr(data, "read_rows", lambda path: calls.append(path) or real(path))
    for path, kind in ((mostly_sft, "sft"), (mostly_pairs, "preference")):
        calls.clear()
        report, found = read_with_kind(path)
        assert found == kind and len(calls) == 1
        assert file_kind(path) == kind and len(calls) == 1  # known from that read: not read again
        expected = read_examples(path, kind=kind)
        assert (report.examples, report.problems, report.notes) == (expected.examples, expected.problems,
                                                                   expected.notes)


# ---------------------------------------------------------------- token lengths


@pytest.fixture(scope="module")
def tokenizer():
    from workbench.models.loading import cached_tokenizer

    return cached_tokenizer("embedded")


def _slow_lengths(examples, tokenizer) -> list[int]:
    from workbench.data.formatting import encode_examples

    return encode_examples(examples, tokenizer, 1_000_000)[1].lengths


def turn(role: str, content: str) -> dict:
    return {"role": role, "content": content}


TRICKY = [
    Example((turn("system", "Answer politely."), turn("user", "U1"), turn("assistant", "A1"),
             turn("user", "  U2 with spaces  "), turn("assistant", "A2\n\nwith lines\n")), 1, "messages"),
    Example((turn("system", "반말을 존댓말로 바꿉니다."), turn("user", "나 내일 휴가야."),
             turn("assistant", "저는 내일 휴가입니다.")), 2, "messages"),
    Example((turn("user", "Emoji 🙂 and <|im_end|> and <|im_start|>user inside the text"),
             turn("assistant", "<|endoftext|> 🙂\t tab")), 3, "alpaca"),
    Example((turn("user", "한국어 " * 700), turn("assistant", "긴 답 " * 300)), 4, "alpaca"),
    Example((turn("system", "S"), turn("user", "Q1"), turn("assistant", "A"), turn("user", "Q2")), 5, "preference",
            chosen="좋은 답", rejected="bad answer"),
    Example((turn("user", "\n"), turn("assistant", " ")), 6, "alpaca"),
]


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_fast_lengths_equal_encode_examples_on_the_bundled_samples(sample, tokenizer):
    from workbench.data.formatting import example_lengths, length_bounds

    examples = read_examples(sample).examples
    exact = _slow_lengths(examples, tokenizer)
    assert example_lengths(examples, tokenizer) == exact
    bounds = length_bounds(examples, tokenizer)
    assert bounds is not None and all(n <= bound for n, bound in zip(exact, bounds, strict=True))


def test_fast_lengths_equal_encode_examples_on_tricky_rows(tokenizer):
    from workbench.data.formatting import example_lengths, length_bounds

    exact = _slow_lengths(TRICKY, tokenizer)
    assert example_lengths(TRICKY, tokenizer) == exact
    assert exact[3] > 1000  # a long Korean row really is long
    assert all(n <= bound for n, bound in zip(exact, length_bounds(TRICKY, tokenizer), strict=True))
    assert example_lengths([], tokenizer) == []


def _with_normalizer(tokenizer, normalizer):
    """The embedded tokenizer with another normalizer: a real fast tokenizer, as Qwen's (NFC) or NFKC ones are."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.normalizer = normalizer
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=tokenizer.eos_token,
                                   chat_template=tokenizer.chat_template)


def test_byte_bounds_hold_with_nfc_and_are_refused_with_nfkc(tokenizer):
    from tokenizers import normalizers

    from workbench.data.formatting import TokenLengths, example_lengths, length_bounds

    # NFC makes 2 characters (6 bytes) of each U+0958 (3 bytes); NFKC makes 18 characters of U+FDFA.
    odd = Example((turn("user", "\u0958\u0958\u0958 e\u0301 \ufdfa"), turn("assistant", "\u0958" * 5)), 7, "alpaca")
    examples = [*TRICKY, odd]
    nfc = _with_normalizer(tokenizer, normalizers.NFC())
    exact = _slow_lengths(examples, nfc)
    assert example_lengths(examples, nfc) == exact
    assert all(n <= bound for n, bound in zip(exact, length_bounds(examples, nfc), strict=True))
    nfkc = _with_normalizer(tokenizer, normalizers.NFKC())
    assert length_bounds(examples, nfkc) is None  # no bound can be trusted: every example is counted
    counts = TokenLengths(examples, nfkc, length_bounds(examples, nfkc), sample=2)
    assert counts.upper == _slow_lengths(examples, nfkc) == example_lengths(examples, nfkc)


def test_fast_lengths_ignore_a_truncation_saved_in_the_tokenizer(tokenizer):
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    from workbench.data.formatting import example_lengths

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.enable_truncation(8)  # some tokenizer.json files ship with one; tokenizer(...) does not apply it
    cut = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=tokenizer.eos_token,
                                  chat_template=tokenizer.chat_template)
    assert example_lengths(TRICKY, cut) == _slow_lengths(TRICKY, tokenizer)


def test_token_lengths_count_over_is_exact_and_fills_in_only_what_it_needs(tokenizer):
    from workbench.data.formatting import TokenLengths, length_bounds

    examples = TRICKY * 5
    exact = _slow_lengths(examples, tokenizer)
    counts = TokenLengths(examples, tokenizer, length_bounds(examples, tokenizer), sample=4)
    assert counts.sample() == exact[:4] and sum(counts.exact) == 4
    for max_len in (2000, 300, 10_000):
        assert counts.count_over(max_len) == sum(n > max_len for n in exact), max_len
    assert sum(counts.exact) < len(examples)  # the short ones, under every bound so far, were never tokenized
    for max_len in (1, 40, 20, 300):
        assert counts.count_over(max_len) == sum(n > max_len for n in exact), max_len
    unbounded = TokenLengths(examples, tokenizer, None, sample=4)  # no bound to trust: all are counted
    assert unbounded.upper == exact and unbounded.count_over(30) == sum(n > 30 for n in exact)
    wrong = TokenLengths(examples, tokenizer, [1] * len(examples), sample=4)  # a bound that fails on the sample
    assert wrong.upper == exact


def _rows_file(tmp_path: Path, count: int) -> Path:
    rng = random.Random(0)
    rows = []
    for i in range(count):
        picks = rng.choices(["data", "model", "답변", "질문", "token", "adapter"], k=rng.randint(1, 60))
        words = " ".join(picks)
        rows.append({"instruction": f"Row {i}: {words}", "output": words[: rng.randint(1, 200)] or "x"})
    return write(tmp_path, "rows.jsonl", jsonl(*rows))


def test_describe_data_counts_cuts_exactly_and_samples_only_the_chart(tmp_path, tokenizer):
    from workbench.data.examples import split_examples
    from workbench.data.view import LENGTH_SAMPLE, describe_data

    path = _rows_file(tmp_path, LENGTH_SAMPLE + 1500)
    report = read_examples(path)
    train, val, test = split_examples(report.examples, 0.1, 0.1, 0)
    exact = {name: _slow_lengths(part, tokenizer) for name, part in (("train", train), ("val", val), ("test", test))}
    for max_len in (256, 60, 90, 40, 256, 10_000):
        view = describe_data(str(path), 0.1, 0.1, 0, max_len=max_len)
        assert view.truncated == sum(n > max_len for lengths in exact.values() for n in lengths), max_len
    assert view.sampled and "random sample of 2,000 examples per split" in view.summary
    assert view.lengths["train"] == exact["train"][:LENGTH_SAMPLE]  # the first of a shuffled split: a random sample
    assert view.lengths["val"] == exact["val"] and view.lengths["test"] == exact["test"]  # small splits: whole
    assert [row["line"] for row in view.splits["train"]] == [e.line for e in train[:8]]


def test_describe_data_reports_progress_to_the_end(tmp_path):
    from workbench.data.view import describe_data

    path = write(tmp_path, "big.jsonl", jsonl(*[{"instruction": f"Say {i}", "output": "ok"} for i in range(60_000)]))
    calls: list[tuple[float, str]] = []
    korean: list[str] = []  # what a Korean page's progress bar says: the same catalogue messages in Korean

    def heard(done, message):
        calls.append((done, say(message, "en")))
        korean.append(say(message, "ko"))

    describe_data(str(path), 0.1, 0.1, 0, on_progress=heard)
    fractions = [done for done, _ in calls]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert any(message == "Checked 50,000 of 60,000 rows" for _, message in calls)
    assert any(message.startswith("Counted the tokens of") for _, message in calls)
    assert all(isinstance(message, str) and message for _, message in calls)
    assert "행 60,000개 중 50,000개 검사함" in korean and korean[-1] == "검사 완료"
    # A new max length on a file already measured: only counting the examples that may be over it is left to do.
    small = _rows_file(tmp_path, 3000)
    describe_data(str(small), 0.1, 0.1, 0)
    calls.clear()
    view = describe_data(str(small), 0.1, 0.1, 0, max_len=1,
                         on_progress=lambda done, text: calls.append((done, say(text, "en"))))
    fractions = [done for done, _ in calls]
    assert view.truncated == 3000 and fractions == sorted(fractions) and fractions[0] >= 0.95 and fractions[-1] == 1.0
    assert any(message.startswith("Counted the tokens of") for _, message in calls)


@pytest.mark.slow
def test_data_check_bench_runs_and_prints_its_ratio(tmp_path):
    proc = subprocess.run([sys.executable, "bench/data_check.py", "--rows", "3000", "--no-tab"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["rows"] == 3000 and result["cli_s"] > 0 and result["describe_s"] > 0
    assert result["ratio"] == pytest.approx(result["describe_s"] / result["cli_s"], rel=0.01)
