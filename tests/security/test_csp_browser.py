"""The pages work under the Content-Security-Policy in a real browser: Chromium reports not one
violation on the pages of each role, and the scripts that need the policy's allowances (htmx,
KaTeX with its fonts, the live preview) still run."""

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PAGES = {
    "student": ["/solve/", "/solve/history/", "/teach/my-classes/"],
    "teacher": ["/teach/", "/teach/sets/", "/teach/sets/upload/"],
    "admin": ["/dashboard/", "/accounts/lockouts/", "/healthz"],
}


@pytest.fixture
def fast_password_hashing():
    """The live site checks the demo passwords with its own (real) hashers: keep them real here."""


def signed_in(page, login, role: str) -> None:
    login(page, role)
    assert "/accounts/login/" not in page.url, f"{role} could not log in"


def watch_violations(page) -> list[str]:
    violations = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return violations


@pytest.mark.parametrize("role", sorted(PAGES))
def test_pages_of_each_role_raise_no_violation(demo_users, live_site, page, login, role):
    violations = watch_violations(page)
    signed_in(page, login, role)
    for path in PAGES[role]:
        response = page.goto(f"{live_site.url}{path}", wait_until="networkidle")
        # /healthz answers 503 while no worker runs; it is a page all the same.
        assert response.status < 500 or path == "/healthz", path
        assert response.url == f"{live_site.url}{path}", path  # served, not sent to log in
        assert "Content-Security-Policy" in {k.title(): v for k, v in response.headers.items()}
    assert violations == []


def test_the_ask_box_preview_typesets_with_katex_under_the_policy(
    demo_users, live_site, page, login
):
    violations = watch_violations(page)
    signed_in(page, login, "student")
    assert page.url.endswith("/solve/")
    page.get_by_label("Your problem").fill("Solve $x^2 = 4$ for $x$.")
    page.locator("#statement-preview .katex").first.wait_for()
    # KaTeX's fonts load from the site itself.
    fonts_ok = page.evaluate(
        "async () => { await document.fonts.ready; "
        "return [...document.fonts].some(f => f.family.includes('KaTeX') && f.status === 'loaded'); }"
    )
    assert fonts_ok
    assert violations == []


def test_the_login_page_and_signup_page_are_clean(live_site, page, transactional_db):
    violations = watch_violations(page)
    for path in ("/accounts/login/", "/accounts/signup/"):
        page.goto(f"{live_site.url}{path}", wait_until="networkidle")
    assert violations == []
