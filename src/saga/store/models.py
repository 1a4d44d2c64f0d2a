"""The archive's tables as SQLAlchemy 2.0 typed ORM classes (docs/store.md).

Events are written in bulk through Core (store/archive.py), never as ORM
objects; the classes define the schema, and the rules and hosts are used
through the ORM.  Column types are chosen so SQLite and PostgreSQL store
the same values: u32 ids fit BIGINT, slots SMALLINT, and the kernel's
records (u64 argument registers often above 2**63) are kept as raw bytes.
"""
from __future__ import annotations

from typing import ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
)
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


class EventRow(Base):
    """One archived system call: the columns searches filter on; the call itself is in its batch.

    The batch whose first_id..last_id holds the id has the kernel's record, at
    position id - first_id: the struct saga_event exactly as the driver
    delivered it (docs/kernel-abi.md), so every field (args, tid, ppid, cpu,
    gid, duration, flags, both paths) survives, and `saga query` prints an
    archived event exactly like the live log.  Ids grow in archive order (the
    order calls completed and were drained) and are never reused.
    """

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    host_id: Mapped[int] = mapped_column(Integer)
    ts_ns: Mapped[int] = mapped_column(BigInteger)          # CLOCK_REALTIME at entry, ns
    syscall: Mapped[int] = mapped_column(SmallInteger)      # slot (saga.syscalls names it)
    pid: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    ret: Mapped[int] = mapped_column(BigInteger)
    comm: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        # SQLite (one host's appliance archive, where ingest speed matters) has no index on
        # events but the id: event_batches maps time to id ranges.  PostgreSQL (the
        # many-host archive, fed by COPY) also has b-tree indexes for the common searches.
        Index("ix_events_ts", "ts_ns").ddl_if(dialect="postgresql"),
        Index("ix_events_syscall_ts", "syscall", "ts_ns").ddl_if(dialect="postgresql"),
        Index("ix_events_pid_ts", "pid", "ts_ns").ddl_if(dialect="postgresql"),
        Index("ix_events_host_ts", "host_id", "ts_ns").ddl_if(dialect="postgresql"),
        {"sqlite_autoincrement": True},     # ids never reused, even once retention emptied the archive
    )


class EventBatch(Base):
    """One write of events: their records, and the id range and time range they cover.

    A batch's events took the ids first_id .. first_id + events - 1 (one
    writer's transaction on SQLite; on PostgreSQL, where hosts write at the
    same time, the writer gives them batch id << PG_ID_SHIFT onwards).
    `records` holds their records back to back, as the driver delivered
    them; `offsets` where each starts (little-endian u32, one per event, in
    id order); `exes` the executables the daemon knew, as JSON {"pid": "path"}.
    The time range makes this table a block-range index (as PostgreSQL's
    BRIN): a search for a time range reads the batches that overlap it and
    scans only their ids; retention by age deletes whole batches.  Events are
    archived in the order their calls complete, while ts_ns is when they
    began, so ids are not in time order; min_ts and max_ts cover every event
    of the batch exactly.
    """

    __tablename__ = "event_batches"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    host_id: Mapped[int] = mapped_column(Integer)
    first_id: Mapped[int] = mapped_column(BigInteger)
    last_id: Mapped[int] = mapped_column(BigInteger)
    min_ts: Mapped[int] = mapped_column(BigInteger)
    max_ts: Mapped[int] = mapped_column(BigInteger)
    events: Mapped[int] = mapped_column(Integer)
    records: Mapped[bytes] = mapped_column(LargeBinary)
    offsets: Mapped[bytes] = mapped_column(LargeBinary)
    exes: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_event_batches_max_ts", "max_ts"), Index("ix_event_batches_first_id", "first_id"),
                      {"sqlite_autoincrement": True})


# PostgreSQL: event ids are the batch's id shifted left by PG_ID_SHIFT, plus the position in the batch.
PG_ID_SHIFT = 20
MAX_BATCH_EVENTS = 1 << PG_ID_SHIFT
