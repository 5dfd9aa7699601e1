"""The Graph billing reconciliation export: the real client against the emulator on 127.0.0.1, then the import."""

from __future__ import annotations

import gzip
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from cspdesk.audit.models import AuditEvent
from cspdesk.core.actor import Actor
from cspdesk.core.errors import ValidationFailed
from cspdesk.partnercenter import auth, services
from cspdesk.partnercenter.client import RetryPolicy
from cspdesk.partnercenter.emulator import parse_spec
from cspdesk.partnercenter.errors import AuthError, CloudNotSupported, ExportFailed, ExportNotReady
from cspdesk.partnercenter.graph_export import (
    ExportRequest,
    GraphBillingClient,
    Manifest,
    read_records,
    to_recon_csv,
)
from cspdesk.partnercenter.recon.layouts import INVOICE, INVOICE_COLUMNS, USAGE, USAGE_COLUMNS
from cspdesk.partnercenter.recon.models import ChargeLine, Import
from cspdesk.tenancy.models import Organisation
from tests.partnercenter.pc_fixtures import NUVOLA, emulator, sleeps  # noqa: F401

SYSTEM = Actor.system("tests")


@pytest.fixture
def graph(emulator, sleeps):  # noqa: F811
    """``graph(tenant=NUVOLA, resource=GRAPH, **kwargs)``: a real Graph client against the emulator."""
    made: list[GraphBillingClient] = []

    def make(tenant: str = NUVOLA, resource: str = auth.GRAPH_RESOURCE, **kwargs) -> GraphBillingClient:
        creds = auth.Credentials(tenant, "cspdesk-tests", "s3cret", resource=resource)
        kwargs.setdefault("sleep", sleeps)
        kwargs.setdefault("retry", RetryPolicy(max_retries=3, backoff_base=0.01))
        client = GraphBillingClient(f"{emulator.url}/v1.0", auth.token_provider(emulator.url, creds), **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def invoice_of(emulator) -> str:  # noqa: F811
    return emulator.state.invoices[NUVOLA][0]["id"]


def jsonl_sum(blobs: list[Path], attribute: str) -> tuple[int, Decimal]:
    """Rows and the sum of one attribute, read straight from the downloaded JSON Lines."""
    rows, total = 0, Decimal(0)
    for blob in blobs:
        with gzip.open(blob, "rt") as fh:
            for line in fh:
                record = json.loads(line, parse_float=Decimal)
                rows += 1
                total += Decimal(record[attribute])
    return rows, total


# --- the client against the emulator ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "billed", "rest_key"),
    [
        ("invoice", True, "billinglineitems"),
        ("usage", True, "usagelineitems"),
        ("invoice", False, "billinglineitems"),
        ("usage", False, "usagelineitems"),
    ],
    ids=["billed-invoice", "billed-usage", "unbilled-invoice", "unbilled-usage"],
)
def test_an_export_downloads_every_row_of_the_data_the_rest_api_lists(
    emulator,  # noqa: F811
    graph,
    tmp_path,
    kind,
    billed,
    rest_key,
):
    emulator.server.graph.rows_per_blob = 4
    invoice = invoice_of(emulator)
    request = (
        ExportRequest(kind, invoice_id=invoice)
        if billed
        else ExportRequest(kind, billing_period="current", currency="EUR")
    )
    expected = emulator.state.line_items[(NUVOLA, invoice if billed else "unbilled", rest_key)]

    done = graph().export(request, tmp_path)

    records = [r for blob in done.blobs for r in read_records(blob)]
    assert len(done.blobs) == -(-len(expected) // 4) == done.manifest.blobs.__len__() > 1
    assert [r["SubscriptionId"] for r in records] == [e["subscriptionId"] for e in expected]
    layout_columns = INVOICE_COLUMNS if kind == "invoice" else USAGE_COLUMNS
    graph_names = {"BenefitId": "BenefitID", "BenefitOrderId": "BenefitOrderID"}
    assert list(records[0]) == [graph_names.get(c, c) for c in layout_columns]  # the file's names, in its order
    assert {r["InvoiceNumber"] for r in records} == ({invoice} if billed else {None})
    assert all(p.name.endswith(".json.gz") and p.stat().st_size > 0 for p in done.blobs)
    saved = json.loads((tmp_path / "manifest.json").read_text())
    assert "sasToken" not in saved and saved["blobCount"] == len(done.blobs)
    assert saved["dataFormat"] == "compressedJSONLines"


def test_polling_waits_as_long_as_retry_after_says(emulator, graph, sleeps, tmp_path):  # noqa: F811
    emulator.server.graph.polls_before_ready = 3
    emulator.server.graph.retry_after = 7

    done = graph(poll_interval=99).export(ExportRequest("usage", invoice_id=invoice_of(emulator)), tmp_path)

    assert sleeps.waits == [7.0, 7.0, 7.0]
    polls = emulator.server.calls_to("graph_operation")
    assert [c.status for c in polls] == [200, 200, 200, 200]
    assert done.operation_id == polls[0].path.rsplit("/", 1)[-1]
    assert len(emulator.server.calls_to("graph_manifest")) == 1


def test_an_operation_still_running_past_the_wait_limit_is_not_ready(emulator, graph, tmp_path):  # noqa: F811
    emulator.server.graph.polls_before_ready = 10
    emulator.server.graph.retry_after = 60

    with pytest.raises(ExportNotReady) as caught:
        graph(max_wait=150).export(ExportRequest("usage", invoice_id=invoice_of(emulator)), tmp_path)

    assert "still running after 120 s" in str(caught.value)
    assert len(emulator.server.calls_to("graph_operation")) == 3
    assert emulator.server.calls_to("graph_manifest") == []


def test_a_failed_operation_is_an_error_with_microsofts_code_and_message(emulator, graph, tmp_path):  # noqa: F811
    request = ExportRequest("usage", billing_period="last", currency="EUR")  # the emulator's last period is empty

    with pytest.raises(ExportFailed) as caught:
        graph().export(request, tmp_path)

    error = caught.value
    assert (error.ms_code, error.ms_description, error.no_data) == ("5000", "No data available", True)
    assert "failed: 5000 No data available" in str(error)
    assert error.code == "pc_export_failed"
    assert emulator.server.calls_to("graph_manifest") == [] and emulator.server.calls_to("graph_blob") == []


def test_a_throttled_post_is_retried_after_retry_after(emulator, graph, sleeps, tmp_path):  # noqa: F811
    emulator.server.faults.add(parse_spec("graph_export:429:count=1,retry_after=4"))

    done = graph().export(ExportRequest("invoice", invoice_id=invoice_of(emulator)), tmp_path)

    posts = emulator.server.calls_to("graph_export")
    assert [c.status for c in posts] == [429, 202]
    assert posts[0].request_id == posts[1].request_id  # one logical call: the same client-request-id
    assert sleeps.waits[0] == 4.0
    assert len(done.blobs) == 1


def test_a_dropped_download_resumes_where_it_stopped(emulator, graph, tmp_path):  # noqa: F811
    emulator.server.graph.rows_per_blob = 1000
    emulator.server.faults.add(parse_spec("graph_blob:cut:count=1"))

    done = graph().export(ExportRequest("usage", invoice_id=invoice_of(emulator)), tmp_path)

    downloads = emulator.server.calls_to("graph_blob")
    assert [(c.status, c.fault) for c in downloads] == [(200, "cut"), (206, "")]  # the rest, by Range
    (served,) = emulator.server.graph.blobs.values()
    assert done.blobs[0].read_bytes() == served
    assert not list(tmp_path.glob("blobs/*.part"))


def test_a_blob_needs_the_manifests_sas_token(emulator, graph, tmp_path):  # noqa: F811
    client = graph()
    _, manifest = client.wait_for_manifest(client.start_export(ExportRequest("usage", invoice_id=invoice_of(emulator))))
    url = manifest.blob_url(manifest.blobs[0])
    forged = url.replace("sig=", "sig=A")

    with pytest.raises(AuthError) as caught:
        client.download_blob(forged, tmp_path / "x.json.gz")

    assert caught.value.http_status == 403
    assert "sig=" not in str(caught.value)  # the SAS is a credential: never in a message
    assert [c.status for c in emulator.server.calls_to("graph_blob")] == [403]  # not retried
    assert client.download_blob(url, tmp_path / "x.json.gz") > 0


def test_a_partner_center_token_does_not_open_graph(emulator, graph, tmp_path):  # noqa: F811
    client = graph(resource=auth.RESOURCE)

    with pytest.raises(AuthError) as caught:
        client.start_export(ExportRequest("usage", invoice_id=invoice_of(emulator)))

    assert caught.value.http_status == 401
    assert "Invalid audience" in caught.value.ms_description


def test_the_manifest_may_come_inline_as_in_microsofts_sample(graph):
    inline = {
        "status": "succeeded",
        "resourceLocation": {
            "id": "m1",
            "dataFormat": "compressedJSON",
            "rootDirectory": "https://x.blob.core.windows.net/c/d",
            "sasToken": "sv=1&sig=abc",
            "blobCount": 1,
            "blobs": [{"name": "part-0.json.gz", "partitionValue": "default"}],
        },
    }

    manifest = graph()._manifest_of(inline, "https://graph.example/op")

    assert manifest.blob_url(manifest.blobs[0]) == "https://x.blob.core.windows.net/c/d/part-0.json.gz?sv=1&sig=abc"
    with pytest.raises(Exception, match="will not write to disk"):
        Manifest.from_json({**inline["resourceLocation"], "blobs": [{"name": "../../etc/passwd"}]})


# --- JSON Lines to the recon layout -----------------------------------------------------------------------


def _blob(path: Path, records: list[dict | str]) -> Path:
    with gzip.open(path, "wt") as fh:
        for r in records:
            fh.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


def test_conversion_matches_names_case_insensitively_and_says_what_is_missing(tmp_path):
    blob = _blob(
        tmp_path / "b.json.gz",
        ['{"partnerid": "p", "RESELLERMPNID": "123", "Subtotal": 1.10, "Colour": "red"}', {"Subtotal": "2.205"}],
    )

    conversion = to_recon_csv([blob], INVOICE, tmp_path / "out.csv.gz")

    with gzip.open(conversion.path, "rt", newline="") as fh:
        lines = fh.read().splitlines()
    assert lines[0] == ",".join(INVOICE_COLUMNS)
    first = dict(zip(INVOICE_COLUMNS, lines[1].split(","), strict=True))
    assert (first["PartnerId"], first["Tier2MpnId"], first["Subtotal"], first["Total"]) == ("p", "123", "1.10", "")
    assert (conversion.rows, conversion.cost_total) == (2, Decimal("3.305"))
    assert conversion.ignored == ("Colour",)
    assert "Subtotal" not in conversion.absent and "OrderDate" in conversion.absent
    assert conversion.missing_for_import()[:3] == ("CustomerId", "SubscriptionId", "OrderDate")


def test_the_same_records_make_the_same_file(tmp_path):
    blob = _blob(tmp_path / "b.json.gz", [{"PartnerId": "p", "BillingPreTaxTotal": "0.50", "Tags": {"env": "x"}}])

    one = to_recon_csv([blob], USAGE, tmp_path / "1" / "f.csv.gz").path.read_bytes()
    two = to_recon_csv([blob], USAGE, tmp_path / "2" / "f.csv.gz").path.read_bytes()

    assert one == two


def test_a_damaged_blob_is_refused_by_name(tmp_path):
    bad = tmp_path / "part-1.json.gz"
    bad.write_bytes(gzip.compress(b'{"PartnerId": "p"}\nnot json\n'))

    with pytest.raises(ValidationFailed, match=r"part-1.json.gz: line 2 is not JSON"):
        to_recon_csv([bad], USAGE, tmp_path / "out.csv.gz")


# --- export and import (the service and the command) ------------------------------------------------------


@pytest.fixture
def graph_settings(settings, emulator, tmp_path):  # noqa: F811
    settings.PARTNER_CENTER = {
        "BASE_URL": emulator.url,
        "AUTHORITY": emulator.url,
        "AUTHORITY_USGOV": emulator.url,
        "GRAPH_BASE_URL": f"{emulator.url}/v1.0",
        "CLIENT_ID": "",
        "CLIENT_SECRET": "",
        "REFRESH_TOKEN": "",
    }
    settings.VAR_DIR = tmp_path / "var"
    emulator.server.graph.retry_after = 0  # the configured client really sleeps
    return settings


@pytest.fixture
def nuvola(demo, graph_settings) -> Organisation:
    return Organisation.objects.get(pc_tenant_id=NUVOLA)


@pytest.mark.parametrize(("kind", "attributes"), [("invoice", "full"), ("usage", "full"), ("usage", "basic")])
def test_the_imported_total_is_the_sum_over_the_json_lines(emulator, nuvola, graph_settings, kind, attributes):  # noqa: F811
    emulator.server.graph.rows_per_blob = 10
    request = ExportRequest(kind, invoice_id=invoice_of(emulator), attribute_set=attributes)

    result = services.export_reconciliation(SYSTEM, request, organisation_id=nuvola.pk, do_import=True)

    rows, total = jsonl_sum(result.downloaded.blobs, "Subtotal" if kind == "invoice" else "BillingPreTaxTotal")
    imported = Import.objects.get(pk=result.imported["import_id"])
    assert (imported.rows, imported.rejected, imported.total_cost) == (rows, 0, total)
    assert imported.assigned_cost + imported.unassigned_cost == total
    assert sum(ChargeLine.objects.filter(source=imported).values_list("cost", flat=True)) == total
    assert imported.invoice_number == request.invoice_id
    assert imported.kind == ("invoice" if kind == "invoice" else "usage_billed")
    assert result.conversion.path.parent == result.downloaded.directory
    assert result.downloaded.directory.is_relative_to(Path(graph_settings.VAR_DIR) / "partnercenter" / "exports")
    if attributes == "basic":
        assert "MeterId" in result.conversion.absent  # Microsoft's basic set: one charge line per subscription
        assert ChargeLine.objects.filter(source=imported).exclude(meter_id="").count() == 0


def test_importing_the_same_export_twice_changes_nothing(emulator, nuvola):  # noqa: F811
    request = ExportRequest("usage", billing_period="current", currency="EUR")
    first = services.export_reconciliation(SYSTEM, request, organisation_id=nuvola.pk, do_import=True)
    lines = ChargeLine.objects.count()

    again = services.export_reconciliation(SYSTEM, request, organisation_id=nuvola.pk, do_import=True)

    assert first.imported["duplicate"] is False and again.imported["duplicate"] is True
    assert again.imported["import_id"] == first.imported["import_id"]
    assert again.downloaded.operation_id != first.downloaded.operation_id  # two exports, one file's bytes
    assert again.imported["file_sha256"] == first.imported["file_sha256"]
    assert (Import.objects.count(), ChargeLine.objects.count()) == (1, lines)
    assert Import.objects.get().kind == "usage_unbilled"
    assert AuditEvent.objects.filter(action="recon.imported").count() == 1
    assert AuditEvent.objects.filter(action="partnercenter.reconciliation_exported").count() == 2


def test_unbilled_invoice_reconciliation_is_downloaded_but_not_imported(emulator, nuvola):  # noqa: F811
    request = ExportRequest("invoice", billing_period="current", currency="EUR")

    with pytest.raises(ValidationFailed) as caught:
        services.export_reconciliation(SYSTEM, request, organisation_id=nuvola.pk, do_import=True)
    result = services.export_reconciliation(SYSTEM, request, organisation_id=nuvola.pk)

    assert caught.value.code == "unbilled_reconciliation_not_importable"
    assert result.conversion.rows == len(emulator.state.line_items[(NUVOLA, "unbilled", "billinglineitems")])
    assert len(emulator.server.calls_to("graph_export")) == 1  # refused before asking Microsoft
    assert Import.objects.count() == 0


def test_a_us_government_organisation_is_refused(emulator, nuvola):  # noqa: F811
    nuvola.pc_cloud = "usgov"
    nuvola.save()

    with pytest.raises(CloudNotSupported) as caught:
        services.export_reconciliation(SYSTEM, ExportRequest("usage", invoice_id=invoice_of(emulator)),
                                       organisation_id=nuvola.pk)  # fmt: skip

    assert "only in the global cloud" in str(caught.value)
    assert caught.value.code == "pc_cloud_not_supported"
    assert emulator.server.calls == []  # not one call, not even for a token


def test_the_command_exports_imports_and_reports_like_cspdesk_import(emulator, nuvola):  # noqa: F811
    out = io.StringIO()

    call_command(
        "pc", "export", "--invoice", invoice_of(emulator), "--kind", "invoice", "--import", "--json",
        "--organisation", str(nuvola.pk), stdout=out,
    )  # fmt: skip

    report = json.loads(out.getvalue())
    imported = Import.objects.get()
    assert report["import"]["import_id"] == imported.pk
    assert report["import"]["total_cost"] == report["csv"]["cost_total"] == f"{imported.total_cost:.2f}"
    assert report["import"]["microsoft_invoice"]["number"] == invoice_of(emulator)
    assert report["attribute_set"] == "full" and report["manifest"]["blobCount"] == len(report["blobs"])
    assert "sasToken" not in json.dumps(report)


def test_the_command_reports_a_failed_export_clearly(emulator, nuvola):  # noqa: F811
    with pytest.raises(CommandError, match=r"pc_export_failed: Microsoft's export operation .* 5000 No data available"):
        call_command("pc", "export", "--unbilled", "last", "--kind", "usage", "--organisation", str(nuvola.pk))
