"""Finished billing documents (invoice, credit note) and their renderings: UBL 2.1 XML and PDF."""
