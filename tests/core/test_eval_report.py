"""The HTML report of ``rerank eval --report`` (rerank_core.eval.report): size, escaping, content, the CLI
option, and (when Chromium and chromedriver are installed) that it renders in a headless browser without
console errors and without any network request."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from rerank_core import cli
from rerank_core.calibration import Calibration
from rerank_core.errors import ConfigurationError
from rerank_core.eval.beir import BeirDataset, Doc
from rerank_core.eval.metrics import evaluate
from rerank_core.eval.report import TEXT_CHARS, build_report, write_report
from rerank_core.eval.run import EvalReport

EVIL = "<script>alert(1)</script>"
CHART_IDS = (
    "chart-scores",
    "chart-reliability",
    "chart-threshold",
    "chart-ndcg",
    "chart-ndcg-delta",
    "chart-timings",
)
CALIBRATION = Calibration(
    "platt",
    "logit",
    (1.1, -2.0),
    fitted_on={
        "data": "synthetic",
        "split": "dev",
        "threshold_f1": {"threshold": 0.42, "precision": 0.6, "recall": 0.5, "f1": 0.55},
    },
)
WORDS = ["zebra", "lion", "penguin", "stripes", "golden", "antarctica"]
WORDS += ["mane", "retriever", "ice", "savanna", "tiger", "whale"]


def synthetic(
    n_queries: int, n_candidates: int, *, calibration: Calibration | None = CALIBRATION, seed: int = 0
) -> tuple[EvalReport, BeirDataset]:
    """A reranked run over a made-up collection: every query's candidates are its own documents (long
    texts), graded 0/1/2 or unjudged; the raw score follows the grade, the first-stage score less so. The
    first document of the first query is :data:`EVIL`, and the first query's text has markup too."""
    rng = np.random.default_rng(seed)
    corpus: dict[str, Doc] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    first_run, first_scores, reranked_run, raw_scores, calibrated = {}, {}, {}, {}, {}
    for q in range(n_queries):
        qid = f"q{q}"
        queries[qid] = "what about <b>zebras</b> & co?" if q == 0 else " ".join(rng.choice(WORDS, 6))
        ids = [f"{qid}-d{i}" for i in range(n_candidates)]
        grades = rng.choice([-1, 0, 1, 2], size=n_candidates, p=[0.6, 0.25, 0.1, 0.05])
        qrels[qid] = {d: int(g) for d, g in zip(ids, grades, strict=True) if g >= 0}
        words = rng.choice(WORDS, (n_candidates, 70))
        for i, d in enumerate(ids):
            corpus[d] = Doc(EVIL if (q, i) == (0, 0) else " ".join(words[i]), title=f"Doc {d}")
        relevance = np.maximum(grades, 0)
        fs = relevance * 2.0 + rng.normal(0, 3.0, n_candidates) + 10
        order = np.argsort(-fs, kind="stable")
        ids = [ids[i] for i in order]
        relevance, fs = relevance[order], fs[order]
        if q == 0:  # keep EVIL at the top of the first stage
            at = ids.index(f"{qid}-d0")
            ids.insert(0, ids.pop(at))
            fs = np.r_[fs.max() + 1, np.delete(fs, at)]
            relevance = np.r_[relevance[at], np.delete(relevance, at)]
        raw = relevance * 2.5 + rng.normal(-2.0, 1.5, n_candidates)
        first_run[qid], first_scores[qid] = ids, fs.tolist()
        raw_scores[qid] = raw.tolist()
        reranked_run[qid] = [ids[i] for i in np.argsort(-raw, kind="stable")]
        calibrated[qid] = (
            calibration.apply(raw).tolist() if calibration is not None else (1 / (1 + np.exp(-raw))).tolist()
        )
    keys = {"ndcg@10": "ndcg@10", "mrr@10": "mrr@10", f"recall@{n_candidates}": f"recall@{n_candidates}"}

    def metrics(run: dict[str, list[str]]) -> dict[str, float]:
        values = evaluate(run, qrels, k_values={10, n_candidates})
        return {k: values[v] for k, v in keys.items()}

    report = EvalReport(
        dataset="synthetic",
        split="test",
        top_k=n_candidates,
        queries=n_queries,
        first_stage=metrics(first_run),
        reranked=metrics(reranked_run),
        seconds=12.5,
        model="tiny-model",
        corpus_size=len(corpus),
        timings={"load_model": 1.5, "index": 0.4, "retrieve": 0.3, "rerank": 10.0},
        first_stage_run=first_run,
        reranked_run=reranked_run,
        first_stage_scores=first_scores,
        rerank_scores=raw_scores,
        calibrated_scores=calibrated,
        calibration={
            "method": calibration.describe() if calibration else "sigmoid",
            "ece": 0.05,
            "brier": 0.1,
            "pairs": n_queries * n_candidates,
        },
    )
    return report, BeirDataset("synthetic", "test", corpus, queries, qrels)


URL_ATTRIBUTE = re.compile(
    r"""\b(?:src|href|xlink:href|action|poster|srcset)\s*=\s*["']?\s*(?:https?:)?//""", re.I
)


def test_300_queries_of_100_candidates_stay_under_5_mb_and_link_nowhere() -> None:
    report, dataset = synthetic(300, 100)
    started = time.perf_counter()
    page = build_report(report, dataset, calibration=CALIBRATION, score_kind="logit")
    built = time.perf_counter() - started
    size = len(page.encode("utf-8"))
    assert size < 5_000_000, f"{size} bytes"
    assert built < 10, f"built in {built:.1f} s"
    assert URL_ATTRIBUTE.search(page) is None
    assert "http://" not in page and "https://" not in page  # the synthetic corpus has no URL either
    assert "default-src 'none'" in page  # the page's own policy forbids loading anything
    assert page.count('<details class="q"') == 300
    # one panel shows 10 + 10 rows; the other 80 candidates of each query are not stored
    assert page.count('<td class="t"') == 300 * 20


def test_corpus_and_query_text_is_escaped() -> None:
    report, dataset = synthetic(3, 12)
    page = build_report(report, dataset, calibration=CALIBRATION)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "alert(1)</script>" not in page and "<script>alert" not in page
    assert "what about &lt;b&gt;zebras&lt;/b&gt; &amp; co?" in page
    assert page.count("<script>") == 1  # the report's own


def test_panels_charts_and_labels() -> None:
    report, dataset = synthetic(6, 30)
    page = build_report(report, dataset, calibration=CALIBRATION, score_kind="logit")
    for chart in CHART_IDS:
        assert f'id="{chart}"' in page
    assert "ECE" in page and "before: sigmoid of the raw score" in page and "after: platt(" in page
    assert "F1 threshold stored with the calibration, fitted on synthetic dev" in page
    assert "pairs/s" in page
    texts = re.findall(r'<td class="t" title="[^"]*">([^<]*)</td>', page)
    assert texts and max(len(t) for t in texts) <= TEXT_CHARS and any(t.endswith("…") for t in texts)
    assert "▲" in page and "▼" in page and "→" in page
    assert "P(rel)" in page

    plain, _ = synthetic(6, 30, calibration=None)
    plain_page = build_report(plain, dataset, score_kind="logit")
    assert "F1-optimal, fitted here on these data" in plain_page
    assert "no &#x27;after&#x27; curve" in plain_page and "P(rel)" not in plain_page
    rank = build_report(plain, dataset, score_kind="rank")
    assert "no &#x27;before&#x27; curve" in rank and 'id="chart-reliability"' not in rank


def test_needs_a_reranked_report(tmp_path: Path) -> None:
    report, dataset = synthetic(2, 5)
    report.rerank_scores = None
    with pytest.raises(ConfigurationError, match="report"):
        write_report(report, dataset, tmp_path / "r.html")


# -- the CLI -------------------------------------------------------------------------------------------

DOCS = [
    ("d0", "zebra stripes are black and white"),
    ("d1", "the lion mane is golden"),
    ("d2", "penguins live in antarctica"),
    ("d3", EVIL + " stripes appear on many animals"),
    ("d4", "golden retrievers are dogs"),
    ("d5", "antarctica is cold and icy"),
]
QUERIES = [("q1", "zebra stripes"), ("q2", "lion mane"), ("q3", "antarctica penguins")]
QRELS = [("q1", "d0", 2), ("q2", "d1", 1), ("q3", "d2", 1), ("q1", "d3", 1)]


@pytest.fixture
def beir_dir(tmp_path: Path) -> Path:
    root = tmp_path / "mini"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "text": x}) + "\n" for i, x in DOCS))
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in QUERIES))
    rows = "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in QRELS)
    (root / "qrels" / "test.tsv").write_text(rows)
    return root


def test_cli_eval_writes_the_report(beir_dir: Path, tiny_ce_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "sub" / "report.html"
    args = ["eval", str(beir_dir), "--model", str(tiny_ce_path), "--top-k", "6", "--no-progress"]
    assert cli.main([*args, "--device", "cpu", "--report", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert page.count('<details class="q"') == 3 and "&lt;script&gt;alert(1)" in page
    assert "rerank" in page and "pairs/s" in page


def test_cli_report_option_is_checked(
    beir_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["eval", str(beir_dir), "--model", "none", "--report", str(tmp_path / "r.html")]) == 2
    assert "--report needs a --model" in capsys.readouterr().err
    assert cli.main(["eval", str(beir_dir), "--model", "x", "--report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--report" in err and "is a folder" in err


# -- in a browser ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium under selenium with the console and DevTools network logs, or a skip."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip(
            "chromium and chromedriver are not installed (make setup installs them as root: "
            "apt-get install chromium chromium-driver)"
        )
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-extensions",
        "--no-first-run",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")  # selenium-manager must not look anything up
        driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def _requests(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def test_report_renders_in_chromium_without_errors_or_requests(browser, tmp_path: Path) -> None:
    report, dataset = synthetic(5, 10)
    path = write_report(
        report, dataset, tmp_path / "report.html", calibration=CALIBRATION, score_kind="logit"
    )
    driver = browser
    driver.get_log("browser"), driver.get_log("performance")  # drop what an earlier page left
    driver.get(path.as_uri())
    state = driver.execute_script("return document.readyState")
    assert state == "complete"
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert errors == []
    for chart in CHART_IDS:
        children = driver.execute_script(
            "var e=document.getElementById(arguments[0]);return e?e.childElementCount:-1", chart
        )
        assert children > 0, chart
    drawn = driver.execute_script(
        "return Array.from(document.querySelectorAll('svg.chart path')).filter(function(p){"
        "var b=p.getBBox();return b.width>0||b.height>0;}).length"
    )
    assert drawn >= 10
    assert driver.execute_script("return document.querySelectorAll('details.q').length") == 5
    # the first query's panel shows the markup as text, and no script ran from it
    driver.execute_script("document.getElementById('q0').open=true")
    cell = driver.execute_script("return document.querySelector('#q0 td.t').textContent")
    assert cell.startswith("Doc q0-d0 " + EVIL[:20])
    # filtering by text hides the other queries
    box = driver.find_element("id", "q-search")
    box.send_keys("zebras")
    visible = driver.execute_script(
        "return Array.from(document.querySelectorAll('details.q'))"
        ".filter(function(d){return !d.hidden}).length"
    )
    assert visible == 1
    assert driver.find_element("id", "q-count").text == "1 of 5 queries"
    requests = _requests(driver)
    assert requests and all(url == path.as_uri() for url in requests), requests
    assert driver.get_log("browser") == []


def test_300_queries_of_100_candidates_load_in_chromium_in_under_3_s(browser, tmp_path: Path) -> None:
    report, dataset = synthetic(300, 100)
    path = write_report(report, dataset, tmp_path / "big.html", calibration=CALIBRATION, score_kind="logit")
    browser.get_log("browser")
    started = time.perf_counter()
    browser.get(path.as_uri())  # returns once the page has loaded
    browser.execute_script("return document.body.getBoundingClientRect().height")  # and is laid out
    seconds = time.perf_counter() - started
    assert seconds < 3, f"{seconds:.2f} s"
    assert browser.execute_script("return document.querySelectorAll('details.q').length") == 300
    assert browser.get_log("browser") == []
