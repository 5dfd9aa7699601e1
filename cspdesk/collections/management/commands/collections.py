"""``cspdesk collections``: the collections policy, the daily engine, and a billing admin's case work.

cspdesk collections run [--today YYYY-MM-DD] [--dry-run] [--cap N] [--organisation ID] [--json]
cspdesk collections policy show (--organisation ID | --customer ID) [--lang hu] [--json]
cspdesk collections policy set (--organisation ID | --customer ID) (--file policy.json | --stages
    7:reminder,15:final_notice,30:suspend [--grace 3] [--minimum EUR=50 ...] [--categories azure,microsoft365]
    [--suspend-prepaid])
cspdesk collections policy remove --customer ID
cspdesk collections policy pdf (--organisation ID | --customer ID) --lang it --out policy.pdf
cspdesk collections cases [--all]            cspdesk collections timeline --customer ID
cspdesk collections approve (CASE | --all)   cspdesk collections lift CASE --reason R [--hold-until D]
cspdesk collections dispute open --invoice ID --reason R | close ID --resolution R | list
cspdesk collections hold place --customer ID --reason R --until D | release ID
cspdesk collections plan create --customer ID --invoice ID [--invoice ID] --instalment D=AMOUNT [...] | cancel ID
cspdesk collections exempt --customer ID --reason R | unexempt --customer ID
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from cspdesk.collections import pdf, published, runs, selectors, services
from cspdesk.collections.models import Case, CaseStatus, Dispute, Policy
from cspdesk.core.actor import Actor
from cspdesk.core.errors import DomainError, NotFound
from cspdesk.core.output import ReportCommand, to_jsonable
from cspdesk.tenancy.models import Customer


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{text!r} is not a date; expected YYYY-MM-DD") from None


class Command(ReportCommand):
    help = "Collections: run the engine (--dry-run to preview), show or set the policy, work on cases."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="command", required=True)

        def command(name: str, help_text: str) -> CommandParser:
            p = sub.add_parser(name, help=help_text)
            p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
            return p

        run = command("run", "run every due stage today (also the daily background task)")
        run.add_argument("--today", type=_date, help="the day to run for (default: today)")
        run.add_argument("--dry-run", action="store_true", help="list what would happen; change nothing")
        run.add_argument("--cap", type=int, help="suspensions this run may start (default 20)")
        run.add_argument("--organisation", type=int, help="only this organisation's customers")
        run.add_argument("--workers", action="store_true",
                         help="split the run per customer over the background workers and wait for them")  # fmt: skip

        policy = command("policy", "show, set, remove or print the policy")
        policy.add_argument("what", choices=["show", "set", "remove", "pdf"])
        policy.add_argument("--organisation", type=int)
        policy.add_argument("--customer", type=int)
        policy.add_argument("--file", type=Path, help="a JSON policy: {stages, grace_days, minimum_amounts, ...}")
        policy.add_argument("--stages", help="DAYS:ACTION,… e.g. 7:reminder,15:final_notice,30:suspend")
        policy.add_argument("--grace", type=int, default=0, help="grace days after the due date")
        policy.add_argument("--minimum", action="append", default=[], metavar="CUR=AMOUNT")
        policy.add_argument("--categories", default="azure,microsoft365")
        policy.add_argument("--suspend-prepaid", action="store_true", help="also suspend licences paid for the term")
        policy.add_argument("--lang", default="en", help="language of the text (en, it, sv, pt-PT, hu)")
        policy.add_argument("--out", type=Path, help="where pdf writes the PDF")

        cases = command("cases", "list open cases (--all: also closed)")
        cases.add_argument("--all", action="store_true")
        timeline = command("timeline", "a customer's collections timeline")
        timeline.add_argument("--customer", type=int, required=True)
        approve = command("approve", "approve suspensions waiting beyond the run's cap")
        approve.add_argument("case", type=int, nargs="?")
        approve.add_argument("--all", action="store_true")
        lift = command("lift", "end a case and reactivate what it suspended")
        lift.add_argument("case", type=int)
        lift.add_argument("--reason", required=True)
        lift.add_argument("--hold-until", type=_date)

        dispute = command("dispute", "open, close or list disputes")
        dispute.add_argument("what", choices=["open", "close", "list"])
        dispute.add_argument("id", type=int, nargs="?", help="the dispute to close")
        dispute.add_argument("--invoice", type=int)
        dispute.add_argument("--reason", default="")
        dispute.add_argument("--resolution", default="")

        hold = command("hold", "place or release a hold")
        hold.add_argument("what", choices=["place", "release"])
        hold.add_argument("id", type=int, nargs="?", help="the hold to release")
        hold.add_argument("--customer", type=int)
        hold.add_argument("--reason", default="")
        hold.add_argument("--until", type=_date)

        plan = command("plan", "create or cancel a payment plan")
        plan.add_argument("what", choices=["create", "cancel"])
        plan.add_argument("id", type=int, nargs="?", help="the plan to cancel")
        plan.add_argument("--customer", type=int)
        plan.add_argument("--invoice", type=int, action="append", default=[])
        plan.add_argument("--instalment", action="append", default=[], metavar="YYYY-MM-DD=AMOUNT")
        plan.add_argument("--note", default="")
        plan.add_argument("--reason", default="")

        exempt = command("exempt", "exempt a customer from collections")
        exempt.add_argument("--customer", type=int, required=True)
        exempt.add_argument("--reason", required=True)
        unexempt = command("unexempt", "end a customer's exemption")
        unexempt.add_argument("--customer", type=int, required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.system("cspdesk-collections")
        try:
            getattr(self, f"_{options['command']}")(actor, options)
        except DomainError as exc:
            where = f" ({exc.field})" if exc.field else ""
            raise CommandError(f"{exc.code}: {exc.message}{where}") from None

    # -- run

    def _run(self, actor: Actor, o: dict[str, Any]) -> None:
        if o.get("workers") and not o["dry_run"]:
            done = runs.run_parallel(actor, today=o["today"], cap=o["cap"], organisation_id=o["organisation"])
            report = services.RunReport(dt.date.fromisoformat(done["today"]), False, int(done["suspension_cap"]))
            report.actions, report.closed = done["actions"], done["closed"]
            report.partner_center, report.skipped = done["partner_center"], done["skipped"]
        else:
            report = services.run(actor, today=o["today"], dry_run=o["dry_run"], cap=o["cap"],
                                  organisation_id=o["organisation"])  # fmt: skip
        lines = [f"collections {'dry run' if report.dry_run else 'run'} for {report.today}"]
        for a in report.actions:
            extra = f" [{a['status']}]" if a.get("status") else ""
            lines.append(f"  {a['customer']}: {a['action']} (day {a['days_past_due']}, "
                         f"{', '.join(a['invoices'])}){extra}")  # fmt: skip
        for c in report.closed:
            lines.append(f"  {c['customer']}: case {c['case_id']} closed ({c['reason']})")
        for p in report.partner_center:
            state = "ok" if p.get("ok") else ("skipped" if p.get("ok") is None else f"failed: {p.get('error')}")
            lines.append(f"  Partner Center {p['change']} subscription {p['subscription']}: {state}")
        if len(lines) == 1:
            lines.append("  nothing due")
        self.report(o, report.as_dict(), "\n".join(lines))

    # -- policy

    def _policy_data(self, o: dict[str, Any]) -> dict[str, Any]:
        if o["file"]:
            try:
                data = json.loads(o["file"].read_text())
            except OSError as exc:
                raise CommandError(f"{o['file']}: {exc.strerror}") from None
            except json.JSONDecodeError as exc:
                raise CommandError(f"{o['file']}: line {exc.lineno} column {exc.colno}: {exc.msg}") from None
            if not isinstance(data, dict):
                raise CommandError(f"{o['file']}: expected a JSON object")
            return data
        if not o["stages"]:
            raise CommandError("policy set needs --file or --stages DAYS:ACTION,…")
        stages = []
        for n, part in enumerate(o["stages"].split(",")):
            days, _, action = part.strip().partition(":")
            if not action:
                raise CommandError(f"--stages item {n + 1} {part!r}: expected DAYS:ACTION, e.g. 7:reminder")
            stages.append({"days": days.strip(), "action": action.strip()})
        minimums = {}
        for item in o["minimum"]:
            cur, _, amount = item.partition("=")
            if not amount:
                raise CommandError(f"--minimum {item!r}: expected CUR=AMOUNT, e.g. EUR=50")
            minimums[cur.strip().upper()] = amount.strip()
        categories = [c.strip() for c in o["categories"].split(",") if c.strip()]
        return {"stages": stages, "grace_days": o["grace"], "minimum_amounts": minimums, "categories": categories,
                "suspend_prepaid_licences": o["suspend_prepaid"]}  # fmt: skip

    def _find_policy(self, o: dict[str, Any]) -> Policy:
        if o["customer"] is not None:
            customer = Customer.objects.filter(pk=o["customer"]).first()
            if customer is None:
                raise NotFound(f"no customer with id {o['customer']}", field="customer")
            found = selectors.policy_for_customer(customer)
        elif o["organisation"] is not None:
            found = selectors.organisation_policy(o["organisation"])
        else:
            raise CommandError("say --organisation ID or --customer ID")
        if found is None:
            raise NotFound("no collections policy is configured there", field="policy")
        return found

    def _policy(self, actor: Actor, o: dict[str, Any]) -> None:
        what = o["what"]
        if what == "set":
            policy = services.set_policy(actor, self._policy_data(o), organisation_id=o["organisation"],
                                         customer_id=o["customer"])  # fmt: skip
            self.report(o, self._policy_dict(policy), f"policy {policy.pk} saved for {policy}")
        elif what == "remove":
            if o["customer"] is None:
                raise CommandError("policy remove needs --customer ID (an organisation keeps its policy)")
            services.remove_customer_policy(actor, o["customer"])
            self.report(o, {"removed": True}, "the customer follows its organisation's policy again")
        elif what == "pdf":
            if o["out"] is None:
                raise CommandError("policy pdf needs --out FILE.pdf")
            doc = published.document(self._find_policy(o), self._lang(o["lang"]))
            o["out"].write_bytes(pdf.render(doc))
            self.report(o, {"file": str(o["out"]), "language": doc.language}, f"wrote {o['out']}")
        else:
            policy = self._find_policy(o)
            doc = published.document(policy, self._lang(o["lang"]))
            text = [doc.title, "", doc.intro]
            for s in doc.sections:
                text += ["", s.heading, *s.paragraphs, *(f"  {n}. {i}" for n, i in enumerate(s.items, start=1))]
            self.report(o, {**self._policy_dict(policy), "text": to_jsonable(doc.__dict__)}, "\n".join(text))

    @staticmethod
    def _lang(text: str) -> str:
        from cspdesk.core import l10n

        try:
            return l10n.normalize_language(text)
        except ValueError as exc:
            raise CommandError(f"--lang: {exc}") from None

    @staticmethod
    def _policy_dict(policy: Policy) -> dict[str, Any]:
        return {"id": policy.pk, "organisation_id": policy.organisation_id, "customer_id": policy.customer_id,
                **selectors.rules_of(policy).as_dict()}  # fmt: skip

    # -- cases

    def _cases(self, actor: Actor, o: dict[str, Any]) -> None:
        qs = selectors.cases_for(actor)
        if not o["all"]:
            qs = qs.filter(status=CaseStatus.OPEN)
        rows = [_case_dict(c) for c in qs.order_by("customer__name", "-pk")]
        text = "\n".join(f"case {r['id']} {r['customer']}: {r['status']}, overdue {r['overdue']}, since "
                         f"{r['oldest_due_date']}, last step {r['last_stage'] or '-'}" for r in rows)  # fmt: skip
        self.report(o, {"cases": rows}, text or "no open cases")

    def _timeline(self, actor: Actor, o: dict[str, Any]) -> None:
        events = selectors.timeline(actor, o["customer"])
        text = "\n".join(f"{e['at']:%Y-%m-%d %H:%M} {e['action']} ({e['by']})" for e in events)
        self.report(o, {"events": events}, text or "nothing on the timeline")

    def _approve(self, actor: Actor, o: dict[str, Any]) -> None:
        if o["all"]:
            ids = services.approve_all(actor)
        elif o["case"] is not None:
            ids = [services.approve_suspension(actor, o["case"]).case_id]
        else:
            raise CommandError("approve needs a case id or --all")
        self.report(o, {"approved": ids}, f"approved suspensions on cases {ids}" if ids else "nothing waiting")

    def _lift(self, actor: Actor, o: dict[str, Any]) -> None:
        case = services.lift_case(actor, o["case"], reason=o["reason"], hold_until=o["hold_until"])
        self.report(o, _case_dict(case), f"case {case.pk} lifted; what it suspended is being reactivated")

    # -- holds, disputes, plans, exemptions

    def _dispute(self, actor: Actor, o: dict[str, Any]) -> None:
        if o["what"] == "open":
            if o["invoice"] is None:
                raise CommandError("dispute open needs --invoice ID")
            d = services.open_dispute(actor, o["invoice"], reason=o["reason"])
        elif o["what"] == "close":
            if o["id"] is None:
                raise CommandError("dispute close needs the dispute id")
            d = services.close_dispute(actor, o["id"], resolution=o["resolution"])
        else:
            rows = [_dispute_dict(x) for x in selectors.disputes_for(actor)]
            text = "\n".join(f"dispute {r['id']} {r['invoice']} {r['status']}: {r['reason']}" for r in rows)
            self.report(o, {"disputes": rows}, text or "no disputes")
            return
        self.report(o, _dispute_dict(d), f"dispute {d.pk} on {d.invoice.number}: {d.status}")

    def _hold(self, actor: Actor, o: dict[str, Any]) -> None:
        if o["what"] == "place":
            if o["customer"] is None or o["until"] is None:
                raise CommandError("hold place needs --customer ID --reason R --until YYYY-MM-DD")
            h = services.place_hold(actor, o["customer"], reason=o["reason"], until=o["until"])
        else:
            if o["id"] is None:
                raise CommandError("hold release needs the hold id")
            h = services.release_hold(actor, o["id"])
        self.report(o, {"id": h.pk, "customer_id": h.customer_id, "until": h.until, "released_at": h.released_at},
                    f"hold {h.pk}: until {h.until}{', released' if h.released_at else ''}")  # fmt: skip

    def _plan(self, actor: Actor, o: dict[str, Any]) -> None:
        if o["what"] == "cancel":
            if o["id"] is None:
                raise CommandError("plan cancel needs the plan id")
            plan = services.cancel_payment_plan(actor, o["id"], reason=o["reason"])
        else:
            if o["customer"] is None:
                raise CommandError("plan create needs --customer ID")
            schedule = []
            for item in o["instalment"]:
                day, _, amount = item.partition("=")
                try:
                    schedule.append((_date(day.strip()), Decimal(amount.strip())))
                except InvalidOperation:
                    raise CommandError(f"--instalment {item!r}: expected YYYY-MM-DD=AMOUNT") from None
            plan = services.create_payment_plan(actor, o["customer"], invoice_ids=o["invoice"],
                                                instalments=schedule, note=o["note"])  # fmt: skip
        self.report(o, {"id": plan.pk, "status": plan.status}, f"payment plan {plan.pk}: {plan.status}")

    def _exempt(self, actor: Actor, o: dict[str, Any]) -> None:
        e = services.exempt_customer(actor, o["customer"], reason=o["reason"])
        self.report(o, {"customer_id": e.customer_id, "reason": e.reason}, f"{e.customer.name} is exempt")

    def _unexempt(self, actor: Actor, o: dict[str, Any]) -> None:
        services.end_exemption(actor, o["customer"])
        self.report(o, {"customer_id": o["customer"], "exempt": False}, "exemption ended")


def _case_dict(c: Case) -> dict[str, Any]:
    return {"id": c.pk, "customer_id": c.customer_id, "customer": c.customer.name, "status": c.status,
            "opened_on": c.opened_on, "oldest_due_date": c.oldest_due_date, "overdue": c.overdue_amounts,
            "last_stage": c.last_stage_key, "last_stage_on": c.last_stage_on, "handed_over": c.handed_over,
            "closed_on": c.closed_on, "close_reason": c.close_reason}  # fmt: skip


def _dispute_dict(d: Dispute) -> dict[str, Any]:
    return {"id": d.pk, "invoice_id": d.invoice_id, "invoice": d.invoice.number, "customer_id": d.customer_id,
            "status": d.status, "reason": d.reason, "source": d.source, "opened_at": d.opened_at,
            "resolution": d.resolution, "closed_at": d.closed_at}  # fmt: skip
