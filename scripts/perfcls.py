#!/usr/bin/env python3
"""perfcls: where a process's CPU goes per request, kernel included.

Usage: perfcls.py PROFILE REQUESTS [CATEGORY]

PROFILE is either a `perf record -e cpu-clock -F 2000 -g -p PID -- sleep 4` of one noon
daemon (or the relay) during a noonbench row, or a Go CPU profile (noonbench's
-cpuprofile-broker / -cpuprofile-echo, read with `go tool pprof -traces`; its kernel
time is the system call's Go frame, the call named by the Go frames that made it);
REQUESTS is the requests served in the profiled seconds (req/s x seconds). Each sample
is put in one category: the system call it is in (k:write, k:read, k:epoll, k:futex,
k:nanosleep, k:yield, k:other), or, in user space, the Go scheduler (u:sched), malloc,
GC, stack growth (u:stack), the rest of the runtime, crypto, or the program (u:app). It
prints microseconds of CPU per request for each, and with CATEGORY the leaf functions
of that category. (perf's hardware counters are not supported on these VMs; the
software clock is, with kernel symbols.) The README's Benchmarks section has a Go
profile of the broker at issue 15's start and at its end, side by side.
"""
import collections
import re
import subprocess
import sys

KERNEL = [("ksys_write", "k:write"), ("__x64_sys_write", "k:write"), ("ksys_read", "k:read"),
          ("__x64_sys_read", "k:read"), ("do_epoll_wait", "k:epoll"), ("__x64_sys_epoll", "k:epoll"),
          ("futex", "k:futex"), ("nanosleep", "k:nanosleep"), ("sched_yield", "k:yield")]
SCHED = ("runtime.schedule", "runtime.findRunnable", "runtime.park_m", "runtime.mstart",
         "runtime.sysmon", "runtime.goschedImpl", "runtime.exitsyscall", "runtime.reentersyscall",
         "runtime.entersyscall")
GC = ("runtime.gcBgMarkWorker", "runtime.gcDrain", "runtime.bgsweep", "runtime.bgscavenge",
      "runtime.gcStart", "runtime.markroot")


# A Go profile's system calls: the leaf is the raw call, the Go frames above
# it say which.
GO_SYSCALL = ("internal/runtime/syscall/linux.Syscall6", "syscall.RawSyscall6", "syscall.Syscall6",
              "syscall.RawSyscall", "syscall.Syscall", "runtime.futex", "runtime.epollwait",
              "runtime.usleep", "runtime.osyield")
GO_CALLS = [("runtime.netpoll", "k:epoll"), ("epoll", "k:epoll"), ("runtime.futex", "k:futex"),
            ("runtime.usleep", "k:nanosleep"), ("runtime.osyield", "k:yield"),
            ("rite", "k:write"), ("sendmsg", "k:write"), ("ead", "k:read"), ("recvmsg", "k:read")]


def go_syscall(frames):
    """The category of a Go profile's sample in a system call, or None."""
    if not frames or frames[0] not in GO_SYSCALL:
        return None
    for f in frames:
        name = f.rsplit("/", 1)[-1]
        for key, cat in GO_CALLS:
            if key in name:
                return cat
    return "k:other"


def classify(frames):
    joined = " ".join(frames)
    for key, name in KERNEL:
        if key in joined:
            return name
    sc = go_syscall(frames)
    if sc:
        return sc
    leaf = frames[0] if frames else "?"
    if "entry_SYSCALL" in joined:
        return "k:other"
    if leaf.startswith(("runtime.", "internal/runtime", "__vdso", "aeshash")):
        if "runtime.newstack" in joined or "runtime.copystack" in joined:
            return "u:stack"  # goroutine stacks growing (copystack)
        if any(s in joined for s in SCHED):
            return "u:sched"
        if any(s in joined for s in GC):
            return "u:gc"
        if "mallocgc" in joined or "runtime.newobject" in joined or "growslice" in joined:
            return "u:malloc"
        return "u:runtime-other"
    if leaf.startswith(("_", "do_", "irq", "asm_")):
        return "k:other"
    if "crypto/" in joined:
        return "u:crypto"
    return "u:app"


def samples(path):
    out = subprocess.run(["perf", "script", "-i", path, "-F", "period,ip,sym"],
                         capture_output=True, text=True, check=True).stdout
    cur, period = [], 0
    for line in out.splitlines() + [""]:
        parts = line.split()
        if not parts:
            if cur:
                yield period, cur
            cur = []
        elif len(parts) == 1 and parts[0].isdigit():
            period = int(parts[0])
        elif len(parts) >= 2:
            cur.append(parts[1])


def pprof_samples(path):
    """A Go CPU profile's samples: (nanoseconds, frames leaf first)."""
    out = subprocess.run(["go", "tool", "pprof", "-traces", path],
                         capture_output=True, text=True, check=True).stdout
    unit = {"ns": 1, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9}
    for block in out.split("-----------+-"):
        lines = [l for l in block.splitlines() if l.strip() and not l.startswith("-")]
        m = lines and re.match(r"\s*([\d.]+)(ns|us|µs|ms|s)\s+(\S+)", lines[0])
        if not m:
            continue
        frames = [m.group(3)] + [l.split()[0] for l in lines[1:]]
        yield float(m.group(1)) * unit[m.group(2)], frames


def is_pprof(path):
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"  # gzipped protobuf; perf.data starts PERFILE


def main():
    path, reqs = sys.argv[1], float(sys.argv[2])
    want = sys.argv[3] if len(sys.argv) > 3 else None
    cats, leafs, total = collections.Counter(), collections.Counter(), 0
    for period, frames in (pprof_samples(path) if is_pprof(path) else samples(path)):
        c = classify(frames)
        cats[c] += period
        total += period
        if c == want:
            leafs[frames[0]] += period
    print(f"{path}: {total / 1e3 / reqs:.1f} us per request")
    for k, v in cats.most_common():
        print(f"  {k:16s} {v / 1e3 / reqs:7.1f} us  {100 * v / total:5.1f}%")
    for k, v in leafs.most_common(40):
        print(f"    {v / 1e3 / reqs:6.2f} {k}")


if __name__ == "__main__":
    main()
