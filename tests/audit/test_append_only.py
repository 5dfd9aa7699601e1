"""The audit log is append-only: no update or delete path exists, in the ORM, the admin, the API or SQL."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction
from django.test import Client

from cspdesk.audit import services as audit
from cspdesk.audit.models import AppendOnlyError, AuditEvent
from cspdesk.core.actor import Actor
from tests.fixtures import DemoWorld

pytestmark = pytest.mark.django_db


@pytest.fixture
def event() -> AuditEvent:
    return audit.record(
        Actor.system("test"), "thing.happened", object_type="thing", object_id=7, before={"a": 1}, after={"a": 2}
    )


def test_an_event_cannot_be_saved_again(event: AuditEvent) -> None:
    event.action = "thing.rewritten"
    with pytest.raises(AppendOnlyError):
        event.save()
    assert AuditEvent.objects.get(pk=event.pk).action == "thing.happened"


def test_an_event_cannot_be_deleted(event: AuditEvent) -> None:
    with pytest.raises(AppendOnlyError):
        event.delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.parametrize("operation", ["update", "delete"])
def test_querysets_refuse_bulk_changes(event: AuditEvent, operation: str) -> None:
    qs = AuditEvent.objects.filter(pk=event.pk)
    with pytest.raises(AppendOnlyError):
        qs.update(action="x") if operation == "update" else qs.delete()
    assert AuditEvent.objects.get(pk=event.pk).action == "thing.happened"


@pytest.mark.parametrize(
    "sql",
    ["UPDATE audit_auditevent SET action = 'forged' WHERE id = %s", "DELETE FROM audit_auditevent WHERE id = %s"],
    ids=["update", "delete"],
)
def test_the_database_refuses_raw_sql(event: AuditEvent, sql: str) -> None:
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).action == "thing.happened"


def test_the_admin_offers_no_change_or_delete(event: AuditEvent) -> None:
    get_user_model().objects.create_superuser("root", "root@example.com", "Very-long-passw0rd!")
    client = Client()
    client.login(username="root", password="Very-long-passw0rd!")
    url = f"/admin/audit/auditevent/{event.pk}/"
    assert client.post(url + "delete/", {"post": "yes"}).status_code == 403
    client.post(url + "change/", {"action": "forged"})
    assert client.get("/admin/audit/auditevent/add/").status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).action == "thing.happened"


def test_the_api_has_no_write_path_for_audit_events(demo: DemoWorld) -> None:
    schema = demo.api("nuvola.admin").get("/api/v1/openapi.json").json()
    for path, operations in schema["paths"].items():
        if "audit" in path:
            assert set(operations) <= {"get"}, path


def test_changes_are_recorded_with_before_after_and_request_id(demo: DemoWorld) -> None:
    customer = demo.customer("liffey")
    response = demo.api("nuvola.billing").patch(
        f"/api/v1/customers/{customer.pk}",
        data={"payment_terms_days": 45},
        content_type="application/json",
        HTTP_X_REQUEST_ID="req-0123456789",
    )
    assert response.status_code == 200
    assert response["X-Request-ID"] == "req-0123456789"
    event = AuditEvent.objects.filter(action="customer.updated", object_id=str(customer.pk)).latest("id")
    assert event.actor_username == "nuvola.billing"
    assert event.before["payment_terms_days"] is None
    assert event.after["payment_terms_days"] == 45
    assert set(event.after) == {"payment_terms_days", "updated_at"}
    assert event.organisation_id == customer.organisation_id
    assert event.customer_id == customer.pk
    assert event.request_id == "req-0123456789"
