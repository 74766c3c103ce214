from bench.paired_heldout import mcnemar_exact_p


def test_mcnemar_exact_p_matches_the_binomial_tail():
    assert mcnemar_exact_p(0, 0) == 1.0
    assert mcnemar_exact_p(5, 5) == 1.0
    # 0 of 6 discordant pairs on one side: 2 * (1/2)^6.
    assert mcnemar_exact_p(0, 6) == 2 / 64
    assert abs(mcnemar_exact_p(21, 25) - 0.6587) < 1e-3
