"""Billing workflows: agreements (sign, verify), overruns, approvals, invoices."""

from billing.services.errors import BillingError

__all__ = ["BillingError"]
