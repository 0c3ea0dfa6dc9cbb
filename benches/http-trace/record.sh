#!/usr/bin/env bash
# Records one traced run of the http_hello server under `wrk -t2 -c64`, for
# analyze.py: the scheduler's switches and wakeups on every CPU and the
# server's epoll_wait and writev calls, for SECS seconds (default 1) in the
# middle of a longer load; and which wrk thread owns which connection.
#
#   benches/http-trace/record.sh [-r] BIN RUNTIME OUTDIR [SECS]
#
# BIN is the bench binary (target/release/bench), RUNTIME what its --serve
# takes (wq, wq-no-monitor, tokio). -r also traces every write (wrk's
# requests, for the per-connection times), which costs both sides about a
# quarter of their requests and changes where threads run: compare -r runs
# only with each other. Needs root (perf tracepoints), perf, strace, ss and
# wrk.
set -euo pipefail
requests=
if [ "${1:-}" = -r ]; then
    requests=,syscalls:sys_enter_write
    shift
fi
if [ $# -lt 3 ]; then
    sed -n '2,14p' "$0"
    exit 2
fi
bin=$1 runtime=$2 out=$3 secs=${4:-1}
mkdir -p "$out"
"$bin" --serve "$runtime" --workers 2 > "$out/address" 2>/dev/null &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
sleep 0.3
address=$(head -1 "$out/address")
# strace records each wrk thread's connect() (thread id and fd); with the
# seccomp filter no other system call of wrk's stops.
strace -f --seccomp-bpf -e trace=connect -o "$out/connect" \
    wrk -t2 -c64 -d$((2 + ${secs%.*}))s "http://$address/" > "$out/wrk" &
load=$!
sleep 1
ss -tnpH state established > "$out/sockets"
perf record -q -a -o "$out/perf.data" \
    -e sched:sched_switch,sched:sched_wakeup \
    -e syscalls:sys_enter_epoll_wait,syscalls:sys_exit_epoll_wait \
    -e "syscalls:sys_enter_writev$requests" \
    -- sleep "$secs" 2>/dev/null
wait $load
echo "$server" > "$out/server.pid"
perf script -i "$out/perf.data" -F comm,pid,tid,cpu,time,event,trace > "$out/events" 2>/dev/null
rm -f "$out/perf.data"
grep Requests/sec "$out/wrk"
