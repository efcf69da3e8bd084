"""What ``SQLStore.repair`` looks for: a jobs table its first write left unfinished.

Every write of a record is one transaction: a writer killed in the middle of one leaves
nothing, since the database rolls the transaction back (PostgreSQL and MariaDB once they see
the connection close, SQLite from its write-ahead log on the next open), and the row locks it
held go with it. There is no separate index to drift: the indexes are the database's own.

What a kill can leave is the table the first write was making: ``CREATE TABLE`` and each
``CREATE INDEX`` (or ``ALTER TABLE … ADD COLUMN`` for a table of an earlier release) are
steps of their own, so a writer killed between them leaves a table without some of its
indexes -- correct, but slower to list and purge -- until the next write completes it.
``repair`` reports each missing piece (``schema``) and adds it, unless ``create_table`` is off
(the migrations own the schema: then it is reported and left to them).
"""

from __future__ import annotations

from jobstatus.backends.sql._schema import Schema
from jobstatus.repair import RepairReport

__all__ = ["repair_schema"]


def repair_schema(schema: Schema, *, dry_run: bool) -> RepairReport:
    """Report, and unless ``dry_run`` add, what the jobs table lacks (see the module)."""
    report = RepairReport(dry_run=dry_run)
    table = schema.table.fullname
    missing = schema.missing(f"cannot look at the table {table}")
    if not missing:
        return report  # no table (nothing written yet), or a complete one
    if dry_run:
        note = "would be added (dry run)"
    elif not schema.create:
        note = "kept: create_table is off, the migrations own the schema"
    else:
        schema.complete(f"cannot complete the table {table}")
        note = "added: a first write was interrupted while it made the table"
    repaired = not dry_run and schema.create
    for piece in missing:
        report.add("schema", f"{table}: {piece}", repaired=repaired, note=note)
    return report
