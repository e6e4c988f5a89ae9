"""Multiple-choice sets as lm-evaluation-harness tasks: the bundled sets, a user's file, or any harness task by name.

- A bundled set is a task YAML in `mc_sets/` over JSONL files beside it (`knowledge_en`: MMLU-style English general
  knowledge; `knowledge_ko`: KMMLU / HAE-RAE-style Korean), each with a dev split whose first k rows are the k-shot
  examples, and each also in cloze form (`knowledge_en_cloze`, `knowledge_ko_cloze`: the answer's text scored after
  the question, as lm-eval's mmlu_continuation asks MMLU; small models answer lettered questions at chance even where
  they know the fact). Adding a set is adding a YAML and its files; nothing here names them.
- A user's file (.jsonl, .json, .csv/.tsv, .parquet) has a `question`, the choices (a `choices` list, or columns
  `A`, `B`, … up to `J`) and an `answer` (a letter, a 0-based index, or the text of a choice); `subject` and `split`
  (`dev` for the k-shot examples, else `test`) are optional. Rows are checked one by one: a bad row is named by its
  line and left out, the rest are used. It becomes a task like the bundled set of its language and the style asked
  for (KMMLU's prompt for a Korean file, MMLU's otherwise; or their cloze form), its rows handed to the harness in
  memory.
- Any other name is looked up among the harness's own tasks; its data set must be reachable (the Hugging Face Hub, or
  its local cache). Offline, the error names the task and the way out: a local file.

Errors are catalogue Messages (`mc.*`) raised in a ValueError; a bad row's reason too.
"""

from __future__ import annotations

import copy
import csv
import functools
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from workbench.data.examples import RowProblem, problem_line
from workbench.data.files import BadRow, read_rows, read_text, show, type_name
from workbench.data.language import KOREAN, language_of
from workbench.i18n import Message, message
from workbench.models.loading import hub_reachable

SETS_DIR = Path(__file__).resolve().parent / "mc_sets"
LETTERS = "ABCDEFGHIJ"
MAX_SHOTS = 5
# The bundled set whose prompt a user's file borrows, by its language and the style asked for: lettered choices
# (MMLU's and KMMLU's prompt) or cloze (each choice's text scored after the question, as mmlu_continuation does).
TEMPLATE_SET = {("en", "letters"): "knowledge_en", ("ko", "letters"): "knowledge_ko",
                ("en", "cloze"): "knowledge_en_cloze", ("ko", "cloze"): "knowledge_ko_cloze"}
STYLES = ("letters", "cloze")
_ANSWER_LETTER = re.compile(r"^\(?\s*([A-Ja-j])\s*[).:]?$")
_FILE_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet")


@dataclass(frozen=True)
class MCItem:
    """One question of a user's file."""

    line: int
    question: str
    choices: tuple[str, ...]
    answer: int
    subject: str
    split: str  # "dev" (a k-shot example) or "test" (a question scored)


@dataclass
class MCFile:
    """What reading a user's multiple-choice file found: its good questions, its bad rows and how it was read."""

    path: str
    unit: str  # what a position is called: line (JSONL), item (JSON) or row (CSV, Parquet)
    items: list[MCItem] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    notes: list[Message] = field(default_factory=list)

    @property
    def dev(self) -> list[MCItem]:
        return [item for item in self.items if item.split == "dev"]

    @property
    def test(self) -> list[MCItem]:
        return [item for item in self.items if item.split == "test"]


@dataclass
class MCTask:
    """A set ready for the harness: its loaded tasks (name → lm-eval Task), what kind of set it is and notes."""

    name: str
    kind: str  # "bundled", "file" or "harness"
    tasks: dict[str, Any]
    dev_size: int | None = None  # the k-shot examples there are (None: the harness task's own business)
    notes: list[Message] = field(default_factory=list)


def bundled_sets() -> list[str]:
    """The names of the bundled sets: one per task YAML in mc_sets/."""
    return sorted(path.stem for path in SETS_DIR.glob("*.yaml"))


def bundled_config(name: str) -> dict[str, Any]:
    """A bundled set's task config, its data files' paths made absolute (the harness reads them from the working
    directory otherwise)."""
    if name not in bundled_sets():
        raise ValueError(message("mc.set.unknown", name=name, sets=", ".join(bundled_sets())))
    config = yaml.safe_load((SETS_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    files = config["dataset_kwargs"]["data_files"]
    config["dataset_kwargs"]["data_files"] = {split: str(SETS_DIR / path) for split, path in files.items()}
    return config


def _bundled_dev_size(config: dict[str, Any]) -> int:
    path = Path(config["dataset_kwargs"]["data_files"][config["fewshot_split"]])
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


# ---- a user's file -------------------------------------------------------------------------------------------


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: Any, what: Message, key: str) -> str:
    """A non-empty piece of text (numbers are read as text: a choice may be 1945)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BadRow(message("mc.row.not_text", what=what, kind=type_name(value)), key)
    text = str(value).strip()
    if not text:
        raise BadRow(message("mc.row.empty", what=what), key)
    return text


def _choices(row: dict) -> tuple[tuple[str, ...], str]:
    """The row's choices and the field they came from: a `choices` list (in a CSV cell: a JSON list) or columns A…J."""
    if "choices" in row:
        value = row["choices"]
        if isinstance(value, str) and value.strip().startswith("["):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise BadRow(message("mc.row.choices_json"), "choices") from None
        if not isinstance(value, list | tuple):
            raise BadRow(message("mc.row.choices_not_list", kind=type_name(value)), "choices")
        choices = [_text(v, message("mc.row.choice", letter=LETTERS[i] if i < len(LETTERS) else i + 1), "choices")
                   for i, v in enumerate(value)]
        return tuple(choices), "choices"
    columns = {key.strip().upper(): key for key in row if isinstance(key, str) and len(key.strip()) == 1}
    filled = [letter for letter in LETTERS if letter in columns and not _blank(row[columns[letter]])]
    if not filled:
        raise BadRow(message("mc.row.no_choices"))
    gap = next((letter for letter in LETTERS[:LETTERS.index(filled[-1])] if letter not in filled), None)
    if gap:
        raise BadRow(message("mc.row.choice_gap", letter=gap), gap)
    return tuple(_text(row[columns[letter]], message("mc.row.choice", letter=letter), letter)
                 for letter in filled), "A"


def _check_choices(choices: tuple[str, ...], where: str) -> None:
    if not 2 <= len(choices) <= len(LETTERS):
        raise BadRow(message("mc.row.choice_count", count=len(choices), most=len(LETTERS)), where)
    twice = sorted({c for c in choices if choices.count(c) > 1})
    if twice:
        raise BadRow(message("mc.row.choice_twice", choice=show(twice[0])), where)


def _answer(value: Any, choices: tuple[str, ...]) -> tuple[int | None, int | None]:
    """(0-based index, None) for a letter or a choice's text; (None, number) for a bare number, which the file as a
    whole says is 0- or 1-based."""
    letters = LETTERS[:len(choices)]
    if isinstance(value, int) and not isinstance(value, bool):
        return None, value
    if isinstance(value, float) and value.is_integer():
        return None, int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return None, int(text)
        match = _ANSWER_LETTER.match(text)
        if match and match.group(1).upper() in letters:
            return letters.index(match.group(1).upper()), None
        if text in choices:
            return choices.index(text), None
    raise BadRow(_bad_answer(show(value) if isinstance(value, str) else type_name(value), len(choices)), "answer")


def _bad_answer(value: object, count: int) -> Message:
    return message("mc.row.bad_answer", value=value, letters=f"A-{LETTERS[count - 1]}", last=count - 1)


def _parse_row(row: Any, line: int, default_subject: str) -> tuple[MCItem, int | None]:
    """One row as a question, and its bare-number answer if it has one (the item's answer is then -1 for now)."""
    if not isinstance(row, dict):
        raise BadRow(message("mc.row.not_object", kind=type_name(row)))
    if "question" not in row:
        raise BadRow(message("mc.row.no_question"), "question")
    question = _text(row["question"], message("mc.row.question"), "question")
    choices, where = _choices(row)
    _check_choices(choices, where)
    if _blank(row.get("answer")):
        raise BadRow(message("mc.row.no_answer"), "answer")
    index, number = _answer(row["answer"], choices)
    subject = str(row.get("subject") or "").strip() or default_subject
    split = str(row.get("split") or "test").strip().lower()
    if split not in ("dev", "test"):
        raise BadRow(message("mc.row.bad_split", value=show(split)), "split")
    return MCItem(line, question, choices, -1 if index is None else index, subject, split), number


def _csv_rows(path: str) -> list[tuple[int, Any]]:
    text, _notes = read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if path.lower().endswith(".tsv") else ",")
    records = [(number, record) for number, record in enumerate(reader, 1) if any(c.strip() for c in record)]
    if not records:
        raise ValueError(message("mc.file.empty", path=path))
    header = [cell.strip() for cell in records[0][1]]
    return [(number, dict(zip(header, record)) if len(record) == len(header) else
             BadRow(message("mc.row.ragged", count=len(record), expected=len(header))))
            for number, record in records[1:]]


def _raw_rows(path: str) -> tuple[str, list[tuple[int, Any]], list[Message]]:
    suffix = Path(path).suffix.lower()
    if suffix not in _FILE_SUFFIXES:
        raise ValueError(message("mc.file.unsupported", path=path, suffix=suffix or "-",
                                 suffixes=" ".join(_FILE_SUFFIXES)))
    if suffix in (".csv", ".tsv"):  # not read_rows: it checks a CSV's columns against the instruction layouts
        return "row", _csv_rows(path), []
    file_format, items, notes = read_rows(path)
    return {"json": "item", "parquet": "row"}.get(file_format, "line"), items, notes


def _resolve_numbers(parsed: list[tuple[MCItem, int | None]], report: MCFile) -> None:
    """Bare-number answers are 0-based, unless the file's numbers never say 0 and reach the last choice: then the
    file counts from 1 (as KMMLU does), and a note says so."""
    numbers = [(number, len(item.choices)) for item, number in parsed if number is not None]
    one_based = bool(numbers) and all(1 <= n <= k for n, k in numbers) and any(n == k for n, k in numbers)
    if one_based:
        report.notes.append(message("mc.note.one_based"))
    for item, number in parsed:
        if number is not None:
            answer = number - 1 if one_based else number
            if not 0 <= answer < len(item.choices):
                report.problems.append(RowProblem(item.line, "answer", _bad_answer(str(number), len(item.choices))))
                continue
            item = replace(item, answer=answer)
        report.items.append(item)


def read_mc_file(path: str | Path) -> MCFile:
    """Read and check a user's multiple-choice file; ValueError when it has no usable question at all."""
    path = str(path)
    unit, rows, notes = _raw_rows(path)
    report = MCFile(path=path, unit=unit, notes=list(notes))
    parsed: list[tuple[MCItem, int | None]] = []
    for line, row in rows:
        try:
            if isinstance(row, BadRow):
                raise row
            parsed.append(_parse_row(row, line, Path(path).stem))
        except BadRow as bad:
            report.problems.append(RowProblem(line, bad.field, bad.why))
    _resolve_numbers(parsed, report)
    report.problems.sort(key=lambda problem: problem.line)
    if report.items and not report.dev:  # no `split` column: the first rows are the k-shot examples
        report.items[:MAX_SHOTS] = [replace(item, split="dev") for item in report.items[:MAX_SHOTS]]
        report.notes.append(message("mc.note.first_rows_dev", count=min(MAX_SHOTS, len(report.items))))
    if not report.test:
        first = [problem_line(p, unit) for p in report.problems[:5]]
        raise ValueError(message("mc.file.no_questions", path=path, good=len(report.items), bad=len(report.problems),
                                 problems=first or ""))
    return report


def file_config(report: MCFile, style: str = "letters") -> dict[str, Any]:
    """The harness task of a user's file: the bundled set of its language and style, over the file's rows (in
    memory)."""
    lang = "ko" if language_of(item.question for item in report.items) == KOREAN else "en"
    config = copy.deepcopy(bundled_config(TEMPLATE_SET[lang, style]))
    for key in ("dataset_path", "dataset_kwargs", "dataset_name"):
        config.pop(key, None)
    config["task"] = "workbench_file_" + re.sub(r"\W+", "_", Path(report.path).stem.lower()).strip("_")
    config["custom_dataset"] = _in_memory(report)
    return config


def _in_memory(report: MCFile) -> Callable[..., Any]:
    def rows(split: str) -> list[dict[str, Any]]:
        return [{"line": item.line, "subject": item.subject, "question": item.question,
                 "choices": list(item.choices), "answer": item.answer}
                for item in report.items if item.split == split]

    def load(**_metadata: Any) -> Any:  # the harness passes the task's metadata; the rows need none of it
        from datasets import Dataset, DatasetDict

        return DatasetDict({split: Dataset.from_list(rows(split)) for split in ("test", "dev")})

    return load


# ---- any set by name ------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def harness_index() -> Any:
    """The harness's index of its own tasks (thousands of YAML files: several seconds, so once per process)."""
    from lm_eval.tasks import TaskManager

    return TaskManager()


def _load(tasks: list[Any], manager: Any) -> dict[str, Any]:
    return dict(manager.load(tasks)["tasks"])


def load_task(spec: str | Path, style: str = "letters") -> MCTask:
    """A set by bundled name, file path or harness task name, loaded and ready to evaluate (fresh each call: the
    harness keeps the shots it was last asked for on the task). `style` is how a file's questions are asked:
    "letters" or "cloze" (a bundled set and a harness task have theirs in their name)."""
    from lm_eval.tasks import TaskManager

    if style not in STYLES:
        raise ValueError(message("mc.style.unknown", style=style, styles=", ".join(STYLES)))
    name = str(spec).strip()
    if name in bundled_sets():
        config = bundled_config(name)
        return MCTask(name, "bundled", _load([config], TaskManager(include_defaults=False)),
                      dev_size=_bundled_dev_size(config))
    if Path(name).suffix.lower() in _FILE_SUFFIXES or Path(name).expanduser().is_file():
        report = read_mc_file(Path(name).expanduser())
        notes = list(report.notes)
        if report.problems:
            notes.append(message("mc.note.skipped", count=len(report.problems),
                                 problems=[problem_line(p, report.unit) for p in report.problems[:5]]))
        return MCTask(name, "file", _load([file_config(report, style)], TaskManager(include_defaults=False)),
                      dev_size=len(report.dev), notes=notes)
    return _harness_task(name)


def _offline_when_unreachable() -> None:
    """Where the Hub cannot be reached, `datasets` retries it for half a minute before it looks in its cache: switch
    the Hub libraries to offline mode at once (for the whole process: the Hub is out of reach for every thread)."""
    if hub_reachable():
        return
    import datasets.config
    import huggingface_hub.constants

    huggingface_hub.constants.HF_HUB_OFFLINE = True
    datasets.config.HF_HUB_OFFLINE = True


def _harness_task(name: str) -> MCTask:
    index = harness_index()
    if name not in index.all_tasks:
        raise ValueError(message("mc.task.unknown", task=name, sets=", ".join(bundled_sets())))
    _offline_when_unreachable()
    try:
        tasks = _load([name], index)
    except Exception as exc:  # the harness and `datasets` raise many kinds; offline is the usual one
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ValueError(message("mc.task.unreachable", task=name, error=first)) from None
    kinds = sorted({task.get_config("output_type") for task in tasks.values()} - {"multiple_choice"})
    if kinds:
        raise ValueError(message("mc.task.not_multiple_choice", task=name, kind=", ".join(kinds)))
    return MCTask(name, "harness", tasks)
