"""The answer-checker flood bench runs on the site's real checker pool and reports every check."""

from bench import bench_answer_check_flood as bench


def test_a_short_flood_reports_the_honest_checks_the_upload_and_the_form(capsys):
    bench.flood(2.5, accounts=3)
    report = capsys.readouterr().out
    assert "flood (3 accounts, 2.5 s): honest checks" in report
    assert "wrong" in report and "0 wrong" in report  # a busy checker never says wrong
    assert "upload request (20 symbolic answers)" in report
    assert "single-problem form (one reference answer)" in report
