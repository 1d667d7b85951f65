"""The `/ui` pages over HTTP: what they show, and who may see them."""

from __future__ import annotations

import re

import httpx

from tests.support.seeds import Seeded


def test_the_jobs_page_lists_the_tenants_jobs_with_links(
    client: httpx.Client, seeded: Seeded
) -> None:
    page = client.get("/ui/jobs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert f'href="/ui/jobs/{seeded.job_id}"' in html
    assert f'href="/ui/jobs/{seeded.failed_job_id}"' in html
    assert "succeeded" in html and "failed" in html and "$0.42" in html
    # Newest first.
    assert html.index(seeded.job_id) < html.index(seeded.failed_job_id)


def test_the_job_page_shows_timeline_events_cost_and_a_loss_curve(
    client: httpx.Client, seeded: Seeded
) -> None:
    html = client.get(f"/ui/jobs/{seeded.job_id}").text
    assert 'id="loss-chart"' in html
    timeline = html[html.index('id="timeline"') : html.index("</ol>", html.index('id="timeline"'))]
    assert re.findall(r"<strong>(\w+)</strong>", timeline) == [
        "uploading",
        "validating_files",
        "queued",
        "running",
        "succeeded",
    ]
    assert "Step 40/40: training loss=0.12" in html
    assert "$0.42" in html and "12,345" in html
    paths = dict(re.findall(r'<path class="(\w+)" data-series="\w+" d="([^"]+)"', html))
    train_points = re.findall(r"[ML]([\d.]+),([\d.]+)", paths["train"])
    valid_points = re.findall(r"[ML]([\d.]+),([\d.]+)", paths["valid"])
    assert len(train_points) == 40 and len(valid_points) == 8
    ys = [float(y) for _, y in train_points]
    assert ys[0] < ys[-1]  # SVG y grows downwards: the first, highest loss is nearest the top
    xs = [float(x) for x, _ in train_points]
    assert xs == sorted(xs)
    assert f'href="/ui/evaluations/{seeded.evaluation_id}"' in html


def test_a_job_without_metrics_says_so(client: httpx.Client, seeded: Seeded) -> None:
    html = client.get(f"/ui/jobs/{seeded.failed_job_id}").text
    assert 'id="no-metrics"' in html and "<svg" not in html
    assert "invalid_file: The file is not valid." in html


def test_the_evaluation_page_puts_both_answers_beside_the_reference(
    client: httpx.Client, seeded: Seeded
) -> None:
    evaluation = client.get(f"/v1/evaluations/{seeded.evaluation_id}").json()
    html = client.get(f"/ui/evaluations/{seeded.evaluation_id}").text
    assert 'id="wins">3 / 0 / 0<' in html
    for row in evaluation["rows"]:
        section = html[html.index(f'id="row-{row["index"]}"') :]
        assert row["reference"] in section
        assert row["fine_tuned"]["text"] in section
        # The base model's words that are not the reference's are marked.
        base = row["baseline"]["text"]
        assert "<mark>" in section.split('class="side base')[1].split("</section>")[0]
        assert base.split()[0] in section
        assert row["prompt"][1]["content"] in section


def test_pages_escape_what_they_show(client: httpx.Client, seeded: Seeded) -> None:
    html = client.get(f"/ui/evaluations/{seeded.evaluation_id}").text
    assert "<script" not in html.lower()


def test_pages_need_a_key_and_offer_to_sign_in(anonymous: httpx.Client, seeded: Seeded) -> None:
    for path in (
        "/ui/jobs",
        f"/ui/jobs/{seeded.job_id}",
        f"/ui/evaluations/{seeded.evaluation_id}",
    ):
        page = anonymous.get(path)
        assert page.status_code == 401
        assert page.headers["content-type"].startswith("text/html")
        assert 'action="/ui/login"' in page.text
    wrong = anonymous.get("/ui/jobs", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


def test_another_tenants_job_or_evaluation_is_not_found(
    other_client: httpx.Client, seeded: Seeded
) -> None:
    assert other_client.get(f"/ui/jobs/{seeded.job_id}").status_code == 404
    assert other_client.get(f"/ui/evaluations/{seeded.evaluation_id}").status_code == 404
    assert seeded.job_id not in other_client.get("/ui/jobs").text
    assert other_client.get("/ui/evaluations/eval_nope").status_code == 404


# Signing in (sessions, tickets, origin checks, headers): test_ui_session.py.
