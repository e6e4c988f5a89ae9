"""Rebuild the Korean form-first samples (#26): tasks the embedded model learns in a class period although it reads
little Korean (about 3 tokens per Hangul syllable, few Korean words known), because the answer copies or reformats
digits and spans of the input instead of depending on what the words mean. Short rows keep a classroom run short.

    python bench/make_ko_samples.py [--out workbench/data/samples] [--seed 26] [--only ko_date_format,...]

Writes, seeded (the same seed gives the same files):
  ko_extract_info.jsonl   a short note about money → `날짜: … | 이름: … | 금액: …`, each value copied exactly, `없음`
                          for a field the note lacks. Three fields, not four: each Korean field name costs ~6
                          tokens, and a fourth (장소) pushed answers to 60-71 tokens, past the classroom preset's 64
                          generated tokens (train.eval_max_new_tokens).
  ko_date_format.jsonl    a date as Koreans write it (2024년 3월 5일, 24.03.05, 3월 5일(화), …) → YYYY-MM-DD or MM-DD
  ko_amount_format.jsonl  an amount in Korean units (3만 5천 원, 3만5천원, 3만 5500원) → 35,500원

Numbers spelled out in Hangul (이천이십사년 삼월 이십일, a phone number read as 공일공 일이삼사 …) were tried and
not learned by the classroom run (80 steps): exact match 28 % on dates and 33 % on phone numbers, the rows with
digits right and the spelled-out ones wrong. So every number here is written in digits, as Koreans write them.

The committed .jsonl files are what ships; this script documents how they were made.
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

SURNAMES = "김 이 박 최 정 강 조 윤 장 임 한 오 서 신 권 황 안 송 류 홍".split()
GIVEN_NAMES = ("민수 지은 서연 준호 하은 도윤 예린 현우 수빈 지호 유나 성민 다은 태윤 소희 재원 민지 승현 "
               "가영 동현 은비 상우 나연 우진 혜진 정훈 보람 시우 채원 영호 미경 건우 수아 진혁 하늘 세영 "
               "주원 은지 태호 아름").split()
PLACES = ("서울 부산 대구 인천 광주 대전 울산 수원 전주 청주 춘천 강릉 제주 포항 창원 여수 목포 천안 "
          "강남 명동 잠실 신촌 판교 홍대 종로 해운대").split()


# ---- ko_extract_info ------------------------------------------------------------------------------------------

EXTRACT_INSTRUCTION = "날짜·이름·금액 (없으면 없음)"
# {D} a date (3월 15일), {N} a person (김민수), {A} an amount (25,000원), {P} a place (a distractor, never extracted).
# Particles after {A} follow 원 (을, 이), after {D} 일 (은); after {N} they follow 씨/님, so every name fits.
# Short on purpose: every Hangul syllable costs the embedded tokenizer ~3 tokens, and tokens are training time.
EXTRACT_TEMPLATES = [
    # all three fields
    "{D}에 {N} 씨가 {A}을 냈어요.",
    "{N} 님이 {D}에 {A} 송금.",
    "{D} {N} 씨 택시비 {A}.",
    "{D} 회식비 {A}, {N} 씨 결제.",
    "{D}에 {N} 씨한테 {A} 빌림.",
    "{N} 씨가 {D}에 {A} 환불받음.",
    "{D} {P} 숙박비 {A}, 예약자 {N}.",
    "{N} 씨가 {D} {P}에서 {A} 씀.",
    "{N} 님, {D}까지 {A} 입금해 주세요.",
    # no date
    "{N} 씨가 점심값 {A}을 냈어요.",
    "{N} 님께 {A} 송금 완료.",
    "{P}에서 {N} 씨가 {A} 계산.",
    "{N} 씨한테 {A} 갚기.",
    # no name
    "{D} 택시비 {A}.",
    "{D} {P}에서 {A} 결제.",
    "{D} 관리비는 {A}입니다.",
    "{D}에 {A}짜리 우산 구매.",
    # no amount
    "{D}에 {N} 씨와 {P}에서 만나요.",
    "{N} 님 {D} 입사.",
    "{D}은 {N} 씨 결혼식.",
    "{N} 씨 {D} {P} 도착.",
]


def _amount(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.45:
        value = rng.randrange(1, 100) * 500  # 500원 … 49,500원
    elif kind < 0.85:
        value = rng.randrange(10, 100) * 1000  # 10,000원 … 99,000원
    else:
        value = rng.randrange(100, 500) * 1000  # 100,000원 … 499,000원
    return f"{value:,}원"


def _digit_date(rng: random.Random) -> tuple[int, int]:
    month = rng.randrange(1, 13)
    return month, rng.randrange(1, DAYS_IN_MONTH[month - 1] + 1)


def extract_row(rng: random.Random) -> tuple[str, str]:
    template = rng.choice(EXTRACT_TEMPLATES)
    month, day = _digit_date(rng)
    values = {"D": f"{month}월 {day}일", "N": rng.choice(SURNAMES) + rng.choice(GIVEN_NAMES), "A": _amount(rng),
              "P": rng.choice(PLACES)}
    text = template.format(**values)
    fields = [(label, values[key] if "{" + key + "}" in template else "없음")
              for label, key in (("날짜", "D"), ("이름", "N"), ("금액", "A"))]
    return text, " | ".join(f"{label}: {value}" for label, value in fields)


# ---- ko_date_format -------------------------------------------------------------------------------------------

DATE_INSTRUCTION = "YYYY-MM-DD로 (연도 없으면 MM-DD)"
WEEKDAYS = "월화수목금토일"
# How a date is written (year, two-digit year, month, day, weekday); the forms without a year become MM-DD.
DATE_FORMS: dict[str, tuple[str, int]] = {  # form → (pattern, weight)
    "{y}년 {m}월 {d}일": ("with_year", 20),
    "{yy}년 {m}월 {d}일": ("with_year", 10),
    "{y}. {m}. {d}.": ("with_year", 10),
    "{yy}.{mm}.{dd}": ("with_year", 10),
    "{y}년 {m}월 {d}일 {w}요일": ("with_year", 10),
    "{m}월 {d}일": ("no_year", 20),
    "{m}월 {d}일({w})": ("no_year", 10),
    "{m}/{d}": ("no_year", 5),
}
# Words around some dates, which the answer leaves out (a time of day included).
DATE_CONTEXTS = ["{}", "{}", "{}", "마감 {}", "{} 출발", "{}까지 제출", "회의 {} 오후 3시", "생일은 {}",
                 "{} 오전 10시", "개강 {}", "{} 저녁 7시 약속"]


def date_row(rng: random.Random) -> tuple[str, str]:
    form = rng.choices(list(DATE_FORMS), weights=[weight for _, weight in DATE_FORMS.values()])[0]
    day = datetime.date(rng.randrange(2015, 2030), 1, 1) + datetime.timedelta(days=rng.randrange(365))
    text = form.format(y=day.year, yy=day.year % 100, m=day.month, d=day.day, mm=f"{day.month:02d}",
                       dd=f"{day.day:02d}", w=WEEKDAYS[day.weekday()])
    answer = (f"{day.year}-" if DATE_FORMS[form][0] == "with_year" else "") + f"{day.month:02d}-{day.day:02d}"
    return rng.choice(DATE_CONTEXTS).format(text), answer


# ---- ko_amount_format -----------------------------------------------------------------------------------------

AMOUNT_INSTRUCTION = "금액을 숫자로"
# What is paid for, and a plausible price range in 원 (every amount stays under 1,000,000: one comma).
AMOUNT_ITEMS = {
    "택시비": (3_000, 60_000), "점심값": (6_000, 30_000), "월세": (300_000, 990_000), "관리비": (50_000, 300_000),
    "회비": (10_000, 100_000), "커피값": (3_000, 25_000), "책값": (10_000, 60_000), "주차비": (1_000, 30_000),
    "수리비": (20_000, 500_000), "입장료": (5_000, 50_000), "배달비": (1_000, 6_000), "용돈": (10_000, 300_000),
    "축의금": (50_000, 300_000), "전기요금": (20_000, 150_000), "통신비": (30_000, 120_000),
    "학원비": (100_000, 600_000), "간식비": (2_000, 20_000), "숙박비": (50_000, 400_000),
    "운동화": (40_000, 250_000), "가방": (30_000, 900_000), "기차표": (8_000, 60_000), "꽃다발": (20_000, 100_000),
    "케이크": (20_000, 80_000), "안경": (50_000, 400_000),
}


def _has_final(word: str) -> bool:
    """Whether a Hangul word ends in a final consonant (받침), which picks 은/는 and 이/가."""
    return (ord(word[-1]) - 0xAC00) % 28 != 0


def _amount_words(man: int, cheon: int, baek: int, rng: random.Random) -> str:
    """An amount the way Koreans write it: 3만 5천 원, 3만5천원, 3만 5500원, 5천5백 원."""
    small = (f"{cheon}천" if cheon else "") + (f"{baek}백" if baek else "")
    style = rng.random()
    if man and (cheon or baek) and style < 0.3:  # the part under 만 in digits
        return f"{man}만 {cheon * 1000 + baek * 100}원"
    parts = ([f"{man}만"] if man else []) + ([small] if small else [])
    if style < 0.55:
        return "".join(parts) + "원"
    return " ".join(parts) + " 원"


AMOUNT_CONTEXTS = ["{i} {a}", "{i} {a}", "{i}{p} {a}이에요", "총 {a}입니다", "{i} {a} 결제", "{a} 입금했어요",
                   "{i} {a} 냈어요", "{a}"]


def amount_row(rng: random.Random) -> tuple[str, str]:
    item = rng.choice(list(AMOUNT_ITEMS))
    low, high = AMOUNT_ITEMS[item]
    step = 100 if high <= 30_000 or rng.random() < 0.2 else 1_000  # small prices often end in 백 (4천5백 원)
    value = rng.randrange(low // step, high // step + 1) * step
    man, cheon, baek = value // 10_000, value // 1_000 % 10, value // 100 % 10
    text = rng.choice(AMOUNT_CONTEXTS).format(i=item, p="은" if _has_final(item) else "는",
                                              a=_amount_words(man, cheon, baek, rng))
    return text, f"{value:,}원"


# ---- writing --------------------------------------------------------------------------------------------------

SAMPLES: dict[str, tuple[str, Callable[[random.Random], tuple[str, str]], int]] = {
    "ko_extract_info": (EXTRACT_INSTRUCTION, extract_row, 180),
    "ko_date_format": (DATE_INSTRUCTION, date_row, 180),
    "ko_amount_format": (AMOUNT_INSTRUCTION, amount_row, 180),
}


def make_rows(instruction: str, make_row: Callable[[random.Random], tuple[str, str]], count: int,
              seed: int) -> list[dict]:
    """`count` rows with distinct inputs, drawn with a seeded generator."""
    rng, seen, rows = random.Random(seed), set(), []
    while len(rows) < count:
        text, answer = make_row(rng)
        if text not in seen:
            seen.add(text)
            rows.append({"instruction": instruction, "input": text, "output": answer})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "workbench" / "data" / "samples")
    parser.add_argument("--seed", type=int, default=26)
    parser.add_argument("--only", default="", help="comma-separated sample names (default: all)")
    args = parser.parse_args()
    for name, (instruction, make_row, count) in SAMPLES.items():
        if args.only and name not in args.only.split(","):
            continue
        rows = make_rows(instruction, make_row, count, args.seed)
        path = args.out / f"{name}.jsonl"
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
        print(f"{path}: {len(rows)} rows")


if __name__ == "__main__":
    main()
