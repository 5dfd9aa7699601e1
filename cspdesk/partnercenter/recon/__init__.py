"""Reconciliation file imports: Microsoft's charges, row by row, into charge lines."""
