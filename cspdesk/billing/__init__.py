"""Billing: rating, billing runs, invoices, credit notes, tax and the documents that carry them."""
