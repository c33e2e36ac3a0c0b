#!/usr/bin/env bash
# `make run`: etcd, a milvus-lite upstream and the proxy on 127.0.0.1, all under .run/.
# Root is bootstrapped with the documented dev password `Milvus`. Ctrl-C stops everything.
# Ports can be moved with the variables below (the integration test does).
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_DIR=${RUN_DIR:-.run}
BIN=${BIN:-.venv/bin}
PROXY_PORT=${PROXY_PORT:-19530}
INTERNAL_PORT=${INTERNAL_PORT:-19529}
MILVUS_PORT=${MILVUS_PORT:-19540}
ETCD_PORT=${ETCD_PORT:-23790}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-23800}
METRICS_PORT=${METRICS_PORT:-19091}
ETCD=$(command -v etcd || echo /usr/bin/etcd)

mkdir -p "$RUN_DIR"
PIDS=()
stop_all() {
    trap - EXIT INT TERM
    echo "stopping..."
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    # Each gets 20 s to stop (the proxy drains its calls first); whatever is left is killed.
    for _ in $(seq 1 200); do
        running=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && running=1; done
        [ "$running" = 0 ] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            echo "pid $pid ($(ps -o comm= -p "$pid" 2>/dev/null || true)) did not stop within 20 s: killed"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    wait 2>/dev/null || true
    echo "stopped; data and logs stay in $RUN_DIR/"
}
trap stop_all EXIT INT TERM

wait_for_port() {  # name port log
    for _ in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "$1 did not start; see $3" >&2
    tail -n 20 "$3" >&2 || true
    exit 1
}

umask 077
printf 'Milvus\n' >"$RUN_DIR/root-password"

"$ETCD" --name dev --data-dir "$RUN_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "dev=http://127.0.0.1:$ETCD_PEER_PORT" \
    --log-level warn >"$RUN_DIR/etcd.log" 2>&1 &
PIDS+=($!)
wait_for_port etcd "$ETCD_PORT" "$RUN_DIR/etcd.log"

"$BIN/milvus-lite" server --data-dir "$RUN_DIR/milvus" --host 127.0.0.1 --port "$MILVUS_PORT" \
    >"$RUN_DIR/milvus-lite.log" 2>&1 &
PIDS+=($!)
wait_for_port milvus-lite "$MILVUS_PORT" "$RUN_DIR/milvus-lite.log"

"$BIN/milvus-auth" proxy --host 127.0.0.1 --port "$PROXY_PORT" --internal-port "$INTERNAL_PORT" \
    --upstream "127.0.0.1:$MILVUS_PORT" --etcd-endpoints "127.0.0.1:$ETCD_PORT" \
    --root-password-file "$RUN_DIR/root-password" --metrics-port "$METRICS_PORT" --workers 1 \
    >"$RUN_DIR/proxy.log" 2>&1 &
PIDS+=($!)
wait_for_port proxy "$PROXY_PORT" "$RUN_DIR/proxy.log"

cat <<INFO

milvus-auth is running (logs in $RUN_DIR/):
  proxy     127.0.0.1:$PROXY_PORT  -> milvus-lite 127.0.0.1:$MILVUS_PORT, etcd 127.0.0.1:$ETCD_PORT
  internal  127.0.0.1:$INTERNAL_PORT (cache RPCs, health)   metrics http://127.0.0.1:$METRICS_PORT/metrics

Connect with pymilvus as root (dev password "Milvus"):
  from pymilvus import MilvusClient
  client = MilvusClient(uri="http://127.0.0.1:$PROXY_PORT", user="root", password="Milvus")
Or run the walkthrough:  $BIN/python examples/quickstart.py
Manage users in etcd:    $BIN/milvus-auth users list --etcd-endpoints 127.0.0.1:$ETCD_PORT

Press Ctrl-C to stop.
INFO

# Any process exiting (or Ctrl-C) ends the session and stops the others.
wait -n
echo "a process exited; see $RUN_DIR/*.log" >&2
