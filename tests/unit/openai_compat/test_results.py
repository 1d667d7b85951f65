"""A job's result file: its training curve as OpenAI's step-metrics CSV, base64-encoded, which
Burro's own reader of OpenAI's result files reads back to the same curve."""

from __future__ import annotations

import base64

from service.jobs.events import MetricsRow
from service.openai_compat.results import (
    encoded_results,
    job_of_result_file,
    result_file_id,
)
from workers.fine_tuning import parse_result_file


def test_the_result_file_reads_back_as_the_curve_it_was_made_from() -> None:
    rows = [
        MetricsRow(step=1, train_loss=2.5, train_mean_token_accuracy=0.25),
        MetricsRow(step=2, train_loss=1.75, valid_loss=1.9, valid_mean_token_accuracy=0.5),
        MetricsRow(step=3),
    ]

    content = encoded_results(rows)

    assert base64.b64decode(content).decode().splitlines()[0] == (
        "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy,"
        "train_mean_token_accuracy"
    )
    assert parse_result_file(content) == rows


def test_a_result_file_id_names_its_job_and_no_other_id_does() -> None:
    job_id = "job_01a2b3c4d5e6f7a8b9c0"

    assert job_of_result_file(result_file_id(job_id)) == job_id
    assert job_of_result_file(job_id) is None
    assert job_of_result_file("ds_01a2b3") is None
    assert job_of_result_file("ftres_") is None
