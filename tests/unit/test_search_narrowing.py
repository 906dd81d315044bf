"""Filters that the indexes can narrow, and those that must scan (the storage re-checks every match)."""

import pytest
from scim2_models import EnterpriseUser, ScimFilter, User
from sqlalchemy.dialects import postgresql

from ingest.scim.search import narrowing

pytestmark = pytest.mark.unit

UserE = User[EnterpriseUser]


def sql(expr: str) -> str | None:
    cond = narrowing(ScimFilter[UserE](expr))
    return None if cond is None else str(cond.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ('userName eq "BJensen"', "user_name_ci = 'bjensen'"),
        ('externalId eq "AbC"', "external_id = 'AbC'"),
        ('emails.value eq "A@X.com"', "emails_ci @> ARRAY['a@x.com']"),
        ('emails[type eq "work" and value eq "A@X.com"]', "emails_ci @> ARRAY['a@x.com']"),
        ('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x"', "user_name_ci = 'x'"),
        ('userName eq "a" and title pr', "user_name_ci = 'a'"),
    ],
)
def test_indexed_equalities_narrow(expr, fragment):
    assert fragment in sql(expr)


def test_or_narrows_only_when_every_branch_does():
    assert "OR" in sql('userName eq "a" or externalId eq "b"')
    assert sql('userName eq "a" or title eq "b"') is None


@pytest.mark.parametrize("expr", ['userName sw "a"', 'not (userName eq "a")', "title pr", 'displayName co "x"'])
def test_other_filters_scan(expr):
    assert sql(expr) is None
