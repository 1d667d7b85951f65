"""A dataset's name on the way out: whatever was stored, the download header is safe (the
rules on the way in: integration/datasets/test_dataset_names)."""

from __future__ import annotations

from service.datasets.names import content_disposition


def test_a_name_stored_before_the_rules_downloads_safely() -> None:
    header = content_disposition("../../etc/pass\r\nwd\x00")
    assert "/" not in header.split(";", 1)[1] and "\r" not in header and "\n" not in header
    assert "\x00" not in header
    assert 'filename="_.._etc_pass__wd_"' in header
