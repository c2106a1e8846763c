"""The operator docs follow the code: the error table is the code's, every error kind, auth reason
and error code the code uses is documented, every provider kind has its page, the metric names
the docs give exist, and links between the docs lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest
from prometheus_client import Counter
from prometheus_client.metrics import MetricWrapperBase

from extproc.auth.errors import AuthReason
from extproc.config.reference import error_table
from extproc.config.schema import PROVIDER_KINDS
from extproc.errors import ERROR_TABLE
from extproc.observe import metrics
from extproc.xds.render_local_reply import local_reply_config
from tests.support.cli import REPO

DOCS = REPO / "docs"
ERRORS = DOCS / "errors.md"
TABLE = re.compile(r"<!-- error-table: generated, do not edit -->\n(.*?)<!-- end of error-table -->", re.S)


def _operator_texts() -> dict[Path, str]:
    paths = [REPO / "README.md", *sorted(DOCS.rglob("*.md")), *sorted((REPO / "examples").glob("*"))]
    return {path: path.read_text() for path in paths if path.is_file()}


def _situations() -> str:
    """errors.md without its generated table: where each error is explained."""
    return TABLE.sub("", ERRORS.read_text())


def test_the_error_table_is_the_codes() -> None:
    found = TABLE.search(ERRORS.read_text())
    assert found is not None, "docs/errors.md lost its error-table markers"
    assert found.group(1) == error_table(), f"docs/errors.md's table is stale; it should read:\n{error_table()}"


@pytest.mark.parametrize("kind", sorted(ERROR_TABLE))
def test_every_error_kind_is_explained(kind: str) -> None:
    assert f"`{kind}`" in _situations(), f"docs/errors.md never says when a `{kind}` error happens"


@pytest.mark.parametrize("reason", sorted(get_args(AuthReason)))
def test_every_auth_failure_reason_is_documented(reason: str) -> None:
    assert f"`{reason}`" in _situations()


def _codes_in_code() -> set[str]:
    """Every error code the gateway sets literally, and those of Envoy's rewritten local replies."""
    codes = set()
    for path in (REPO / "extproc").rglob("*.py"):
        codes.update(re.findall(r'\bcode="([a-z_]+)"', path.read_text()))
    for mapper in local_reply_config()["mappers"]:
        error = mapper["body_format_override"]["json_format"].get("error", {})
        if isinstance(error.get("code"), str) and not error["code"].startswith("%"):  # not Envoy's %RESPONSE_CODE%
            codes.add(error["code"])
    return codes


def test_the_error_codes_are_found_in_the_code() -> None:
    assert {"model_not_found", "provider_timeout", "gateway_timeout"} <= _codes_in_code()


@pytest.mark.parametrize("code", sorted(_codes_in_code()))
def test_every_error_code_is_documented(code: str) -> None:
    assert f"`{code}`" in _situations(), f"docs/errors.md does not list the error code `{code}`"


@pytest.mark.parametrize("kind", PROVIDER_KINDS)
def test_every_provider_kind_has_its_page(kind: str) -> None:
    page = DOCS / "providers" / f"{kind}.md"
    assert page.is_file(), f"docs/providers/{kind}.md is missing"
    text = page.read_text()
    assert text.startswith(f"# Provider kind `{kind}`")
    assert "## Credentials" in text or "## Credentials and paths" in text


def _metric_names() -> set[str]:
    names = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            name = value._name
            names.add(name)
            if isinstance(value, Counter):
                names.add(name + "_total")
    return names | set(metrics.READ_WHEN_SCRAPED)


def test_the_metrics_the_docs_name_exist() -> None:
    known, codes = _metric_names(), _codes_in_code()
    named = {
        (path.relative_to(REPO), name)
        for path, text in _operator_texts().items()
        if path != REPO / "README.md"
        for name in re.findall(r"\b(?:gateway|gen_ai)_[a-z_]+", text)
        if name not in codes  # gateway_timeout, gateway_unavailable: error codes
    }
    assert len(named) > 10
    unknown = sorted(f"{path}: {name}" for path, name in named if name not in known)
    assert not unknown, "no such metric: " + ", ".join(unknown)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {_slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


def test_links_between_the_docs_lead_somewhere() -> None:
    broken = []
    for path, text in _operator_texts().items():
        if path.suffix != ".md":
            continue
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                broken.append(f"{path.relative_to(REPO)}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append(f"{path.relative_to(REPO)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
