"""The aux blob of a record (docs/kernel-abi.md) as strace prints it, and as JSON.

    execve("/usr/bin/ls", ["ls", "-la"], 0x7ffd...)                         argv
    connect(3, {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("127.0.0.1")}, 16)
    connect(3, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0),
                inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28)
    bind(3, {sa_family=AF_UNIX, sun_path=@"abstract"}, 11)                socket addresses
    clone3({flags=CLONE_VM|...|CLONE_THREAD|..., child_tid=0x7f..., exit_signal=0, stack=0x7f...,
            stack_size=0x7fff80, tls=0x7f...}, 88)                        clone_args

A blob cut at its bound (AUX_TRUNC) ends in `...`; one that could not be
read whole (AUX_FAULT) shows what was read.  Strings are C-quoted like
paths (saga.render.quote); JSON keeps their bytes (render.json_bytes).
"""
from __future__ import annotations

import struct
from collections.abc import Callable

from saga import _consts as C
from saga import decode

_AF = dict(C.ADDRESS_FAMILIES)
AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = _AF["AF_UNIX"], _AF["AF_INET"], _AF["AF_INET6"], _AF["AF_NETLINK"]
Quote = Callable[[str], str]


def _decoded(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


# -- execve's argv --------------------------------------------------------------------------------

def argv(strings: list[bytes], quote: Quote, truncated: bool = False) -> str:
    """`["ls", "-la"]`; `["ls", "-la", ...]` when the driver kept only the first strings."""
    items = [quote(_decoded(s)) for s in strings]
    if truncated:
        items.append("...")
    return "[" + ", ".join(items) + "]"


# -- socket addresses ---------------------------------------------------------------------------

def sockaddr_fields(blob: bytes) -> dict:
    """A socket address's fields by name (the JSON form): family, then port/addr, path, pid/groups ..."""
    if len(blob) < 2:
        return {"family": None, "bytes": blob.hex()}
    import socket  # here: a search that prints no socket address does not load it
    fam = struct.unpack_from("<H", blob)[0]
    out: dict = {"family": decode.family(fam)}
    body = blob[2:]
    if fam == AF_INET and len(blob) >= 8:
        out.update(port=struct.unpack_from(">H", blob, 2)[0], addr=socket.inet_ntop(socket.AF_INET, blob[4:8]))
    elif fam == AF_INET6 and len(blob) >= 24:
        port, flowinfo = struct.unpack_from(">HI", blob, 2)
        out.update(port=port, flowinfo=flowinfo, addr=socket.inet_ntop(socket.AF_INET6, blob[8:24]))
        if len(blob) >= 28:
            out["scope_id"] = struct.unpack_from("<I", blob, 24)[0]
    elif fam == AF_UNIX:
        if not body:
            out["path"] = None                      # unnamed (autobind, socketpair)
        elif body[0] == 0:
            out["abstract"] = body[1:]              # the abstract namespace: every byte counts
        else:
            out["path"] = body.split(b"\0", 1)[0]
    elif fam == AF_NETLINK and len(blob) >= 12:
        out.update(pid=struct.unpack_from("<I", blob, 4)[0], groups=struct.unpack_from("<I", blob, 8)[0])
    else:
        out["bytes"] = body.hex()
    return out


def sockaddr(blob: bytes, quote: Quote, truncated: bool = False) -> str:
    """A socket address as strace prints it; unknown families show their bytes."""
    f = sockaddr_fields(blob)
    fam = f["family"]
    if fam is None:
        parts = [f"sa_data={quote(_decoded(blob))}"]
    elif "port" in f and "flowinfo" in f:
        parts = [f"sa_family={fam}", f"sin6_port=htons({f['port']})", f"sin6_flowinfo=htonl({f['flowinfo']})",
                 f'inet_pton(AF_INET6, "{f["addr"]}", &sin6_addr)']
        if "scope_id" in f:
            parts.append(f"sin6_scope_id={f['scope_id']}")
    elif "port" in f:
        parts = [f"sa_family={fam}", f"sin_port=htons({f['port']})", f'sin_addr=inet_addr("{f["addr"]}")']
    elif "abstract" in f:
        parts = [f"sa_family={fam}", f"sun_path=@{quote(_decoded(f['abstract']))}"]
    elif "path" in f:
        parts = [f"sa_family={fam}"] + ([f"sun_path={quote(_decoded(f['path']))}"] if f["path"] is not None else [])
    elif "groups" in f:
        parts = [f"sa_family={fam}", f"nl_pid={f['pid']}", f"nl_groups={f['groups']:08x}"]
    else:
        parts = [f"sa_family={fam}", f"sa_data={quote(_decoded(bytes.fromhex(f['bytes'])))}"]
    return "{" + ", ".join(parts) + (", ..." if truncated else "") + "}"


# -- clone3's struct clone_args -------------------------------------------------------------------

_CLONE_FIELDS = ("flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack", "stack_size", "tls",
                 "set_tid", "set_tid_size", "cgroup")   # struct clone_args: 11 u64, 88 bytes (linux/sched.h)
_CLONE_ARGS = struct.Struct(f"<{len(_CLONE_FIELDS)}Q")
_CL = dict(C.CLONE_FLAGS)


def clone_args_fields(blob: bytes) -> dict:
    """The fields of struct clone_args the blob holds (it may be shorter than the newest struct)."""
    padded = blob[:_CLONE_ARGS.size].ljust(_CLONE_ARGS.size, b"\0")
    values = dict(zip(_CLONE_FIELDS, _CLONE_ARGS.unpack(padded), strict=True))
    return {k: v for k, v in values.items() if _CLONE_FIELDS.index(k) * 8 < len(blob)}


def _ptr(v: int) -> str:
    return hex(v) if v else "NULL"


def clone_args(blob: bytes, truncated: bool = False) -> str:
    """clone3's arguments as strace prints them: each field the flags make the kernel read."""
    f = clone_args_fields(blob)
    if "tls" not in f:      # shorter than CLONE_ARGS_SIZE_VER0: the kernel refuses it too
        return "{" + ", ".join(f"{k}={hex(v)}" for k, v in f.items()) + "}"
    fl = f["flags"]
    parts = [f"flags={decode.clone3_flags(fl)}"]
    if fl & _CL["CLONE_PIDFD"]:
        parts.append(f"pidfd={_ptr(f['pidfd'])}")
    if fl & (_CL["CLONE_CHILD_SETTID"] | _CL["CLONE_CHILD_CLEARTID"]):
        parts.append(f"child_tid={_ptr(f['child_tid'])}")
    if fl & _CL["CLONE_PARENT_SETTID"]:
        parts.append(f"parent_tid={_ptr(f['parent_tid'])}")
    sig = f["exit_signal"]
    parts.append(f"exit_signal={decode.signal_name(sig) if sig < 2**31 else sig}")
    parts += [f"stack={_ptr(f['stack'])}", f"stack_size={decode.hex0(f['stack_size'])}"]
    if fl & _CL["CLONE_SETTLS"]:
        parts.append(f"tls={_ptr(f['tls'])}")
    if f.get("set_tid") or f.get("set_tid_size"):
        parts += [f"set_tid={_ptr(f['set_tid'])}", f"set_tid_size={f['set_tid_size']}"]
    if f.get("cgroup") or fl & _CL["CLONE_INTO_CGROUP"]:
        parts.append(f"cgroup={f.get('cgroup', 0)}")
    return "{" + ", ".join(parts) + (", ..." if truncated else "") + "}"


def clone_kind(blob: bytes) -> str | None:
    """`thread` or `process` (what a reader wants from clone3 first); None when the flags are not there."""
    f = clone_args_fields(blob)
    if "flags" not in f:
        return None
    return "thread" if f["flags"] & _CL["CLONE_THREAD"] else "process"
