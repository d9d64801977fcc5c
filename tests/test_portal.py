"""Portal pages: sign-in, the organization picker, deliverables, their trails and clients.

Every page is checked from inside organization A and from the outsider's seat (B's admin):
another tenant's pages answer 404, never a redirect or an empty page.
"""

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import get_resolver
from django.urls.converters import IntConverter, UUIDConverter
from django_scopes import scope

from deliveries.models import Client, Deliverable, LifecycleState, Tier
from deliveries.services import ingest_events, process_event
from meshline.models import Role
from meshline.services import create_organization, create_user
from tests.conftest import PASSWORD

# An unordered list page paginates inconsistently: treat Django's warning as a failure.
pytestmark = pytest.mark.filterwarnings("error::django.core.paginator.UnorderedObjectListWarning")

DELIVERABLES = "/o/org-a/deliverables/"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
PAYLOADS = {
    "intake.received": {},
    "scope.accepted": {"limits": {"revisions": 2}, "signed_by": "cmo@acme.example"},
    "asset.uploaded": {"asset_id": "hero", "size_bytes": 1200},
    "page.published": {"url": "https://acme.example/lp/spring"},
}


def make_event(ref, event_type="intake.received", *, client="acme", at=T0, payload=None, **extra):
    return {
        "event_type": event_type,
        "deliverable_id": ref,
        "client_id": client,
        "idempotency_key": f"{ref}-{event_type}-{at.isoformat()}",
        "actor": {"role": "cms", "id": "wp-publisher"},
        "occurred_at": at.isoformat(),
        "payload": {**PAYLOADS[event_type], **(payload or {}), **extra},
    }


def ingest(organization, events, *, process=True):
    """Store events through the real ingest path and, by default, process them in-process."""
    with scope(organization=organization):
        results = ingest_events(organization, events)
        assert [r.status for r in results] == ["accepted"] * len(events), [
            r.as_dict() for r in results
        ]
        if process:
            for result in results:
                process_event(result.event_id)
    return results


def make_clients(organization, refs, tier=Tier.STANDARD):
    with scope(organization=organization):
        return [
            Client.objects.create(
                organization=organization, client_id=ref, name=ref.title(), tier=tier
            )
            for ref in refs
        ]


def shown(response) -> list[str]:
    return [d.deliverable_id for d in response.context["page"].object_list]


@pytest.fixture
def client_globex(org_a):
    return make_clients(org_a, ["globex"], tier=Tier.PREMIUM)[0]


@pytest.fixture
def deliverables_a(org_a, client_acme, client_globex):
    """LP-1 (acme, landing page, published), AS-2 (acme, asset, in production), BR-3 (globex, brief)."""
    ingest(
        org_a,
        [
            make_event("LP-1", deliverable_type="landing_page", title="Spring sale"),
            make_event("LP-1", "scope.accepted", at=T0 + timedelta(hours=1)),
            make_event("LP-1", "page.published", at=T0 + timedelta(hours=2)),
            make_event("AS-2", deliverable_type="asset", title="Hero image"),
            make_event("AS-2", "asset.uploaded", at=T0 + timedelta(hours=3)),
            make_event("BR-3", client="globex", deliverable_type="brief", title="Launch brief"),
        ],
    )


@pytest.fixture
def deliverable_b(org_b, client_b_acme):
    """Organization B's own deliverable, under B's client with the same reference 'acme'."""
    ingest(org_b, [make_event("LP-B1", deliverable_type="landing_page", title="Secret B launch")])


# --- sign-in ---------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/o/org-a/",
        "/o/org-a/?state=published&client=acme",
        "/o/org-a/clients/",
        "/o/org-a/deliverables/LP-1/",
        "/o/nowhere/",  # the same answer as a real organization: no probing for slugs
    ],
)
def test_anonymous_visitor_is_sent_to_login_with_next(client, org_a, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.url == f"/accounts/login/?next={quote(path, safe='/')}"


@pytest.mark.django_db
def test_login_page_asks_for_email_and_password(client):
    response = client.get("/accounts/login/?next=/o/org-a/")
    assert response.status_code == 200
    content = response.content.decode()
    assert '<label for="id_username">Email or username</label>' in content
    assert 'type="password"' in content
    assert 'name="next" value="/o/org-a/"' in content


def test_login_with_email_and_password_opens_the_only_organization(client, member):
    response = client.post(
        "/accounts/login/", {"username": "member@a.example", "password": PASSWORD}, follow=True
    )
    assert response.redirect_chain == [("/", 302), ("/o/org-a/", 302)]
    assert response.status_code == 200
    assert response.context["organization"].slug == "org-a"
    assert int(client.session["_auth_user_id"]) == member.pk


def test_login_returns_to_next(client, member):
    response = client.post(
        "/accounts/login/",
        {"username": "member@a.example", "password": PASSWORD, "next": "/o/org-a/clients/"},
    )
    assert response.status_code == 302
    assert response.url == "/o/org-a/clients/"


def test_login_ignores_a_next_on_another_site(client, member):
    response = client.post(
        "/accounts/login/",
        {"username": "member@a.example", "password": PASSWORD, "next": "https://evil.example/"},
    )
    assert response.status_code == 302
    assert response.url == "/"


def test_sign_out_returns_to_the_login_page(as_member):
    assert as_member.get("/o/org-a/").status_code == 200
    response = as_member.post("/accounts/logout/")
    assert response.status_code == 302
    assert response.url == "/accounts/login/"
    assert as_member.get("/o/org-a/").status_code == 302


def test_wrong_password_shows_an_error_and_does_not_sign_in(client, member):
    response = client.post(
        "/accounts/login/", {"username": "member@a.example", "password": "not-the-password"}
    )
    assert response.status_code == 200
    content = response.content.decode()
    assert 'role="alert"' in content
    assert "Please enter a correct username and password" in content
    assert 'value="member@a.example"' in content  # the email is kept, the password is not
    assert "_auth_user_id" not in client.session


# --- organization picker -----------------------------------------------------------------------


def test_picker_redirects_straight_to_the_only_organization(as_member):
    response = as_member.get("/")
    assert response.status_code == 302
    assert response.url == "/o/org-a/"


def test_picker_lists_only_the_users_organizations(client, owner, org_b):
    org_c, _ = create_organization("org-c", "Organization C")
    # create_user sets the password again: sign in as the returned, current user.
    client.force_login(create_user("owner@a.example", org_c, Role.VIEWER, PASSWORD))
    response = client.get("/")
    assert response.status_code == 200
    assert [o.slug for o in response.context["organizations"]] == ["org-a", "org-c"]
    content = response.content.decode()
    assert 'href="/o/org-a/"' in content
    assert 'href="/o/org-c/"' in content
    assert "Organization B" not in content
    assert "/o/org-b/" not in content


def test_picker_explains_what_to_do_without_any_organization(client, django_user_model):
    user = django_user_model.objects.create_user("nobody@example.com", "nobody@example.com")
    client.force_login(user)
    response = client.get("/")
    assert response.status_code == 200
    assert "You are not a member of any organization yet" in response.content.decode()


# --- deliverables ------------------------------------------------------------------------------


def test_deliverable_list_shows_the_organizations_deliverables(
    as_member, deliverables_a, deliverable_b
):
    response = as_member.get(DELIVERABLES)
    assert response.status_code == 200
    assert sorted(shown(response)) == ["AS-2", "BR-3", "LP-1"]
    content = response.content.decode()
    assert "3 deliverables" in content
    assert 'href="/o/org-a/deliverables/LP-1/"' in content
    assert "Spring sale" in content
    assert "Published" in content
    assert "LP-B1" not in content
    assert "Secret B launch" not in content
    # The client datalist offers A's clients only.
    assert [c.client_id for c in response.context["clients"]] == ["acme", "globex"]


def test_viewer_can_read_the_portal(client, viewer, deliverables_a):
    client.force_login(viewer)
    assert client.get("/o/org-a/").status_code == 200
    assert client.get(DELIVERABLES).status_code == 200
    assert client.get("/o/org-a/deliverables/LP-1/").status_code == 200
    assert client.get("/o/org-a/clients/").status_code == 200


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"client": "globex"}, ["BR-3"]),
        ({"client": "acme"}, ["AS-2", "LP-1"]),
        ({"state": LifecycleState.PUBLISHED}, ["LP-1"]),
        ({"state": LifecycleState.IN_PRODUCTION}, ["AS-2"]),
        ({"type": "asset"}, ["AS-2"]),
        ({"type": "brief"}, ["BR-3"]),
        ({"q": "spring"}, ["LP-1"]),
        ({"q": "as-2"}, ["AS-2"]),
        ({"client": "acme", "type": "landing_page", "state": "published", "q": "sale"}, ["LP-1"]),
    ],
)
def test_deliverable_list_filters(as_member, deliverables_a, deliverable_b, query, expected):
    response = as_member.get(DELIVERABLES, query)
    assert response.status_code == 200
    assert sorted(shown(response)) == expected
    # The form keeps what was asked, so the filter can be refined.
    form = response.context["filter"].form
    for name, value in query.items():
        assert form[name].value() == value


def test_filters_that_match_nothing_say_so(as_member, deliverables_a):
    response = as_member.get(DELIVERABLES, {"q": "no-such-thing"})
    assert response.status_code == 200
    assert shown(response) == []
    assert "No deliverable matches these filters" in response.content.decode()


def test_client_filter_does_not_reach_another_organizations_client(as_member, deliverable_b, org_a):
    response = as_member.get(DELIVERABLES, {"client": "acme"})  # B has an 'acme', A does not
    assert shown(response) == []
    assert "LP-B1" not in response.content.decode()


def test_invalid_filter_value_is_reported_not_a_server_error(as_member, deliverables_a):
    response = as_member.get(DELIVERABLES, {"state": "bogus"})
    assert response.status_code == 200
    assert 'class="field-error"' in response.content.decode()


def test_empty_deliverable_list_explains_how_deliverables_appear(as_member, org_a):
    response = as_member.get(DELIVERABLES)
    assert response.status_code == 200
    content = response.content.decode()
    assert "No deliverables yet" in content
    assert "POST /api/v1/events" in content
    assert 'href="/api/v1/docs/"' in content


def test_deliverable_list_is_paginated_and_pages_keep_the_filters(as_member, org_a, client_acme):
    ingest(
        org_a,
        [make_event(f"LP-{n:03}", deliverable_type="landing_page") for n in range(55)],
        process=False,
    )
    first = as_member.get(DELIVERABLES, {"type": "landing_page"})
    assert len(shown(first)) == 50
    content = first.content.decode()
    assert "55 deliverables" in content
    assert "Page 1 of 2" in content
    assert 'href="?type=landing_page&amp;page=2" rel="next"' in content

    second = as_member.get(DELIVERABLES, {"type": "landing_page", "page": 2})
    assert len(shown(second)) == 5
    assert 'href="?type=landing_page&amp;page=1" rel="prev"' in second.content.decode()
    assert sorted(shown(first) + shown(second)) == [f"LP-{n:03}" for n in range(55)]

    # Out-of-range and junk page numbers fall back to a real page instead of failing.
    assert as_member.get(DELIVERABLES, {"page": 99}).status_code == 200
    assert as_member.get(DELIVERABLES, {"page": "x"}).status_code == 200


# --- a deliverable's trail ---------------------------------------------------------------------


def test_trail_is_in_occurred_at_order_with_payloads(as_member, org_a, client_acme):
    # Submitted out of order: the trail follows occurred_at, not arrival.
    ingest(
        org_a,
        [
            make_event(
                "LP-9",
                "page.published",
                at=T0 + timedelta(hours=5),
                url="https://acme.example/nine",
            ),
            make_event("LP-9", at=T0, deliverable_type="landing_page", title="Nine lives"),
            make_event("LP-9", "scope.accepted", at=T0 + timedelta(hours=1)),
        ],
    )
    response = as_member.get("/o/org-a/deliverables/LP-9/")
    assert response.status_code == 200
    events = list(response.context["page"].object_list)
    assert [e.event_type for e in events] == [
        "intake.received",
        "scope.accepted",
        "scope.agreement_signed",  # billing signed the accepted scope
        "page.published",
    ]
    assert [e.occurred_at for e in events] == sorted(e.occurred_at for e in events)
    content = response.content.decode()
    positions = [content.index(f"<strong>{e.event_type}</strong>") for e in events]
    assert positions == sorted(positions)
    assert "Nine lives" in content
    assert "https://acme.example/nine" in content  # payload of page.published
    assert "cmo@acme.example" in content  # payload of scope.accepted
    assert "Published" in content  # the state, advanced by the latest event
    assert "Processed" in content
    assert "2026-11-02 14:00:00" in content


def test_unknown_deliverable_is_404(as_member, deliverables_a):
    assert as_member.get("/o/org-a/deliverables/LP-404/").status_code == 404


def test_deliverable_without_events_says_so(as_member, org_a, client_acme):
    with scope(organization=org_a):
        Deliverable.objects.create(organization=org_a, client=client_acme, deliverable_id="BR-0")
    response = as_member.get("/o/org-a/deliverables/BR-0/")
    assert response.status_code == 200
    assert "No events yet." in response.content.decode()


# --- clients ---------------------------------------------------------------------------------


def test_client_list_shows_clients_with_their_deliverable_counts(
    as_member, deliverables_a, deliverable_b
):
    response = as_member.get("/o/org-a/clients/")
    assert response.status_code == 200
    counts = {c.client_id: c.deliverable_count for c in response.context["page"].object_list}
    assert counts == {"acme": 2, "globex": 1}
    content = response.content.decode()
    assert "Premium" in content
    assert 'href="/o/org-a/deliverables/?client=globex">1</a>' in content
    assert "B&#x27;s Acme" not in content


def test_client_list_is_ordered_by_name_across_pages(as_member, org_a):
    # Created out of name order, so that insertion order cannot pass for name order.
    refs = [f"client-{(n * 37) % 60:02}" for n in range(60)]
    make_clients(org_a, refs)
    first = as_member.get("/o/org-a/clients/")
    second = as_member.get("/o/org-a/clients/", {"page": 2})
    names = [c.name for c in first.context["page"].object_list] + [
        c.name for c in second.context["page"].object_list
    ]
    assert len(first.context["page"].object_list) == 50
    assert names == sorted(ref.title() for ref in refs)
    assert 'href="?page=2" rel="next"' in first.content.decode()


def test_empty_client_list_explains_how_to_add_one(as_member, org_a):
    response = as_member.get("/o/org-a/clients/")
    assert response.status_code == 200
    content = response.content.decode()
    assert "No clients yet" in content
    assert "POST /api/v1/clients" in content


# --- isolation ---------------------------------------------------------------------------------


def organization_urls(org_slug: str) -> list[str]:
    """Every portal URL under /o/<org_slug>/, the apps' own pages included.

    Taken from the URL configuration, so a page added later is covered without editing this
    list; path parameters get A's real references (LP-1, acme) or a well-formed stand-in.
    """
    stand_ins = {"deliverable_id": "LP-1", "client_id": "acme"}
    urls = set()
    resolver = get_resolver()
    for name in [key for key in resolver.reverse_dict if isinstance(key, str)]:
        for possibilities, _pattern, _defaults, converters in resolver.reverse_dict.getlist(name):
            for template, params in possibilities:
                if "org_slug" not in params:
                    continue
                values = {"org_slug": org_slug}
                for param in params:
                    if param == "org_slug":
                        continue
                    converter = converters.get(param)
                    if isinstance(converter, IntConverter):
                        values[param] = "1"
                    elif isinstance(converter, UUIDConverter):
                        values[param] = "0190f0f0-0000-7000-8000-000000000001"
                    else:
                        values[param] = stand_ins.get(param, "x1")
                urls.add("/" + template % values)
    return sorted(urls)


A_PAGES = [
    *organization_urls("org-a"),
    "/o/org-a/?client=acme",
    f"{DELIVERABLES}?client=acme",
    "/o/org-a/deliverables/LP-404/",
    "/o/org-a/no-such-page/",
]


def test_the_url_walk_finds_the_portal_pages():
    urls = organization_urls("org-a")
    assert {"/o/org-a/", DELIVERABLES, "/o/org-a/deliverables/LP-1/", "/o/org-a/clients/"} <= set(
        urls
    )


@pytest.mark.django_db
@pytest.mark.parametrize("path", organization_urls("org-a"))
def test_anonymous_visitor_is_sent_to_login_from_every_organization_page(client, org_a, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.url.startswith("/accounts/login/?next=")


@pytest.mark.parametrize("path", A_PAGES)
def test_outsider_gets_404_on_every_page_of_organization_a(
    as_outsider, deliverables_a, deliverable_b, path
):
    for method in (as_outsider.get, as_outsider.post):
        response = method(path)
        assert response.status_code == 404, (method.__name__, path)
        content = response.content.decode()
        assert "Organization A" not in content
        assert "Spring sale" not in content


@pytest.mark.parametrize("path", organization_urls("org-b"))
def test_member_of_a_gets_404_in_organization_b(as_member, deliverables_a, deliverable_b, path):
    response = as_member.get(path)
    assert response.status_code == 404
    assert "Secret B launch" not in response.content.decode()


def test_deliverable_of_b_is_404_under_organization_a(as_member, deliverables_a, deliverable_b):
    assert as_member.get("/o/org-a/deliverables/LP-B1/").status_code == 404


@pytest.mark.parametrize(
    "path", ["/o/nowhere/", "/o/nowhere/clients/", "/o/nowhere/deliverables/LP-1/"]
)
def test_unknown_organization_is_404(as_member, path):
    assert as_member.get(path).status_code == 404


def test_outsider_sees_their_own_organization(as_outsider, deliverables_a, deliverable_b):
    response = as_outsider.get("/o/org-b/deliverables/")
    assert response.status_code == 200
    assert shown(response) == ["LP-B1"]


# --- query counts ------------------------------------------------------------------------------


def _count_queries(client, path) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200
    return len(queries)


def _fill(organization, n_clients, n_deliverables, prefix):
    refs = [f"{prefix}-c{i}" for i in range(n_clients)]
    make_clients(organization, refs)
    ingest(
        organization,
        [
            make_event(
                f"{prefix}-{i}",
                client=refs[i % n_clients],
                at=T0 + timedelta(minutes=i),
                deliverable_type="landing_page",
                title=f"Page {i}",
            )
            for i in range(n_deliverables)
        ],
    )


@pytest.mark.parametrize(
    "path", [DELIVERABLES, f"{DELIVERABLES}?state=intake&q=few", "/o/org-a/clients/"]
)
def test_list_pages_do_not_grow_queries_with_rows(
    as_member, org_a, path, django_assert_max_num_queries
):
    _fill(org_a, 3, 3, "few")
    few = _count_queries(as_member, path)
    _fill(org_a, 30, 30, "many")
    many = _count_queries(as_member, path)
    assert many == few
    # Session, user, membership, then the page's own few queries.
    with django_assert_max_num_queries(8):
        as_member.get(path)


def test_trail_page_does_not_grow_queries_with_events(as_member, org_a, client_acme):
    steps = ["intake.received", "scope.accepted", "asset.uploaded"]
    ingest(org_a, [make_event("LP-7", s, at=T0 + timedelta(hours=i)) for i, s in enumerate(steps)])
    few = _count_queries(as_member, "/o/org-a/deliverables/LP-7/")
    ingest(
        org_a,
        [
            make_event(
                "LP-7", "asset.uploaded", at=T0 + timedelta(days=1, minutes=i), asset_id=f"a{i}"
            )
            for i in range(27)
        ],
    )
    assert _count_queries(as_member, "/o/org-a/deliverables/LP-7/") == few


@pytest.mark.parametrize("path", [DELIVERABLES, "/o/org-a/events/", "/o/org-a/"])
def test_client_filters_suggest_the_organizations_clients(as_member, deliverables_a, path):
    html = as_member.get(path).content.decode()
    client_input = re.search(r'<input[^>]*name="client"[^>]*>', html).group(0)
    assert 'list="client-options"' in client_input
    assert '<option value="acme">' in html.split('<datalist id="client-options">')[1]


# --- references stored before ingest enforced the documented pattern ---------------------------

# Slash, dot-dot, percent, Unicode, whitespace: each broke reversing the deliverable's URL.
HOSTILE_REFS = ["SLASH/../x", "..", "50%", "%2F", "LP-🚀", "a b", "BAD-1\n", "x?y#z"]


@pytest.fixture
def hostile_rows(org_a, client_acme):
    """Odd deliverables and a client as rows from before the fix, each with an event and an
    open ticket, so every list, the board and the tickets link to them."""
    from deliveries.services import trail
    from owners.models import TicketSource
    from owners.services import tickets
    from tests.owners.factories import make_role, make_rule

    with scope(organization=org_a):
        make_rule(org_a, make_role(org_a), position=1)  # a catch-all owner for the tickets
        odd_client = Client.objects.create(organization=org_a, client_id="c/../d", name="Odd")
        for index, ref in enumerate(HOSTILE_REFS):
            deliverable = Deliverable.objects.create(
                organization=org_a,
                client=odd_client if index % 2 else client_acme,
                deliverable_id=ref,
                title=f"Odd {index}",
                last_event_at=T0,
            )
            trail.record(
                org_a,
                "intake.received",
                key=f"odd-{index}",
                payload={},
                deliverable=deliverable,
                occurred_at=T0,
            )
            tickets.open_ticket(
                org_a,
                source=TicketSource.INCIDENT,
                source_key=f"odd-{index}",
                title=f"Odd ticket {index}",
                event_type="page.published",
                deliverable=deliverable,
                at=T0,
            )


def test_ingest_refuses_hostile_references(org_a, client_acme):
    with scope(organization=org_a):
        results = ingest_events(org_a, [make_event(ref) for ref in HOSTILE_REFS])

    assert {r.status for r in results} == {"rejected"}
    assert {e["code"] for r in results for e in r.errors} == {"invalid_reference"}


@pytest.mark.parametrize("path", organization_urls("org-a"))
def test_every_page_loads_beside_stored_hostile_references(as_member, hostile_rows, path):
    response = as_member.get(path)

    assert response.status_code < 500, path


def test_links_to_hostile_references_open_their_own_pages(as_member, hostile_rows):
    pages = ["/o/org-a/deliverables/", "/o/org-a/events/", "/o/org-a/tickets/", "/o/org-a/board/"]
    links = set()
    for page in pages:
        content = as_member.get(page).content.decode()
        links |= set(re.findall(r'href="(/o/org-a/deliverables/[^"?#]+/)"', content))

    opened = {}
    for link in links:
        response = as_member.get(link)
        assert response.status_code == 200, link
        opened[response.context["deliverable"].deliverable_id] = link
    assert set(HOSTILE_REFS) <= set(opened)
    assert opened["LP-🚀"] == "/o/org-a/deliverables/LP-%25F0%259F%259A%2580/"


def test_client_page_of_a_hostile_reference_opens(as_member, hostile_rows):
    response = as_member.get("/o/org-a/clients/c%252F..%252Fd/")

    assert response.status_code == 200
    assert response.context["client"].client_id == "c/../d"


def test_valid_references_keep_their_plain_urls(as_member, deliverables_a):
    content = as_member.get(DELIVERABLES).content.decode()

    assert 'href="/o/org-a/deliverables/LP-1/"' in content


def test_outsider_gets_404_on_a_hostile_reference(as_outsider, hostile_rows):
    response = as_outsider.get("/o/org-a/deliverables/SLASH%252F..%252Fx/")

    assert response.status_code == 404


@pytest.mark.django_db
def test_nul_in_a_reference_url_is_a_404(as_member, org_a):
    assert as_member.get("/o/org-a/deliverables/LP%2500/").status_code == 404


def test_portal_event_filter_out_of_range_is_a_form_error(as_member, deliverables_a):
    response = as_member.get("/o/org-a/events/?occurred_after=0001-01-01T00:00:00%2B05:00")

    assert response.status_code == 200
    assert response.context["filter"].form.errors["occurred_after"]
    assert "1900-01-01" in response.content.decode()


@pytest.mark.parametrize(
    "path",
    [
        "/o/org-a/events/?client=a%00b",
        "/o/org-a/deliverables/?q=%00",
        "/o/org-a/flows/?client=acme%00",
        "/o/org-a/tickets/?a%00=1",
    ],
)
def test_a_nul_in_a_portal_query_is_a_400_not_a_500(as_member, client_acme, path):
    response = as_member.get(path)
    assert response.status_code == 400
    assert b"must not contain NUL" in response.content
