#!/usr/bin/env python3
"""Per-run figures from record.sh's output directories, one line each.

    benches/http-trace/analyze.py OUTDIR...

Per 1,000 responses unless said:
  resp/s       responses written by the server (writev calls) per second
  wrk sleeps   wrk threads blocking (switched out asleep)
  preempt      server workers switched out while runnable
  pre/sleep    preempt per wrk sleep
  wrk->own     share of wrk wakeups by a worker that put wrk on that
               worker's own CPU while another CPU was idle
  stacked      wakeups of a worker onto a CPU where the other worker was
               running or waiting
  together     share of the time both workers were runnable on one CPU
  per wake     events a wrk thread's epoll_wait returned after it slept
               in it (responses, mostly)
  polls        the server's epoll_wait calls that returned events, and
               the mean events each
  blocking     the server's epoll_wait calls that could wait (timeout != 0)
  req->resp    per connection, mean microseconds from wrk's write of a
               request to the server's writev of its response (runs
               recorded with -r only)
  resp->req    and from that writev to wrk's next request
"""
import collections
import re
import statistics
import sys

LINE = re.compile(r"\s*(\S.*?)\s+(\d+)/(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s*(.*)")
WORKER_NAMES = ("wq-worker", "tokio-rt-worker")


def field(text, name):
    return re.search(r"(?:^|\s)" + name + r"[=:] ?([^\s,]+)", text).group(1)


def connections(out, server):
    """Maps the server's connection fds to wrk's (thread id, fd)."""
    thread_of_fd = {}
    for line in open(f"{out}/connect"):
        m = re.match(r"(\d+)\s+connect\((\d+),", line)
        if m:
            thread_of_fd[int(m.group(2))] = int(m.group(1))
    wrk_fd_of_port, server_port_of_fd = {}, {}
    for line in open(f"{out}/sockets"):
        fields = line.split()
        m = re.search(r'\(\("([^"]+)",pid=(\d+),fd=(\d+)\)', line)
        if not m:
            continue
        local, peer = fields[2], fields[3]
        if int(m.group(2)) == server:
            server_port_of_fd[int(m.group(3))] = int(peer.rsplit(":", 1)[1])
        elif m.group(1) == "wrk":
            wrk_fd_of_port[int(local.rsplit(":", 1)[1])] = int(m.group(3))
    mapping = {}
    for fd, port in server_port_of_fd.items():
        wrk_fd = wrk_fd_of_port.get(port)
        if wrk_fd in thread_of_fd:
            mapping[fd] = (thread_of_fd[wrk_fd], wrk_fd)
    return mapping


def analyze(out):
    server = int(open(f"{out}/server.pid").read())
    conns = connections(out, server)
    wrk_threads = {t for t, _ in conns.values()}
    server_fd_of_wrk_fd = {w: s for s, (_, w) in conns.items()}
    workers = {}  # tid -> [cpu, runnable]
    running = {}  # cpu -> tid
    n = collections.Counter()
    events_per_poll = []
    request_at, response_at, req_resp, resp_req = {}, {}, [], []
    together = 0.0
    wrk_slept = {}  # wrk thread -> slept in its current epoll_wait
    wrk_per_wake = []
    first = last = None
    for line in open(f"{out}/events"):
        m = LINE.match(line)
        if not m:
            continue
        comm, pid, tid, cpu, t, event, rest = m.groups()
        pid, tid, cpu, t = int(pid), int(tid), int(cpu), float(t)
        if last is not None and len(workers) == 2:
            (c1, r1), (c2, r2) = workers.values()
            if r1 and r2 and c1 == c2:
                together += t - last
        first = first if first is not None else t
        last = t
        if pid == server and comm in WORKER_NAMES and tid not in workers:
            workers[tid] = [cpu, True]
        if event == "sched:sched_switch":
            prev, state, nxt = int(field(rest, "prev_pid")), field(rest, "prev_state"), int(field(rest, "next_pid"))
            running[cpu] = nxt
            if prev in wrk_threads and state.startswith("S"):
                n["wrk sleeps"] += 1
                wrk_slept[prev] = True
            if prev in workers:
                workers[prev] = [cpu, not state.startswith(("S", "D"))]
                if not state.startswith(("S", "D")):
                    n["preempt"] += 1
            if nxt in workers:
                workers[nxt] = [cpu, True]
        elif event == "sched:sched_wakeup":
            woken, target = int(field(rest, "pid")), int(field(rest, "target_cpu"))
            if woken in wrk_threads and tid in workers:
                n["wrk woken by worker"] += 1
                if target == cpu and any(c != cpu and p == 0 for c, p in running.items()):
                    n["wrk->own"] += 1
            if woken in workers:
                other = [w for k, w in workers.items() if k != woken]
                if any(c == target and r for c, r in other):
                    n["stacked"] += 1
                workers[woken] = [target, True]
        elif tid in wrk_threads and event == "syscalls:sys_enter_epoll_wait":
            wrk_slept[tid] = False
        elif tid in wrk_threads and event == "syscalls:sys_exit_epoll_wait":
            if wrk_slept.pop(tid, False) and 0 < int(rest, 16) < 1 << 31:
                wrk_per_wake.append(int(rest, 16))
        elif pid == server and event == "syscalls:sys_enter_epoll_wait":
            n["blocking"] += int(field(rest, "timeout"), 16) != 0
        elif pid == server and event == "syscalls:sys_exit_epoll_wait":
            ret = int(rest, 16)
            if 0 < ret < 1 << 31:
                events_per_poll.append(ret)
        elif pid == server and event == "syscalls:sys_enter_writev":
            fd = int(field(rest, "fd"), 16)
            n["responses"] += 1
            if fd in request_at:
                req_resp.append(t - request_at.pop(fd))
            response_at[fd] = t
        elif tid in wrk_threads and event == "syscalls:sys_enter_write":
            fd = server_fd_of_wrk_fd.get(int(field(rest, "fd"), 16))
            if fd is not None:
                request_at[fd] = t
                if fd in response_at:
                    resp_req.append(t - response_at.pop(fd))
    responses = n["responses"]
    span = last - first

    def per_k(count):
        return count * 1e3 / responses

    times = ""
    if req_resp:
        times = f"  req->resp {statistics.mean(req_resp) * 1e6:.0f} us  resp->req {statistics.mean(resp_req) * 1e6:.0f} us"
    return (
        f"{out}: resp/s {responses / span / 1e3:.0f}k  wrk sleeps {per_k(n['wrk sleeps']):.1f}  "
        f"preempt {per_k(n['preempt']):.1f}  pre/sleep {n['preempt'] / max(n['wrk sleeps'], 1):.2f}  "
        f"wrk->own {n['wrk->own'] / max(n['wrk woken by worker'], 1):.2f}  stacked {per_k(n['stacked']):.2f}  "
        f"together {together / span:.2f}  per wake {statistics.mean(wrk_per_wake or [0]):.1f}  polls {per_k(len(events_per_poll)):.1f} x "
        f"{statistics.mean(events_per_poll or [0]):.1f}  blocking {per_k(n['blocking']):.1f}{times}"
    )


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for out in sys.argv[1:]:
        print(analyze(out))


if __name__ == "__main__":
    main()
