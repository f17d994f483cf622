#!/usr/bin/env python3
"""Write qGOFT Explorer's built-in text data sets.

All text was written for qGOFT Explorer by its developers.  This script
composes review sentences and news headlines from the hand-written fragments
in ``_sentiment_fragments.py`` and ``_topic_fragments.py`` (with a fixed
seed), adds the fully hand-written sentences kept in the same files, and
writes the hand-graded sentence pairs of ``_pair_fragments.py``.

Outputs (in ``--out``, default: the package data folder qgoft_core/explore/data/builtin):

* ``sentiment.jsonl``       {"text", "label", "split", "domain"}
* ``topic.jsonl``           {"text", "label", "split"}
* ``retention_pairs.jsonl`` {"a", "b", "score"}
* ``README.md``             the data cards, with counts taken from the data

The output is a pure function of the fragment files and ``SEED``: running the
script twice gives byte-identical files.

Usage::

    python3 demos/datagen/make_builtin_tasks.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import string
import sys
from collections import Counter
from pathlib import Path
from typing import Callable

sys.dont_write_bytecode = True  # keep demos/datagen free of __pycache__
HERE = Path(__file__).resolve().parent
OUT = HERE.parents[1] / "qgoft_core" / "explore" / "data" / "builtin"
if str(HERE) not in sys.path:  # the fragment modules live beside this script
    sys.path.insert(0, str(HERE))

import _pair_fragments as pair_frag  # noqa: E402
import _sentiment_fragments as sent_frag  # noqa: E402
import _topic_fragments as topic_frag  # noqa: E402

SEED = 20240611
TEST_FRACTION = 0.2
MIN_WORDS, MAX_WORDS = 4, 35

SENTIMENT_PER_DOMAIN_AND_LABEL = 150  # 4 domains x 2 labels x 150 = 1200
TOPIC_PER_LABEL = 220  # 4 labels x 220 = 880
UNRELATED_PAIRS = 60

SENTIMENT_LABELS = ("negative", "positive")
TOPIC_LABELS = ("sport", "science & technology", "business", "world & politics")
DOMAINS = ("film", "product", "restaurant", "app")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def n_words(text: str) -> int:
    return len(text.split())


def norm_key(text: str) -> str:
    """Key used to detect duplicates: case, punctuation and spacing ignored."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def stratified_split(rng: random.Random, items: list, fraction: float = TEST_FRACTION) -> list[str]:
    """Return a "train"/"test" tag per item; exactly round(fraction * n) are test."""
    order = list(range(len(items)))
    rng.shuffle(order)
    n_test = round(fraction * len(items))
    test = set(order[:n_test])
    return ["test" if i in test else "train" for i in range(len(items))]


# ---------------------------------------------------------------------------
# sentiment
# ---------------------------------------------------------------------------


class Review:
    """Random choices for one composed review of one domain."""

    def __init__(self, rng: random.Random, spec: dict):
        self.rng = rng
        self.spec = spec
        subject, keys = rng.choice(spec["subjects"])
        self.subject = subject
        self.aspects = [spec["aspects"][k] for k in keys]
        self._used: list[str] = []

    def pick(self, kind: int, articled: bool = False) -> tuple[str, str]:
        """An unused aspect with a predicate of ``kind`` (1 pos, 2 neg, 3 mild)."""
        pool = [
            a for a in self.aspects
            if a[kind] and a[0] not in self._used
            and (not articled or a[0].split()[0] in ("the", "my", "our"))
        ]
        np, *_ = aspect = self.rng.choice(pool)
        self._used.append(np)
        return np, self.rng.choice(aspect[kind])

    def c(self, key: str) -> str:
        return self.rng.choice(self.spec[key])


def _pos_templates() -> list[tuple[float, Callable[[Review], str]]]:
    P, M = 1, 3

    def whole(r):
        return f"{cap(r.subject)} {r.c('whole_pos')}."

    def whole_aspect(r):
        a, p = r.pick(P)
        return f"{cap(r.subject)} {r.c('whole_pos')}. {cap(a)} {p}."

    def two_aspects(r):
        a, p = r.pick(P)
        b, q = r.pick(P)
        return f"{cap(a)} {p}, and {b} {q}."

    def aspect_verdict(r):
        a, p = r.pick(P)
        return f"{cap(a)} {p}. {r.c('verdict_pos')}"

    def formal(r):
        a, p = r.pick(P)
        return f"{cap(r.subject)} {r.c('whole_pos')}. What's more, {a} {p}."

    def formal2(r):
        a, p = r.pick(P)
        return f"Overall, {r.subject} {r.c('whole_pos')}, and {a} {p}."

    def exclaim_whole(r):
        return f"{r.c('excl_pos')} {cap(r.subject)} {r.c('whole_pos')}."

    def exclaim_aspect(r):
        a, p = r.pick(P)
        return f"{r.c('excl_pos')} {cap(a)} {p}!"

    def casual(r):
        a, p = r.pick(P)
        return f"{r.rng.choice(sent_frag.CASUAL_OPEN)} {a} {p}, {r.rng.choice(sent_frag.CASUAL_END_POS)}"

    def not_bad(r):
        a, p = r.pick(P)
        return f"Not bad at all. {cap(a)} {p}."

    def cant_fault(r):
        a, _ = r.pick(P, articled=True)
        b, q = r.pick(P)
        return f"I can't fault {a}, and {b} {q}."

    def no_complaints(r):
        a, p = r.pick(P)
        return f"No complaints here: {a} {p}, and {r.c('overall_pos')}."

    def didnt_expect(r):
        return f"I didn't expect much from {r.subject}, but {r.c('overall_pos')}."

    def bad_reviews(r):
        return f"Don't listen to the bad reviews: {r.subject} {r.c('whole_pos')}."

    def wont_regret(r):
        return f"You won't regret it: {r.subject} {r.c('whole_pos')}."

    def never_disappointed(r):
        a, p = r.pick(P)
        return f"I was not disappointed in the slightest; {a} {p}."

    def mixed_save(r):
        a, m = r.pick(M)
        b, q = r.pick(P)
        return f"{cap(a)} {m}, but {b} {q}, and {r.spec['save']}."

    def although(r):
        a, m = r.pick(M)
        return f"Although {a} {m}, {r.rng.choice(r.spec['overall_pos'] + r.spec['still_pos'])}."

    def small_complaint(r):
        a, m = r.pick(M)
        return f"{cap(a)} {m}, but that's a small complaint: {r.subject} {r.c('whole_pos')}."

    def only_gripe(r):
        a, m = r.pick(M)
        return f"My only gripe is that {a} {m}; otherwise {r.subject} {r.c('whole_pos')}."

    def long_review(r):
        a, p = r.pick(P)
        b, q = r.pick(P)
        c, t = r.pick(P)
        return (
            f"{cap(r.subject)} {r.c('whole_pos')}. {cap(a)} {p}, {b} {q}, and {c} {t}. "
            f"{cap(r.c('overall_pos'))}."
        )

    return [
        (1.0, whole), (1.4, whole_aspect), (1.4, two_aspects), (1.4, aspect_verdict),
        (1.0, formal), (0.6, formal2), (0.6, exclaim_whole), (0.5, exclaim_aspect),
        (0.7, long_review), (1.0, casual), (0.6, not_bad), (0.5, cant_fault), (0.6, no_complaints),
        (0.6, didnt_expect), (0.5, bad_reviews), (0.4, wont_regret), (0.4, never_disappointed),
        (0.8, mixed_save), (0.8, although), (0.6, small_complaint), (0.6, only_gripe),
    ]


def _neg_templates() -> list[tuple[float, Callable[[Review], str]]]:
    P, N = 1, 2

    def whole(r):
        return f"{cap(r.subject)} {r.c('whole_neg')}."

    def whole_aspect(r):
        a, n = r.pick(N)
        return f"{cap(r.subject)} {r.c('whole_neg')}. {cap(a)} {n}."

    def two_aspects(r):
        a, n = r.pick(N)
        b, o = r.pick(N)
        return f"{cap(a)} {n}, and {b} {o}."

    def aspect_verdict(r):
        a, n = r.pick(N)
        return f"{cap(a)} {n}. {r.c('verdict_neg')}"

    def formal(r):
        a, n = r.pick(N)
        return f"{cap(r.subject)} {r.c('whole_neg')}. On top of that, {a} {n}."

    def formal2(r):
        a, n = r.pick(N)
        return f"Overall, {r.subject} {r.c('whole_neg')}, and {a} {n}."

    def exclaim_whole(r):
        return f"{r.c('excl_neg')} {cap(r.subject)} {r.c('whole_neg')}."

    def exclaim_aspect(r):
        a, n = r.pick(N)
        return f"{r.c('excl_neg')} {cap(a)} {n}!"

    def casual(r):
        a, n = r.pick(N)
        return f"{r.rng.choice(sent_frag.CASUAL_OPEN)} {a} {n}, {r.rng.choice(sent_frag.CASUAL_END_NEG)}"

    def not_worth(r):
        a, n = r.pick(N)
        return f"Not worth {r.c('cost')}: {a} {n}."

    def not_recommend(r):
        a, n = r.pick(N)
        return f"I would not recommend {r.subject} to anyone; {a} {n}."

    def wanted_to_like(r):
        a, n = r.pick(N)
        return f"I wanted to like {r.subject}, but {a} {n}."

    def hype(r):
        return f"Don't believe the hype: {r.subject} {r.c('whole_neg')}."

    def not_impressed(r):
        a, n = r.pick(N)
        return f"Not impressed. {cap(a)} {n}."

    def no_second_chance(r):
        a, n = r.pick(N)
        return f"{cap(a)} {n}, and I won't be giving it a second chance."

    def mixed_ruin(r):
        a, p = r.pick(P)
        b, n = r.pick(N)
        return f"{cap(a)} {p}, but {b} {n}, and {r.spec['ruin']}."

    def although(r):
        a, p = r.pick(P)
        return f"Although {a} {p}, {r.c('overall_neg')}."

    def mixed_so(r):
        a, p = r.pick(P)
        b, n = r.pick(N)
        return f"{cap(a)} {p}, but {b} {n}, so {r.c('overall_neg')}."

    def cant_make_up(r):
        a, p = r.pick(P)
        b, n = r.pick(N)
        return f"{cap(a)} {p}, but that doesn't make up for the fact that {b} {n}."

    def long_review(r):
        a, n = r.pick(N)
        b, o = r.pick(N)
        c, t = r.pick(N)
        return (
            f"{cap(r.subject)} {r.c('whole_neg')}. {cap(a)} {n}, {b} {o}, and {c} {t}. "
            f"{cap(r.c('overall_neg'))}."
        )

    return [
        (1.0, whole), (1.4, whole_aspect), (1.4, two_aspects), (1.4, aspect_verdict),
        (1.0, formal), (0.6, formal2), (0.6, exclaim_whole), (0.5, exclaim_aspect),
        (0.7, long_review), (1.0, casual), (0.6, not_worth), (0.6, not_recommend), (0.6, wanted_to_like),
        (0.5, hype), (0.5, not_impressed), (0.5, no_second_chance),
        (0.8, mixed_ruin), (0.8, although), (0.6, mixed_so), (0.6, cant_make_up),
    ]


def build_sentiment(rng: random.Random) -> list[dict]:
    templates = {1: _pos_templates(), 0: _neg_templates()}
    seen: set[str] = set()
    rows: list[dict] = []
    for domain in DOMAINS:
        spec, hand_pos, hand_neg = sent_frag.DOMAINS[domain]
        for label, hand in ((0, hand_neg), (1, hand_pos)):
            texts: list[str] = []
            for text in hand:
                key = norm_key(text)
                if key in seen:
                    raise ValueError(f"duplicate hand-written review: {text!r}")
                if not MIN_WORDS <= n_words(text) <= MAX_WORDS:
                    raise ValueError(f"hand-written review has {n_words(text)} words: {text!r}")
                seen.add(key)
                texts.append(text)
            weights = [w for w, _ in templates[label]]
            funcs = [f for _, f in templates[label]]
            attempts = 0
            while len(texts) < SENTIMENT_PER_DOMAIN_AND_LABEL:
                attempts += 1
                if attempts > 100_000:
                    raise RuntimeError(f"cannot compose enough {domain} reviews with label {label}")
                func = rng.choices(funcs, weights)[0]
                text = func(Review(rng, spec))
                key = norm_key(text)
                if key in seen or not MIN_WORDS <= n_words(text) <= MAX_WORDS:
                    continue
                seen.add(key)
                texts.append(text)
            splits = stratified_split(rng, texts)
            rows.extend(
                {"text": t, "label": label, "split": s, "domain": domain} for t, s in zip(texts, splits)
            )
    return rows


# ---------------------------------------------------------------------------
# topic
# ---------------------------------------------------------------------------


def _fill(rng: random.Random, template: str, fill: dict) -> str:
    values: dict[str, object] = {}
    fields = {f.split("[")[0] for _, f, _, _ in string.Formatter().parse(template) if f}
    if "T1" in fields or "T2" in fields:
        values["T1"], values["T2"] = rng.sample(topic_frag.TEAMS, 2)
    if "C1" in fields or "C2" in fields:
        values["C1"], values["C2"] = rng.sample(topic_frag.COMPANIES, 2)
    if "W" in fields:
        values["W"] = rng.randint(1, 4)
        values["L"] = rng.randint(0, values["W"] - 1)
    if "CW" in fields:
        values["CL"] = rng.randint(1, 3)
        values["CW"] = values["CL"] + rng.randint(1, 2)
    if "D" in fields:
        values["D"] = rng.randint(0, 3)
    for name in sorted(fields - values.keys()):
        values[name] = rng.choice(fill[name])
    return cap(template.format(**values))


def build_topic(rng: random.Random) -> list[dict]:
    seen: set[str] = set()
    rows: list[dict] = []
    for label, (_, templates, fill, hand) in enumerate(topic_frag.TOPICS):
        texts: list[str] = []
        for text in hand:
            key = norm_key(text)
            if key in seen:
                raise ValueError(f"duplicate hand-written topic sentence: {text!r}")
            seen.add(key)
            texts.append(text)
        attempts = 0
        while len(texts) < TOPIC_PER_LABEL:
            attempts += 1
            if attempts > 100_000:
                raise RuntimeError(f"cannot compose enough sentences for topic {label}")
            text = _fill(rng, rng.choice(templates), fill)
            key = norm_key(text)
            if key in seen or not MIN_WORDS <= n_words(text) <= MAX_WORDS:
                continue
            seen.add(key)
            texts.append(text)
        splits = stratified_split(rng, texts)
        rows.extend({"text": t, "label": label, "split": s} for t, s in zip(texts, splits))
    return rows


# ---------------------------------------------------------------------------
# retention pairs
# ---------------------------------------------------------------------------


def build_pairs(rng: random.Random) -> list[dict]:
    pairs: list[tuple[str, str, float]] = []
    for _, anchor, others in pair_frag.GROUPS:
        pairs.extend((anchor, other, score) for other, score in others)
    pairs.extend(pair_frag.EXTRA_PAIRS)

    # Unrelated pairs: anchors of two groups that share no topic tag.
    groups = pair_frag.GROUPS
    candidates = [
        (i, j) for i in range(len(groups)) for j in range(i + 1, len(groups))
        if not set(groups[i][0]) & set(groups[j][0])
    ]
    chosen = rng.sample(candidates, UNRELATED_PAIRS)
    for i, j in chosen:
        a, b = groups[i][1], groups[j][1]
        if rng.random() < 0.5:
            a, b = b, a
        pairs.append((a, b, 0.0))

    seen: set[frozenset[str]] = set()
    for a, b, score in pairs:
        key = frozenset((norm_key(a), norm_key(b)))
        if len(key) != 2:
            raise ValueError(f"pair of identical sentences: {a!r}")
        if key in seen:
            raise ValueError(f"duplicate pair: {a!r} / {b!r}")
        if not 0.0 <= score <= 5.0:
            raise ValueError(f"score out of range: {score}")
        seen.add(key)
    rng.shuffle(pairs)
    return [{"a": a, "b": b, "score": float(score)} for a, b, score in pairs]


# ---------------------------------------------------------------------------
# cards
# ---------------------------------------------------------------------------


def _table(rows: list[dict], label_names: tuple[str, ...]) -> str:
    count = Counter((r["split"], r["label"]) for r in rows)
    head = "| label | meaning | train | test | total |\n| --- | --- | ---: | ---: | ---: |\n"
    body = ""
    for i, name in enumerate(label_names):
        tr, te = count[("train", i)], count[("test", i)]
        body += f"| {i} | {name} | {tr} | {te} | {tr + te} |\n"
    tr = sum(v for (s, _), v in count.items() if s == "train")
    te = sum(v for (s, _), v in count.items() if s == "test")
    body += f"| | **all** | **{tr}** | **{te}** | **{tr + te}** |\n"
    return head + body


def build_card(sentiment: list[dict], topic: list[dict], pairs: list[dict]) -> str:
    n_hand_sent = sum(
        len(sent_frag.DOMAINS[d][1]) + len(sent_frag.DOMAINS[d][2]) for d in DOMAINS
    )
    n_hand_topic = sum(len(t[3]) for t in topic_frag.TOPICS)
    n_group_pairs = sum(len(g[2]) for g in pair_frag.GROUPS)
    dom = Counter((r["domain"], r["label"]) for r in sentiment)
    dom_lines = "".join(
        f"| {d} | {dom[(d, 0)]} | {dom[(d, 1)]} |\n" for d in DOMAINS
    )
    lengths = [n_words(r["text"]) for r in sentiment]
    t_lengths = [n_words(r["text"]) for r in topic]
    n_headlines = sum(not r["text"].endswith((".", "!", "?")) for r in topic)
    bins = Counter(min(int(p["score"]), 4) for p in pairs)
    bin_lines = "".join(
        f"| {lo} ≤ score {'<' if lo < 4 else '≤'} {lo + 1} | {bins[lo]} |\n" for lo in range(5)
    )
    src = (
        "Written for qGOFT Explorer by its developers; generated by "
        f"`make_builtin_tasks.py` from hand-written fragments, seed {SEED}."
    )
    return f"""# Built-in data sets

<!-- Generated by make_builtin_tasks.py; edit the script or the fragment
files, then run `python3 demos/datagen/make_builtin_tasks.py`. -->

Three small English text sets that ship with qGOFT Explorer, so the demos run
without downloading anything. None of the text is copied from a public data
set: every sentence, fragment and grade was written for this project.
`make_builtin_tasks.py` rebuilds all files (and this card) byte for byte;
the fragments live beside it in `_sentiment_fragments.py`,
`_topic_fragments.py` and `_pair_fragments.py`.

Load them with `qgoft_core.explore.data.tasks.load_builtin_task("sentiment" | "topic")` and
`qgoft_core.explore.data.tasks.load_retention_pairs()`.

## sentiment.jsonl

**Source.** {src}
{n_hand_sent} reviews are fully hand-written; the other {len(sentiment) - n_hand_sent} are composed
from hand-written subjects, aspects, opinions, negations, contrasts and
verdicts.

**Format.** One JSON object per line:
`{{"text": str, "label": 0|1, "split": "train"|"test", "domain": "film"|"product"|"restaurant"|"app"}}`.

**Labels.** 0 = negative, 1 = positive: the reviewer's overall verdict.
Mixed reviews are labelled by that verdict ("the food was great, but the
service was rude and dismissive, and that ruined it for me" is negative;
"the wait was a bit long, but everything else was perfect" is positive).
Negation is common in both classes ("not bad at all" is positive, "not worth
the money" negative). No sarcasm.

**Size.**

{_table(sentiment, SENTIMENT_LABELS)}
| domain | negative | positive |
| --- | ---: | ---: |
{dom_lines}
Texts are {min(lengths)} to {max(lengths)} words long (mean {sum(lengths) / len(lengths):.1f}).
Styles range from terse ("Give it a miss.") through casual lower-case
("ngl the jokes landed every time, 10/10") to formal and exclamatory.

**Split.** Fixed: 20% of each (domain, label) cell is test, chosen with the
seed, so both splits are exactly balanced by label and domain. No text occurs
twice (ignoring case and punctuation), so no text is in both splits.

**Intended use.** Quick fine-tuning and evaluation of small sentence encoders
in the demos and tests: binary classification, and a check that
orthogonal fine-tuning helps on an easy, clean task.

**Known limitations.** Small and synthetic: composed sentences reuse the
same fragments, so train and test share phrasing (accuracy here overstates
accuracy on real reviews). British English only. Only four domains; no
sarcasm, irony, ratings or very long reviews. Labels are the authors'
judgement, not a survey of readers.

## topic.jsonl

**Source.** {src}
{n_hand_topic} sentences are fully hand-written; the other {len(topic) - n_hand_topic} fill
hand-written headline and sentence templates.
Teams, companies and people are invented; real place names only appear as
neutral settings (meeting venues).

**Format.** `{{"text": str, "label": 0|1|2|3, "split": "train"|"test"}}`.

**Labels.** 0 = sport, 1 = science & technology, 2 = business,
3 = world & politics. Each text is meant to belong clearly to one class;
borderline subjects (technology companies' earnings, economic protests) were
left out on purpose.

**Size.**

{_table(topic, TOPIC_LABELS)}
Texts are {min(t_lengths)} to {max(t_lengths)} words long (mean {sum(t_lengths) / len(t_lengths):.1f});
{n_headlines} are headline-style (no final full stop, dropped articles) and
{len(topic) - n_headlines} ordinary news sentences.

**Split.** Fixed: 20% of each label is test, chosen with the seed. No
duplicates; no text in both splits.

**Intended use.** A four-class classification demo, to contrast with the
binary sentiment task and to show how the encoder's representation shifts.

**Known limitations.** Small and synthetic; template sentences share
structure across splits. The news is invented and not about real events.
Topic words are strong cues (team names, "shares", "parliament"), so the
task is easy; it is a demo, not a benchmark.

## retention_pairs.jsonl

**Source.** Written and graded for qGOFT Explorer by its developers;
assembled by `make_builtin_tasks.py` (seed {SEED}).
{n_group_pairs} pairs are hand-written and hand-graded around {len(pair_frag.GROUPS)} anchor
sentences; {len(pair_frag.EXTRA_PAIRS)} are hand-written stand-alone pairs (shared words with
unrelated meanings, near-identical rewordings); {UNRELATED_PAIRS} pair the anchors of
two groups whose topic tags do not overlap, graded 0.

**Format.** `{{"a": str, "b": str, "score": float}}`, score in [0, 5].

**Scale** (as in STS): 5 = same meaning; 4 = same meaning, minor details
differ; 3 = important detail differs or is missing; 2 = same subject,
different or contradicting claim; 1 = same broad topic; 0 = unrelated.

**Size.** {len(pairs)} pairs, no split (evaluation only).

| score | pairs |
| --- | ---: |
{bin_lines}
Topics: daily life, cooking and food, weather, sport, science, health,
technology, travel and transport, work, education, home, family, shopping,
nature and animals, music, politics, business.

**Intended use.** A "retention" check: the Spearman correlation between an
encoder's cosine similarities and these grades, measured before and after
fine-tuning on a classification task, shows how much general sentence
similarity the fine-tuning preserved.

**Known limitations.** Graded by the authors, not by several independent
annotators; grades are ordinal judgements with ties, so use rank
correlation. Many pairs share an anchor sentence. Short, simple sentences
in British English; no long or domain-specific text.
"""


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def order_rows(rng: random.Random, rows: list[dict]) -> list[dict]:
    """Train rows first, then test; shuffled within each split."""
    train = [r for r in rows if r["split"] == "train"]
    test = [r for r in rows if r["split"] == "test"]
    rng.shuffle(train)
    rng.shuffle(test)
    return train + test


def build_all(out: Path) -> dict[str, Path]:
    rng = random.Random(SEED)
    sentiment = order_rows(rng, build_sentiment(rng))
    topic = order_rows(rng, build_topic(rng))
    pairs = build_pairs(rng)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "sentiment": out / "sentiment.jsonl",
        "topic": out / "topic.jsonl",
        "retention_pairs": out / "retention_pairs.jsonl",
        "card": out / "README.md",
    }
    write_jsonl(paths["sentiment"], sentiment)
    write_jsonl(paths["topic"], topic)
    write_jsonl(paths["retention_pairs"], pairs)
    paths["card"].write_text(build_card(sentiment, topic, pairs), encoding="utf-8", newline="\n")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    for name, path in build_all(args.out).items():
        print(f"wrote {name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
