#!/usr/bin/env python3
"""perfcls: where a process's CPU goes per request, kernel included.

Usage: perfcls.py PERF_DATA REQUESTS [CATEGORY]

PERF_DATA is a `perf record -e cpu-clock -F 2000 -g -p PID -- sleep 4` of one noon
daemon (or the relay) during a noonbench row; REQUESTS is the requests the row served
in those seconds (req/s x 4). Each sample is put in one category: the system call its
kernel stack is in (k:write, k:read, k:epoll, k:futex, k:nanosleep, k:yield, k:other),
or, in user space, the Go scheduler (u:sched), malloc, GC, the rest of the runtime,
crypto, or the program (u:app). It prints microseconds of CPU per request for each,
and with CATEGORY the leaf functions of that category. (perf's hardware counters are
not supported on these VMs; the software clock is, with kernel symbols.)
"""
import collections
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


def classify(frames):
    joined = " ".join(frames)
    for key, name in KERNEL:
        if key in joined:
            return name
    leaf = frames[0] if frames else "?"
    if "entry_SYSCALL" in joined:
        return "k:other"
    if leaf.startswith(("runtime.", "internal/runtime", "__vdso", "aeshash")):
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


def main():
    path, reqs = sys.argv[1], float(sys.argv[2])
    want = sys.argv[3] if len(sys.argv) > 3 else None
    cats, leafs, total = collections.Counter(), collections.Counter(), 0
    for period, frames in samples(path):
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
