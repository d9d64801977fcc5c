"""The migrated schema stays distributable by organization (Citus shards by such a column).

Read from the live PostgreSQL catalog after migrations, not from the models, so raw SQL
migrations, triggers' tables and library tables are checked too. A tenant table is any
table with an ``organization_id`` column. On those:

- every unique constraint and unique index leads with ``organization_id`` (Citus can only
  enforce uniqueness that includes the distribution column);
- every other index leads with it too: every query names its organization (the scoped
  manager adds it), so an index that does not start with it is either redundant or serves
  a query that crosses tenants.

Primary keys are the one general exemption: they are surrogate ids (UUIDv7 or bigint
identity) that no two organizations share. Distributing would make them
``(organization_id, id)``; docs/partitioning.md has that step. Anything else that does not
lead with the organization is listed below with the reason it may.

Dropping a single-column foreign-key index has one cost, accepted here: deleting a parent
row (a gate, a role, a user) makes Django look its children up by the foreign key alone,
which then reads the whole composite index. Those deletes are rare admin actions on
configuration rows; the parents of the big tables (events, deliverables, clients) are
PROTECTed and never deleted.
"""

import pytest
from django.apps import apps
from django.db import connection

pytestmark = pytest.mark.postgres

# (table, indexed columns) -> why this unique constraint may omit the organization.
UNIQUE_EXCEPTIONS = {
    ("meshline_apikey", ("prefix",)): (
        "The key's public prefix is how a request finds its organization: looked up before "
        "any organization is known. Few rows (a Citus reference table)."
    ),
    ("connectors_inboundendpoint", ("public_id",)): (
        "POST /hooks/<public_id> finds its endpoint, and so its organization, by this alone. "
        "Few rows (a Citus reference table)."
    ),
    ("billing_signingkey", ("key_id",)): (
        "/keys/<key_id>.pem publishes a public key to anyone, without an organization in "
        "the URL. One row per organization (a Citus reference table)."
    ),
    ("deliveries_eventtype", ("name", "version")): (
        "Partial (organization_id IS NULL): the canonical event types every organization "
        "shares belong to none; per-organization types are unique by (organization, name, "
        "version). Few rows (a Citus reference table)."
    ),
    ("owners_rota", ("role_id",)): (
        "Django's one-to-one (role.rota, read throughout owners) needs the single-column "
        "unique; a role belongs to one organization, so it is (organization, role) unique "
        "too. Distributing turns it into a ForeignKey plus (organization, role)."
    ),
    ("owners_backlogincident", ("ticket_id",)): (
        "Django's one-to-one, read by Ticket.opened_by() through ticket_sources like "
        "reporting_attributionmismatch's: the same equivalence and the same step when "
        "distributing."
    ),
    ("connectors_outboundoutage", ("ticket_id",)): (
        "Django's one-to-one, read by Ticket.opened_by() through ticket_sources like "
        "owners_backlogincident's: the same equivalence and the same step when distributing."
    ),
    ("flows_assurancecheck", ("ticket_id",)): (
        "Django's one-to-one, read by Ticket.opened_by() through ticket_sources like "
        "owners_backlogincident's: the same equivalence and the same step when distributing."
    ),
    ("reporting_attributionmismatch", ("ticket_id",)): (
        "Django's one-to-one: Ticket.opened_by() and the tickets API select_related it "
        "through ticket_sources, which needs the single-column unique. Same equivalence "
        "and the same step when distributing as owners_rota."
    ),
}

# (table, indexed columns) -> why this index may not lead with the organization.
INDEX_EXCEPTIONS = {
    ("meshline_apikey", ("prefix",)): (
        "varchar_pattern_ops twin of the prefix unique (Django adds it to unique CharFields)."
    ),
    ("billing_signingkey", ("key_id",)): "varchar_pattern_ops twin of the key_id unique.",
    ("meshline_membership", ("user_id",)): (
        "A person's organizations, across tenants: sign-in and the organization switcher."
    ),
    ("deliveries_eventprocessing", ("enqueued_at",)): (
        "Partial (pending only): the sweeper is the operator's safety net across tenants, "
        "oldest pending events first with a LIMIT; led by the organization it would sort "
        "the whole backlog every minute."
    ),
}


# Tables without an organization column that point at tenant rows -> why that is all right
# for now. Citus would need each to carry the organization (an explicit through model).
UNSCOPED_TENANT_CHILDREN = {
    "billing_billableitem_events": (
        "Django's ManyToMany through table of BillableItem.events; written and read only "
        "through its billable item, which is organization-scoped."
    ),
    "flows_incident_paused_runs": (
        "ManyToMany through table of Incident.paused_runs; read only through its incident."
    ),
    "owners_escalationstep_people": (
        "ManyToMany through table of EscalationStep.people; read only through its step."
    ),
}

TENANT_TABLES = """
SELECT c.relname
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND a.attname = 'organization_id'
  AND NOT a.attisdropped
"""
INDEXES = """
SELECT t.relname, i.relname, x.indisunique, x.indisprimary,
       ARRAY(
           SELECT coalesce(a.attname, '<expression>')
           FROM unnest(x.indkey) WITH ORDINALITY AS k(attnum, position)
           LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
           ORDER BY k.position
       )
FROM pg_index x
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = 'public'
"""
REFERENCES = """
SELECT child.relname, parent.relname
FROM pg_constraint f
JOIN pg_class child ON child.oid = f.conrelid
JOIN pg_class parent ON parent.oid = f.confrelid
JOIN pg_namespace n ON n.oid = child.relnamespace
WHERE f.contype = 'f' AND n.nspname = 'public'
"""


def _rows(sql: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def _tenant_tables() -> set[str]:
    return {name for (name,) in _rows(TENANT_TABLES)}


def _history_tables() -> set[str]:
    """django-simple-history's tables (each tracked model's ``Historical...`` model)."""
    return {model._meta.db_table for model in apps.get_models() if hasattr(model, "instance_type")}


def _indexes(*, unique: bool):
    """(table, index, columns) of every non-primary index on a tenant table."""
    tenant = _tenant_tables()
    for table, index, is_unique, is_primary, columns in _rows(INDEXES):
        if table in tenant and not is_primary and is_unique == unique:
            yield table, index, tuple(columns)


def test_the_catalog_sees_the_tenant_tables(db):
    """The checks below would pass on an empty answer: make sure they have something."""
    tenant = _tenant_tables()
    assert {"deliveries_event", "gates_gateevaluation", "owners_ticket"} <= tenant
    assert "meshline_organization" not in tenant
    assert len(list(_indexes(unique=False))) > 50


def test_unique_constraints_lead_with_the_organization(db):
    offending = [
        f"{table}.{index} {columns}"
        for table, index, columns in _indexes(unique=True)
        if columns[0] != "organization_id" and (table, columns) not in UNIQUE_EXCEPTIONS
    ]
    assert offending == [], "unique without the organization first:\n" + "\n".join(offending)


def test_indexes_on_tenant_tables_lead_with_the_organization(db):
    history = _history_tables()
    offending = [
        f"{table}.{index} {columns}"
        for table, index, columns in _indexes(unique=False)
        if columns[0] != "organization_id"
        and (table, columns) not in INDEX_EXCEPTIONS
        # simple-history gives every historical table indexes on id, history_date,
        # history_user and each foreign key. Its rows are versions of configuration (few),
        # read per object by the admin's history views, never by the hot path.
        and table not in history
    ]
    assert offending == [], "index without the organization first:\n" + "\n".join(offending)


def test_tables_pointing_at_tenant_rows_carry_the_organization(db):
    tenant = _tenant_tables()
    unscoped = sorted(
        {
            child
            for child, parent in _rows(REFERENCES)
            if parent in tenant and child not in tenant and child not in UNSCOPED_TENANT_CHILDREN
        }
    )
    assert unscoped == [], f"tables of tenant rows without organization_id: {unscoped}"


def test_every_exception_still_matches_something(db):
    """An exception whose index is gone (reshaped, dropped) must leave the list with it."""
    present = {(table, columns) for table, _index, columns in _indexes(unique=True)}
    assert set(UNIQUE_EXCEPTIONS) - present == set()
    present = {(table, columns) for table, _index, columns in _indexes(unique=False)}
    assert set(INDEX_EXCEPTIONS) - present == set()
    referencing = {child for child, _parent in _rows(REFERENCES)}
    assert set(UNSCOPED_TENANT_CHILDREN) - referencing == set()
