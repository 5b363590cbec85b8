"""Dask benchmark: the whole pipeline in process vs with its parts on a Dask LocalCluster.

    .venv/bin/python bench/bench_dask.py [--rows 200000] [--workers 3] [--files 4]

Generates N rows from the real tweets corpus (bench_ingest's generator) split into
`--files` CSV files (one contract part each), starts a real `prefect server start` on
127.0.0.1 (free port, temp PREFECT_HOME) and a `distributed.LocalCluster` of `--workers`
single-threaded worker processes in a process of its own, then runs the flow twice in
fresh processes: with the default task runner (parts in the stage's process, a local
store folder) and on prefect-dask's DaskTaskRunner (parts as task runs on the workers, the
store at a `file://` fsspec URL). Prints wall time, the stages and the parts, what each
worker ran (parts and seconds, from the parts' run logs), the size of the label model's
feature matrix (what each fold part receives), and checks that both runs flagged the same
rows. Everything started is stopped by PID.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import polars as pl
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))


CLUSTER = """
import sys, time
from distributed import LocalCluster
cluster = LocalCluster(n_workers=int(sys.argv[1]), threads_per_worker=1, processes=True,
                       host="127.0.0.1", dashboard_address=None)
print(cluster.scheduler_address, flush=True)
while True:
    time.sleep(1)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            continue


def _run(env: dict[str, str], spec: Path, store: Path | str,
         address: str) -> dict[str, object]:
    from bench_pipeline import CHILD

    proc = subprocess.run([sys.executable, "-c", CHILD, str(spec), str(store), address],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"flow failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    result: dict[str, object] = json.loads(line[len("RESULT "):])
    return result


def _show(title: str, r: dict[str, object]) -> None:
    stages, parts = r["stages"], r["parts"]
    assert isinstance(stages, dict) and isinstance(parts, dict)
    print(f"\n{title}: {r['state']}, wall {float(r['wall']):.1f} s")  # type: ignore[arg-type]
    for name, sec in stages.items():
        print(f"  {name:<18}{sec:>9.2f} s")
    for name, secs in parts.items():
        print(f"    {name} parts: {len(secs)} task runs, sum {sum(secs):.2f} s, "
              f"longest {max(secs):.2f} s")


def _per_worker(api: str, flow_run_id: str) -> dict[str, list[float]]:
    """Seconds of each part, by the Dask worker that ran it (from the parts' run logs)."""
    from tasks.partition import WORKER_LOG

    found: dict[str, list[float]] = {}
    offset = 0
    while True:
        body = json.dumps({"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200,
                           "offset": offset}).encode()
        req = urllib.request.Request(f"{api}/logs/filter", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            logs = json.load(resp)
        for log in logs:
            message = log["message"]
            if message.startswith(WORKER_LOG):
                worker, _, rest = message[len(WORKER_LOG):].strip().partition(" pid ")
                found.setdefault(f"{worker} (pid {rest.split(':')[0]})", []).append(
                    float(rest.split(":")[1].strip().removesuffix(" s")))
        if len(logs) < 200:
            return found
        offset += 200


def _latest(folder: Path) -> Path:
    """`latest`: a symlink in a store folder, a `.link` file at an fsspec URL."""
    link = folder / "latest.link"
    return folder / link.read_text().strip() if link.exists() else folder / "latest"


def _feature_matrix_mib(csv: Path) -> float:
    from labelgate.stages.label_issues.models import text_matrix

    text = pl.read_csv(csv, columns=["text"], infer_schema=False).get_column("text").fill_null("")
    x = text_matrix(text, char_ngrams=text.len() <= 50_000)
    return float(x.data.nbytes + x.indices.nbytes + x.indptr.nbytes) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--files", type=int, default=4)
    args = parser.parse_args()
    from bench_ingest import generate
    from bench_pipeline import spec_for

    csv = generate(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "in").mkdir()
        frame = pl.read_csv(csv, infer_schema=False)
        step = -(-frame.height // args.files)
        for i in range(args.files):
            frame.slice(i * step, step).write_csv(work / "in" / f"part-{i}.csv")
        del frame
        spec = work / "spec.yaml"
        spec.write_text(yaml.safe_dump(spec_for(str(work / "in" / "*.csv"))))
        port = _free_port()
        env = {**os.environ, "PREFECT_HOME": str(work / "home"),
               "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
               # INFO: the parts' "ran on Dask worker" lines reach the server's logs
               "PREFECT_LOGGING_LEVEL": "INFO"}
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "prefect"), "server", "start", "--host",
             "127.0.0.1", "--port", str(port), "--analytics-off"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        cluster = subprocess.Popen([sys.executable, "-c", CLUSTER, str(args.workers)], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    urllib.request.urlopen(env["PREFECT_API_URL"] + "/health", timeout=5)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit("the Prefect server did not start") from None
                    time.sleep(1)
            assert cluster.stdout is not None
            address = cluster.stdout.readline().decode().strip()
            print(f"{args.rows:,} rows in {args.files} files; Prefect server :{port}; "
                  f"LocalCluster {address} ({args.workers} workers x 1 thread); "
                  f"{os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}")
            local = _run(env, spec, work / "store-local", "")
            _show("in process", local)
            url = f"file://{work / 'store-dask'}"
            dask = _run(env, spec, url, address)
            _show(f"--dask ({args.workers} workers), store {url}", dask)
            print("  what each worker did:")
            for worker, secs in sorted(_per_worker(env["PREFECT_API_URL"],
                                                   str(dask["flow_run_id"])).items()):
                print(f"    {worker}: {len(secs)} parts, {sum(secs):.2f} s")
        finally:
            _stop(cluster)
            _stop(server)
        flagged = [
            pl.read_parquet(_latest(work / s / "reports/bench-pipeline") / "label_issues.parquet")
            .filter(pl.col("is_label_issue")).get_column("id").sort().to_list()
            for s in ("store-local", "store-dask")
        ]
        print(f"\nsame flagged rows in both runs: {flagged[0] == flagged[1]} "
              f"({len(flagged[0]):,} rows)")
        print(f"label-model feature matrix (what each fold part is sent): "
              f"{_feature_matrix_mib(csv):.0f} MiB")


if __name__ == "__main__":
    main()
