"""The archive's tables as SQLAlchemy 2.0 typed ORM classes (docs/store.md).

Events are written in bulk through Core (store/archive.py), never as ORM
objects; the classes define the schema, and the rules and hosts are used
through the ORM.  Column types are chosen so SQLite and PostgreSQL store
the same values: u32 ids fit BIGINT, and event fields (u64 argument
registers often above 2**63) are kept as arrays of raw little-endian bytes.
"""
from __future__ import annotations

from typing import ClassVar

from sqlalchemy import DDL, BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Table, Text, event
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only makes a column an alias of the rowid (cheap autoincrement, ordered ids) for INTEGER PRIMARY KEY.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    __table__: ClassVar[Table]       # every class here maps one Table (SQLAlchemy types it as any FromClause)


class Meta(Base):
    """Key/value facts about the database itself, e.g. schema_version."""

    __tablename__ = "saga_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Host(Base):
    """A machine that archives into this database (one row per host name)."""

    __tablename__ = "hosts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    next_rule_id: Mapped[int] = mapped_column(BigInteger, default=1)   # rule ids are never reused


class RuleRow(Base):
    """One rule of a host's ordered list; `position` orders it, `id` is the id the driver uses."""

    __tablename__ = "rules"

    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(8))
    syscalls: Mapped[str] = mapped_column(Text)           # comma list of tokens, as written
    pid: Mapped[int | None] = mapped_column(BigInteger)
    uid: Mapped[int | None] = mapped_column(BigInteger)
    comm: Mapped[str | None] = mapped_column(String(64))
    errors: Mapped[bool] = mapped_column(Boolean, default=False)
    key: Mapped[str | None] = mapped_column(String(64))
    exe: Mapped[str | None] = mapped_column(Text)         # exe= as written (a path; resolved when installed)
    tree: Mapped[bool] = mapped_column(Boolean, default=False)


class RuleKey(Base):
    """The key of every rule a host ever had, kept when the rule is removed: events name the rule that
    logged them (rule_id), and ids are never reused, so an old event's key stays known."""

    __tablename__ = "rule_keys"

    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True)
    rule_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), index=True)


class StringRow(Base):
    """Each distinct path, executable and unit name the archive has seen, once: events hold its id.

    A glob (saga query --path) is matched against these values, thousands,
    rather than against every event.  Bytes: paths need not be UTF-8.
    """

    __tablename__ = "strings"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary, unique=True)

    __table_args__ = ({"sqlite_autoincrement": True},)


class EventBatch(Base):
    """One write of events: what a search needs to know to skip it, and how many it holds.

    Its events' fields are in event_columns (one row per field); event ids are
    id << ID_SHIFT plus the position in the batch.  min_ts and max_ts are the
    earliest and latest entry times among its events (a block-range index, as
    PostgreSQL's BRIN: events are archived when calls complete, so batches
    overlap in time); syscalls is a bitmap of the slots its events called
    (SAGA_NR_SLOTS bits, little-endian), errnos the errnos of its failures
    and rule_ids the rules that logged them (sorted arrays, u16 and u32).
    `stored_bytes` is what its columns take.
    """

    __tablename__ = "event_batches"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    host_id: Mapped[int] = mapped_column(Integer)
    events: Mapped[int] = mapped_column(Integer)
    min_ts: Mapped[int] = mapped_column(BigInteger)
    max_ts: Mapped[int] = mapped_column(BigInteger)
    stored_bytes: Mapped[int] = mapped_column(BigInteger)
    syscalls: Mapped[bytes] = mapped_column(LargeBinary)
    errnos: Mapped[bytes] = mapped_column(LargeBinary)
    rule_ids: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (Index("ix_event_batches_max_ts", "max_ts"), Index("ix_event_batches_host", "host_id", "id"),
                      {"sqlite_autoincrement": True})


class EventColumn(Base):
    """One column of one batch (saga.store.columns): id = batch id * COLUMN_SLOTS + column code.

    A search reads the columns it filters on, a few bytes per event, never
    the rest; printing an event reads its batch's columns.  A column whose
    values are all zero is not stored (it reads as zeros).  On SQLite the id
    is the rowid: one b-tree to write, no index beside it.
    """

    __tablename__ = "event_columns"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)


# PostgreSQL compresses large values (TOAST) by default: columns are written far more often than
# read, and compressing them cost more than their size saves.
event.listen(EventColumn.__table__, "after_create", DDL(
    "ALTER TABLE event_columns ALTER COLUMN data SET STORAGE EXTERNAL").execute_if(dialect="postgresql"))
