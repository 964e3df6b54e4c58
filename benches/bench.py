#!/usr/bin/env python3
"""The wasm-cni benchmark (issue 5): the Go reference plugins, wasm-cni, and a kernel
floor, measured side by side, interleaved, on the same configs.

Every plugin runs inside network namespaces this script creates, the node ("host")
side included: the spawning thread enters the node namespace with setns(2) just
before fork, so the child starts there and the script's own namespace never sees a
link, address, route or rule. Everything created is removed on exit, also on
failure or Ctrl-C.

A sample is one whole-process invocation, from fork to exit (time.perf_counter_ns
around the spawn and os.wait4).

Peak RSS comes from separate ADDs run under GNU time (see METHOD). Run it through
`scripts/bench` (set-up, release build, then this script). Python 3.11, standard
library only.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import hashlib
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

REPO = Path(__file__).resolve().parent.parent
REFERENCE_DIR = Path("/usr/lib/cni")
NETNS_DIR = Path("/var/run/netns")
CLONE_NEWNET = 0x40000000
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
GNU_TIME = "/usr/bin/time"

NETWORK = "benchnet"
BRIDGE = "bench0"
SUBNET = "10.128.0.0/16"
GATEWAY = "10.128.0.1"
PREFIX_LEN = 16
CNI_VERSION = "1.0.0"  # Debian's reference (1.1.1) supports up to 1.0.0
GC_VERSION = "1.1.0"  # GC exists from 1.1.0 on

REF, OURS, FLOOR = "reference", "wasm-cni", "floor"
COLUMNS = (REF, OURS, FLOOR)
TIMINGS_PREFIX = "wasm-cni timings "
OUTSIDE_MAIN = "outside main (exec, loading, exit = wall − total_us)"
UNPHASED = "in main, outside any phase"
TOTAL = "total_us (in main)"
WALL = "wall, fork to exit"
SYNTHETIC = (OUTSIDE_MAIN, UNPHASED, TOTAL, WALL)
# Phases recorded inside another phase that does not share their name prefix
# (`apply:*` phases are inside `apply`): the guest asks the host for IPAM while
# it plans, so `ipam` is part of `guest-plan` (host/src/ipam.rs, invoke.rs).
NESTED_IN = {"ipam": "guest-plan"}
# What the sandbox adds over the kernel's work (issue 5): component load,
# instantiate, guest calls, validation. Subtracted from `guest-plan`: `ipam`
# (the IPAM plugin's own run, measured as its own scenario) and
# `guest-plan:look`, the kernel lookups the guest asks for (links, routes,
# masquerade rules, a free veth name): netlink work a native plugin does
# itself, which the wasm boundary does not add to.
SANDBOX_PHASES = ("engine", "component-load", "instantiate", "guest-plan", "validate", "guest-finish")
NOT_SANDBOX = ("ipam", "guest-plan:look")


class BenchError(Exception):
    """A failure that aborts the benchmark (a plugin error, a broken invariant)."""


@dataclass(frozen=True)
class Sizes:
    """Repetition counts: full run and --quick."""

    bridge: int  # iterations of each bridge micro scenario
    rss: int  # bridge ADDs run under GNU time for peak RSS
    small: int  # iterations of loopback ADD and host-local ADD
    cold: int  # cold first ADDs
    parallel: int  # containers ADDed (then DELeted) at once
    parallel_rounds: int
    sequential: int  # containers ADDed one after another on one network
    window: int  # latency windows compared: first N vs last N


FULL = Sizes(bridge=50, rss=10, small=50, cold=5, parallel=100, parallel_rounds=3, sequential=1000, window=100)
QUICK = Sizes(bridge=4, rss=2, small=6, cold=1, parallel=10, parallel_rounds=1, sequential=40, window=10)


# --------------------------------------------------------------------------- namespaces


class NetnsSwitch:
    """Moves the calling thread into a network namespace and back (setns(2))."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    def _setns(self, fd: int) -> None:
        if self._libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns: {os.strerror(err)}")

    @contextlib.contextmanager
    def inside(self, netns_path: str) -> Iterator[None]:
        fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._setns(fd)
            try:
                yield
            finally:
                self._setns(self._home)
        finally:
            os.close(fd)


@dataclass(frozen=True)
class Netns:
    name: str

    @property
    def path(self) -> str:
        return str(NETNS_DIR / self.name)


class Namespaces:
    """Named namespaces `<prefix>-<tag><n>`, created and deleted in batches by one
    `ip -batch` process; `delete_all` removes every one still there."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._count = 0

    def create(self, tag: str, count: int = 1) -> list[Netns]:
        names = [f"{self.prefix}-{tag}{self._count + i}" for i in range(count)]
        self._count += count
        ip_batch_here([f"netns add {n}" for n in names])
        return [Netns(n) for n in names]

    def delete(self, spaces: list[Netns]) -> None:
        if spaces:
            ip_batch_here([f"netns del {ns.name}" for ns in spaces])

    def delete_all(self) -> None:
        left = [Netns(p.name) for p in NETNS_DIR.glob(f"{self.prefix}-*")] if NETNS_DIR.is_dir() else []
        for ns in left:
            subprocess.run(["ip", "netns", "del", ns.name], stderr=subprocess.DEVNULL, check=False)


def dying_netns() -> int:
    """Network namespaces the kernel still holds (live and being torn down)."""
    for line in Path("/proc/slabinfo").read_text().splitlines():
        if line.startswith("net_namespace "):
            return int(line.split()[1])
    return 0


def settle_netns(timeout: float = 60.0) -> None:
    """Wait until the kernel has finished tearing down deleted namespaces (the
    count stops falling), so their cleanup work does not run under the next
    scenario's samples."""
    deadline = time.monotonic() + timeout
    last, steady = dying_netns(), 0
    while steady < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
        now = dying_netns()
        steady = steady + 1 if now >= last else 0
        last = min(last, now)


def ip_batch_here(lines: list[str]) -> None:
    """`ip -batch -` in this process's namespace; only `netns add/del` go here."""
    out = subprocess.run(["ip", "-batch", "-"], input="\n".join(lines) + "\n", capture_output=True, text=True)
    if out.returncode != 0:
        raise BenchError(f"ip -batch failed: {out.stderr.strip()}\n{lines[:3]}...")


# --------------------------------------------------------------------------- processes


@dataclass
class Invocation:
    """One process to run: argv, the namespace it starts in, env, stdin."""

    label: str
    argv: list[str]
    netns: str
    env: dict[str, str]
    stdin: bytes = b""


@dataclass
class Outcome:
    invocation: Invocation
    ns: int  # fork to exit
    cpu_ns: int  # user + system CPU, the process and the children it reaped
    stdout: str
    stderr: str


@dataclass
class _Pending:
    invocation: Invocation
    proc: subprocess.Popen
    started: int
    fds: tuple[int, int, int]


def _memfd(name: str, data: bytes = b"") -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    if data:
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _read_memfd(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


class Runner:
    """Spawns invocations in their namespaces and times them, fork to exit."""

    def __init__(self, switch: NetnsSwitch) -> None:
        self._switch = switch
        self._running: dict[int, _Pending] = {}

    def _spawn(self, inv: Invocation) -> _Pending:
        fds = (_memfd("stdin", inv.stdin), _memfd("stdout"), _memfd("stderr"))
        try:
            with self._switch.inside(inv.netns):
                started = time.perf_counter_ns()
                proc = subprocess.Popen(inv.argv, stdin=fds[0], stdout=fds[1], stderr=fds[2], env=inv.env)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        pending = _Pending(inv, proc, started, fds)
        self._running[proc.pid] = pending
        return pending

    def _reaped(self, pid: int, status: int, usage: resource.struct_rusage, ended: int) -> tuple[_Pending, Outcome]:
        pending = self._running.pop(pid)
        pending.proc.returncode = os.waitstatus_to_exitcode(status)
        stdout, stderr = _read_memfd(pending.fds[1]), _read_memfd(pending.fds[2])
        for fd in pending.fds:
            os.close(fd)
        cpu = int((usage.ru_utime + usage.ru_stime) * 1e9)
        outcome = Outcome(pending.invocation, ended - pending.started, cpu, stdout, stderr)
        return pending, outcome

    @staticmethod
    def _check(outcome: Outcome, code: int) -> None:
        if code != 0:
            inv = outcome.invocation
            raise BenchError(
                f"{inv.label} failed (exit {code}): {' '.join(inv.argv)}\n"
                f"  env: {' '.join(f'{k}={v}' for k, v in inv.env.items() if k.startswith(('CNI_', 'WASM_')))}\n"
                f"  stdin: {inv.stdin.decode(errors='replace')}\n"
                f"  stdout: {outcome.stdout.strip()}\n  stderr: {outcome.stderr.strip()}"
            )

    def run_chain(self, chain: list[Invocation]) -> list[Outcome]:
        """Run the invocations one after another; each must succeed."""
        outcomes = []
        for inv in chain:
            pending = self._spawn(inv)
            _, status, usage = os.wait4(pending.proc.pid, 0)
            ended = time.perf_counter_ns()
            _, outcome = self._reaped(pending.proc.pid, status, usage, ended)
            self._check(outcome, pending.proc.returncode)
            outcomes.append(outcome)
        return outcomes

    def run_parallel(self, chains: list[list[Invocation]]) -> tuple[int, list[list[Outcome]]]:
        """Start the first invocation of every chain at once, each next one when its
        predecessor exits. Returns the wall time, first fork to last exit."""
        results: list[list[Outcome]] = [[] for _ in chains]
        owner: dict[int, int] = {}
        errors: list[BenchError] = []
        first = time.perf_counter_ns()
        last = first
        for i, chain in enumerate(chains):
            owner[self._spawn(chain[0]).proc.pid] = i
        while owner:
            pid, status, usage = os.wait4(-1, 0)
            last = time.perf_counter_ns()
            if pid not in owner:
                continue
            i = owner.pop(pid)
            pending, outcome = self._reaped(pid, status, usage, last)
            results[i].append(outcome)
            try:
                self._check(outcome, pending.proc.returncode)
            except BenchError as e:
                errors.append(e)
                continue
            step = len(results[i])
            if step < len(chains[i]) and not errors:
                owner[self._spawn(chains[i][step]).proc.pid] = i
        if errors:
            raise errors[0]
        return last - first, results

    def stop_all(self) -> None:
        """Terminate and reap whatever this runner started and still runs."""
        for pid, pending in list(self._running.items()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            with contextlib.suppress(ChildProcessError):
                os.wait4(pid, 0)
            for fd in pending.fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            pending.proc.returncode = -1
        self._running.clear()


# --------------------------------------------------------------------------- configs


def bridge_conf(masq: bool, data_dir: Path, version: str = CNI_VERSION) -> dict:
    """The bridge network every column runs (the floor issues its netlink work)."""
    return {
        "cniVersion": version,
        "name": NETWORK,
        "type": "bridge",
        "bridge": BRIDGE,
        "isGateway": True,
        "ipMasq": masq,
        "ipam": {
            "type": "host-local",
            "subnet": SUBNET,
            "dataDir": str(data_dir),
            "routes": [{"dst": "0.0.0.0/0"}],
        },
    }


def host_local_conf(data_dir: Path) -> dict:
    conf = bridge_conf(False, data_dir)
    conf["type"] = "host-local"
    return conf


LOOPBACK_CONF = {"cniVersion": CNI_VERSION, "name": "lo", "type": "loopback"}


def cni_env(command: str, container_id: str = "", netns: str = "", ifname: str = "", cni_path: str = "") -> dict[str, str]:
    env = {"PATH": SYSTEM_PATH, "CNI_COMMAND": command, "CNI_PATH": cni_path}
    if container_id:
        env.update(CNI_CONTAINERID=container_id, CNI_NETNS=netns, CNI_IFNAME=ifname)
    return env


def first_ip(result: dict) -> str:
    try:
        return result["ips"][0]["address"].split("/")[0]
    except (KeyError, IndexError, AttributeError) as e:
        raise BenchError(f"ADD result without an IP: {result}") from e


# --------------------------------------------------------------------------- columns


@dataclass
class Network:
    """One column's bridge network: its node namespace, IPAM directory, and what is
    attached (container id -> ADD result for plugins, IP for the floor)."""

    node: Netns
    data_dir: Path
    masq: bool
    attached: dict[str, object] = field(default_factory=dict)
    bridge_ready: bool = False  # floor: bridge created and addressed
    next_host: int = 2  # floor: next address handed out

    def conf(self, version: str = CNI_VERSION) -> dict:
        return bridge_conf(self.masq, self.data_dir, version)

    def allocations(self) -> list[str]:
        d = self.data_dir / NETWORK
        return [p.name for p in d.iterdir() if p.name[0].isdigit()] if d.is_dir() else []


@dataclass(frozen=True)
class Attachment:
    """A container (its own namespace) attached as `eth0` under an id."""

    id: str
    netns: Netns
    ifname: str = "eth0"


class PluginColumn:
    """The reference plugins, or wasm-cni through its symlinks: same configs."""

    def __init__(self, name: str, bin_dir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.bin_dir = bin_dir
        self.env = env

    def invocation(self, plugin: str, command: str, net: Network, att: Attachment | None, conf: dict, env: dict | None = None) -> Invocation:
        base = cni_env(command, att.id, att.netns.path, att.ifname, str(self.bin_dir)) if att else cni_env(command, cni_path=str(self.bin_dir))
        base.update(self.env)
        base.update(env or {})
        label = f"{self.name} {plugin} {command}" + (f" {att.id}" if att else "")
        return Invocation(label, [str(self.bin_dir / plugin)], net.node.path, base, json.dumps(conf).encode())

    def bridge_add(self, net: Network, att: Attachment, env: dict | None = None) -> list[Invocation]:
        return [self.invocation("bridge", "ADD", net, att, net.conf(), env)]

    def added(self, net: Network, att: Attachment, outcomes: list[Outcome]) -> str:
        try:
            result = json.loads(outcomes[-1].stdout)
        except json.JSONDecodeError as e:
            raise BenchError(f"{self.name} ADD {att.id}: stdout is not JSON: {outcomes[-1].stdout!r}") from e
        net.attached[att.id] = result
        return first_ip(result)

    def bridge_del(self, net: Network, att: Attachment) -> list[Invocation]:
        conf = net.conf()
        conf["prevResult"] = net.attached.pop(att.id)
        return [self.invocation("bridge", "DEL", net, att, conf)]


class FloorColumn:
    """The kernel floor: the bridge ADD's netlink work issued by `ip -batch -`, no
    sleeps, no firewall. One process per namespace touched: iproute2's batch mode
    cannot switch namespaces (`netns exec` forks) and the kernel refuses to bring a
    veth peer up while creating it in another namespace, so an ADD is one batch in
    the node namespace then one in the container's; a DEL is one batch in the
    container's."""

    name = FLOOR

    def __init__(self) -> None:
        self.ip = shutil.which("ip") or "/usr/sbin/ip"
        self._veths = 0

    def _batch(self, label: str, netns: Netns, lines: list[str]) -> Invocation:
        return Invocation(label, [self.ip, "-batch", "-"], netns.path, {"PATH": SYSTEM_PATH}, ("\n".join(lines) + "\n").encode())

    def bridge_add(self, net: Network, att: Attachment, env: dict | None = None) -> list[Invocation]:
        del env
        host = []
        if not net.bridge_ready:
            host += [
                f"link add {BRIDGE} type bridge",
                f"addr add {GATEWAY}/{PREFIX_LEN} dev {BRIDGE}",
                f"link set {BRIDGE} up",
            ]
            net.bridge_ready = True
        n = net.next_host
        net.next_host += 1
        address = f"10.128.{n // 256}.{n % 256}"
        self._veths += 1
        host.append(f"link add vf{self._veths:x} up master {BRIDGE} type veth peer name {att.ifname} netns {att.netns.name}")
        container = [
            f"addr add {address}/{PREFIX_LEN} dev {att.ifname}",
            f"link set {att.ifname} up",
            f"route add default via {GATEWAY}",
        ]
        net.attached[att.id] = address
        return [self._batch(f"floor ADD {att.id} (node)", net.node, host), self._batch(f"floor ADD {att.id} (container)", att.netns, container)]

    def added(self, net: Network, att: Attachment, outcomes: list[Outcome]) -> str:
        del outcomes
        return str(net.attached[att.id])

    def bridge_del(self, net: Network, att: Attachment) -> list[Invocation]:
        net.attached.pop(att.id)
        return [self._batch(f"floor DEL {att.id}", att.netns, [f"link del {att.ifname}"])]


Column = PluginColumn | FloorColumn


# --------------------------------------------------------------------------- results


@dataclass
class Row:
    """One scenario line: samples per column (None: not applicable)."""

    name: str
    unit: str
    samples: dict[str, list[float] | None]
    key: str = ""  # for the targets

    def median(self, col: str) -> float | None:
        s = self.samples.get(col)
        return statistics.median(s) if s else None


def fmt(v: float) -> str:
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def cell(samples: list[float] | None) -> str:
    if not samples:
        return "n/a"
    return f"{fmt(statistics.median(samples))} ({fmt(min(samples))}–{fmt(max(samples))})"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}x"


def render_table(rows: list[Row]) -> str:
    head = "| scenario | unit | reference | wasm-cni | floor | wasm-cni/ref | wasm-cni/floor |"
    lines = [head, "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        ours = r.median(OURS)
        lines.append(
            f"| {r.name} | {r.unit} | {cell(r.samples.get(REF))} | {cell(r.samples.get(OURS))} | "
            f"{cell(r.samples.get(FLOOR))} | {ratio(ours, r.median(REF))} | {ratio(ours, r.median(FLOOR))} |"
        )
    return "\n".join(lines)


@dataclass
class Breakdown:
    """wasm-cni's own per-phase timings of bridge ADDs, with their wall times."""

    invocations: list[tuple[int, dict]] = field(default_factory=list)  # (wall µs, timings)

    def add(self, outcome: Outcome) -> None:
        line = next((l for l in outcome.stderr.splitlines() if l.startswith(TIMINGS_PREFIX)), None)
        if line is None:
            raise BenchError(f"WASM_CNI_TIMINGS=1 printed no timings line; stderr: {outcome.stderr!r}")
        self.invocations.append((outcome.ns // 1000, json.loads(line[len(TIMINGS_PREFIX) :])))

    def _per_invocation(self) -> list[dict[str, int]]:
        """Phase -> µs per invocation (repeated phases summed), plus the synthetic
        `outside main` (wall − total_us), `in main, outside any phase`, `total_us`
        and `wall`."""
        rows = []
        for wall, t in self.invocations:
            s: dict[str, int] = {}
            for name, us in t["phases"]:
                s[name] = s.get(name, 0) + us
            top = sum(us for n, us in s.items() if self._parent(n) not in s)
            s[OUTSIDE_MAIN] = wall - t["total_us"]
            s[UNPHASED] = t["total_us"] - top
            s[TOTAL] = t["total_us"]
            s[WALL] = wall
            rows.append(s)
        return rows

    @staticmethod
    def _parent(name: str) -> str | None:
        return name.split(":", 1)[0] if ":" in name else NESTED_IN.get(name)

    def medians(self) -> dict[str, float]:
        """Median µs of every phase, parents before their children."""
        rows = self._per_invocation()
        names: list[str] = []
        for r in rows:
            names += [n for n in r if n not in names and n not in SYNTHETIC]
        ordered = [OUTSIDE_MAIN]
        for name in (n for n in names if self._parent(n) not in names):
            ordered.append(name)
            for child in (n for n in names if self._parent(n) == name):
                ordered.append(child)
                ordered += [n for n in names if self._parent(n) == child]
        ordered += [UNPHASED, TOTAL, WALL]
        return {n: statistics.median(r.get(n, 0) for r in rows) for n in ordered}

    def _label(self, name: str) -> str:
        depth = 0
        parent = self._parent(name)
        while parent:
            depth += 1
            parent = self._parent(parent)
        return "&nbsp;&nbsp;" * depth + (f"**{name}**" if name in (TOTAL, WALL) else name)

    def render(self) -> str:
        if not self.invocations:
            return "(no timings collected)"
        med = self.medians()
        out = ["| phase | median µs | of wall |", "|---|---:|---:|"]
        out += [f"| {self._label(n)} | {us:.0f} | {100 * us / med[WALL]:.1f}% |" for n, us in med.items()]
        sandbox_us, share = self.sandbox()
        out += [
            "",
            f"Sandbox overhead ({' + '.join(SANDBOX_PHASES)} − {' − '.join(NOT_SANDBOX)}): median {sandbox_us:.0f} µs, "
            f"{share:.1f}% of a bridge ADD (median of per-invocation shares, "
            f"{len(self.invocations)} invocations). Repeated phases (`apply:set-sysctl`) are summed per invocation; "
            "children are indented under the phase that contains them.",
        ]
        memory = [t.get("memory_kib", {}) for _, t in self.invocations]
        if all(m.get("VmHWM") for m in memory):
            med = {k: statistics.median(m.get(k, 0) for m in memory) / 1024 for k in ("VmHWM", "RssFile", "RssAnon")}
            out += [
                "",
                f"Resident memory at the end of a bridge ADD (`memory_kib` of the timings line, medians): "
                f"peak {med['VmHWM']:.1f} MiB, of which {med['RssFile']:.1f} MiB file-backed pages "
                f"(the binary's code and read-only data, libc) and {med['RssAnon']:.1f} MiB anonymous.",
            ]
        return "\n".join(out)

    def sandbox(self) -> tuple[float, float]:
        """What the sandbox adds over the kernel work: median µs and median % of wall."""
        rows = self._per_invocation()
        if not rows:
            return 0.0, float("nan")
        spent = [sum(r.get(n, 0) for n in SANDBOX_PHASES) - sum(r.get(n, 0) for n in NOT_SANDBOX) for r in rows]
        return statistics.median(spent), statistics.median(100 * b / r[WALL] for b, r in zip(spent, rows))


def render_growth(first: Breakdown, last: Breakdown, limit: int = 12) -> str:
    """The phases of wasm-cni's bridge ADD that grew from the first to the last
    window of the sequential scenario, largest growth first."""
    if not first.invocations or not last.invocations:
        return "(no timings collected)"
    a, b = first.medians(), last.medians()
    grown = sorted((n for n in b if n not in (TOTAL,)), key=lambda n: b[n] - a.get(n, 0), reverse=True)
    out = [
        f"| phase | first {len(first.invocations)}: median µs | last {len(last.invocations)}: median µs | growth µs |",
        "|---|---:|---:|---:|",
    ]
    for n in grown[:limit]:
        out.append(f"| {n} | {a.get(n, 0):.0f} | {b[n]:.0f} | {b[n] - a.get(n, 0):+.0f} |")
    return "\n".join(out)


# --------------------------------------------------------------------------- the bench


class Bench:
    """Owns the work directory, the namespaces, the runner and the three columns."""

    def __init__(self, sizes: Sizes, work: Path, binary: Path, namespaces: Namespaces, runner: Runner) -> None:
        self.sizes = sizes
        self.work = work
        self.namespaces = namespaces
        self.runner = runner
        self.breakdown = Breakdown()
        self.growth = ""
        self.only: list[str] = []
        self.deferred_s = 0.0
        self._dirs = 0
        bin_dir = work / "bin"
        bin_dir.mkdir()
        self.binary = bin_dir / "wasm-cni"
        # A private copy: a rebuild of target/ during the run cannot change what is measured.
        shutil.copy2(binary, self.binary)
        for plugin in ("bridge", "host-local", "loopback"):
            (bin_dir / plugin).symlink_to("wasm-cni")
        (work / "plugins").mkdir()
        self.ipam_root = work / "ipam"
        self.ipam_root.mkdir()
        self.settings = work / "settings.json"
        self.settings.write_text(
            json.dumps(
                {
                    "pluginDir": str(work / "plugins"),
                    "cacheDir": str(work / "cache"),
                    "ipamDataDirs": [str(self.ipam_root)],
                    "logLevel": "warn",
                }
            )
        )
        self.columns: dict[str, Column] = {
            REF: PluginColumn(REF, REFERENCE_DIR, {}),
            OURS: PluginColumn(OURS, bin_dir, {"WASM_CNI_CONFIG": str(self.settings)}),
            FLOOR: FloorColumn(),
        }

    @property
    def ours(self) -> PluginColumn:
        col = self.columns[OURS]
        assert isinstance(col, PluginColumn)
        return col

    @property
    def ref(self) -> PluginColumn:
        col = self.columns[REF]
        assert isinstance(col, PluginColumn)
        return col

    def tool(self, *args: str) -> str:
        env = {"PATH": SYSTEM_PATH, "WASM_CNI_CONFIG": str(self.settings)}
        out = subprocess.run([str(self.binary), *args], capture_output=True, text=True, env=env)
        if out.returncode != 0:
            raise BenchError(f"wasm-cni {' '.join(args)} failed: {out.stdout}{out.stderr}")
        return out.stdout

    def fresh_dir(self, tag: str) -> Path:
        """A new IPAM data directory (under `ipamDataDirs`)."""
        self._dirs += 1
        d = self.ipam_root / f"{tag}{self._dirs}"
        d.mkdir()
        return d

    def fresh_cache(self) -> Path:
        """A new, empty precompiled-component cache (root-owned, 0700)."""
        self._dirs += 1
        d = self.work / f"cold-cache{self._dirs}"
        d.mkdir(mode=0o700)
        return d

    @contextlib.contextmanager
    def scope(self) -> Iterator[Callable[..., list[Netns]]]:
        """Namespaces created through the yielded function are deleted at the end."""
        made: list[Netns] = []

        def create(tag: str, count: int = 1) -> list[Netns]:
            spaces = self.namespaces.create(tag, count)
            made.extend(spaces)
            return spaces

        try:
            yield create
        finally:
            self.namespaces.delete(made)
            settle_netns()

    def network(self, create: Callable[..., list[Netns]], col: str, masq: bool) -> Network:
        return Network(create(f"{col[0]}n")[0], self.fresh_dir(col[0]), masq)

    def add(self, col: str, net: Network, att: Attachment, env: dict | None = None) -> tuple[list[Outcome], str]:
        column = self.columns[col]
        outcomes = self.runner.run_chain(column.bridge_add(net, att, env))
        return outcomes, column.added(net, att, outcomes)

    def delete(self, col: str, net: Network, att: Attachment) -> list[Outcome]:
        outcomes = self.runner.run_chain(self.columns[col].bridge_del(net, att))
        self.deferred_s = self.settle() if col == OURS else 0.0
        return outcomes

    def settle(self) -> float:
        """Wait until no process runs our binary any more: after a DEL,
        wasm-cni's reaper child deletes the retired veth and closes nftables
        sockets once the plugin has exited (the kernel's RCU waits). Nothing
        is measured while that work runs, so it never lands on another
        column's sample. Returns the seconds waited."""
        start = time.perf_counter()
        target = os.path.realpath(self.binary)
        while True:
            busy = False
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    if os.readlink(f"/proc/{pid}/exe") != target:
                        continue
                    state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][:1]
                except (OSError, IndexError):
                    continue
                if state != "Z":
                    busy = True
                    break
            waited = time.perf_counter() - start
            if not busy:
                return waited
            if waited > 30:
                raise BenchError("a wasm-cni process (a DEL's reaper) still runs after 30 s")
            time.sleep(0.0002)


def total_ms(outcomes: list[Outcome]) -> float:
    return sum(o.ns for o in outcomes) / 1e6


# --------------------------------------------------------------------------- scenarios


def bridge_micro(bench: Bench, key: str, label: str, masq: bool, timed: str, reps: int) -> list[Row]:
    """ADD then DEL on one network per column, interleaved; `timed` is `cycle`,
    `add` or `del`. The ADD-alone scenario also yields CPU times and wasm-cni's
    breakdown."""
    samples: dict[str, list[float]] = {c: [] for c in COLUMNS}
    settled: dict[str, list[float]] = {c: [] for c in COLUMNS}
    cpu: dict[str, list[float]] = {c: [] for c in COLUMNS}
    with bench.scope() as create:
        nets = {c: bench.network(create, c, masq) for c in COLUMNS}
        ctrs = {c: create(f"{c[0]}c")[0] for c in COLUMNS}
        for i in range(-1, reps):  # iteration -1 warms up: creates the bridge
            for c in COLUMNS:
                att = Attachment(f"{key}-{i if i >= 0 else 'warm'}", ctrs[c])
                env = {"WASM_CNI_TIMINGS": "1"} if timed == "add" and c == OURS and i >= 0 else None
                add, _ = bench.add(c, nets[c], att, env)
                dele = bench.delete(c, nets[c], att)
                if i < 0:
                    continue
                measured = {"cycle": add + dele, "add": add, "del": dele}[timed]
                samples[c].append(total_ms(measured))
                settled[c].append(total_ms(dele) + bench.deferred_s * 1000)
                cpu[c].append(sum(o.cpu_ns for o in measured) / 1e6)
                if env:
                    bench.breakdown.add(add[0])
        for c in (REF, OURS):
            if nets[c].allocations():
                raise BenchError(f"{label}: {c} left IP allocations {nets[c].allocations()}")
    rows = [Row(label, "ms", dict(samples), key)]
    if timed == "del":
        # What the kernel still does after our DEL answered, made visible.
        rows.append(Row(f"{label}, until its deferred kernel work is done", "ms", dict(settled), "del-settled"))
    if timed == "add":
        rows.append(Row("CPU (user+sys) of one bridge ADD", "ms", dict(cpu), "cpu"))
    return rows


def peak_rss(bench: Bench, reps: int) -> list[Row]:
    """Peak RSS of one bridge ADD (ipMasq on), each of its processes run under GNU
    time, whose own wait4 ru_maxrss covers the process and the children it reaped.
    (wait4 from this harness would report at least the harness's own peak: the
    kernel folds the pre-exec address space's high-water mark into ru_maxrss.)"""
    rss: dict[str, list[float]] = {c: [] for c in COLUMNS}
    with bench.scope() as create:
        nets = {c: bench.network(create, c, True) for c in COLUMNS}
        ctrs = {c: create(f"{c[0]}r")[0] for c in COLUMNS}
        for i in range(-1, reps):
            for c in COLUMNS:
                column = bench.columns[c]
                att = Attachment(f"rss-{i if i >= 0 else 'warm'}", ctrs[c])
                chain = column.bridge_add(nets[c], att)
                files = [bench.work / f"rss.{k}" for k in range(len(chain))]
                timed = [replace(inv, argv=[GNU_TIME, "-f", "%M", "-o", str(f), *inv.argv]) for inv, f in zip(chain, files)]
                column.added(nets[c], att, bench.runner.run_chain(timed))
                bench.delete(c, nets[c], att)
                if i >= 0:
                    rss[c].append(max(int(f.read_text().split()[-1]) for f in files) / 1024)
    return [Row("peak RSS of one bridge ADD", "MiB", rss, "rss")]


def plugin_micro(bench: Bench, key: str, label: str, plugin: str, reps: int) -> list[Row]:
    """loopback ADD or host-local ADD alone (DEL untimed after each); no floor."""
    samples: dict[str, list[float] | None] = {REF: [], OURS: [], FLOOR: None}
    with bench.scope() as create:
        nets = {c: Network(create(f"{c[0]}n")[0], bench.fresh_dir(c[0]), False) for c in (REF, OURS)}
        ctrs = {c: create(f"{c[0]}c")[0] for c in (REF, OURS)}
        for i in range(-1, reps):
            for c in (REF, OURS):
                col = bench.columns[c]
                assert isinstance(col, PluginColumn)
                if plugin == "loopback":
                    att, conf = Attachment(f"{key}-{i if i >= 0 else 'warm'}", ctrs[c], "lo"), LOOPBACK_CONF
                else:
                    att, conf = Attachment(f"{key}-{i if i >= 0 else 'warm'}", ctrs[c]), host_local_conf(nets[c].data_dir)
                add = bench.runner.run_chain([col.invocation(plugin, "ADD", nets[c], att, conf)])
                json.loads(add[0].stdout)
                bench.runner.run_chain([col.invocation(plugin, "DEL", nets[c], att, conf)])
                if i >= 0:
                    samples[c].append(total_ms(add))
    return [Row(label, "ms", samples, key)]


def cold_first_add(bench: Bench, reps: int) -> list[Row]:
    """The first ADD on a fresh node; wasm-cni with an empty precompiled cache."""
    samples: dict[str, list[float]] = {c: [] for c in COLUMNS}
    for i in range(reps):
        for c in COLUMNS:
            with bench.scope() as create:
                net = bench.network(create, c, True)
                att = Attachment(f"cold-{i}", create(f"{c[0]}k")[0])
                env = {"WASM_CNI_CACHE_DIR": str(bench.fresh_cache())} if c == OURS else None
                add, _ = bench.add(c, net, att, env)
                samples[c].append(total_ms(add))
    return [Row("cold first ADD (empty cache, fresh node)", "ms", samples, "cold")]


def parallel(bench: Bench, n: int, rounds: int) -> list[Row]:
    """n containers ADDed at once, then DELeted at once: wall time of each phase."""
    adds: dict[str, list[float]] = {c: [] for c in COLUMNS}
    dels: dict[str, list[float]] = {c: [] for c in COLUMNS}
    dels_settled: dict[str, list[float]] = {c: [] for c in COLUMNS}
    with bench.scope() as create:
        nets = {c: bench.network(create, c, True) for c in COLUMNS}
        ctrs = {c: create(f"{c[0]}p", n) for c in COLUMNS}
        for c in COLUMNS:  # warm-up: the bridge exists before the first round
            att = Attachment("par-warm", ctrs[c][0])
            bench.add(c, nets[c], att)
            bench.delete(c, nets[c], att)
        for r in range(rounds):
            for c in COLUMNS:
                column = bench.columns[c]
                atts = [Attachment(f"par{r}-{i}", ctrs[c][i]) for i in range(n)]
                wall, outs = bench.runner.run_parallel([column.bridge_add(nets[c], a) for a in atts])
                ips = [column.added(nets[c], a, o) for a, o in zip(atts, outs)]
                if len(set(ips)) != n:
                    raise BenchError(f"{c}: {n} parallel ADDs handed out {len(set(ips))} unique IPs")
                adds[c].append(wall / 1e9)
                wall, _ = bench.runner.run_parallel([column.bridge_del(nets[c], a) for a in atts])
                dels[c].append(wall / 1e9)
                deferred = bench.settle() if c == OURS else 0.0
                dels_settled[c].append(wall / 1e9 + deferred)
                if c != FLOOR and nets[c].allocations():
                    raise BenchError(f"{c}: parallel DEL left {len(nets[c].allocations())} allocations")
    return [
        Row(f"{n} parallel ADDs, wall (unique IPs checked)", "s", adds, "par-add"),
        Row(f"{n} parallel DELs, wall", "s", dels, "par-del"),
        Row(f"{n} parallel DELs, until their deferred kernel work is done", "s", dels_settled, "par-del-settled"),
    ]


def sequential_and_gc(bench: Bench, n: int, window: int) -> list[Row]:
    """n containers ADDed one after another on one network (interleaved per
    container); first vs last `window` latencies; then GC of the n allocations."""
    lat: dict[str, list[float]] = {c: [] for c in COLUMNS}
    with bench.scope() as create:
        nets = {c: bench.network(create, c, False) for c in COLUMNS}
        ctrs = {c: create(f"{c[0]}s", n) for c in COLUMNS}
        for c in COLUMNS:  # warm-up: the bridge exists before the first container
            att = Attachment("seq-warm", ctrs[c][0])
            bench.add(c, nets[c], att)
            bench.delete(c, nets[c], att)
        first_t, last_t = Breakdown(), Breakdown()
        for i in range(n):
            for c in COLUMNS:
                env = {"WASM_CNI_TIMINGS": "1"} if c == OURS else None
                add, _ = bench.add(c, nets[c], Attachment(f"seq-{i}", ctrs[c][i]), env)
                lat[c].append(total_ms(add))
                if env and i < window:
                    first_t.add(add[0])
                elif env and i >= n - window:
                    last_t.add(add[0])
        bench.growth = render_growth(first_t, last_t)
        for c in COLUMNS:
            ips = list(nets[c].attached.values()) if c == FLOOR else [first_ip(r) for r in nets[c].attached.values()]
            if len(set(ips)) != n:
                raise BenchError(f"{c}: {n} sequential ADDs handed out {len(set(ips))} unique IPs")
        stale = nets[OURS].allocations()
        if len(stale) != n:
            raise BenchError(f"wasm-cni: expected {n} allocations before GC, found {len(stale)}")
        gc_conf = nets[OURS].conf(GC_VERSION)
        gc_conf["cni.dev/valid-attachments"] = []
        gc = bench.runner.run_chain([bench.ours.invocation("bridge", "GC", nets[OURS], None, gc_conf)])
        if nets[OURS].allocations():
            raise BenchError(f"wasm-cni GC left {len(nets[OURS].allocations())} of {n} allocations")
    first = {c: v[:window] for c, v in lat.items()}
    last = {c: v[-window:] for c, v in lat.items()}
    growth = {c: [statistics.median(last[c]) / statistics.median(first[c])] for c in COLUMNS}
    return [
        Row(f"{n} sequential ADDs: first {window}", "ms", first, "seq-first"),
        Row(f"{n} sequential ADDs: last {window}", "ms", last, "seq-last"),
        Row(f"{n} sequential ADDs: last/first {window} (medians)", "x", growth, "seq-growth"),
        Row(f"GC of {n} stale allocations", "ms", {REF: None, OURS: [total_ms(gc)], FLOOR: None}, "gc"),
    ]


def spawn_baseline(bench: Bench, reps: int) -> float:
    """Median ms to spawn /bin/true the same way: the harness's own share."""
    with bench.scope() as create:
        node = create("tn")[0]
        inv = Invocation("true", ["/bin/true"], node.path, {"PATH": SYSTEM_PATH})
        return statistics.median(total_ms(bench.runner.run_chain([inv])) for _ in range(reps))


# --------------------------------------------------------------------------- report


def targets(rows: list[Row], sandbox_share: float) -> str:
    """Issue 5's targets against this run's medians."""
    by_key = {r.key: r for r in rows if r.key}

    def rel(key: str, other: str) -> float | None:
        r = by_key.get(key)
        if r is None:
            return None
        a, b = r.median(OURS), r.median(other)
        return a / b if a is not None and b else None

    def ours(key: str) -> float | None:
        r = by_key.get(key)
        return r.median(OURS) if r else None

    checks = [
        ("bridge ADD+DEL, ipMasq on: wasm-cni/ref", rel("masq", REF), 0.25, "x"),
        ("bridge ADD+DEL, ipMasq off: wasm-cni/ref", rel("nomasq", REF), 0.6, "x"),
        ("bridge ADD+DEL, ipMasq off: wasm-cni/floor", rel("nomasq", FLOOR), 1.5, "x"),
        ("loopback ADD: wasm-cni/ref", rel("loopback", REF), 1.0, "x"),
        ("host-local ADD: wasm-cni/ref", rel("host-local", REF), 1.0, "x"),
        ("parallel ADDs: wasm-cni/ref wall", rel("par-add", REF), 0.3, "x"),
        ("parallel DELs: wasm-cni/ref wall", rel("par-del", REF), 0.3, "x"),
        ("sequential: wasm-cni last/first", ours("seq-growth"), 1.25, "x"),
        ("sandbox overhead, % of a bridge ADD", sandbox_share, 10.0, "%"),
        ("peak RSS of one bridge ADD: wasm-cni/ref", rel("rss", REF), 1.0, "x"),
        ("cold first ADD, ms", ours("cold"), 1000.0, " ms"),
    ]
    out = ["| target | limit | measured | |", "|---|---:|---:|---|"]
    for name, value, limit, unit in checks:
        if value is None or value != value:  # not measured, or NaN
            out.append(f"| {name} | {fmt(limit)}{unit} | n/a | |")
            continue
        verdict = "met" if value <= limit else f"missed ({value / limit:.2f}x the limit)"
        out.append(f"| {name} | {fmt(limit)}{unit} | {fmt(value)}{unit} | {verdict} |")
    return "\n".join(out)


def cpu_seconds() -> tuple[float, float]:
    """Machine-wide busy CPU seconds (/proc/stat), and this process's plus its
    reaped children's."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return busy, me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def command_output(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return "?"
    return (out.stdout or out.stderr).strip()


def machine_info(bench: Bench) -> list[tuple[str, str]]:
    model = next(
        (l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")),
        "?",
    )
    version = bench.tool("version").strip().replace("\n", "; ")
    sha = hashlib.sha256(bench.binary.read_bytes()).hexdigest()
    commit = command_output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = command_output(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
    return [
        ("CPUs (nproc)", f"{os.cpu_count()} × {model}"),
        ("kernel", platform.release()),
        ("wasm-cni", f"{version} (binary sha256 {sha[:16]}…, commit {commit}{' + uncommitted changes' if dirty else ''})"),
        ("reference", command_output(["dpkg-query", "-W", "containernetworking-plugins"]).replace("\t", " ") + f" ({REFERENCE_DIR})"),
        ("floor", command_output(["ip", "-V"])),
        ("iptables (reference ipMasq)", command_output(["iptables", "-V"])),
        ("python", platform.python_version()),
        ("date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
    ]


METHOD = """\
- Each sample is one whole-process invocation, fork to exit (`time.perf_counter_ns`
  around the spawn and `os.wait4`). The cell is median (min–max).
- Peak RSS: separate bridge ADDs (ipMasq on) with each process run under GNU
  `time -f %M`, i.e. `wait4`'s `ru_maxrss` taken by a 1 MiB parent; it covers the
  children a process reaps (the reference bridge execs `host-local` and
  `iptables`); the floor's is the larger of its two `ip` processes. (`wait4` in the
  Python harness itself reports at least the harness's own peak, ~50 MiB for every
  process: the kernel folds the pre-exec address space's high-water mark into
  `ru_maxrss`, and Python spawns with vfork.)
- The columns run the same configs (below; only `dataDir` differs, one per column) in
  their own throwaway namespaces, node side included, interleaved: reference,
  wasm-cni, floor, reference, wasm-cni, floor, ... Each plugin is spawned directly
  in its node namespace (the spawning thread enters it with `setns` just before
  fork), as a container runtime would; wasm-cni runs through `bridge`,
  `host-local` and `loopback` symlinks to a copy of `target/release/wasm-cni`,
  with a settings file (`WASM_CNI_CONFIG`: temporary `cacheDir`, `ipamDataDirs`)
  and `wasm-cni compile` run once before the warm scenarios.
- Kernel floor: the bridge ADD's netlink work issued by `ip -batch -` (bridge
  create + address + up on first use, veth created `up`, `master bridge` with its
  peer in the container namespace, container address, link up, default route),
  no sleeps, no firewall, no IPAM, no sysctl writes. One process per namespace
  touched: iproute2's batch mode cannot switch namespaces (`netns exec` forks)
  and the kernel refuses to set a veth peer up while creating it in another
  namespace, so an ADD is one batch in the node namespace then one in the
  container's (two process starts), a DEL one batch (`link del eth0`) in the
  container's. Scenarios without bridge netlink work show n/a.
- Between scenarios the benchmark waits until the kernel has torn down the
  namespaces it deleted (`net_namespace` objects in /proc/slabinfo stop falling):
  that teardown runs in kernel workers that take the RTNL lock and a CPU, and
  without the wait it slowed the next scenario (wasm-cni's `set-sysctl` phases
  went from ~0.5 ms to ~20 ms per ADD).
- ADD alone and DEL alone: every iteration runs ADD then DEL (DEL with the ADD's
  `prevResult`); only the named one is timed. loopback and host-local ADD are
  followed by an untimed DEL. A warm-up iteration (untimed) creates each bridge
  before a scenario's first sample, except the cold scenario.
- Parallel: all ADDs are started at once (the floor's second batch starts when its
  first exits); the wall time runs from the first fork to the last exit; the IPs
  handed out are checked unique, and DEL is checked to leave no allocation.
- Sequential: container *i* of each column is ADDed before container *i+1* of any
  (interleaved per container), each in its own namespace, `ipMasq` off; then one
  CNI GC (`cniVersion` 1.1.0, `cni.dev/valid-attachments: []`) releases every
  allocation, checked. The reference host-local has no GC (n/a).
- Cold: a fresh node namespace and IPAM directory per sample (the ADD creates the
  bridge); wasm-cni gets a fresh empty `WASM_CNI_CACHE_DIR`, so the ADD compiles
  the bridge and host-local components.
- Breakdown: wasm-cni's `WASM_CNI_TIMINGS=1` line (one per invocation, from the
  bridge ADD-alone samples), median per phase."""


def report(
    info: list[tuple[str, str]],
    table: str,
    notes: list[str],
    goals: str,
    breakdown: str,
    growth: str,
    configs: dict[str, dict],
    command: str,
) -> str:
    parts = [
        "# Benchmarks",
        "",
        f"Generated by `{command}` ([scripts/bench](../scripts/bench), "
        "[benches/bench.py](../benches/bench.py)); rerun it to refresh every number here.",
        "",
        "## Machine and versions",
        "",
        *[f"- {k}: {v}" for k, v in info],
        "",
        "## Results",
        "",
        "Times in ms (parallel phases in s), median (min–max); ratios of medians.",
        "",
        table,
        "",
        *[f"- {n}" for n in notes],
        "",
        "## Targets (issue 5)",
        "",
        goals,
        "",
        "## Where wasm-cni's time goes: bridge ADD",
        "",
        breakdown,
        "",
        "## Where the sequential scenario's growth goes",
        "",
        "wasm-cni's phases of the first and last containers of the sequential scenario "
        "(`WASM_CNI_TIMINGS=1`), the largest growth first:",
        "",
        growth,
        "",
        "## Method",
        "",
        METHOD,
        "",
        "## Configs",
        "",
    ]
    for name, conf in configs.items():
        parts += [f"{name}:", "", "```json", json.dumps(conf, indent=1), "```", ""]
    return "\n".join(parts)


# --------------------------------------------------------------------------- main


def preflight() -> None:
    if os.geteuid() != 0:
        raise BenchError("the benchmark needs root (it creates network namespaces)")
    for plugin in ("bridge", "host-local", "loopback"):
        if not (REFERENCE_DIR / plugin).is_file():
            raise BenchError(f"reference plugin {REFERENCE_DIR / plugin} missing: run scripts/setup")
    if not os.access(GNU_TIME, os.X_OK):
        raise BenchError(f"{GNU_TIME} (GNU time, for peak RSS) missing: run scripts/setup")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def measure(bench: Bench) -> tuple[list[Row], list[str]]:
    """Every scenario, in order; returns the rows and notes on the run itself."""
    sizes = bench.sizes
    scenarios: list[tuple[str, Callable[[], list[Row]]]] = [
        ("bridge ADD+DEL, ipMasq on", lambda: bridge_micro(bench, "masq", "bridge ADD+DEL, ipMasq on", True, "cycle", sizes.bridge)),
        ("bridge ADD+DEL, ipMasq off", lambda: bridge_micro(bench, "nomasq", "bridge ADD+DEL, ipMasq off", False, "cycle", sizes.bridge)),
        ("bridge ADD alone", lambda: bridge_micro(bench, "add", "bridge ADD alone, ipMasq on", True, "add", sizes.bridge)),
        ("peak RSS", lambda: peak_rss(bench, sizes.rss)),
        ("bridge DEL alone", lambda: bridge_micro(bench, "del", "bridge DEL alone, ipMasq on", True, "del", sizes.bridge)),
        ("loopback ADD", lambda: plugin_micro(bench, "loopback", "loopback ADD", "loopback", sizes.small)),
        ("host-local ADD", lambda: plugin_micro(bench, "host-local", "host-local ADD alone", "host-local", sizes.small)),
        ("cold first ADD", lambda: cold_first_add(bench, sizes.cold)),
        ("parallel", lambda: parallel(bench, sizes.parallel, sizes.parallel_rounds)),
        ("sequential + GC", lambda: sequential_and_gc(bench, sizes.sequential, sizes.window)),
    ]
    if bench.only:
        scenarios = [(name, fn) for name, fn in scenarios if any(word in name for word in bench.only)]
        if not scenarios:
            raise BenchError(f"--only {','.join(bench.only)} matches no scenario")
    load_before = Path("/proc/loadavg").read_text().split()[0]
    if float(load_before) > 0.5:
        print(f"bench: warning: load average {load_before} before the run; other work disturbs the numbers", file=sys.stderr)
    started = time.monotonic()
    busy_before, ours_before = cpu_seconds()
    baseline = spawn_baseline(bench, 30)
    rows: list[Row] = []
    for i, (name, scenario) in enumerate(scenarios, 1):
        t = time.monotonic()
        print(f"bench: [{i}/{len(scenarios)}] {name} ...", file=sys.stderr, flush=True)
        rows += scenario()
        print(f"bench:       {time.monotonic() - t:.1f} s", file=sys.stderr, flush=True)
    busy_after, ours_after = cpu_seconds()
    elapsed = time.monotonic() - started
    notes = [
        f"Harness baseline: spawning `/bin/true` the same way takes {baseline:.2f} ms (median); "
        "every sample includes one such cost per process.",
        f"{elapsed:.0f} s of measurement. CPU busy machine-wide: {busy_after - busy_before:.0f} s, of which "
        f"{ours_after - ours_before:.0f} s in the benchmark's own processes (the rest is mostly the kernel's "
        "work for them, e.g. namespace teardown; much more means other load disturbed the run). "
        f"1-minute load average before the run: {load_before}.",
    ]
    return rows, notes


def publish(args: argparse.Namespace, bench: Bench, info: list[tuple[str, str]], rows: list[Row], notes: list[str]) -> None:
    """Print the results and write the markdown report."""
    table = render_table(rows)
    goals = targets(rows, bench.breakdown.sandbox()[1])
    breakdown = bench.breakdown.render()
    sections = [
        ("", table + "\n\n" + "\n".join(f"- {n}" for n in notes)),
        ("Targets (issue 5), this run's medians", goals),
        ("bridge ADD breakdown (wasm-cni, WASM_CNI_TIMINGS=1)", breakdown),
        (f"sequential scenario, wasm-cni phases that grew (first vs last {bench.sizes.window})", bench.growth),
    ]
    for title, body in sections:
        print(f"\n{title}:" if title else "")
        print(body)
    command = "scripts/bench" + (" --quick" if args.quick else "")
    output = args.output or (None if args.quick or args.only else REPO / "docs" / "benchmarks.md")
    if output:
        work = Path("<tmp>")
        configs = {
            "bridge (ipMasq on; off in the ipMasq-off and sequential scenarios)": bridge_conf(True, work / "ipam" / "<column>"),
            "host-local": host_local_conf(work / "ipam" / "<column>"),
            "loopback": LOOPBACK_CONF,
        }
        text = report(info, table, notes, goals, breakdown, bench.growth, configs, command)
        Path(output).write_text(text + "\n")
        print(f"\nbench: wrote {output}", file=sys.stderr)


def run(args: argparse.Namespace, bench: Bench) -> None:
    bench.tool("compile")
    info = machine_info(bench)
    rows, notes = measure(bench)
    if args.quick:
        notes.append("--quick: smoke sizes, not for comparison.")
    publish(args, bench, info, rows, notes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: few repetitions, small N (~1 minute); writes no docs unless --output")
    parser.add_argument("--binary", default=str(REPO / "target" / "release" / "wasm-cni"), help="the wasm-cni binary to measure")
    parser.add_argument("--only", help="comma-separated words: run only the scenarios whose name contains one (e.g. sequential,loopback); writes no docs unless --output")
    parser.add_argument("--output", help="where to write the markdown report (default: docs/benchmarks.md for a full run)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    prefix = os.environ.get("WASM_CNI_BENCH_PREFIX") or f"wcb{os.getpid()}"
    namespaces = Namespaces(prefix)
    runner = Runner(NetnsSwitch())
    work = Path(tempfile.mkdtemp(prefix="wasm-cni-bench."))
    try:
        preflight()
        bench = Bench(QUICK if args.quick else FULL, work, Path(args.binary), namespaces, runner)
        bench.only = [w for w in (args.only or "").split(",") if w]
        run(args, bench)
        return 0
    except BenchError as e:
        print(f"\nbench: FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        runner.stop_all()
        namespaces.delete_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
