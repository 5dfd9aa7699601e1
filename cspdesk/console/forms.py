"""Console forms: parse and check the shape of input; the services decide what is allowed."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from cspdesk.catalog.models import PriceMethod, ProductCategory, SupportPriceModel
from cspdesk.core.errors import DomainError


class DateInput(forms.DateInput):
    input_type = "date"


# The services' refusals a console form meets, in the reader's language: by code, or for a plain validation
# error by the service's (English, technical) message. Any other refusal is shown as the service words it.
REFUSALS_BY_CODE = {
    "rule_conflict": _("Price rule %(rule)s has the same scope and is in force on some of these days: end it first."),
    "duplicate": _("A support plan with this name exists."),
}
REFUSALS_BY_MESSAGE = {
    "the rule ends before it starts": _("The last day in force is before the first."),
    "the rule would end before it starts": _("The last day in force is before the first."),
    "a percent of −100 or less would price below zero": _("A percent of −100 or less would price below zero."),
    "a fixed unit price needs a unit price of 0 or more": _("A fixed unit price needs a unit price of 0 or more."),
    "a rule is for a reseller or for a customer, not both": _("A rule is for a reseller or for a customer, not both."),
    "the maximum is below the minimum": _("The maximum is below the minimum."),
    "a % of spend plan needs a percent of 0 or more": _("A plan priced on spend needs a percent of 0 or more."),
}


def refusal_text(exc: DomainError) -> str:
    """A service's refusal in the reader's language where the console knows it."""
    text = REFUSALS_BY_CODE.get(exc.code) or REFUSALS_BY_MESSAGE.get(exc.message)
    if text is None:
        return exc.message
    numbers = re.findall(r"\d+", exc.message)  # the service names the rule in the way: so does the translation
    return str(text) % {"rule": numbers[0] if numbers else "?"} if "%(rule)s" in str(text) else str(text)


def add_domain_error(form: forms.Form, exc: DomainError, *, prominent: bool = False) -> None:
    """Show a service's refusal on the form: on its field when the form has it, else at the top."""
    field = exc.field if exc.field in form.fields and not prominent else None
    form.add_error(field, refusal_text(exc))


def _choices(form: forms.Form, name: str, choices: list[Any]) -> None:
    field = form.fields[name]
    assert isinstance(field, forms.ChoiceField)
    field.choices = choices


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=200)


class MatchPaymentForm(forms.Form):
    customer = forms.TypedChoiceField(label=_("Customer"), coerce=int)
    invoice = forms.TypedChoiceField(label=_("Pay this invoice first"), coerce=int, required=False, empty_value=None)

    def __init__(self, *args: Any, customers: list[tuple[int, str]], invoices: list[tuple[int, str]],
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)
        _choices(self, "customer", customers)
        _choices(self, "invoice", [("", _("Oldest open invoices first")), *invoices])


class ReplyForm(forms.Form):
    body = forms.CharField(label=_("Reply"), widget=forms.Textarea(attrs={"rows": 5}))
    internal = forms.BooleanField(label=_("Internal note (the customer does not see it)"), required=False)


class AssignForm(forms.Form):
    assignee = forms.TypedChoiceField(label=_("Assignee"), coerce=int, required=False, empty_value=None)
    queue = forms.CharField(label=_("Queue"), max_length=50, required=False)

    def __init__(self, *args: Any, staff: list[tuple[int, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _choices(self, "assignee", [("", _("Nobody")), *staff])


class PriceRuleForm(forms.Form):
    method = forms.ChoiceField(label=_("Method"), choices=PriceMethod.choices)
    percent = forms.DecimalField(label=_("Percent"), required=False, max_digits=9, decimal_places=4)
    unit_price = forms.DecimalField(label=_("Unit price"), required=False, max_digits=20, decimal_places=6)
    currency = forms.CharField(label=_("Currency of the unit price"), max_length=3, required=False)
    customer = forms.TypedChoiceField(label=_("Customer"), coerce=int, required=False, empty_value=None)
    reseller = forms.TypedChoiceField(label=_("Reseller"), coerce=int, required=False, empty_value=None)
    category = forms.ChoiceField(label=_("Product category"), required=False,
                                 choices=[("", _("Any")), *ProductCategory.choices])  # fmt: skip
    product_id = forms.CharField(label=_("Product id"), max_length=40, required=False)
    sku_id = forms.CharField(label=_("SKU id"), max_length=40, required=False)
    meter_category = forms.CharField(label=_("Azure meter category"), max_length=200, required=False)
    effective_from = forms.DateField(label=_("In force from"), widget=DateInput)
    effective_to = forms.DateField(label=_("Last day in force"), required=False, widget=DateInput)
    note = forms.CharField(label=_("Note"), max_length=200, required=False)

    def __init__(self, *args: Any, customers: list[tuple[int, str]], resellers: list[tuple[int, str]],
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)
        _choices(self, "customer", [("", _("Every customer")), *customers])
        _choices(self, "reseller", [("", _("No reseller")), *resellers])
        if not resellers:
            del self.fields["reseller"]


class EndRuleForm(forms.Form):
    effective_to = forms.DateField(label=_("Last day in force"), widget=DateInput)


class SupportPlanForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    price_model = forms.ChoiceField(label=_("Price model"), choices=SupportPriceModel.choices)
    currency = forms.CharField(label=_("Currency"), max_length=3)
    amount = forms.DecimalField(label=_("Amount"), required=False, max_digits=20, decimal_places=6)
    percent = forms.DecimalField(label=_("Percent of Microsoft spend"), required=False, max_digits=9,
                                 decimal_places=4)  # fmt: skip
    minimum = forms.DecimalField(label=_("Minimum"), required=False, max_digits=20, decimal_places=6)
    maximum = forms.DecimalField(label=_("Maximum"), required=False, max_digits=20, decimal_places=6)


class UserCreateForm(forms.Form):
    username = forms.CharField(label=_("Username"), max_length=150)
    email = forms.EmailField(label=_("E-mail"), required=False)
    password = forms.CharField(label=_("Password"), widget=forms.PasswordInput(render_value=False))
    customer = forms.TypedChoiceField(label=_("Belongs to"), coerce=int, required=False, empty_value=None)
    roles = forms.MultipleChoiceField(label=_("Roles"), widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args: Any, roles: list[tuple[str, str]], customers: list[tuple[int, str]],
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)
        _choices(self, "roles", roles)
        _choices(self, "customer", [("", _("Our organisation (staff)")), *customers])


class RolesForm(forms.Form):
    roles = forms.MultipleChoiceField(label=_("Roles"), widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args: Any, roles: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _choices(self, "roles", roles)


class AuditFilterForm(forms.Form):
    action = forms.CharField(label=_("Action"), required=False, max_length=100)
    actor = forms.CharField(label=_("Who"), required=False, max_length=150)
    customer = forms.TypedChoiceField(label=_("Customer"), coerce=int, required=False, empty_value=None)
    since = forms.DateField(label=_("From"), required=False, widget=DateInput)
    until = forms.DateField(label=_("Until"), required=False, widget=DateInput)

    def __init__(self, *args: Any, customers: list[tuple[int, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _choices(self, "customer", [("", _("Any")), *customers])
