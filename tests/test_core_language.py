"""The core's own messages about data and settings come from the catalogues (core.yaml): a bad file's report, a
range error and a refused preset read in Korean when Korean is asked for (say(..., "ko") on the page, --lang ko in
the CLI) and stay as they were in English."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from datafiles import write

from workbench.config import ConfigError, RunConfig, load_preset, on_screen
from workbench.data.examples import DataError, read_examples, split_examples
from workbench.data.language import is_hangul
from workbench.i18n import say
from workbench.presets import check_name, read_preset

ROOT = Path(__file__).resolve().parents[1]
BAD_ROWS = ('{"instruction": "a", "output": "b"}\nnot json\n{"instruction": "c", "output": ""}\n'
            '{"messages": [{"role": "user", "content": "hi"}]}\n{"question": "x", "id": 1}\n')


@pytest.fixture(autouse=True)
def english_environment(monkeypatch):
    """str() of a message is the environment's language: these tests ask for English there, Korean by name."""
    monkeypatch.setenv("WORKBENCH_LANG", "en")


def korean(said: str) -> bool:
    return sum(map(is_hangul, said)) >= 5


def test_a_bad_files_report_reads_in_korean_and_stays_as_it_was_in_english(tmp_path):
    report = read_examples(write(tmp_path, "mixed.jsonl", BAD_ROWS))
    english, hangul = report.summary(), report.summary(lang="ko")
    assert english.splitlines()[2:4] == ["Rows read: 5, good: 1, bad: 4",
                                         "Row layouts: Alpaca (instruction, input, output): 1"]
    assert '  line 3: field "output" is empty; every row needs a non-empty answer' in english
    assert "  line 4: field \"messages\": the last turn messages[0] is \"user\"" in english
    assert hangul.splitlines()[2:4] == ["읽은 행: 5, 정상: 1, 문제: 4",
                                        "행 형식: Alpaca 형식 (instruction, input, output): 1"]
    assert '  3번째 줄: 필드 "output": 비어 있습니다. 모든 행에는 답변 텍스트가 있어야 합니다' in hangul
    assert "  2번째 줄: 잘못된 JSON:" in hangul and "참고:" not in english and "Notes:" not in hangul
    assert report.problems[2].reason.startswith('the last turn messages[0] is "user"')  # str(): the environment's
    assert korean(say(report.problems[2].why, "ko")) and report.notes_in("ko") == []
    assert all(korean(problem.why.render("ko")) for problem in report.problems)


def test_notes_and_a_csvs_rows_read_in_korean(tmp_path):
    path = write(tmp_path, "d.csv", " instruction , output ,extra\na,b,1\nc,d\n\n")
    report = read_examples(path)
    assert report.notes == ["removed spaces around column names", "1 blank row skipped",
                            "ignored unknown keys: extra (1 row)"]
    assert report.notes_in("ko") == ["열 이름 앞뒤의 공백을 지웠습니다", "빈 행 1개를 건너뛰었습니다",
                                     "알 수 없는 키는 무시했습니다: extra (1개 행)"]
    assert "  3번째 행: 이 행의 필드는 2개인데 헤더는 3개입니다." in report.summary(lang="ko")


@pytest.mark.parametrize(("content", "english", "hangul"), [
    (None, "file not found; check the path", "파일이 없습니다. 경로를 확인하세요"),
    ("", "file is empty; add one example per row", "파일이 비어 있습니다"),
    ('{"question": "x"}\n', "no usable rows; all 1 lines have problems", "쓸 수 있는 행이 없습니다. 줄 1개 모두에"),
    (b'[{"instruction": "\xe9", "output": "x"}]', "line 1 is not valid UTF-8 (byte 0xe9 at position 18)",
     "1번째 줄: 올바른 UTF-8이 아닙니다 (위치 18의 바이트 0xe9). 파일이 Windows-1252/Latin-1 인코딩으로 보입니다"),
])
def test_a_file_that_cannot_be_used_is_refused_in_either_language(tmp_path, content, english, hangul):
    path = tmp_path / "data.json" if isinstance(content, bytes) else tmp_path / "data.jsonl"
    if content is not None:
        write(tmp_path, path.name, content)
    with pytest.raises(DataError) as info:
        read_examples(path)
    assert str(info.value).startswith(f"{path}: ") and english in str(info.value)
    assert say(info.value, "en") == str(info.value)
    assert say(info.value, "ko").startswith(f"{path}: ") and hangul in say(info.value, "ko")


def test_the_first_problems_of_a_file_without_good_rows_are_listed_in_korean(tmp_path):
    with pytest.raises(DataError) as info:
        read_examples(write(tmp_path, "bad.jsonl", '{"question": "a"}\n[1]\n'))
    lines = say(info.value, "ko").splitlines()
    assert lines[-3:] == ["처음 몇 가지 문제:",
                          "  1번째 줄: 맞는 행 형식이 없습니다. 찾은 키: question. instruction/input/output (alpaca), "
                          "prompt/completion, messages (대화), prompt/chosen/rejected (선호 쌍) 중 하나여야 합니다",
                          '  2번째 줄: {"instruction": ..., "output": ...} 같은 JSON 객체여야 하는데 목록입니다']
    last = '  line 2: expected a JSON object like {"instruction": ..., "output": ...}, got a list'
    assert str(info.value).splitlines()[-1] == last


def test_a_split_that_leaves_nothing_to_train_reads_in_korean():
    with pytest.raises(ValueError) as info:
        split_examples(list(range(10)), 5, 5, seed=0)
    assert str(info.value) == ("the validation share (5) and the test share (5) leave no training examples out of 10; "
                               "lower them so that training keeps at least 1")
    assert say(info.value, "ko").startswith("검증 데이터 비율(5)과 테스트 데이터 비율(5)을 빼면")


@pytest.mark.parametrize(("override", "english", "hangul"), [
    ({"train.max_seq_len": 8}, "train.max_seq_len must be between 16 and 131072; got 8",
     "train.max_seq_len: 16에서 131072 사이여야 합니다. 받은 값: 8"),
    ({"method.rank": 1000}, "method.rank must be between 1 and 256; got 1000",
     "method.rank: 1에서 256 사이여야 합니다. 받은 값: 1000"),
    ({"model.dtype": "x"}, "model.dtype is 'x'; choose one of: auto, float32, bfloat16, float16",
     "model.dtype: 쓸 수 없는 값 'x'. 다음 중 하나를 고르세요: auto, float32, bfloat16, float16"),
    ({"train.max_steps": "5"}, "train.max_steps must be a whole number; got '5'",
     "train.max_steps: 정수여야 합니다. 받은 값: '5'"),
    ({"data.val_size": 0.7}, "data.val_size must be a share between 0 and 0.5 or a whole count; got 0.7",
     "data.val_size: 0에서 0.5 사이의 비율이거나 정수 개수여야 합니다. 받은 값: 0.7"),
    ({"bogus.x": 1}, "unknown setting 'bogus.x'; use section.field, e.g. train.max_steps",
     "알 수 없는 설정 'bogus.x'. section.field 형태로 쓰세요 (예: train.max_steps)"),
])
def test_a_bad_setting_reads_in_korean_and_stays_as_it_was_in_english(override, english, hangul):
    with pytest.raises(ConfigError) as info:
        RunConfig().with_overrides(override)
    assert str(info.value) == say(info.value, "en") == english
    assert say(info.value, "ko") == hangul


def test_an_unknown_method_and_the_screens_field_names_read_in_korean():
    with pytest.raises(ConfigError) as info:
        RunConfig().with_overrides({"method.name": "lorra"})
    assert str(info.value).startswith("method.name: Unknown PEFT method 'lorra'; choose one of: ")
    assert say(info.value, "ko").startswith("방법(method.name): 알 수 없는 PEFT 방법 'lorra'.")
    said = on_screen(say(_range_error(), "ko"), "ko")
    assert said == "“최대 시퀀스 길이”: 16에서 131072 사이여야 합니다. 받은 값: 8"
    assert on_screen(str(_range_error())) == "“Max seq len” must be between 16 and 131072; got 8"


def _range_error():
    try:
        RunConfig().with_overrides({"train.max_seq_len": 8})
    except ConfigError as exc:
        return exc.args[0]
    raise AssertionError("max_seq_len 8 was accepted")


def test_a_refused_preset_reads_in_korean_and_stays_as_it_was_in_english(tmp_path):
    with pytest.raises(ConfigError) as info:
        read_preset("nope", tmp_path)
    assert str(info.value).startswith("No preset 'nope': give a YAML file's path or one of: adalora, ")
    assert say(info.value, "ko").startswith("이름이 'nope'인 프리셋이 없습니다. YAML 파일 경로를 주거나")
    with pytest.raises(ConfigError) as info:
        read_preset("saved:mine", tmp_path)
    assert str(info.value) == "No saved preset named 'mine'; saved presets: (none)"
    assert say(info.value, "ko") == "이름이 'mine'인 저장된 프리셋이 없습니다. 저장된 프리셋: (없음)"
    broken = tmp_path / "broken.yaml"
    broken.write_text("train:\n  batch_size: 0\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_preset(broken)
    assert str(info.value) == "preset broken.yaml: train.batch_size must be between 1 and 1024; got 0"
    assert say(info.value, "ko") == ("프리셋 broken.yaml을 쓸 수 없습니다: "
                                     "train.batch_size: 1에서 1024 사이여야 합니다. 받은 값: 0")
    with pytest.raises(ConfigError) as info:
        check_name("lora")
    assert korean(say(info.value, "ko")) and "bundled preset's" in str(info.value)


def test_the_data_tabs_report_is_written_in_the_language_asked_for(tmp_path):
    from workbench.data.view import describe_data

    path = str(write(tmp_path, "mixed.jsonl", BAD_ROWS * 4))
    english = describe_data(path, 0.5, 0.5, 0, max_len=16)
    hangul = describe_data(path, 0.5, 0.5, 0, max_len=16, lang="ko")
    assert "Split (seed 0): training 4, validation 0, test 0." in english.summary
    assert "⚠️ The validation and test shares cannot be used: the validation share" in english.summary
    assert "4 example(s) are longer than the Train tab's max length (Max seq len 16)" in english.summary
    assert "분할 (시드 0): 학습 4, 검증 0, 테스트 0." in hangul.summary
    assert "⚠️ 검증·테스트 데이터 비율을 쓸 수 없습니다: 검증 데이터 비율" in hangul.summary
    assert "예제 4개가 학습 탭의 최대 길이(최대 시퀀스 길이 16)보다 깁니다." in hangul.summary
    assert hangul.split_problem.startswith("검증 데이터 비율") and english.split_problem.startswith("the validation")
    assert [row["reason"] for row in english.problems][:1] == [
        "invalid JSON: Expecting value at column 1; each line must be one complete JSON object"]
    assert all(korean(row["reason"]) for row in hangul.problems)


def test_the_data_tab_says_when_a_sample_needs_a_base_that_reads_korean():
    from workbench.ui.data_tab import korean_base_note

    note = korean_base_note("sample:ko_review_sentiment", "ko")
    assert korean(note) and "ko-qwen2.5-0.5b" in note and "ko_chat_polite" in note and "0.25" in note
    assert "reads Korean" in korean_base_note("sample:ko_review_sentiment", "en")
    assert korean_base_note("sample:ko_chat_polite", "ko") == korean_base_note("sample:en_ticket_triage", "en") == ""
    assert korean_base_note("/tmp/uploaded.jsonl", "ko") == ""


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("WORKBENCH_LANG", "LC_ALL", "LC_MESSAGES")}
    env.update({"WORKBENCH_HOME": str(home), "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8"})
    return subprocess.run([sys.executable, "-m", "workbench", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


def test_the_cli_speaks_korean_with_lang_ko_and_english_without(tmp_path):
    bad = write(tmp_path, "bad.jsonl", BAD_ROWS)
    proc = _cli("--lang", "ko", "data", "check", str(bad), home=tmp_path / "home")
    assert proc.returncode == 0, proc.stderr
    assert "읽은 행: 5, 정상: 1, 문제: 4" in proc.stdout and '  3번째 줄: 필드 "output": 비어 있습니다.' in proc.stdout
    proc = _cli("data", "check", str(bad), home=tmp_path / "home")
    assert "Rows read: 5, good: 1, bad: 4" in proc.stdout and "읽은" not in proc.stdout
    unusable = write(tmp_path, "unusable.jsonl", '{"question": "x"}\n')
    proc = _cli("--lang", "ko", "data", "check", str(unusable), home=tmp_path / "home")
    assert proc.returncode == 1 and proc.stderr.startswith(f"오류: {unusable}: 쓸 수 있는 행이 없습니다.")
    proc = _cli("--lang", "ko", "train", "--preset", "nope", home=tmp_path / "home")
    assert proc.returncode == 2 and proc.stderr.startswith("오류: 이름이 'nope'인 프리셋이 없습니다.")
    proc = _cli("--lang", "ko", "train", "--preset", "classroom-lora", "--rank", "0", home=tmp_path / "home")
    assert proc.returncode == 2 and "오류: method.rank: 1에서 256 사이여야 합니다. 받은 값: 0" in proc.stderr
    proc = _cli("train", "--preset", "classroom-lora", "--rank", "0", home=tmp_path / "home")
    assert proc.returncode == 2 and "error: method.rank must be between 1 and 256; got 0" in proc.stderr


def test_lang_holds_for_one_command_of_a_program_that_calls_main(tmp_path, capsys):
    from workbench.cli import main

    bad = write(tmp_path, "bad.jsonl", BAD_ROWS)
    assert main(["--lang", "ko", "data", "check", str(bad)]) == 0
    assert "읽은 행: 5, 정상: 1, 문제: 4" in capsys.readouterr().out
    assert os.environ["WORKBENCH_LANG"] == "en"  # as it was before the command
    assert main(["data", "check", str(bad)]) == 0 and "Rows read: 5" in capsys.readouterr().out
