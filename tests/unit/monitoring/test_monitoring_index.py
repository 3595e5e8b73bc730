"""The report index (`monitoring.index`): a real page written from real summary files in a temp folder."""

from __future__ import annotations

import datetime as dt
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

from monitoring.index import INDEX_NAME, NO_RUNS, current_champion, render_index, severity, top_drifted, write_index
from monitoring.summary import (
    ColumnResult,
    Decision,
    FeatureDrift,
    MonitorSummary,
    Performance,
    PredictionDrift,
    Retraining,
    Status,
    summary_path,
)

EVIL = '<script>alert("x")</script>'
VOID = {"meta", "br", "img", "hr", "input", "link", "col", "area", "base", "wbr", "source"}
BREAKS = {"br", "li", "div", "p", "td"}
"""Elements a browser shows on a line or in a box of their own: their texts are not run together."""
START = dt.datetime(2025, 6, 2, tzinfo=dt.UTC)


class IndexParser(HTMLParser):
    """Collects the runs table's rows (by id: cell texts, links, badge classes) and checks that tags nest."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: dict[str, list[str]] = {}
        self.links: dict[str, list[str]] = {}
        self.badges: dict[str, list[str]] = {}
        self.texts: dict[str, str] = {}
        self.tags: set[str] = set()
        self.problems: list[str] = []
        self.stack: list[tuple[str, str | None]] = []
        self._row: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        ident = attributes.get("id")
        self.tags.add(tag)
        if tag in BREAKS:
            self.handle_data(" ")
        if tag in VOID:
            return
        self.stack.append((tag, ident))
        if ident is not None:
            self.texts.setdefault(ident, "")
        if tag == "tr" and ident:
            self._row = ident
            self.rows[ident], self.links[ident], self.badges[ident] = [], [], []
        elif tag == "td" and self._row:
            self._cell = []
        elif tag == "a" and self._row:
            self.links[self._row].append(attributes.get("href") or "")
        elif tag == "span" and self._row and "badge" in (attributes.get("class") or ""):
            self.badges[self._row].append(attributes.get("class") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1][0] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1][0] if self.stack else 'nothing'}")
            return
        self.stack.pop()
        if tag == "td" and self._row and self._cell is not None:
            self.rows[self._row].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        for _, ident in self.stack:
            if ident is not None:
                self.texts[ident] += data


def parse(page: str) -> IndexParser:
    parser = IndexParser()
    parser.feed(page)
    parser.close()
    assert not parser.problems and not parser.stack, (parser.problems, parser.stack)
    return parser


def column(name: str, value: float, *, threshold: float = 0.1, method: str = "wasserstein") -> ColumnResult:
    """A distance test (drifted at or above the threshold), or a p-value test when `method` is `ks`."""
    p_value = method == "ks"
    drifted = value < threshold if p_value else value >= threshold
    return ColumnResult(
        column=name,
        kind="numeric",
        method=method,
        threshold=threshold,
        value=value,
        drifted=drifted,
    )


def summary(
    day: int,
    status: Status,
    columns: list[ColumnResult],
    *,
    html: str | None = None,
    prediction: PredictionDrift | None = None,
    performance: Performance | None = None,
    decision: Decision | None = None,
    retraining: Retraining | None = None,
    model_version: str = "3",
) -> MonitorSummary:
    """A weekly run `day` days after START, its window the week before."""
    created = START + dt.timedelta(days=day, hours=6, minutes=15)
    run_id = created.strftime("%Y%m%dT%H%M%SZ")
    drifted = sum(c.drifted for c in columns)
    return MonitorSummary(
        run_id=run_id,
        created=created,
        mode="serving",
        window_start=START + dt.timedelta(days=day - 7),
        window_end=START + dt.timedelta(days=day),
        model_version=model_version,
        reference_rows=5_000,
        current_rows=1_200 + day,
        status=status,
        features=FeatureDrift(
            n_columns=len(columns),
            drifted_columns=drifted,
            drifted_share=drifted / len(columns),
            columns=columns,
        ),
        prediction=prediction,
        performance=performance,
        decision=decision or Decision(retrain=False, reasons=[]),
        retraining=retraining,
        html=html or f"monitor-{run_id}.html",
    )


@pytest.fixture
def runs() -> list[MonitorSummary]:
    """Four weekly runs: ok, warning (with an evil column name), drift with retraining, drift in cool-down."""
    quiet = [column(f"feature_{i}", 0.01 * i) for i in range(6)]
    warning = [
        column(EVIL, 0.35),
        column("purchase_count_30d", 0.02, threshold=0.05, method="ks"),
        *quiet[2:],
    ]
    drift = [
        column("spend_30d", 0.9),
        column("visits_7d", 0.2),
        column("purchase_count_30d", 1e-6, threshold=0.05, method="ks"),
        column("complaints_90d", 0.15),
        *quiet[4:],
    ]
    return [
        summary(0, "ok", quiet),
        summary(
            7,
            "warning",
            warning,
            html="monitor report #2.html",
            prediction=PredictionDrift(
                method="wasserstein",
                threshold=0.1,
                value=0.04,
                drifted=False,
                reference_mean=0.21,
                current_mean=0.23,
            ),
            decision=Decision(retrain=False, reasons=["<b>bold</b> & co"]),
        ),
        summary(
            14,
            "drift",
            drift,
            prediction=PredictionDrift(
                method="wasserstein",
                threshold=0.1,
                value=0.27,
                drifted=True,
                reference_mean=0.21,
                current_mean=0.34,
            ),
            performance=Performance(
                window_start=START + dt.timedelta(days=2),
                window_end=START + dt.timedelta(days=9),
                labelled_rows=812,
                positives=97,
                roc_auc=0.71,
                pr_auc=0.33,
                log_loss=0.41,
                reference_roc_auc=0.79,
                auc_drop=0.08,
            ),
            decision=Decision(retrain=True, reasons=["4 of 6 columns drifted (policy 30%)", "AUC dropped 0.080"]),
            retraining=Retraining(
                training_run_id="a1b2c3",
                challenger_version="4",
                promoted=True,
                gate_reason="AUC 0.80 beats champion 0.71 by 0.09",
                champion_before="3",
                champion_after="4",
            ),
        ),
        summary(
            21,
            "drift",
            drift,
            model_version="4",
            decision=Decision(
                retrain=False,
                reasons=["4 of 6 columns drifted (policy 30%)"],
                cooldown_until=START + dt.timedelta(days=28),
            ),
        ),
    ]


def write_runs(reports_dir: Path, runs: list[MonitorSummary]) -> None:
    """Each run's summary JSON and a stand-in HTML report, as a monitoring run leaves them."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    for run in runs:
        summary_path(reports_dir, run.run_id).write_text(run.model_dump_json(indent=2))
        (reports_dir / run.html).write_text("<html>evidently</html>")


@pytest.fixture
def page(tmp_path: Path, runs: list[MonitorSummary]) -> IndexParser:
    write_runs(tmp_path, runs)
    return parse(write_index(tmp_path).read_text(encoding="utf-8"))


def test_every_run_is_listed_newest_first_with_its_status(page: IndexParser, runs: list[MonitorSummary]) -> None:
    assert list(page.rows) == [f"run-{r.run_id}" for r in reversed(runs)]
    for run in runs:
        assert page.badges[f"run-{run.run_id}"] == [f"badge status-{run.status}"]
        assert page.rows[f"run-{run.run_id}"][4] == run.status


def resolve(reports_dir: Path, href: str) -> str:
    """The name of the file a link of the index page opens, as a browser resolves it against the page's folder.

    The link must stay in the folder: one path segment, no scheme or host of its own, no query or fragment.
    """
    base = reports_dir.as_uri() + "/"
    url = urlsplit(urljoin(base, href))
    folder, _, name = url.path.rpartition("/")
    assert url.scheme == "file" and f"{folder}/" == urlsplit(base).path, f"{href!r} leaves the folder"
    assert not url.query and not url.fragment, f"{href!r} is not a plain file link"
    return unquote(name)


def test_links_point_at_existing_files(tmp_path: Path, page: IndexParser, runs: list[MonitorSummary]) -> None:
    for run in runs:
        report, summary_json = page.links[f"run-{run.run_id}"]
        assert resolve(tmp_path, report) == run.html
        assert (tmp_path / resolve(tmp_path, report)).read_text() == "<html>evidently</html>"
        assert tmp_path / resolve(tmp_path, summary_json) == summary_path(tmp_path, run.run_id)
        assert MonitorSummary.model_validate_json((tmp_path / resolve(tmp_path, summary_json)).read_text()) == run


def test_a_hand_edited_report_name_cannot_leave_the_folder(runs: list[MonitorSummary], tmp_path: Path) -> None:
    """A report name is a file name in the folder: no scheme, no other host or folder, escaped."""
    names = ("javascript:alert(1)", "https://example.org/x.html", "../../etc/passwd", '"><script>x</script>', "a?b#c")
    for name in names:
        parsed = parse(render_index([runs[0].model_copy(update={"html": name})]))
        [report, _] = parsed.links[f"run-{runs[0].run_id}"]
        assert resolve(tmp_path, report) == name, report
        assert "script" not in parsed.tags


def test_row_figures(page: IndexParser, runs: list[MonitorSummary]) -> None:
    """Time, window, drifted columns with the most severe three, prediction drift, AUC, decision, retraining."""
    cells = page.rows[f"run-{runs[2].run_id}"]
    time, mode, window, model, _, drifted, prediction, auc, decision, retraining, lag, files = cells
    assert time == "2025-06-16 06:15"
    assert lag == "\u2013"  # a summary without the real-time path's lag (written before it was recorded)
    assert (mode, window, model, files) == ("serving", "2025-06-09 \u2192 2025-06-16", "v3", "report json")
    # Severity: spend 0.9/0.1 = 9, the p-value 0.05/1e-6 = 50000, visits 2, complaints 1.5 (left out).
    assert drifted == "4 of 6 purchase_count_30d 1e-06 spend_30d 0.900 visits_7d 0.200"
    assert prediction == "0.270 drifted"
    assert auc == "0.710 drop +0.080 812 labels, window ending 2025-06-11"
    assert decision == "retrain 4 of 6 columns drifted (policy 30%) AUC dropped 0.080"
    assert retraining == (
        "run a1b2c3 \u2192 challenger v4 \u2192 promoted (AUC 0.80 beats champion 0.71 by 0.09) \u2192 champion v4"
    )

    quiet = page.rows[f"run-{runs[0].run_id}"]
    assert quiet[5:10] == ["0 of 6", "\u2013", "labels not matured", "nothing", "\u2013"]
    assert page.rows[f"run-{runs[1].run_id}"][7] == "labels not matured"
    cooldown = page.rows[f"run-{runs[3].run_id}"]
    assert cooldown[8] == "cool-down until 2025-06-30 4 of 6 columns drifted (policy 30%)"
    assert cooldown[3] == "v4"


def test_totals(page: IndexParser, runs: list[MonitorSummary]) -> None:
    totals = {k.removeprefix("kpi-"): v for k, v in page.texts.items() if k.startswith("kpi-")}
    sparkline = totals.pop("drifted-share-per-run")
    expected = {"runs": "4", "drift": "2", "warning": "1", "retrainings": "1", "promotions": "1"}
    assert totals == {**expected, "current-champion": "v4"}
    points = re.findall(r"(\d{8}T\d{6}Z): (\d+)% drifted", sparkline)
    assert points == [(r.run_id, f"{r.features.drifted_share:.0%}"[:-1]) for r in runs], "a point per run, oldest first"
    assert " ".join(page.texts["totals"].split()).startswith("runs 4 drift 2 warning 1")


def test_current_champion_follows_the_newest_retraining(runs: list[MonitorSummary]) -> None:
    assert current_champion([]) is None
    assert current_champion(runs[:2]) == "3"
    assert current_champion(runs[:3]) == "4", "promoted by the newest run's retraining"
    assert current_champion(list(reversed(runs))) == "4"


def test_severity_ranks_p_values_and_distances_on_one_scale(runs: list[MonitorSummary]) -> None:
    assert severity(column("a", 0.3)) == pytest.approx(3.0)
    assert severity(column("b", 0.01, threshold=0.05, method="ks")) == pytest.approx(5.0)
    assert severity(column("c", 0.5, threshold=0.05, method="ks")) == pytest.approx(0.1)
    assert severity(column("d", 0.0, threshold=0.05, method="ks")) == float("inf")
    assert [c.column for c in top_drifted(runs[2])] == ["purchase_count_30d", "spend_30d", "visits_7d"]
    assert top_drifted(runs[0]) == []


def test_text_is_escaped(tmp_path: Path, runs: list[MonitorSummary]) -> None:
    write_runs(tmp_path, runs)
    raw = render_index(runs, title="Churn <monitoring> & co")
    assert EVIL not in raw and "<b>" not in raw
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in raw  # Jinja2 (markupsafe) writes " as &#34;
    parsed = parse(raw)
    assert "script" not in parsed.tags and "b" not in parsed.tags
    warning = parsed.rows[f"run-{runs[1].run_id}"]
    assert warning[5].startswith(f"2 of 6 {EVIL} 0.350"), "the evil name is shown as text"
    assert warning[8] == "no retraining <b>bold</b> & co"
    assert "<title>Churn &lt;monitoring&gt; &amp; co</title>" in raw


def test_render_is_pure_and_order_free(runs: list[MonitorSummary]) -> None:
    assert render_index(runs) == render_index(list(reversed(runs))) == render_index(tuple(runs))


@pytest.mark.parametrize("exists", [True, False])
def test_zero_runs(tmp_path: Path, exists: bool) -> None:
    reports = tmp_path / "reports"
    if exists:
        reports.mkdir()
    parsed = parse(write_index(reports).read_text(encoding="utf-8"))
    assert parsed.texts["no-runs"] == NO_RUNS
    assert not parsed.rows
    assert parsed.texts["kpi-runs"] == "0" and parsed.texts["kpi-current-champion"] == "\u2013"
    assert "kpi-drifted-share-per-run" not in parsed.texts, "no sparkline without runs"
    assert [p.name for p in reports.iterdir()] == [INDEX_NAME]


def test_malformed_summary_names_the_file(tmp_path: Path, runs: list[MonitorSummary]) -> None:
    write_runs(tmp_path, runs)
    (tmp_path / INDEX_NAME).write_text("previous index")
    broken = summary_path(tmp_path, "20250701T000000Z")
    broken.write_text(runs[0].model_dump_json().replace('"status":"ok"', '"status":"fine"'))
    with pytest.raises(ValueError, match=broken.name):
        write_index(tmp_path)
    broken.write_text('{"run_id": "20250701T000000Z", "created": ')
    with pytest.raises(ValueError, match=broken.name):
        write_index(tmp_path)
    assert (tmp_path / INDEX_NAME).read_text() == "previous index", "a failed write leaves the old index"


def test_write_is_atomic(tmp_path: Path, runs: list[MonitorSummary], monkeypatch: pytest.MonkeyPatch) -> None:
    """The page is complete in a temporary file of the same folder, then renamed over the old index."""
    write_runs(tmp_path, runs)
    target = tmp_path / INDEX_NAME
    target.write_text("previous index")
    real_replace = os.replace
    seen: list[tuple[Path, str, str]] = []

    def spy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        seen.append((Path(src), Path(src).read_text(encoding="utf-8"), Path(dst).read_text()))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    written = write_index(tmp_path)
    assert written == target
    [(temp, new, old_at_rename)] = seen
    assert temp.parent == tmp_path and temp != target
    assert old_at_rename == "previous index", "until the rename, readers see the previous page"
    assert new == target.read_text(encoding="utf-8") == render_index(runs)
    expected = {INDEX_NAME} | {r.html for r in runs} | {summary_path(tmp_path, r.run_id).name for r in runs}
    assert {p.name for p in tmp_path.iterdir()} == expected, "no temporary file is left behind"


def test_failed_rename_leaves_the_old_index_and_no_temp_file(
    tmp_path: Path, runs: list[MonitorSummary], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_runs(tmp_path, runs[:1])
    (tmp_path / INDEX_NAME).write_text("previous index")

    def fail(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk gone"):
        write_index(tmp_path)
    assert (tmp_path / INDEX_NAME).read_text() == "previous index"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [INDEX_NAME, runs[0].html, summary_path(tmp_path, runs[0].run_id).name]
    )
